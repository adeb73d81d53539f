# Thin wrappers over uv. `make run` starts the registry; `make test` runs the whole suite.
UV := $(shell ./scripts/ensure-uv)
# `make run HOST=0.0.0.0 PORT=9000`; unset, the server's defaults apply (127.0.0.1:8000, or
# WHEELYARD_HOST / WHEELYARD_PORT from the environment).
HOST ?=
PORT ?=
PYTEST_ARGS ?=

.PHONY: run test lint format bench bench-proxy bench-hot bench-cold bench-team bench-split bench-footprint services

# Runtime dependencies only (--no-dev): the test and lint tools are not needed to serve.
run:
	$(UV) run --no-dev wheelyard serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

services:
	./scripts/ensure-services

# The whole suite as two groups in parallel (scripts/run-tests); with test paths in
# PYTEST_ARGS, just those.
test: services
	./scripts/run-tests $(UV) $(PYTEST_ARGS)

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports

format:
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

# Benchmarks print figures (they are not tests). bench-proxy needs the team benchmark's upstream
# tree: python3 ../shared/bench/make_upstream.py (downloads 102 wheels into /tmp/upstream).
bench:
	$(UV) run python bench/hosted_bench.py
	$(UV) run python bench/auth_bench.py
	$(UV) run python bench/blob_rss.py
	$(UV) run python bench/ui_bench.py

bench-proxy:
	$(UV) run python bench/proxy_bench.py

# The warm hot paths (pages, files, .metadata, fetch-all, resolve) of hosted and proxy
# repositories against nginx in one run, with server CPU per request (same upstream tree).
bench-hot:
	$(UV) run python bench/hot_files.py

# Cold installs through a fresh proxy against nginx as its upstream, and the proxy's idle and
# peak memory (same upstream tree; waits for make_upstream.py to finish writing it); then the
# server's CPU per cold page, `.metadata` and wheel, one kind at a time.
bench-cold:
	$(UV) run python bench/cold_bench.py
	$(UV) run python bench/cold_categories.py

# The team benchmark (docs/performance.md): nginx, proxpi and both Wheelyard rows in one run,
# Wheelyard started from this checkout. Needs the team's harness next to this checkout.
TEAM_BENCH := ../shared/bench
bench-team:
	@if [ ! -x "$(TEAM_BENCH)/run.sh" ]; then \
		echo "bench-team: the team benchmark is not at $(TEAM_BENCH) (expected $(TEAM_BENCH)/run.sh next to this checkout)" >&2; \
		exit 2; \
	fi
	WHEELYARD_DIR=$(CURDIR) $(TEAM_BENCH)/run.sh nginx proxpi wheelyard-proxy wheelyard-hosted

# Embedded vs split mode (needs Postgres and Redis, like the tests).
bench-split:
	$(UV) run python bench/split_bench.py

# Per-process RSS and CPU of the split services, idle and under load: the measurements behind
# the Kubernetes resource requests (docs/deployment.md, "Sizing"). Needs the same upstream tree.
bench-footprint:
	$(UV) run python bench/footprint_bench.py
