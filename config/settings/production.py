"""Production settings: everything secret or external comes from the environment.

Required: DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, PUBLIC_BASE_URL, DATABASE_URL, the PHI keys
(base.py), and the Stripe keys (or PAYMENTS_SANDBOX_ALLOWED=true for a staging site).
`manage.py check --deploy --fail-level WARNING` passes with them set (`make deploy-check`).
"""

from urllib.parse import urlsplit

from whitenoise.compress import Compressor

from .base import *  # noqa: F403
from .base import LOG_LEVEL, SILENCED_SYSTEM_CHECKS, build_logging, env

DEBUG = False
# No default: a deployment names the host names it answers to (a leading dot covers subdomains).
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
# The address patients and staff reach the site at (payment links are built on it).
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL")
# Origins whose unsafe requests (POST ...) the CSRF check accepts besides the request's own host:
# by default the public address, which a proxy that rewrites the Host header would otherwise break.
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS",
    default=["{0.scheme}://{0.netloc}".format(urlsplit(PUBLIC_BASE_URL))],
)

# Production takes real payments: without Stripe keys `manage.py check` fails (payments.E002).
PAYMENTS_SANDBOX_ALLOWED = env.bool("PAYMENTS_SANDBOX_ALLOWED", default=False)

# --- HTTPS -----------------------------------------------------------------------------------
# TLS ends at the load balancer, which must set X-Forwarded-Proto (and overwrite any value a client
# sent): Django trusts it to tell an https request from an http one.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# HSTS preload is off unless the domain's owner turns it on: the "preload" directive lets anyone
# submit the domain to the browsers' built-in list, which then forces HTTPS on it and every
# subdomain for months even after the header is gone. That is the domain's decision, not this
# application's, so check --deploy's reminder (security.W021) is silenced while it is off.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]

# --- Cookies ---------------------------------------------------------------------------------
# Sent over HTTPS only, out of reach of page scripts (base.py: HttpOnly), and with the __Host-
# prefix: the browser keeps such a cookie only when it is Secure, for this exact host and path "/",
# so a sibling subdomain cannot plant or shadow it.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"

# --- Static files ----------------------------------------------------------------------------
# `manage.py collectstatic` writes every file under a name carrying its content hash, plus gzip
# and Brotli copies; WhiteNoise serves them with a one-year immutable Cache-Control, so browsers
# and a CDN never ask again (a changed file gets a new name).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Source maps only reach a developer's tools: compressing them (the API docs' bundles bring 5 MB)
# would more than double the time collectstatic takes.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]

# --- Logging ---------------------------------------------------------------------------------
LOGGING = build_logging(env("LOG_FORMAT", default="json"), LOG_LEVEL)
