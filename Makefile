# Two commands: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLV_HOME ?= $(CURDIR)/.clv
export CLV_HOME
DEMO_CUSTOMERS ?= 5000
DEMO_SEED ?= 42
DEMO_TRIALS ?= 3

.PHONY: demo test lint typecheck unit venv clean bench deploy

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clv generate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --out $(CLV_HOME)/demo/data
	$(BIN)/clv validate $(CLV_HOME)/demo/data/transactions.parquet
	$(BIN)/clv validate --kind customers $(CLV_HOME)/demo/data/customers.parquet
	$(BIN)/clv validate --kind sustainability $(CLV_HOME)/demo/data/sustainability.parquet
	$(BIN)/clv ingest $(CLV_HOME)/demo/data/transactions.parquet
	$(BIN)/clv train --transactions $(CLV_HOME)/demo/data/transactions.parquet \
		--customers $(CLV_HOME)/demo/data/customers.parquet \
		--sustainability $(CLV_HOME)/demo/data/sustainability.parquet \
		--horizon-days 90 --trials $(DEMO_TRIALS)
	$(BIN)/clv promote --model clv-spend --latest --yes --reason "make demo"
	$(BIN)/clv promote --model clv-churn --latest --yes --reason "make demo"
	$(BIN)/clv score --transactions $(CLV_HOME)/demo/data/transactions.parquet \
		--customers $(CLV_HOME)/demo/data/customers.parquet \
		--sustainability $(CLV_HOME)/demo/data/sustainability.parquet \
		--horizon-days 90 --out $(CLV_HOME)/demo/scores.parquet
	$(BIN)/clv summary $(CLV_HOME)/demo/data
	$(BIN)/clv generate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --out $(CLV_HOME)/demo/drifted \
		--drift-start 2025-07-01 --price-level 1.4 --eco-shift 0.3 --channel-mix 0.1,0.7,0.1,0.1
	$(BIN)/clv monitor --transactions $(CLV_HOME)/demo/drifted/transactions.parquet \
		--customers $(CLV_HOME)/demo/drifted/customers.parquet \
		--sustainability $(CLV_HOME)/demo/drifted/sustainability.parquet
	@echo
	@echo "Demo data:   $(CLV_HOME)/demo/data  (customers, transactions, sustainability, truth)"
	@echo "Scores:      $(CLV_HOME)/demo/scores.parquet  (predicted_clv, interval, churn_probability)"
	@echo "MLflow UI:   $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CLV_HOME)/mlflow/mlflow.db --port 5000"
	@echo "Prefect UI:  PREFECT_HOME=$(CLV_HOME)/prefect $(BIN)/prefect server start  (then http://127.0.0.1:4200)"
	@echo "Drift:       $(CLV_HOME)/monitoring/reports  (Evidently HTML; metrics in $(CLV_HOME)/monitoring/metrics/clv.prom)"
	@echo "Backtest:    $(BIN)/clv backtest --transactions $(CLV_HOME)/demo/data/transactions.parquet --horizon-days 90"
	@echo "Event-driven retraining: start a Prefect server, then 'make deploy' and 'prefect worker start --pool clv-process'"

# Deployments from prefect.yaml on the server at PREFECT_API_URL (process work pool, local use).
deploy: $(STAMP)
	@test -n "$$PREFECT_API_URL" || { echo "set PREFECT_API_URL (e.g. start 'prefect server start' and use http://127.0.0.1:4200/api)"; exit 1; }
	$(BIN)/prefect work-pool inspect clv-process >/dev/null 2>&1 || $(BIN)/prefect work-pool create clv-process --type process
	CLV_PROJECT_DIR=$(CURDIR) CLV_TRANSACTIONS=$${CLV_TRANSACTIONS:-$(CLV_HOME)/demo/data/transactions.parquet} \
		$(BIN)/prefect --no-prompt deploy --all

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/generate_speed.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
