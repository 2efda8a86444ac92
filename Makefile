# streamscribe — everything a fresh machine needs is installed by these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CACHE  := .cache
DEMO_WAV := $(CACHE)/demo/pyannote/audio/sample/sample.wav
KAFKA_LIBS  := $(CACHE)/kafka/libs
KAFKA_STAMP := $(CACHE)/kafka/.installed
KAFKA_ARCHIVE := $(CACHE)/kafka/classes.jsa
export STREAMSCRIBE_SHARED ?= $(abspath ../shared)

WEB_BUILT := gateway/static/app/index.html
WEB_DEPS := web/node_modules/.package-lock.json
WEB_SRC := web/index.html web/build.mjs web/icon.svg $(wildcard web/src/*.js web/src/*.jsx web/src/*.css web/src/views/*.jsx)
CHROMIUM := /usr/bin/chromium

.PHONY: setup kafka apt-java demo test test-fast test-apache test-embedded test-unit test-e2e test-chaos test-image lint bench clean

setup: $(STAMP) $(KAFKA_STAMP) $(KAFKA_ARCHIVE) $(WEB_BUILT) $(CHROMIUM)

# The web app: dependencies from the committed lockfile with the machine's Node.js, bundled by esbuild into the
# gateway's static directory (every asset served by the gateway; nothing from a CDN).
$(WEB_DEPS): web/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20 with npm is required to build the web app"; exit 1; }
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_DEPS)

$(WEB_BUILT): $(WEB_DEPS) $(WEB_SRC)
	cd web && node build.mjs

# Debian's Chromium for the browser tests (tests/e2e); Playwright drives it and never downloads a browser.
$(CHROMIUM):
	@test "$$(id -u)" = 0 || { echo "Chromium is missing: run 'apt-get install -y chromium' as root"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version" || { echo "Python 3.11 is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Apache Kafka's server jars (KRaft broker and storage tool) and their dependencies, resolved by Maven from its
# default central repository (kafka/pom.xml) into the cache, once; streamscribe.stack.kafka_cluster runs them. Then
# the class-data-sharing archive every node maps (streamscribe.stack.kafka_archive: a node starts on a third of the
# CPU).
kafka: $(KAFKA_STAMP) $(KAFKA_ARCHIVE)

$(KAFKA_STAMP): kafka/pom.xml
	@command -v java >/dev/null && command -v mvn >/dev/null && command -v docker-compose >/dev/null \
		|| $(MAKE) --no-print-directory apt-java
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -ntp -Dstyle.color=never -f kafka/pom.xml dependency:copy-dependencies -Dlibs.dir=$(abspath $(KAFKA_LIBS))
	ls $(KAFKA_LIBS)/kafka_2.13-*.jar $(KAFKA_LIBS)/kafka-storage-*.jar >/dev/null
	touch $@

$(KAFKA_ARCHIVE): $(KAFKA_STAMP) streamscribe/stack/kafka_archive.py | $(STAMP)
	$(PY) -m streamscribe.stack.kafka_archive

# Java 17 and Maven from Debian where missing (Apache Kafka's jars come from Maven Central through kafka/pom.xml),
# and docker-compose (validates docker-compose.kafka.yml in the tests, without an engine).
apt-java:
	@test "$$(id -u)" = 0 || { echo "missing: apt-get install openjdk-17-jre-headless maven docker-compose"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless maven \
		docker-compose

# A real two-speaker recording shipped inside the PyPI wheel of pyannote.audio (fetched without its deps).
$(DEMO_WAV): | $(STAMP)
	mkdir -p $(CACHE)/demo
	$(PY) -m pip download --quiet --no-deps --dest $(CACHE)/demo 'pyannote.audio==4.0.7'
	cd $(CACHE)/demo && $(abspath $(PY)) -m zipfile -e pyannote_audio-4.0.7-py3-none-any.whl . >/dev/null
	test -s $(DEMO_WAV)

demo: $(STAMP) $(WEB_BUILT) $(DEMO_WAV)
	$(VENV)/bin/streamscribe demo $(DEMO_WAV) --home $(CACHE)/demo-home

# The README's test command, and CI's (.ci/run). Four pytest runs, each naming in its summary every test it
# deselects (tests/conftest.py), every failure, error and skip with its reason (-rfEs; integration failures as short
# tracebacks with their messages, so that a CI excerpt of the log holds all of them), and the slowest tests:
#   1. unit, deployment (chart, Compose file) and browser tests (on the embedded stack);
#   2. the whole integration suite on a 3-broker Apache Kafka KRaft cluster (`up --kafka apache`), the production
#      engine: exactly-once, broker failover, scale-out and SASL_SSL included;
#   3. on Tansu, the tests that prove the embedded default (`-m embedded`: demo path, crash recovery, bad input,
#      live, replay, the broker's own log and authentication);
#   4. the chaos suite on Tansu (tests/chaos: kills of every worker, the broker, PostgreSQL and the object store,
#      a frozen worker and database, `down`/`up` with jobs in flight, the reconciler; about 6 minutes).
# One after the other: run side by side (the Apache Kafka run beside the two Tansu runs, `make -j2`) they took as
# long in all on two cores (2026-12-01: both cores busy 97-100 % of the time; each run slowed by what the other
# used). Every run runs even when one before it failed (-k); `make` fails at the end if any did.
test: setup $(DEMO_WAV)
	$(MAKE) -k --no-print-directory test-fast test-apache test-embedded test-chaos

test-fast: setup $(DEMO_WAV)
	$(PY) -m pytest -q -rfEs --durations=15 -m "not image" tests/unit tests/deploy tests/e2e

test-apache: setup $(DEMO_WAV)
	STREAMSCRIBE_TEST_BROKER=apache $(PY) -m pytest -q -rfEs --tb=short --durations=40 -m "not image" tests/integration

test-embedded: setup $(DEMO_WAV)
	STREAMSCRIBE_TEST_BROKER=tansu $(PY) -m pytest -q -rfEs --tb=short --durations=25 -m "embedded and not image" tests/integration

# Builds the Dockerfile with buildah from a Debian base made with mmdebstrap (docker/build-local.sh) and checks the
# image; needs root and `apt-get install buildah mmdebstrap`. Long (20-30 min): not part of `make test`.
test-image: $(STAMP)
	$(PY) -m pytest -q -m image tests/image

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-e2e: setup
	$(PY) -m pytest -q tests/e2e

# Kills, freezes and restarts under a batch of jobs (docs/recovery.md).
test-chaos: setup $(DEMO_WAV)
	STREAMSCRIBE_TEST_BROKER=tansu $(PY) -m pytest -q -rfEs --tb=short --durations=15 tests/chaos

lint: $(STAMP) $(WEB_DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	cd web && npx --no-install eslint .

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(STAMP) $(BENCH_STAMP) $(DEMO_WAV)
	$(PY) bench/batch_latency.py
	$(PY) bench/diarization_der.py

clean:
	rm -rf $(VENV) $(CACHE) web/node_modules gateway/static/app
