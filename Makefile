# Set-up is idempotent: a stamp file is rebuilt only when its inputs change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: demo test test-fast bootstrap bench clean

bootstrap: $(PIP_STAMP) $(NPM_STAMP)

$(PIP_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# `npm install` honours the lock; `npm ci` rejects it because npm records only this platform's
# optional anvil binary package (npm's optional-dependency lock bug).
$(NPM_STAMP): package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

demo: bootstrap
	$(VENV)/bin/tapedeck demo

# The whole suite, slow real-contract tests included.
test: bootstrap
	$(PY) -m pytest -q -n 2

# The quick subset: everything but real-contract and long tests.
test-fast: bootstrap
	$(PY) -m pytest -q -m "not contract and not slow"

bench: bootstrap
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf runs .pytest_cache
