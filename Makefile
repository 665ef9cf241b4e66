# Sportello: two commands on a fresh machine.
#   make run   -> venv + install + `sportello demo` (hub + every sandbox + demo tenant, SQLite under var/)
#   make test  -> venv + install (system packages too, when root) + lint + types + the whole suite
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# The editable install links each file; a new or removed source file needs a re-install,
# so the stamp depends on the list of source files, not only on pyproject.toml.
SOURCES := $(shell find hub connectors adapters sandbox -name '*.py' -o -name '*.toml' -o -name '*.ini' -o -name '*.yaml' 2>/dev/null | sort)
SRCLIST := $(VENV)/.sources
PG_URL  ?= postgresql://postgres@127.0.0.1:5432/test
# setuptools reports every strict editable install with an "Editable installation" notice sent
# as a warning (it has no other channel to pip); the install is silent otherwise, and any real
# packaging warning still shows (tests/kernel/test_packaging.py builds a wheel and fails on one).
EDITABLE := PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install -q

.PHONY: fmt run test test-fast lint typecheck docs bench sysdeps install clean pg-check spid-compliance chaos oidc-interop

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(EDITABLE) -e '.[dev,docs]' --config-settings editable_mode=strict
	@touch $@

$(SRCLIST): FORCE | $(BIN)/python
	@echo '$(SOURCES)' | cmp -s - $@ || echo '$(SOURCES)' > $@

$(VENV)/.installed: $(VENV)/.deps $(SRCLIST)
	$(EDITABLE) --no-deps -e . --config-settings editable_mode=strict
	@touch $@

# Bootstrap Italia for the hub's pages, from its npm package (pinned by package-lock.json),
# copied into hub/web/static/kit: the hub serves it itself, no CDN. Without npm the pages
# still work, unstyled, and a message says so.
KIT := hub/web/static/kit/VERSION
$(KIT): package.json package-lock.json hub/web/vendor.py
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --loglevel=error && $(PY) hub/web/vendor.py; \
	else echo "!! npm not found: the pages are served without Bootstrap Italia (install Node.js and npm)"; fi

install: $(VENV)/.installed $(KIT)

FORCE:

# System packages the test suite needs (xmlsec1 for the SPID test tool, Debian's chromium for
# the browser test). Installed with apt-get
# when running as root and missing; otherwise a clear message says what to install.
sysdeps:
	@missing=""; \
	command -v xmlsec1 >/dev/null 2>&1 || missing="$$missing xmlsec1"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo ">> installing$$missing (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "!! apt-get could not install$$missing"; \
	  else echo "!! missing system packages:$$missing (Debian: apt-get install$$missing)"; fi; \
	fi

pg-check:
	@if $(BIN)/python tests/pgcheck.py '$(PG_URL)'; then \
	  echo ">> PostgreSQL reachable at $(PG_URL): storage and outbox tests run on SQLite AND PostgreSQL"; \
	else \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  echo "!! PostgreSQL NOT reachable at $(PG_URL): PostgreSQL tests will be SKIPPED  !!"; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	fi

fmt: install
	$(BIN)/ruff check --fix hub connectors adapters sandbox tests bench
	$(BIN)/ruff format hub connectors adapters sandbox tests bench

lint: install
	$(BIN)/ruff check hub connectors adapters sandbox tests bench
	$(BIN)/ruff format --check hub connectors adapters sandbox tests bench

typecheck: install
	$(BIN)/mypy -p sportello

test: install sysdeps pg-check lint typecheck
	$(BIN)/python tests/compliance/spid_compliance.py --install-only
	$(BIN)/python tests/compliance/oidc_interop.py --install-only
	SPORTELLO_TEST_PG_URL='$(PG_URL)' $(BIN)/pytest -q --durations=15
	$(MAKE) spid-compliance
	$(MAKE) docs

# The developer's fast loop: the whole suite but the tests marked `slow` (the browser login,
# the kill tests, the 1,000-position end-to-end runs, schemathesis); no lint, types or docs.
# One area: `make test-fast T=tests/pagopa`.
T ?= tests
test-fast: install pg-check
	SPORTELLO_TEST_PG_URL='$(PG_URL)' $(BIN)/pytest -q -m "not slow" --durations=15 $(T)

# AgID's spid-sp-test 1.2.18 (own venv .venv-spt) against the demo hub: metadata, AuthnRequest
# and the 111 responses for four profiles; JSON reports land in var/compliance/.
spid-compliance: install sysdeps
	$(BIN)/python tests/compliance/spid_compliance.py

# The hub's OIDC relying party against italia's spid-cie-oidc 1.6.3 (own venv .venv-oidc):
# its trust anchor and OP (SPID and CIE profiles), direct and through the /federation
# intermediate, logins in Chromium. `make test` runs it as tests/compliance/test_oidc_interop.py.
oidc-interop: install sysdeps
	$(BIN)/python tests/compliance/oidc_interop.py

run: install
	$(BIN)/sportello demo

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# Every bench/<name>/run.py with its defaults; rewrites the table in bench/README.md.
# One or some: `make bench B=anpr,acs`.
B ?=
bench: install
	SPORTELLO_TEST_PG_URL='$(PG_URL)' $(BIN)/python bench/report.py $(if $(B),--only $(B))

# A busy day (SEND fines included) while the platforms misbehave, one of two hub replicas
# is SIGKILLed three times and PostgreSQL (a private server of the run) is restarted once;
# one table per platform, exit 1 if anything is lost or doubled (docs/chaos.md). Its short
# form is tests/chaos, in `make test`. Smaller or repeatable: `make chaos
# CHAOS_ARGS="--positions 100 --payments 30 --fines 20 --kills 1 --seed 7 --no-pg-restart"`.
CHAOS_ARGS ?=
chaos: install
	SPORTELLO_TEST_PG_URL='$(PG_URL)' $(BIN)/python tests/chaos/chaos_day.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build docs/_build *.egg-info node_modules hub/web/static/kit
