# Set-up is idempotent: a stamp file is rebuilt only when its inputs change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
CONTRACTS := $(wildcard contracts/*.sol)
CONTRACTS_STAMP := build/contracts/.built

.PHONY: demo test test-fast bootstrap bench clean contracts browser pg loadgen

bootstrap: $(PIP_STAMP) $(NPM_STAMP) $(CONTRACTS_STAMP)

# setup.py compiles the finder (domain/arb_finder.py, cp_optimum.py by Cython; domain/_closed_form_gmp.c
# on GMP: Debian's libgmp-dev, installed here when root and missing) into the tree, so an edit of
# them rebuilds it (a stale build would be imported in place of the edited source).
$(PIP_STAMP): pyproject.toml setup.py domain/arb_finder.py domain/cp_optimum.py domain/_closed_form_gmp.c
	@echo '#include <gmp.h>' | gcc -E - >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libgmp-dev) >/dev/null; } || \
	  echo "libgmp-dev is not installed and could not be: the finder sizes in Python only"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# The anvil binary comes from its linux-amd64 registry package (declared optional: other
# platforms skip it and use an anvil on PATH), so the lock is complete and `npm ci` is exact.
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# tapedeck's own Solidity (contracts/*.sol) compiled by the pinned npm solc (solc-js, offline) into
# build/contracts/<Name>.json, which sim/chain/artifacts.py loads (`load_own`).
contracts: $(CONTRACTS_STAMP)

$(CONTRACTS_STAMP): $(CONTRACTS) contracts/compile.js $(NPM_STAMP)
	node contracts/compile.js
	touch $@

demo: bootstrap
	$(VENV)/bin/tapedeck demo

# Headless Chromium for the report and dashboard browser tests (Debian's package; root installs it,
# anyone else gets the browser tests skipped with the reason).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null; } || \
	  echo "chromium is not installed and could not be: browser tests will be skipped"

# The local PostgreSQL test server (127.0.0.1:55432, cluster "tapedeck"): installed from Debian's
# packages when missing and started, idempotently (.ci/pg-cluster). Without one the tests marked
# postgres skip, saying why.
pg:
	@bash .ci/pg-cluster || echo "make pg: no PostgreSQL server could be started; the postgres tests will skip" >&2

# The whole suite, slow real-contract, PostgreSQL and browser tests included (the 25 slowest named
# at the end, to keep the suite's time in view).
test: bootstrap browser pg
	$(PY) -m pytest -q -n 2 --durations=25

# The quick subset: everything but real-contract and long tests.
test-fast: bootstrap
	$(PY) -m pytest -q -m "not contract and not slow"

# The HTTP load generators benchmarks/bench_serve.py drives (Debian's hey and wrk; root installs them,
# anyone else gets that benchmark's reason for not running).
loadgen:
	@command -v hey >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q hey wrk) >/dev/null; } || \
	  echo "hey and wrk are not installed and could not be: bench_serve.py will say so"

bench: bootstrap loadgen
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf runs .pytest_cache
