"""Agent runs in the admin: read-only, for ops to see what the agents did and why a run failed."""

from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import AgentRun, StaffAlert


@admin.register(AgentRun)
class AgentRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "agent", "task", "topic", "outcome", "attempt", "duration_ms", "error_code")
    list_filter = ("agent", "outcome", "topic")
    search_fields = ("=celery_task_id", "task")
    show_full_result_count = False  # the runs grow with every event: no COUNT of the whole table


@admin.register(StaffAlert)
class StaffAlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "level", "subject", "email_sent_at", "sms_sent_at", "teams_sent_at")
    list_filter = ("kind", "level")
    search_fields = ("subject",)
    show_full_result_count = False
