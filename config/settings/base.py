"""Settings shared by every environment.

Everything comes from the environment (or a `.env` file beside `manage.py`, which `make run`
writes). The embedded defaults let a fresh clone run with no services at all: SQLite, Celery
tasks executed eagerly, local file storage and the console email backend. Setting
`DATABASE_URL` and `REDIS_URL` switches to PostgreSQL and a real Celery broker and result store.
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from csp.constants import NONCE, NONE, SELF

from core.logging import build_logging
from core.staticfiles import cache_headers

from .file_storage import file_storage

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    env.read_env(str(env_file))

SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "django_prometheus",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "simple_history",
    "import_export",
    "django_htmx",
    "axes",
    "mozilla_django_oidc",
    "django_celery_beat",
    "core",
    "accounts",
    "territories",
    "patients",
    "catalog",
    "compliance",
    "orders",
    "payments",
    "pharmacy",
    "agents",
]

MIDDLEWARE = [
    # First: every request has an id (X-Request-ID) on its response and its log lines, refused ones too.
    "core.request_id.RequestIdMiddleware",
    # A path or query with a control character (%00, %0D%0A) is a 400 before anything reads it.
    "core.middleware.RejectControlCharactersMiddleware",
    # /health/live, /health/ready and /metrics, answered before host checks and the HTTPS redirect.
    "core.middleware.InfrastructureEndpointsMiddleware",
    # Request latency and counts per view (django-prometheus): the "before" half times the whole stack.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files, right after the security headers and before anything that reads a session.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.IdleLogoutMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.session_policy",
                # CSP_NONCE: the nonce an inline <script> or <style> needs (none of ours has one).
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections: opening one per request cost more than many whole requests (issue 18:
# the read floor went from 7.1 to 2.2 ms). Each is checked before a request reuses it, so one the
# server or a network device dropped is replaced instead of failing the request. 0 turns it off.
# (Not psycopg's pool: gunicorn's sync workers handle one request at a time, so each would keep one
# connection anyway, and a pool excludes CONN_MAX_AGE.)
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=300))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Query counts and timings per database (django-prometheus's wrappers of Django's own backends).
_INSTRUMENTED_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
DATABASES["default"]["ENGINE"] = _INSTRUMENTED_ENGINES.get(
    DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"]
)
# A read replica (seed 003): with DATABASE_REPLICA_URL, reports, exports and analytics read from it
# (core.db_routers.reading_from_replica); every write, every read inside a transaction and every other
# read stay on the primary ("default"), and migrations run on the primary only. Without it, the
# replica alias resolves to "default".
# (The URL holds a password: read into a lower-case name, so it is no setting a debug page would list.)
_replica_url = env("DATABASE_REPLICA_URL", default="")
DATABASE_REPLICA_ALIAS = "replica" if _replica_url else ""
if _replica_url:
    DATABASES["replica"] = env.db_url_config(_replica_url)
    DATABASES["replica"]["ATOMIC_REQUESTS"] = False
    for _option in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS"):
        DATABASES["replica"].setdefault(_option, DATABASES["default"][_option])
    DATABASES["replica"]["ENGINE"] = _INSTRUMENTED_ENGINES.get(
        DATABASES["replica"]["ENGINE"], DATABASES["replica"]["ENGINE"]
    )
    # Tests never create a database on the replica's server: it stands for the primary there.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["core.db_routers.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses sign-ins for a locked-out user name before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/portal/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# django-axes: a user name is locked after this many failed sign-ins in a row, for this long
# (per user name, so a clinic behind one address is not locked out together); staff unlock
# early in the admin (Axes → Access attempts). The API's token endpoint counts too.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes.W006 asks for the address as well; a per-address lock would lock out a whole clinic behind
# one NAT address after a few typos, and user-agent or cookie rotation does not affect a per-name lock.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_VERBOSE = False

# OpenID Connect single sign-on (mozilla-django-oidc), on when an issuer is configured: its
# endpoints and this client's credentials. Roles and territories come from the ID token/userinfo
# claims named below (territories.oidc; patients.oidc links a doctor's NPI to their provider
# record). Without OIDC_OP_ISSUER only local accounts sign in.
OIDC_OP_ISSUER = env("OIDC_OP_ISSUER", default="")
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_RP_SIGN_ALGO = env("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = "openid email profile"
OIDC_ROLES_CLAIM = env("OIDC_ROLES_CLAIM", default="roles")
OIDC_TERRITORIES_CLAIM = env("OIDC_TERRITORIES_CLAIM", default="territories")
# A doctor's NPI, linking their account to their provider record (patients.oidc).
OIDC_NPI_CLAIM = env("OIDC_NPI_CLAIM", default="npi")
OIDC_USE_NONCE = True
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
OIDC_STORE_ID_TOKEN = False
if OIDC_OP_ISSUER:
    AUTHENTICATION_BACKENDS.append("patients.oidc.PractitionerOIDCBackend")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "media"))
# Uploaded files: the local media folder, or an S3 bucket when AWS_STORAGE_BUCKET_NAME is set (encrypted,
# private, never overwritten, downloaded through short-lived signed URLs; config/settings/file_storage.py).
STORAGES = {
    "default": file_storage(os.environ),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# WhiteNoise serves /static/ from STATIC_ROOT (production: compressed, fingerprinted names cached for a
# year, see config/settings/production.py); with DEBUG it finds files in the apps as runserver does.
WHITENOISE_ADD_HEADERS_FUNCTION = cache_headers

# The embedded default prints subject and body only (core.mail): no recipient address in the logs.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="core.mail.ConsoleEmailBackend")
# With django.core.mail.backends.smtp.EmailBackend: the relay (TLS when EMAIL_USE_TLS).
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="orders@localhost")

SESSION_COOKIE_HTTPONLY = True
# Automatic logoff (HIPAA 164.312(a)(2)(iii)): a session ends after this many seconds without a
# request from the person (background refreshes do not count; accounts.middleware).
SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", default=15 * 60)
# Activity is written to the session at most this often (a page view in between writes nothing), so
# a session ends at most this much before SESSION_IDLE_SECONDS, never after.
SESSION_ACTIVITY_RESOLUTION_SECONDS = env.int("SESSION_ACTIVITY_RESOLUTION_SECONDS", default=60)
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- PHI protection --------------------------------------------------------------------------
# PHI_ENCRYPTION_KEYS: comma-separated "key_id:base64(32 bytes)" pairs; PHI_ACTIVE_KEY_ID names
# the key new ciphertext is written with. Older keys stay listed until `manage.py reencrypt_phi`
# has moved every row to the active one. PHI_BLIND_INDEX_KEY keys the HMAC search indexes.
PHI_ENCRYPTION_KEYS = env("PHI_ENCRYPTION_KEYS")
PHI_ACTIVE_KEY_ID = env("PHI_ACTIVE_KEY_ID")
PHI_BLIND_INDEX_KEY = env("PHI_BLIND_INDEX_KEY")

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's bearer tokens, refused once the password, roles or territories change.
        "accounts.authentication.RevocableJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.KeysetPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.EnvelopeAutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.SafeJSONParser"],
    "DEFAULT_THROTTLE_RATES": {"auth_token": env("API_TOKEN_RATE", default="20/min")},
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("API_TOKEN_MINUTES", default=30)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "SIGNING_KEY": SECRET_KEY,
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Medical ordering API",
    "DESCRIPTION": (
        "Orders, patients and providers, territory-scoped. Authenticate with "
        "`POST /api/v1/auth/token`, then send `Authorization: Bearer <token>` (a token ends when it "
        "expires or when its user's password, roles or territories change); users in more "
        "than one territory pick one with the `Territory-Id` header. Errors use the envelope "
        '`{"status": "error", "error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/(v1/)?",
    # Swagger UI assets are served from this deployment, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "ArtifactTypeEnum": "compliance.inputs.ArtifactType",
    },
}

# --- Celery ----------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL or "cache+memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
# Beat's crontab entries (the daily stock check at 06:00) follow the site's time zone.
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat reads its schedule from the database (django-celery-beat), where ops see and change it in the
# admin (Periodic tasks). The defaults (outbox sweep, daily jobs, polls) are written by migrations
# (agents/migrations); nothing is scheduled from settings, so beat never overwrites an edited entry.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Fail fast when the broker is down: the outbox keeps the event and the sweep delivers it later.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)

# Outbox: delivery attempts before an event is parked as failed for staff to retry.
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=10)
# The sweep delivers due events in batches of this many (one transaction each) until none is left,
# for at most this many seconds per run (checked between batches): below the beat interval, so a
# backlog after a broker outage drains over a few runs without one run overlapping the next.
OUTBOX_SWEEP_BATCH = env.int("OUTBOX_SWEEP_BATCH", default=200)
OUTBOX_SWEEP_BUDGET_SECONDS = env.float("OUTBOX_SWEEP_BUDGET_SECONDS", default=20.0)

# --- Cache -----------------------------------------------------------------------------------
# Django's Redis and local-memory caches, timed for the metrics (core.metrics).
CACHES = {
    "default": (
        {"BACKEND": "core.metrics.TimedRedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "core.metrics.TimedLocMemCache"}
    )
}

# How long a user's territory → permissions map stays in the cache (territories.access). Changes
# take effect at once whatever this is (each one gives the user a new cache key); it only bounds
# how long an unused map occupies memory.
TERRITORY_ACCESS_CACHE_SECONDS = env.int("TERRITORY_ACCESS_CACHE_SECONDS", default=3600)

# --- Back-office CSV import and export (django-import-export) --------------------------------
# Importing needs the model's "add" permission and exporting its "view" permission (admins that
# also update rows, such as products, ask for "change" too). An uploaded file waits for the
# confirmation in the cache, not on one web host's disk, so any process can finish the import.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_TMP_STORAGE_CLASS = "import_export.tmp_storages.CacheStorage"

# --- Logging ---------------------------------------------------------------------------------
# LOG_FORMAT: "plain" (a line of text) or "json" (one JSON object per line, core.logging.JsonFormatter;
# the default in production). Every line carries the request id of the request or Celery task it
# belongs to (core.request_id).
# Request logs drop query strings whole and mask link tokens (core.logging.build_logging).
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = build_logging(env("LOG_FORMAT", default="plain"), LOG_LEVEL)

# --- Content security policy (django-csp) ----------------------------------------------------
# Scripts and styles come from this site's own static files only: no inline script, no event
# handler attribute, no eval (htmx's eval-based features are off: templates/base.html), so
# injected markup cannot run. A page that truly needs an inline block gives it the request's
# nonce ({{ CSP_NONCE }}). Forms post to this site; the payment page's form is answered with a
# redirect to Stripe Checkout (form-action covers redirects), or, in the sandbox, to this site's
# public address. Nothing may frame these pages.
_STRIPE_CHECKOUT = "https://checkout.stripe.com"
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF, _STRIPE_CHECKOUT],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

# --- Health and metrics ----------------------------------------------------------------------
# /health/ready checks the database, Redis when REDIS_URL is set, and these django-health-check
# checks (dotted paths, or (path, options) pairs; the option "name" is what the answer calls it).
# File storage: the S3 bucket answers a HEAD (nothing written), or the media folder is writable.
HEALTH_READY_CHECKS: list[str | tuple[str, dict[str, Any]]] = [("core.health.FileStorageCheck", {"name": "storage"})]
# /metrics answers a scrape made directly (not through a proxy) from one of these addresses or
# networks, or one with "Authorization: Bearer <METRICS_BEARER_TOKEN>" (when set); anyone else 403.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_BEARER_TOKEN = env("METRICS_BEARER_TOKEN", default="")
# The Celery queues whose depth /metrics reports (default: Celery's default queue, "celery").
METRICS_CELERY_QUEUES = env.list("METRICS_CELERY_QUEUES", default=[])

# --- Domain ----------------------------------------------------------------------------------
PRACTICE_NAME = env("PRACTICE_NAME", default="Demo Medical Supply")
DEMO_PASSWORD = env("DEMO_PASSWORD", default="demo-password")

# --- Stock alerts and SMS --------------------------------------------------------------------
# SMS_BACKEND: dotted path of the SMS sender (core.sms); the console one prints the message body.
# core.sms.HTTPSMSBackend POSTs JSON {"to", "body"} to SMS_HTTP_URL with the bearer SMS_HTTP_TOKEN.
SMS_BACKEND = env("SMS_BACKEND", default="core.sms.ConsoleSMSBackend")
SMS_HTTP_URL = env("SMS_HTTP_URL", default="")
SMS_HTTP_TOKEN = env("SMS_HTTP_TOKEN", default="")
SMS_HTTP_TIMEOUT_SECONDS = env.float("SMS_HTTP_TIMEOUT_SECONDS", default=10.0)
# The daily stock check (catalog.alerts): lots expiring within this many days raise an alert; the
# SMS summary goes to each of these numbers (comma-separated), the email to every active admin.
STOCK_ALERT_EXPIRY_WINDOW_DAYS = env.int("STOCK_ALERT_EXPIRY_WINDOW_DAYS", default=30)
STOCK_ALERT_SMS_RECIPIENTS = env.list("STOCK_ALERT_SMS_RECIPIENTS", default=[])

# dumpdata and django.core.serializers export encrypted fields as their sealed tokens (dates included).
SERIALIZATION_MODULES = {fmt: f"core.serializers.{fmt}" for fmt in ("python", "json", "jsonl", "yaml")}
# Compliance engine: the folder of rule files (TOML, see compliance/rules/README.md).
COMPLIANCE_RULES_DIR = env("COMPLIANCE_RULES_DIR", default=str(BASE_DIR / "compliance" / "rules"))
# Order attachments (WOPD, face-to-face notes, prior authorizations, CMNs): largest accepted file.
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
# The portal's order wizard keeps a draft (and its documents) this long after its last change.
ORDER_DRAFT_RETENTION_DAYS = env.int("ORDER_DRAFT_RETENTION_DAYS", default=30)
# Stripe (payments): with no secret key the built-in sandbox provider stands in. STRIPE_API_BASE
# points stripe-python at another host (tests run a local server that speaks Stripe's API).
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
PAYMENT_CURRENCY = env("PAYMENT_CURRENCY", default="usd")
# The sandbox provider (no real money) stands in when no Stripe key is set; production refuses it.
PAYMENTS_SANDBOX_ALLOWED = env.bool("PAYMENTS_SANDBOX_ALLOWED", default=True)
# A patient's payment link expires after this many hours; reconciliation flags orders still waiting.
PAYMENT_LINK_TTL_HOURS = env.int("PAYMENT_LINK_TTL_HOURS", default=72)
# The address patients reach this site at: payment links and Checkout's return pages are built on it.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://localhost:8000")
# Pharmacy integration: the namespace of this system's FHIR identifiers (prescriptions, patients).
FHIR_IDENTIFIER_SYSTEM_BASE = env("FHIR_IDENTIFIER_SYSTEM_BASE", default="https://medorder.example.org/fhir/sid")
# A pharmacy call gives up after this many seconds; sends are retried with backoff this many times.
# Pharmacy base URLs must be https:// to public addresses (pharmacy.destinations); these host names
# (comma-separated, e.g. a pharmacy simulator on "localhost") may use http:// and local addresses.
PHARMACY_ALLOWED_LOCAL_HOSTS = env.list("PHARMACY_ALLOWED_LOCAL_HOSTS", default=[])
PHARMACY_TIMEOUT_SECONDS = env.float("PHARMACY_TIMEOUT_SECONDS", default=10.0)
PHARMACY_MAX_RETRIES = env.int("PHARMACY_MAX_RETRIES", default=6)
# Resupply: a prescription with refills left and a days supply gets its next fill sent this many
# days before the current fill runs out (the daily resupply run; off with PHARMACY_AUTO_REFILL=false).
PHARMACY_AUTO_REFILL = env.bool("PHARMACY_AUTO_REFILL", default=True)
PHARMACY_REFILL_LEAD_DAYS = env.int("PHARMACY_REFILL_LEAD_DAYS", default=7)

# Agent Status: an agent is "degraded" while an event has waited longer than this for its tasks.
AGENT_PENDING_DEGRADED_SECONDS = env.int("AGENT_PENDING_DEGRADED_SECONDS", default=300)
# Orders waiting too long for a person, by status and priority ("*": any other priority), in hours:
# Agent Status lists them and the stalled-order sweep alerts the territory's staff. Held and
# in-review orders are listed from the start; their thresholds are for the alerts.
AGENT_STALL_THRESHOLDS: dict[str, dict[str, float]] = {
    "on_hold": {"urgent": 4, "stat": 4, "*": 48},
    "pending_verification": {"urgent": 4, "stat": 4, "*": 48},
    "in_progress": {"*": 3 * 24},
    "shipped": {"*": 14 * 24},
}
# Ordering agent: a work order is "due" from this many days before its refill's eligible day.
WORK_ORDER_DUE_DAYS = env.int("WORK_ORDER_DUE_DAYS", default=14)
# Claims (payments agent): the work queue flags claims delivered this many days ago and not billed,
# and shows at most this many claims per queue.
CLAIM_BILLING_DAYS = env.int("CLAIM_BILLING_DAYS", default=7)
CLAIM_QUEUE_LIMIT = env.int("CLAIM_QUEUE_LIMIT", default=200)
# Staff alerts (agents.alerts): the territory's ops staff are alerted when an order waits past its
# AGENT_STALL_THRESHOLDS entry, and its admins when it still waits past these (hours; "*": any other
# priority). Alerts go by email, SMS (to each user's mobile) and to a Microsoft Teams channel through
# its incoming webhook (TEAMS_WEBHOOK_URL; none when empty).
AGENT_ESCALATION_THRESHOLDS: dict[str, dict[str, float]] = {
    "on_hold": {"urgent": 8, "stat": 8, "*": 96},
    "pending_verification": {"urgent": 8, "stat": 8, "*": 96},
    "in_progress": {"*": 5 * 24},
    "shipped": {"*": 21 * 24},
}
TEAMS_WEBHOOK_URL = env("TEAMS_WEBHOOK_URL", default="")
TEAMS_TIMEOUT_SECONDS = env.float("TEAMS_TIMEOUT_SECONDS", default=10.0)
# Patient messages (engagement agent): sent between these hours (from, until) in the patient's time
# zone (a message due outside them waits for the morning), tried this many times before "failed".
MESSAGE_HOURS = (env.int("MESSAGE_HOURS_FROM", default=8), env.int("MESSAGE_HOURS_UNTIL", default=21))
MESSAGE_MAX_ATTEMPTS = env.int("MESSAGE_MAX_ATTEMPTS", default=6)
