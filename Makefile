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
# Debian's browser for tests/test_browser.py (never `playwright install`: it downloads one).
CHROMIUM := /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: lab app test test-fast lint setup sample patterns-sample bench reports clean

# The replay kernels compiled into numba's cache, so the first replay does not wait for them.
KERNELS := $(VENV)/.kernels-stamp

setup: $(STAMP) $(SAMPLE)/_delta_log $(KERNELS)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (eventkit)" >/dev/null
	touch $(STAMP)

# numba keys its cache by each kernel's source: any change to the replay stage compiles again
# what changed (the rest loads from the cache).
$(KERNELS): $(STAMP) $(wildcard eventkit/replay/*.py)
	$(PY) -m eventkit compile
	touch $(KERNELS)

$(SAMPLE)/_delta_log: | $(STAMP)  # order-only: a reinstall keeps the sample
	$(PY) -m eventkit generate $(SAMPLE) $(SAMPLE_ARGS)

sample: $(SAMPLE)/_delta_log

$(CHROMIUM):
	$(SUDO) apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

# The archive notebooks/05_patterns.ipynb reads (it makes the same one itself when missing).
patterns-sample: $(STAMP)
	test -d $(PATTERNS)/_delta_log || $(PY) -m eventkit generate $(PATTERNS) --events 20000 \
		--accounts 200 --seed 5 --inject-patterns

# JupyterLab on notebooks/, loopback only, with a random token (printed in the URL below).
lab: setup
	$(PY) -m eventkit lab --notebooks notebooks --host $(HOST) --port $(PORT)

# The account explorer as a page for people who do not code (Voila), loopback, token.
APP_PORT ?= 8866
app: setup
	$(PY) -m eventkit app $(SAMPLE) --host $(HOST) --port $(APP_PORT)

# The whole suite, as CI runs it: lint and types first, then every test (browser, broker,
# Dask cluster and notebooks included); the slowest ones are listed at the end (the suite
# should stay under ~20 minutes).
test: lint $(CHROMIUM)  # the browser test needs Debian's chromium
	$(PY) -m pytest --durations=15

# The edit loop: everything but the browser, broker, cluster, notebook and slow tests.
FAST := not slow and not notebooks and not browser and not broker and not cluster
test-fast: lint
	$(PY) -m pytest -m "$(FAST)"

lint: setup
	$(PY) -m ruff check eventkit tests benchmarks notebooks
	$(PY) -m mypy

# Every notebook run with papermill into reports/ (parameters: reports.yaml), plus HTML
# that stands alone (no script, nothing loaded from the network) and reports/index.html.
reports: setup
	$(PY) -m eventkit report --config reports.yaml --out reports

bench: setup
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/replay.py
	$(PY) benchmarks/temporal.py
	$(PY) benchmarks/whatif.py
	$(PY) benchmarks/user_path.py

clean:
	rm -rf $(VENV) $(SAMPLE) $(PATTERNS) build reports .pytest_cache .hypothesis
