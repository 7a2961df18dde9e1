# eventkit: `make lab` opens the workbench, `make test` runs the whole suite.
# Both create .venv and the sample archive first, so they work on a fresh clone.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SAMPLE := data/sample
SAMPLE_ARGS := --events 50000 --accounts 500 --seed 7
PATTERNS := data/patterns
KERNEL := eventkit
HOST   := 127.0.0.1
PORT   ?= 8888

.PHONY: lab test setup sample patterns-sample bench clean

setup: $(STAMP) $(SAMPLE)/_delta_log

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (eventkit)" >/dev/null
	touch $(STAMP)

$(SAMPLE)/_delta_log: $(STAMP)
	$(PY) -m eventkit generate $(SAMPLE) $(SAMPLE_ARGS)

sample: $(SAMPLE)/_delta_log

# The archive notebooks/05_patterns.ipynb reads (it makes the same one itself when missing).
patterns-sample: $(STAMP)
	test -d $(PATTERNS)/_delta_log || $(PY) -m eventkit generate $(PATTERNS) --events 20000 \
		--accounts 200 --seed 5 --inject-patterns

# JupyterLab on notebooks/, loopback only, with a random token (printed in the URL below).
lab: setup
	$(PY) -m eventkit lab --notebooks notebooks --host $(HOST) --port $(PORT)

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/replay.py
	$(PY) benchmarks/temporal.py

clean:
	rm -rf $(VENV) $(SAMPLE) $(PATTERNS) build reports .pytest_cache .hypothesis
