"""Pharmacies, the prescriptions sent to them, and the log of every exchange.

A pharmacy's credentials are sealed with the PHI keyring (bound to the pharmacy's id) and never
shown back in full. PharmacyLog payloads carry PHI, so they are encrypted like every PHI field
(bound to the order's territory) and read only by permitted staff.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import models
from simple_history.models import HistoricalRecords

from core import crypto
from core.fields import EncryptedTextField, PHIModel
from core.models import AppendOnlyMixin


class ConnectorType(models.TextChoices):
    FHIR_R4 = "fhir-r4", "FHIR R4 (MedicationRequest)"
    VENDOR_JSON = "vendor-json", "Vendor JSON (field mapping)"


class Pharmacy(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    connector = models.CharField(max_length=30, choices=ConnectorType.choices)
    base_url = models.URLField(help_text="The pharmacy's API base, e.g. https://pharmacy.example/fhir.")
    credentials_sealed = models.TextField(blank=True, editable=False)
    mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Message mapping options; fhir-r4: {'mode': 'transaction'} to post Bundles; "
            "vendor-json: {'path': '/orders', 'fields': {'theirs': 'our.path'}}."
        ),
    )
    callback_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    active = models.BooleanField(default=True)
    territories = models.ManyToManyField("territories.Territory", blank=True, related_name="pharmacies")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["credentials_sealed", "callback_token_hash"])

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "pharmacies"

    def __str__(self) -> str:
        return self.name

    def _associated_data(self) -> bytes:
        return f"pharmacy:{self.pk}|credentials".encode()

    @property
    def credentials(self) -> dict[str, Any]:
        """The connector's secrets, e.g. ``{"bearer_token": ...}`` or ``{"api_key": ..., "api_key_header": ...}``."""
        if not self.credentials_sealed:
            return {}
        return dict(json.loads(crypto.open_token(self.credentials_sealed, associated_data=self._associated_data())))

    @credentials.setter
    def credentials(self, value: dict[str, Any]) -> None:
        self.credentials_sealed = (
            crypto.seal(json.dumps(value, sort_keys=True), associated_data=self._associated_data()) if value else ""
        )


class TransmissionStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Accepted by the pharmacy"
    REJECTED = "rejected", "Refused by the pharmacy (4xx): in review"
    DEAD_LETTER = "dead_letter", "Gave up after retries: staff can retry"


class DispenseStatus(models.TextChoices):
    """The pharmacy's progress: the FHIR R4 MedicationDispense status codes (every code of
    http://hl7.org/fhir/R4/valueset-medicationdispense-status.html, R4 4.0.1 of 2019-11-01), plus the
    vendors' ``shipped``."""

    NONE = "", "Nothing yet"
    PREPARATION = "preparation", "Preparation"
    IN_PROGRESS = "in-progress", "In progress"
    COMPLETED = "completed", "Dispensed"
    SHIPPED = "shipped", "Shipped"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"
    ON_HOLD = "on-hold", "On hold"
    STOPPED = "stopped", "Stopped"
    ENTERED_IN_ERROR = "entered-in-error", "Entered in error"
    UNKNOWN = "unknown", "Unknown"


class Prescription(models.Model):
    """One fill of a prescribed order line sent to one pharmacy (fill 0 the original, then refills).

    ``identifier`` is the order-scoped identifier of its MedicationRequest; the pharmacy keys
    ``If-None-Exist`` on it, so a retry never creates a second prescription there.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="prescriptions")
    item = models.ForeignKey("orders.OrderItem", on_delete=models.PROTECT, related_name="prescriptions")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="prescriptions")
    fill = models.PositiveSmallIntegerField(default=0)
    identifier = models.CharField(max_length=120, unique=True)
    status = models.CharField(max_length=20, choices=TransmissionStatus.choices, default=TransmissionStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True, help_text="Status code or error class, never a body.")
    pharmacy_reference = models.CharField(max_length=255, blank=True, help_text="The pharmacy's id for it.")
    sent_at = models.DateTimeField(null=True, blank=True)
    dispense_status = models.CharField(max_length=20, choices=DispenseStatus.choices, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    carrier = models.CharField(max_length=50, blank=True)
    dispensed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the pharmacy first reported it dispensed or shipped: the supply starts."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["order", "item", "fill"]
        constraints = [models.UniqueConstraint(fields=["item", "fill"], name="prescription_fill_unique_per_line")]

    def __str__(self) -> str:
        return f"Prescription {self.identifier}"


class LogOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected (4xx)"
    SERVER_ERROR = "server_error", "Server error (5xx)"
    NETWORK_ERROR = "network_error", "Network error or timeout"
    CALLBACK = "callback", "Status received"
    POLL = "poll", "Status polled"


class PharmacyLog(AppendOnlyMixin, PHIModel):
    """Every exchange with a pharmacy (seed 003): what went, what came back, how long it took."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="pharmacy_logs")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="logs")
    prescription = models.ForeignKey(Prescription, null=True, blank=True, on_delete=models.PROTECT, related_name="logs")
    direction = models.CharField(max_length=10, choices=[("out", "Sent"), ("in", "Received")], default="out")
    method = models.CharField(max_length=10, blank=True)
    url = models.CharField(max_length=500, blank=True, help_text="Without query string or credentials.")
    request_payload = EncryptedTextField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_payload = EncryptedTextField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=LogOutcome.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.outcome} at {self.created_at:%Y-%m-%d %H:%M}"
