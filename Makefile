# Segmenta — the two commands a new user needs are `make run` and `make test`.
# Everything installs from PyPI into .venv with only Python 3.11 on the machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

# Services mode (make test-services): local PostgreSQL roles and Redis.
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
PG_SUPERUSER ?= postgres
SERVICES_DB ?= segmenta
SERVICES_ENV := DATABASE_URL=postgres://segmenta_app:segmenta_app@$(PG_HOST):$(PG_PORT)/$(SERVICES_DB) \
	DATABASE_OWNER_URL=postgres://segmenta_owner:segmenta_owner@$(PG_HOST):$(PG_PORT)/$(SERVICES_DB) \
	DATABASE_PLATFORM_URL=postgres://segmenta_platform:segmenta_platform@$(PG_HOST):$(PG_PORT)/$(SERVICES_DB) \
	REDIS_URL=redis://127.0.0.1:6379/15 SEGMENTA_VAR_DIR=$(CURDIR)/var/services

# The two job queues (config/settings.py JOB_QUEUE_INTERACTIVE / JOB_QUEUE_HEAVY).
JOB_QUEUE_INTERACTIVE ?= interactive
JOB_QUEUE_HEAVY ?= heavy

.PHONY: install run worker workers test lint typecheck test-services test-browser services-setup bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py collectstatic --no-input -v 0
	$(PY) manage.py seed_demo
	@PORT=$(PORT) bash scripts/run.sh

# One worker for everything (both queues) with the scheduler.
worker: $(STAMP)
	$(VENV)/bin/celery -A config worker --beat --loglevel INFO --concurrency 1 \
		-Q $(JOB_QUEUE_INTERACTIVE),$(JOB_QUEUE_HEAVY)

# Production layout on one machine: interactive-only and heavy-only workers plus one
# scheduler (INTERACTIVE_WORKERS, HEAVY_WORKERS, CONCURRENCY; see scripts/workers.sh).
workers: $(STAMP)
	@bash scripts/workers.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy with django-stubs over the service and selector layers ([tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) lint typecheck
	$(PY) -m pytest --create-db

services-setup: $(STAMP)
	@bash scripts/services.sh

test-services: services-setup
	$(SERVICES_ENV) $(PY) -m pytest --create-db

test-browser: $(STAMP)
	@bash scripts/browser-deps.sh
	$(PY) -m pytest tests/browser --create-db -p no:randomly

bench: $(STAMP)
	@echo "Each benchmark has its own command: see docs/performance.md"

clean:
	rm -rf $(VENV) var staticfiles
