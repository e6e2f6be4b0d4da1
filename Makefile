# `make demo` and `make test` (lint + typecheck + the whole suite with coverage) are the two main
# commands; `make lint`, `typecheck`, `unit-test`, `integration-test` and `data-quality` run parts.
# Every target creates .venv when it is missing.
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

.PHONY: demo test lint typecheck unit unit-test integration-test data-quality venv clean bench deploy

#: Line coverage of the three packages, printed in the summary (files at 100% left out); reported,
#: never a blocking threshold. Subprocesses (the CLI in e2e tests) count too: see pyproject.
COVERAGE := --cov --cov-report=term --durations=30

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
	$(BIN)/clv train --config config/training.yaml \
		--transactions $(CLV_HOME)/demo/data/transactions.parquet \
		--customers $(CLV_HOME)/demo/data/customers.parquet \
		--sustainability $(CLV_HOME)/demo/data/sustainability.parquet \
		--trials $(DEMO_TRIALS)
	@# The gate may refuse a demo model that loses to a reference (its table says by how much):
	@# the demo then promotes it anyway, with that reason recorded, so the rest can run.
	$(BIN)/clv promote --model clv-spend --latest --yes --reason "make demo" || \
		$(BIN)/clv promote --model clv-spend --latest --yes --force --reason "make demo: forced past the gate above"
	$(BIN)/clv promote --model clv-churn --latest --yes --reason "make demo" || \
		$(BIN)/clv promote --model clv-churn --latest --yes --force --reason "make demo: forced past the gate above"
	$(BIN)/clv score --transactions $(CLV_HOME)/demo/data/transactions.parquet \
		--customers $(CLV_HOME)/demo/data/customers.parquet \
		--sustainability $(CLV_HOME)/demo/data/sustainability.parquet \
		--horizon-days 90 --out $(CLV_HOME)/demo/scores.parquet
	$(BIN)/clv segment run --scores $(CLV_HOME)/demo/scores.parquet --config config/segmentation.yaml
	@# A demo version whose business rules fail is activated with the override recorded.
	$(BIN)/clv segment approve --yes --reason "make demo" || \
		$(BIN)/clv segment approve --yes --override-rules --reason "make demo: rules overridden"
	$(BIN)/clv segment review
	@# An A/A experiment on the demo customers: plan, assign by hash, per-unit metrics of the last
	@# 30 days (pre-period spend for CUPED), and the analysis with a guardrail.
	$(BIN)/clv experiment size --baseline-rate 0.3 --mde 0.1
	$(BIN)/clv experiment assign $(CLV_HOME)/demo/data/customers.parquet --key demo-aa \
		--out $(CLV_HOME)/demo/experiment/assignments.parquet
	$(BIN)/clv experiment metrics $(CLV_HOME)/demo/experiment/assignments.parquet \
		--transactions $(CLV_HOME)/demo/data/transactions.parquet --days 30 \
		--out $(CLV_HOME)/demo/experiment/units.parquet
	$(BIN)/clv experiment analyze $(CLV_HOME)/demo/experiment/units.parquet --metric revenue \
		--covariate pre_spend --guardrail converted
	$(BIN)/clv summary $(CLV_HOME)/demo/data
	$(BIN)/clv generate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --out $(CLV_HOME)/demo/drifted \
		--drift-start 2025-07-01 --price-level 1.4 --eco-shift 0.3 --channel-mix 0.1,0.7,0.1,0.1
	$(BIN)/clv monitor --transactions $(CLV_HOME)/demo/drifted/transactions.parquet \
		--customers $(CLV_HOME)/demo/drifted/customers.parquet \
		--sustainability $(CLV_HOME)/demo/drifted/sustainability.parquet
	$(BIN)/clv status --scores $(CLV_HOME)/demo/scores.parquet
	@# A campaign to the demo's customers: plan, send to a local SMTP server and SMS webhook,
	@# simulate the response from the generator's truth, analyse it against the holdout.
	$(BIN)/python examples/demo_campaign.py --home $(CLV_HOME)
	@# The API on the demo's champion, left running in the background (stop: see its last line).
	$(BIN)/python examples/demo_api.py --home $(CLV_HOME)
	@echo
	@echo "MLflow UI:   $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CLV_HOME)/mlflow/mlflow.db --port 5000"
	@echo "Prefect UI:  PREFECT_HOME=$(CLV_HOME)/prefect $(BIN)/prefect server start  (then http://127.0.0.1:4200)"
	@echo "Drift:       $(CLV_HOME)/monitoring/reports  (Evidently HTML; metrics in $(CLV_HOME)/monitoring/metrics/clv.prom)"
	@echo "Experiment:  $(CLV_HOME)/demo/experiment/units.parquet  ($(BIN)/clv experiment analyze ... --json)"
	@echo "Campaign:    $(CLV_HOME)/demo/campaign/report/report.html  (messages in $(CLV_HOME)/demo/campaign/mail)"
	@echo "Backtest:    $(BIN)/clv backtest --transactions $(CLV_HOME)/demo/data/transactions.parquet --horizon-days 90"
	@echo "Event-driven retraining: start a Prefect server, then 'make deploy' and 'prefect worker start --pool clv-process'"

