# overblik — all set-up happens here: `make demo` and `make test` work on a fresh machine
# with Python 3.11 and PyPI. uv is installed into .tools/ when it is not on PATH.
SHELL := /bin/bash
.DEFAULT_GOAL := help

DATA := $(CURDIR)/data
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_HOME := $(DATA)/bentoml
export MPLCONFIGDIR := $(DATA)/matplotlib
export GIT_PYTHON_REFRESH := quiet
# Where the environment says PYTHONDONTWRITEBYTECODE (this machine does), every command
# compiled mlflow, pandas and bentoml anew: 11 s for `overblik reviews`, 4.4 s with the
# bytecode cached, here in the ignored data folder (nothing written into the venv or tree).
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(DATA)/pycache
export UV_PYTHON := 3.11

UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
RUN := $(VENV)/bin/overblik

DEMO_CITIZENS ?= 20000
DEMO_YEARS ?= 5
DEMO_SEED ?= 1
DEMO_DIR := $(DATA)/demo
DEMO_AS_OF ?= 2026-01-01
DEMO_PORT ?= 3000

.PHONY: help env test lint typecheck pytest demo bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

# The fairness report's browser test needs Debian's Chromium; installed when we may (root
# with apt-get), otherwise that test skips and says why.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) || \
		echo "could not install chromium: the browser test will skip"; \
	else echo "no chromium and no root apt-get: the browser test will skip"; fi

$(VENV)/.synced: pyproject.toml uv.lock | $(UV) $(CHROMIUM)
	$(UV) sync --frozen --all-groups
	@mkdir -p $(DATA) $(BENTOML_HOME) $(MPLCONFIGDIR)
	@touch $@

env: $(VENV)/.synced  ## create the environment from the lock file

lint: env  ## ruff
	$(VENV)/bin/ruff check .

typecheck: env  ## mypy
	$(VENV)/bin/mypy features models fairness serving experiments

pytest: env  ## the tests (without benchmarks)
	$(VENV)/bin/pytest -q --ignore=tests/perf

test: lint typecheck pytest  ## ruff, mypy and the tests

demo: env  ## the main job on the embedded default: generate, ingest, train (MLflow), audit, review, promote, serve
	$(RUN) generate --citizens $(DEMO_CITIZENS) --years $(DEMO_YEARS) --seed $(DEMO_SEED) --out $(DEMO_DIR)/municipality
	$(RUN) ingest --raw $(DEMO_DIR)/municipality/raw --out $(DEMO_DIR)/clean --demo-key
	$(RUN) summary --clean $(DEMO_DIR)/clean
	$(RUN) train child_placement --clean $(DEMO_DIR)/clean --truth $(DEMO_DIR)/municipality/truth
	$(RUN) train long_term_benefit --clean $(DEMO_DIR)/clean --truth $(DEMO_DIR)/municipality/truth
	@echo "Bring-your-own-data audit, here on the child-placement model's scored test rows:"
	$(RUN) audit --data "$$(ls -t $(DATA)/mlartifacts/child_placement/*/artifacts/predictions/test_predictions.parquet | head -1)" --label y --score proba_lightgbm --top-k 200 --sensitive origin,sex --reference origin=danish --out $(DEMO_DIR)/audit
	@echo "The gate: a version the ethics board has not reviewed is refused (exit 2 expected):"
	-$(RUN) promote overblik-child-placement challenger
	$(RUN) review overblik-child-placement challenger --approve --override-fairness --by "Demo ethics board" --reason "Demo on synthetic data: the board read the fairness report and model card; small-group gaps accepted for demonstration only"
	$(RUN) promote overblik-child-placement challenger
	@echo "The board's record (append-only, in the registry's database):"
	$(RUN) reviews overblik-child-placement
	@echo "Open the MLflow UI on these runs:"
	@echo "  $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(DATA)/mlflow.db --port 5000"
	@echo "The nightly batch: today's profiles of the champion's cohort, for /score by CPR number:"
	$(RUN) profiles --as-of $(DEMO_AS_OF) --clean $(DEMO_DIR)/clean
	$(RUN) keys create --role caseworker-system --name "Demo caseworker system" > $(DEMO_DIR)/demo-api-key.txt
	@echo "Serving the approved model on http://127.0.0.1:$(DEMO_PORT) (Swagger UI: /docs; Ctrl-C stops). In another terminal:"
	@$(RUN) example-request --raw $(DEMO_DIR)/municipality/raw --api-key-file $(DEMO_DIR)/demo-api-key.txt --port $(DEMO_PORT)
	@$(RUN) example-request --raw $(DEMO_DIR)/municipality/raw --api-key-file $(DEMO_DIR)/demo-api-key.txt --port $(DEMO_PORT) --endpoint recommend
	$(RUN) serve --demo-key --port $(DEMO_PORT)

bench: env  ## benchmarks in tests/perf (prints tables with ratios)
	$(VENV)/bin/pytest -q -s tests/perf -p no:cacheprovider

clean:  ## remove generated data (keeps the environment)
	rm -rf $(DATA)
