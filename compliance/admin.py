"""Payer rules (edited by admins) and compliance snapshots (read-only) in the back office."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from .models import PayerRule


@admin.register(PayerRule)
class PayerRuleAdmin(SimpleHistoryAdmin):
    """What each payer or plan requires per HCPCS code; the checks use the rules in force on the order date."""

    list_display = (
        "payer_name",
        "plan_name",
        "hcpcs_code",
        "requires_prior_auth",
        "requires_cmn",
        "not_covered",
        "coverage_tiers",
        "effective_from",
        "effective_to",
    )
    list_filter = ("payer_name", "requires_prior_auth", "requires_cmn", "not_covered")
    search_fields = ("payer_name", "plan_name", "hcpcs_code")
    fields = (
        ("payer_name", "plan_name"),
        "hcpcs_code",
        ("requires_prior_auth", "requires_cmn", "not_covered"),
        "coverage_tiers",
        ("effective_from", "effective_to"),
        "source",
        "notes",
    )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # End a rule with effective_to: orders decided under it keep pointing at what was in force.
        return False
