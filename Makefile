# The two commands of README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

DOCS_UI := chalicelib/api/docs_page/swagger-ui
# Where tests/test_browser.py looks for the browser (Debian's chromium package puts it there).
CHROMIUM := /usr/bin/chromium

STAGE ?= dev

.PHONY: demo test bench venv node docs-ui browser java package clean

demo: $(STAMP) node docs-ui
	$(PY) -m local_aws.demo

# One OpenMP and BLAS thread per process: the workers share the cores, and an ALS fit in one worker
# using them all starved the timed load and fault tests of the other.
test: $(STAMP) node docs-ui browser java
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n auto --maxprocesses 4 --dist loadgroup $(PYTEST_ARGS)

# Every benchmark, with ratios against baselines measured in the same run (README, Performance).
bench: $(STAMP) node
	$(PY) -m benchmarks $(BENCH_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# chalice 1.34 requires pip < 26.3 (it runs pip to build the Lambda bundle).
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip<26.3'
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[train,dev,mcp,spark]'
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

# Chromium for the browser test (tests/test_browser.py): Debian's package, which Playwright drives;
# Playwright never downloads a browser of its own. Installed as root where apt-get is (CI);
# elsewhere a warning, and the test skips saying how to install it (in CI it fails instead).
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser test (about 20 s)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
			|| echo "warning: apt-get could not install chromium; tests/test_browser.py will skip (and fail in CI)"; \
	else \
		echo "warning: $(CHROMIUM) not found; tests/test_browser.py will skip (and fail in CI)" \
			"(as root: apt-get install -y --no-install-recommends chromium)"; \
	fi

# Java for the Spark engine's tests (pyspark runs Spark in a JVM; Spark 4 needs Java 17 or newer).
# Installed as root where apt-get is and java is not; elsewhere the Spark tests skip (and fail in CI).
java:
	@if command -v java >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's OpenJDK 17 for the Spark engine's tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			openjdk-17-jre-headless || echo "warning: apt-get could not install Java; the Spark tests will skip"; \
	else \
		echo "warning: java not found; the Spark engine's tests will skip (and fail in CI)"; \
	fi

# Swagger UI for /docs, from the npm package swagger-ui-dist, copied into chalicelib so that
# `chalice local`, `chalice package` and `chalice deploy` all bundle it.
docs-ui: node
	@if [ -f node_modules/swagger-ui-dist/swagger-ui-bundle.js ]; then \
		mkdir -p $(DOCS_UI) && \
		cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
			node_modules/swagger-ui-dist/LICENSE node_modules/swagger-ui-dist/NOTICE $(DOCS_UI)/; \
	else \
		echo "warning: swagger-ui-dist not installed (needs Node.js >= 20); /docs will answer 503"; \
	fi

# The Lambda bundle and the CloudFormation template of a stage (README, Deploy to AWS).
package: $(STAMP) docs-ui
	rm -rf out/$(STAGE)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $(STAGE) \
		--merge-template .chalice/template.json out/$(STAGE)
	# Lambda cannot write __pycache__: the bundle carries the bytecode a cold start needs.
	$(PY) scripts/compile_bundle.py out/$(STAGE)/deployment.zip

clean:
	rm -rf $(VENV) node_modules .demo .pytest_cache $(DOCS_UI) out
