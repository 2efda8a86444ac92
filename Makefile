# streamscribe — everything a fresh machine needs is installed by these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CACHE  := .cache
DEMO_WAV := $(CACHE)/demo/pyannote/audio/sample/sample.wav
KAFKA_LIBS  := $(CACHE)/kafka/libs
KAFKA_STAMP := $(CACHE)/kafka/.installed
export STREAMSCRIBE_SHARED ?= $(abspath ../shared)

.PHONY: setup kafka demo test test-unit test-integration test-image lint bench clean

setup: $(STAMP) $(KAFKA_STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version" || { echo "Python 3.11 is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Apache Kafka's server jars (KRaft broker and storage tool) and their dependencies, resolved by Maven from its
# default central repository (kafka/pom.xml) into the cache, once; streamscribe.stack.kafka_cluster runs them.
kafka: $(KAFKA_STAMP)

$(KAFKA_STAMP): kafka/pom.xml
	@command -v java >/dev/null || { echo "Java 17 is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is required (apt-get install maven)"; exit 1; }
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -ntp -Dstyle.color=never -f kafka/pom.xml dependency:copy-dependencies -Dlibs.dir=$(abspath $(KAFKA_LIBS))
	ls $(KAFKA_LIBS)/kafka_2.13-*.jar $(KAFKA_LIBS)/kafka-storage-*.jar >/dev/null
	touch $@

# A real two-speaker recording shipped inside the PyPI wheel of pyannote.audio (fetched without its deps).
$(DEMO_WAV): | $(STAMP)
	mkdir -p $(CACHE)/demo
	$(PY) -m pip download --quiet --no-deps --dest $(CACHE)/demo 'pyannote.audio==4.0.7'
	cd $(CACHE)/demo && $(abspath $(PY)) -m zipfile -e pyannote_audio-4.0.7-py3-none-any.whl . >/dev/null
	test -s $(DEMO_WAV)

demo: $(STAMP) $(DEMO_WAV)
	$(VENV)/bin/streamscribe demo $(DEMO_WAV) --home $(CACHE)/demo-home

test: $(STAMP) $(KAFKA_STAMP)
	$(PY) -m pytest -q -m "not image"

# Builds the Dockerfile with buildah from a Debian base made with mmdebstrap (docker/build-local.sh) and checks the
# image; needs root and `apt-get install buildah mmdebstrap`. Long (20-30 min): not part of `make test`.
test-image: $(STAMP)
	$(PY) -m pytest -q -m image tests/image

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/batch_latency.py

clean:
	rm -rf $(VENV) $(CACHE)
