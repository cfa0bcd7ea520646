# Courtyard — everything a developer or CI needs, with Python alone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: install run test resilience scale scale-report lint fmt migrate clean bench

install: $(STAMP)

# Re-install when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

run: install
	$(BIN)/courtyard db upgrade
	$(BIN)/courtyard serve --host $(HOST) --port $(PORT)

migrate: install
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
bench: install
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && apt-get install -y wrk; } \
		|| { echo "make bench needs wrk: install it with your OS packages (apt-get install wrk)"; exit 2; }
	@$(BIN)/python -c "import matplotlib" 2>/dev/null \
		|| $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python -m bench.run $(if $(BENCH_QUICK),--quick)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/fixtures/build
