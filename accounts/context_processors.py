from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def session_policy(request: HttpRequest) -> dict[str, Any]:
    """The automatic-logoff and lockout settings pages tell people about (and portal.js acts on)."""
    return {
        "idle_seconds": settings.SESSION_IDLE_SECONDS,
        "lockout_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    }
