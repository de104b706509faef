# Tradewatch: `make run` runs it, `make test` tests it, `make demo` shows it at work.
# Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run dev demo test lint format services bench clean

$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Tradewatch needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

## run: web (granian), a Celery worker and beat in the foreground; Ctrl-C stops them.
## DEBUG off, secrets generated once into var/secrets/, loopback only; a crashed
## process is restarted.
run: $(VENV)/.runtime
	$(PY) -m monitoring_site.launcher

## dev: the same with DEBUG on (Django's debug pages; never for real money)
dev: $(VENV)/.runtime
	DEBUG=True $(PY) -m monitoring_site.launcher

## demo: simulated trading systems pushing to the running `make run` (Ctrl-C stops);
## `make demo DEMO_ARGS=--clean` removes them, DEMO_ARGS="--pace 2" tells it faster.
demo: $(VENV)/.runtime
	$(PY) manage.py tradewatch demo $(DEMO_ARGS)

## test: the whole suite against PostgreSQL and Redis (started if installed but stopped)
test: $(VENV)/.dev services
	$(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff (lint and format), mypy, and the apps' import layers (lint-imports)
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports --no-cache

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: the benchmarks (run by hand; each prints its figures as a last JSON line)
bench: $(VENV)/.dev services
	$(PY) -m bench.client_overhead
	$(PY) -m bench.ingest
	$(PY) -m bench.evaluation
	$(PY) -m bench.derivation
	$(PY) -m bench.alert_latency
	$(PY) -m bench.delivery_latency
	$(PY) -m bench.control_latency
	$(PY) -m bench.stream
	$(PY) -m bench.rate_limit
	$(PY) -m bench.key_check
	$(PY) -m bench.slow_clients
	$(PY) -m bench.admin_alerts
	$(PY) -m bench.backtest
	$(PY) -m bench.retention

services:
	@scripts/ensure-services

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
