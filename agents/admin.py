"""Agent runs in the admin: read-only, for ops to see what the agents did and why a run failed."""

from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import AgentRun


@admin.register(AgentRun)
class AgentRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "agent", "task", "topic", "outcome", "attempt", "duration_ms", "error_code")
    list_filter = ("agent", "outcome", "topic")
    search_fields = ("=celery_task_id", "task")
    show_full_result_count = False  # the runs grow with every event: no COUNT of the whole table