# Deployments from prefect.yaml on the server at PREFECT_API_URL (process work pool, local use),
# then the automations in automations/ (drift alert, failed runs, overdue training) and their
# webhook notification block, created or updated by name. The webhook URL comes from
# CLV_ALERT_WEBHOOK_URL; without it the automations are skipped with a warning, or the deploy
# fails with `make deploy REQUIRE_ALERTS=1` (docs/automations.md).
deploy: $(STAMP)
	@test -n "$$PREFECT_API_URL" || { echo "set PREFECT_API_URL (e.g. start 'prefect server start' and use http://127.0.0.1:4200/api)"; exit 1; }
	$(BIN)/prefect work-pool inspect clv-process >/dev/null 2>&1 || $(BIN)/prefect work-pool create clv-process --type process
	CLV_PROJECT_DIR=$(CURDIR) CLV_TRANSACTIONS=$${CLV_TRANSACTIONS:-$(CLV_HOME)/demo/data/transactions.parquet} \
		CLV_CUSTOMERS=$${CLV_CUSTOMERS:-$(CLV_HOME)/demo/data/customers.parquet} \
		$(BIN)/prefect --no-prompt deploy --all
	$(BIN)/python -m flows.automations --dir automations $(if $(REQUIRE_ALERTS),--require-webhook)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile infra/image/python.Containerfile

# The clv-platform image (Dockerfile) as localhost/clv-platform:latest: with Docker where its engine
# runs, else with podman on a base built once from Debian's packages (infra/image/build.sh installs
# podman when missing). Later builds reuse the layer cache.
.PHONY: image
image:
	infra/image/build.sh

typecheck: $(STAMP)
	$(BIN)/mypy

# Unit tests only (no servers): the quick loop.
unit-test: $(STAMP)
	$(BIN)/pytest tests/unit

# Tests on real servers (MLflow, Prefect, moto S3, PostgreSQL) and the end-to-end CLI runs.
integration-test: $(STAMP)
	$(BIN)/pytest tests/integration tests/e2e

# The whole suite, with line coverage of clv/, flows/ and monitoring/.
unit: $(STAMP)
	$(BIN)/pytest $(COVERAGE)

test: lint typecheck unit

# The data contract and an Evidently data-quality report on the demo data (run `make demo` first,
# or this generates the demo data).
data-quality: $(STAMP)
	@test -f $(CLV_HOME)/demo/data/transactions.parquet || \
		$(BIN)/clv generate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --out $(CLV_HOME)/demo/data
	$(BIN)/clv validate $(CLV_HOME)/demo/data/transactions.parquet
	$(BIN)/clv validate --kind customers $(CLV_HOME)/demo/data/customers.parquet
	$(BIN)/clv validate --kind sustainability $(CLV_HOME)/demo/data/sustainability.parquet
	$(BIN)/python -m monitoring.quality --out $(CLV_HOME)/monitoring/reports \
		$(CLV_HOME)/demo/data/transactions.parquet $(CLV_HOME)/demo/data/customers.parquet \
		$(CLV_HOME)/demo/data/sustainability.parquet

bench: $(STAMP)
	$(BIN)/python benchmarks/generate_speed.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.* htmlcov
