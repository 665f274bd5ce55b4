"""Reads of payer rules and compliance snapshots."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from .inputs import PayerRuleFacts
from .models import ComplianceSnapshot, PayerRule


def payer_rules_in_force(
    *, payer_name: str, plan_name: str, hcpcs_codes: Iterable[str], on: dt.date
) -> tuple[PayerRuleFacts, ...]:
    """The payer's rules for these codes in force on ``on``: its plan's own and its all-plan rules."""
    codes = sorted({code for code in hcpcs_codes if code})
    if not payer_name or not codes:
        return ()
    rules = PayerRule.objects.filter(
        Q(plan_name="") | Q(plan_name__iexact=plan_name),
        Q(effective_to__isnull=True) | Q(effective_to__gte=on),
        payer_name__iexact=payer_name,
        hcpcs_code__in=codes,
        effective_from__lte=on,
    ).order_by("hcpcs_code", "plan_name", "effective_from")
    return tuple(
        PayerRuleFacts(
            hcpcs=rule.hcpcs_code,
            payer=f"{rule.payer_name} {rule.plan_name}".strip(),
            requires_prior_auth=rule.requires_prior_auth,
            requires_cmn=rule.requires_cmn,
            not_covered=rule.not_covered,
            coverage_tiers=rule.tiers,
            source=rule.source,
        )
        for rule in rules
    )


def latest_snapshot(*, order_id: Any) -> ComplianceSnapshot | None:
    return ComplianceSnapshot.objects.filter(order_id=order_id).order_by("-created_at").first()


def snapshots_of(*, order_id: Any) -> list[ComplianceSnapshot]:
    return list(ComplianceSnapshot.objects.filter(order_id=order_id).order_by("created_at"))
