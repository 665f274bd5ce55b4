"""Test settings.

PostgreSQL and Redis are used when they answer: `DATABASE_URL` / `REDIS_URL` when set, else the
standard local ports (127.0.0.1:5432 as `postgres` without a password, 127.0.0.1:6379). When one
does not answer the suite falls back to SQLite / eager Celery and the tests marked `postgres` or
`redis` are skipped — or fail, when `REQUIRE_SERVICES=1` (as in CI).
"""

import base64
import os
import socket
import tempfile


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


if "DATABASE_URL" not in os.environ and _answers("127.0.0.1", 5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/medorder"
if "REDIS_URL" not in os.environ and _answers("127.0.0.1", 6379):
    # One Redis database per pytest-xdist worker (gw0 → 15, gw1 → 14, …): a real Celery worker
    # started by one test process must never take the tasks of another's. (pytest-django gives
    # each xdist worker its own test database the same way.)
    _xdist_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{15 - _xdist_worker % 8}"

# Fixed keys: test data only. Two keys so rotation can be exercised.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-use-0123456789")
os.environ.setdefault(
    "PHI_ENCRYPTION_KEYS",
    ",".join(f"{kid}:{base64.b64encode(bytes([seed]) * 32).decode()}" for kid, seed in (("k1", 1), ("k2", 2))),
)
os.environ.setdefault("PHI_ACTIVE_KEY_ID", "k1")
os.environ.setdefault("PHI_BLIND_INDEX_KEY", base64.b64encode(b"\x07" * 32).decode())
# Tests decide per test whether Celery runs eagerly or through a real worker.
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("API_TOKEN_RATE", "10000/min")

from .base import *  # noqa: E402, F403
from .base import DATABASES, REDIS_URL, STORAGES  # noqa: E402

DEBUG = False
# Patient messages go out at any hour in tests, so no outcome depends on the time the suite runs;
# the quiet-hours tests set the real hours themselves.
MESSAGE_HOURS = (0, 24)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = []
SERVICES = {
    "postgres": DATABASES["default"]["ENGINE"].endswith("postgresql"),
    "redis": bool(REDIS_URL),
}
# The pharmacy tests' servers (pytest-httpserver) listen on http://localhost: allowed here only.
PHARMACY_ALLOWED_LOCAL_HOSTS = ["localhost"]
# Uploaded attachments go to a throwaway folder, never into the checkout (whatever the environment says;
# the S3 tests switch to a local S3 server themselves).
MEDIA_ROOT = tempfile.mkdtemp(prefix="medorder-test-media-")
STORAGES = {**STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
# A read replica stand-in: a second PostgreSQL database with the schema migrated, and separate rows, so a
# test can tell where a read went. Only the tests that ask for it (`django_db(databases=[..., "replica"])`)
# create it (`test_<name>_replica`, one per xdist worker like the default one) or touch it, and only those
# that also set `DATABASE_REPLICA_ALIAS = "replica"` have reports read from it. Everything else runs as
# without DATABASE_REPLICA_URL: one database.
DATABASE_REPLICA_ALIAS = ""
if SERVICES["postgres"]:
    _replica_name = f"{DATABASES['default']['NAME']}_replica"
    DATABASES["replica"] = {
        **{key: value for key, value in DATABASES["default"].items() if key != "TEST"},
        "NAME": _replica_name,
        "TEST": {"NAME": f"test_{_replica_name}"},
    }
else:
    DATABASES.pop("replica", None)
# Nothing is collected for the tests: WhiteNoise finds static files in the apps (an empty
# STATIC_ROOT of its own, so WhiteNoise has a folder to read and never the checkout's).
STATIC_ROOT = tempfile.mkdtemp(prefix="medorder-test-static-")
WHITENOISE_USE_FINDERS = True
# Mutation testing (`make mutate`) runs hundreds of test sessions in a PostgreSQL database of its own,
# created once by scripts/mutate.py and reused by each session: never the one `make test` uses.
if os.environ.get("MUTATION_TESTING") == "1" and SERVICES["postgres"]:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_mutmut"}
    if "replica" in DATABASES:
        DATABASES["replica"]["TEST"] = {"NAME": f"test_{DATABASES['replica']['NAME']}_mutmut"}
