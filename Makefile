# Two commands: `make run` (set up and serve the demo) and `make test` (every check CI runs).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Test processes (pytest-xdist); each gets its own test database and Redis database.
PYTEST_WORKERS ?= 2

.PHONY: run serve test lint typecheck migrations-check deploy-check pytest mutate bench worker beat clean

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

# The production server: static files collected (fingerprinted, compressed), then gunicorn
# (config/gunicorn.py: WEB_CONCURRENCY workers, PORT) with SERVE_SETTINGS. Run migrations first
# (`python manage.py migrate`), once per release, not per web process. README: "Deployment".
SERVE_SETTINGS ?= config.settings.production

serve: $(INSTALLED)
	DJANGO_SETTINGS_MODULE=$(SERVE_SETTINGS) $(BIN)/python manage.py collectstatic --noinput
	DJANGO_SETTINGS_MODULE=$(SERVE_SETTINGS) exec $(BIN)/gunicorn --config config/gunicorn.py

test: lint typecheck migrations-check deploy-check pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy .

migrations-check: $(INSTALLED)
	DJANGO_SETTINGS_MODULE=config.settings.test DATABASE_URL=sqlite:///:memory: \
		$(BIN)/python manage.py makemigrations --check --dry-run

# `manage.py check --deploy` under the production settings with the environment a deployment must
# provide. The values are stand-ins of the right shape (nothing here connects anywhere); a finding
# at WARNING level or above fails the build.
deploy-check: $(INSTALLED)
	env -i PATH="$$PATH" HOME="$$HOME" \
		DJANGO_SETTINGS_MODULE=config.settings.production \
		DJANGO_SECRET_KEY=deploy-check-stand-in-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz \
		DJANGO_ALLOWED_HOSTS=medorder.example.org \
		PUBLIC_BASE_URL=https://medorder.example.org \
		DATABASE_URL=postgres://medorder@db.example.org:5432/medorder \
		REDIS_URL=redis://redis.example.org:6379/0 \
		PHI_ENCRYPTION_KEYS=k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= \
		PHI_ACTIVE_KEY_ID=k1 \
		PHI_BLIND_INDEX_KEY=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc= \
		STRIPE_SECRET_KEY=sk_test_deploy_check_stand_in \
		STRIPE_WEBHOOK_SECRET=whsec_deploy_check_stand_in \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

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
