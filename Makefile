# The two commands of README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: demo test venv node clean

demo: $(STAMP) node
	$(PY) -m local_aws.demo

test: $(STAMP) node
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[train,dev]'
	touch $@

# dynalite needs Node.js >= 20; without it the demo and the tests fall back to moto.
node:
	@if command -v node >/dev/null 2>&1 && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then \
		if [ ! -f $(NODE_STAMP) ] || [ package-lock.json -nt $(NODE_STAMP) ]; then \
			npm ci --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
		fi; \
	else \
		echo "warning: Node.js >= 20 not found; DynamoDB will be served by moto (slower queries)"; \
	fi

clean:
	rm -rf $(VENV) node_modules .demo .pytest_cache
