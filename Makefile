# streamscribe — everything a fresh machine needs is installed by these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CACHE  := .cache
DEMO_WAV := $(CACHE)/demo/pyannote/audio/sample/sample.wav
export STREAMSCRIBE_SHARED ?= $(abspath ../shared)

.PHONY: setup demo test test-unit test-integration lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version" || { echo "Python 3.11 is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A real two-speaker recording shipped inside the PyPI wheel of pyannote.audio (fetched without its deps).
$(DEMO_WAV): | $(STAMP)
	mkdir -p $(CACHE)/demo
	$(PY) -m pip download --quiet --no-deps --dest $(CACHE)/demo 'pyannote.audio==4.0.7'
	cd $(CACHE)/demo && $(abspath $(PY)) -m zipfile -e pyannote_audio-4.0.7-py3-none-any.whl . >/dev/null
	test -s $(DEMO_WAV)

demo: $(STAMP) $(DEMO_WAV)
	$(VENV)/bin/streamscribe demo $(DEMO_WAV) --home $(CACHE)/demo-home

test: $(STAMP) $(DEMO_WAV)
	$(PY) -m pytest -q

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP) $(DEMO_WAV)
	$(PY) bench/batch_latency.py
	$(PY) bench/diarization_der.py

clean:
	rm -rf $(VENV) $(CACHE)
