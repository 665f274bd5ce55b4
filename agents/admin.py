"""Agent runs in the admin: read-only, for ops to see what the agents did and why a run failed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import AgentRun


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "agent", "task", "topic", "outcome", "attempt", "duration_ms", "error_code")
    list_filter = ("agent", "outcome", "topic")
    search_fields = ("=event_id", "=celery_task_id", "task")
    show_full_result_count = False  # the runs grow with every event: no COUNT of the whole table

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
