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

.PHONY: demo test lint typecheck unit venv clean bench

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
	$(BIN)/clv ingest $(CLV_HOME)/demo/data/transactions.parquet
	$(BIN)/clv summary $(CLV_HOME)/demo/data
	$(BIN)/clv backtest --transactions $(CLV_HOME)/demo/data/transactions.parquet \
		--customers $(CLV_HOME)/demo/data/customers.parquet \
		--sustainability $(CLV_HOME)/demo/data/sustainability.parquet \
		--horizon-days 90 --out $(CLV_HOME)/demo/backtest
	@echo
	@echo "Demo data:      $(CLV_HOME)/demo/data  (customers, transactions, sustainability, truth)"
	@echo "Ingested store: $(CLV_HOME)/warehouse  (content-addressed; re-ingesting is a no-op)"
	@echo "Backtest:       $(CLV_HOME)/demo/backtest/backtest.md  (metrics, predictions, lift and calibration plots)"

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
