# Thin wrappers over uv. `make run` starts the registry; `make test` runs the whole suite.
UV := $(shell ./scripts/ensure-uv)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint format bench services

run:
	$(UV) run wheelyard serve --host $(HOST) --port $(PORT)

services:
	./scripts/ensure-services

test: services
	$(UV) run pytest $(PYTEST_ARGS)

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports

format:
	$(UV) run ruff format .
	$(UV) run ruff check --fix .
