"""Payer rules the admin edits, and the frozen record of each compliance decision.

The CMS rule tables live in versioned files (``compliance/rules/``); payer and plan rules change
per contract, so they are rows the admin edits, with an effective date range and history.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from core.fields import EncryptedJSONField, PHIModel
from core.identifiers import validate_hcpcs
from core.models import AppendOnlyMixin


class PayerRule(models.Model):
    """What one payer (or one of its plans) requires for one HCPCS code, for a date range."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payer_name = models.CharField(max_length=200, help_text="As written on the patient's coverage, e.g. Aetna.")
    plan_name = models.CharField(max_length=200, blank=True, help_text="Empty: every plan of the payer.")
    hcpcs_code = models.CharField("HCPCS code", max_length=5, validators=[validate_hcpcs])
    requires_prior_auth = models.BooleanField("requires prior authorization", default=False)
    requires_cmn = models.BooleanField("requires a certificate of medical necessity", default=False)
    not_covered = models.BooleanField(default=False)
    coverage_tiers = models.CharField(
        max_length=200,
        blank=True,
        help_text="Comma-separated plan tiers that cover the item; empty: every tier.",
    )
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True, help_text="Last day in force; empty: still in force.")
    source = models.CharField(max_length=300, help_text="The payer policy this comes from (title or URL).")
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["payer_name", "plan_name", "hcpcs_code", "-effective_from"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(effective_to__isnull=True) | models.Q(effective_to__gte=models.F("effective_from")),
                name="payer_rule_dates_ordered",
            )
        ]

    def __str__(self) -> str:
        plan = f" / {self.plan_name}" if self.plan_name else ""
        return f"{self.payer_name}{plan}: {self.hcpcs_code}"

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(tier.strip() for tier in self.coverage_tiers.split(",") if tier.strip())


class SnapshotKind(models.TextChoices):
    SUBMISSION = "submission", "Submission"
    ATTACHMENT = "attachment", "Re-check after an attachment"
    APPROVAL = "approval", "Approval"
    RECHECK = "recheck", "Re-check after another order of the patient was withdrawn"


class ComplianceSnapshot(AppendOnlyMixin, PHIModel):
    """The inputs that mattered and the result of one evaluation of an order, frozen.

    Later edits to rule files, payer rules or patient records never change a snapshot. Inputs
    and findings describe a patient's care, so they are encrypted like other PHI. ``order_id``
    names the order without a foreign key: orders are a higher layer than compliance.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(db_index=True)
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=SnapshotKind.choices)
    disposition = models.CharField(max_length=20)
    rule_versions = models.JSONField(default=dict)
    inputs = EncryptedJSONField()
    result = EncryptedJSONField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.disposition}"
