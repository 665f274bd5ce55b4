from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def lockout_minutes() -> int:
    """How long a locked user name stays locked (django-axes' cool-off), in minutes."""
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def session_policy(request: HttpRequest) -> dict[str, Any]:
    """The automatic-logoff and lockout settings pages tell people about (and portal.js acts on)."""
    return {
        "idle_seconds": settings.SESSION_IDLE_SECONDS,
        "lockout_minutes": lockout_minutes(),
    }
