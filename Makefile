# Two commands: `make run` (set up and serve the demo) and `make test` (every check CI runs).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Test processes (pytest-xdist); each gets its own test database and Redis database.
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck migrations-check pytest mutate bench worker beat clean

$(INSTALLED): requirements/lock.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/lock.txt
	touch $(INSTALLED)

.env:
	$(PY) scripts/write_env.py .env

run: $(INSTALLED) .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver 127.0.0.1:8000

test: lint typecheck migrations-check pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy .

migrations-check: $(INSTALLED)
	DJANGO_SETTINGS_MODULE=config.settings.test DATABASE_URL=sqlite:///:memory: \
		$(BIN)/python manage.py makemigrations --check --dry-run

pytest: $(INSTALLED)
	scripts/ensure_chromium.sh
	$(BIN)/pytest -n $(PYTEST_WORKERS)

# Mutation testing (slow; not part of `make test`): each file of [tool.mutmut.targets] in pyproject.toml
# against its own tests. One file: `make mutate MUTATE_FILES=core/crypto.py`.
mutate: $(INSTALLED)
	$(BIN)/python scripts/mutate.py $(MUTATE_FILES)

# Benchmarks (not part of `make test`; see the README): the app under gunicorn against PostgreSQL with
# BENCH_ORDERS orders (default 10000), each target endpoint beside its floor; exits 1 when a target is missed.
bench: $(INSTALLED)
	$(BIN)/python -m bench.run

# With REDIS_URL set in .env: a real worker and the beat schedule (outbox sweep).
worker: $(INSTALLED) .env
	$(BIN)/celery -A config worker --loglevel=INFO

beat: $(INSTALLED) .env
	$(BIN)/celery -A config beat --loglevel=INFO

clean:
	rm -rf $(VENV) db.sqlite3 media mutants .mypy_cache .ruff_cache .pytest_cache
