"""How WhiteNoise caches static files."""

from __future__ import annotations

from typing import Any

# One year: what HTTP/1.1 set as the furthest expiry to send (RFC 2616 §14.21); caches treat it as "forever".
IMMUTABLE_CACHE_CONTROL = "max-age=31536000, public, immutable"


def cache_headers(headers: Any, path: str, url: str) -> None:
    """``WHITENOISE_ADD_HEADERS_FUNCTION``: a fingerprinted file (its name carries its content's hash,
    so a changed file gets a new name) is cached for a year and never revalidated; WhiteNoise marks
    those ``immutable``. Every other file keeps WhiteNoise's short max-age.
    """
    if "immutable" in headers.get("Cache-Control", ""):
        headers["Cache-Control"] = IMMUTABLE_CACHE_CONTROL
