# Two commands do all set-up on a fresh clone:
#   make demo   runs the gateway on an embedded SQLite database with demo data
#   make test   runs the test suite
# Each creates (or reuses) the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The portal's Babel catalogs: one domain per part of the portal, one .po per language.
PORTAL := neurogate/gateway/portal
LOCALES := $(PORTAL)/locales
DOMAINS := portal console data
CATALOG_LANGS := zh_Hans es
PO_FILES := $(foreach d,$(DOMAINS),$(foreach l,$(CATALOG_LANGS),$(LOCALES)/$(l)/LC_MESSAGES/$(d).po))
MO_FILES := $(PO_FILES:.po=.mo)

.PHONY: demo test venv lint clean messages catalogs node-peers

# Real peers some tests start on loopback (an OpenID provider, the AsyncAPI parser), from
# the npm registry into tests/node; skipped where the machine has no npm.
NODE_PEERS := tests/node/node_modules/.installed
$(NODE_PEERS): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: tests that need Node.js peers will skip"; fi

node-peers: $(NODE_PEERS)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./clients/python
	$(BIN)/pip install --quiet -e '.[test]'
	for d in $(DOMAINS); do $(BIN)/pybabel compile --statistics -d $(LOCALES) -D $$d || exit 1; done
	touch $(STAMP)

# Extract every domain's messages and update each language's catalog (then translate).
messages: $(STAMP)
	for d in $(DOMAINS); do \
	  $(BIN)/pybabel extract -F $(PORTAL)/babel-$$d.cfg -k N_ --no-location --sort-output \
	    --project NeuroGate -o $(LOCALES)/$$d.pot $(PORTAL) || exit 1; \
	  for l in $(CATALOG_LANGS); do \
	    $(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -i $(LOCALES)/$$d.pot \
	      -d $(LOCALES) -D $$d -l $$l || exit 1; \
	  done; \
	done

# Compiled catalogs (.mo) are build output, rebuilt when their .po changes.
catalogs: $(MO_FILES)

$(LOCALES)/%.mo: $(LOCALES)/%.po | $(STAMP)
	$(BIN)/pybabel compile -i $< -o $@

venv: $(STAMP)

demo: $(STAMP) catalogs
	$(BIN)/neurogate demo

# Tests run on every core (pytest-xdist), a whole file per worker so that a file's
# gateway process is started once; --durations names the slowest, to keep the suite short.
PYTEST_ARGS ?= -n auto --dist loadfile --durations=25

test: $(STAMP) catalogs node-peers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check neurogate tests clients

clean:
	rm -rf $(VENV) var tests/node/node_modules
