"""Benchmark settings (``make bench``): production-like serving over plain HTTP on 127.0.0.1.

DEBUG off, persistent database connections with health checks, the real password hashers,
middleware and API settings; plus the floor endpoints (``bench.urls``) and the query counter
(``bench.middleware.QueryCountMiddleware``, first), which nothing else mounts. Not production:
no HTTPS redirect or secure-only cookies (the load driver signs in over http://127.0.0.1), the
sandbox payment provider, and fixed PHI keys of the benchmark's own unless the environment
gives keys (the generated data is sealed with them).

``DATABASE_URL`` names the benchmark database (``bench.run`` sets it); with ``REDIS_URL`` the cache
and the Celery broker are Redis, whose queue no worker drains during a run (publishing costs
what it costs in production); without it tasks go to an in-memory broker and are dropped, never
run eagerly inside the request.
"""

import base64
import os

os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key-not-for-production-use-0123456789abcdef")
os.environ.setdefault("PHI_ENCRYPTION_KEYS", f"bench1:{base64.b64encode(bytes([0x42]) * 32).decode()}")
os.environ.setdefault("PHI_ACTIVE_KEY_ID", "bench1")
os.environ.setdefault("PHI_BLIND_INDEX_KEY", base64.b64encode(bytes([0x24]) * 32).decode())
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/medorder_bench")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "false")
# A benchmark signs in a handful of users, many times over across runs.
os.environ.setdefault("API_TOKEN_RATE", "1000/min")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from .base import *  # noqa: F403
from .base import DATABASES, INSTALLED_APPS, MIDDLEWARE, REDIS_URL, env

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
MIDDLEWARE = ["bench.middleware.QueryCountMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "bench.urls"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if not REDIS_URL:
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
