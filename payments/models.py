"""Invoices, payment links, payments, refunds and processed Stripe events of cash-pay orders.

Money is kept in integer cents. An invoice's lines are a copy of the order's lines when it was
issued, so a later price change never alters an issued invoice. Orders are a lower layer: the
invoice points at its order; the order never imports payments.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


class Invoice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=20, unique=True, help_text="INV-<year>-<serial>, gapless per year.")
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="invoice")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.OPEN)
    currency = models.CharField(max_length=3, default="usd")
    subtotal_cents = models.PositiveIntegerField()
    total_cents = models.PositiveIntegerField()
    issued_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return self.number


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField("SKU", max_length=64)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price_cents = models.PositiveIntegerField()
    total_cents = models.PositiveIntegerField()

    class Meta:
        ordering = ["invoice", "sku"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class InvoiceSerial(models.Model):
    """The last invoice serial of a year (locked while a number is taken, so numbers never repeat)."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


class PaymentStatus(models.TextChoices):
    """Stripe's PaymentIntent statuses, plus refunded."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method", "Requires payment method"
    REQUIRES_CONFIRMATION = "requires_confirmation", "Requires confirmation"
    REQUIRES_ACTION = "requires_action", "Requires action"
    PROCESSING = "processing", "Processing"
    REQUIRES_CAPTURE = "requires_capture", "Requires capture"
    CANCELED = "canceled", "Canceled"
    SUCCEEDED = "succeeded", "Succeeded"
    REFUNDED = "refunded", "Refunded"


class PaymentProvider(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    SANDBOX = "sandbox", "Sandbox (no real money)"


class PaymentLink(models.Model):
    """The patient's way to pay one order: ``/pay/<token>``, where the token is this row's id signed.

    A link works until ``expires_at`` unless revoked; issuing a new link for the order revokes
    the previous one (``revoke_reason`` "Re-issued") and expires its open Checkout Session.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payment_links")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.CharField(max_length=200, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When the patient was sent the link.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Payment link {self.pk}"

    def is_usable(self, now: Any) -> bool:
        return self.revoked_at is None and self.expires_at > now


class Payment(models.Model):
    """One attempt to collect an order's total; its state mirrors the provider's, apart from the order's.

    A Checkout Session attempt (from a payment link) has ``checkout_session_id`` and learns its
    PaymentIntent id when the session completes; a custom front end's attempt has only the intent.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    provider = models.CharField(max_length=20, choices=PaymentProvider.choices)
    attempt = models.PositiveIntegerField(default=1, help_text="Numbered per order; part of the idempotency key.")
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    checkout_expires_at = models.DateTimeField(null=True, blank=True)
    link = models.ForeignKey(PaymentLink, null=True, blank=True, on_delete=models.PROTECT, related_name="payments")
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(
        max_length=30, choices=PaymentStatus.choices, default=PaymentStatus.REQUIRES_PAYMENT_METHOD
    )
    last_error_code = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["order", "attempt"], name="payment_attempt_unique_per_order")]

    def __str__(self) -> str:
        return f"Payment {self.attempt} of {self.order_id}"


class RefundStatus(models.TextChoices):
    """Stripe's Refund statuses; ``pending`` is also where a refund waits before the provider answered."""

    PENDING = "pending", "Pending"
    REQUIRES_ACTION = "requires_action", "Requires action"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Refund(models.Model):
    """The full refund of a succeeded payment (one per payment: its idempotency key is the payment's id).

    ``reason`` is the staff's own text and stays here; Stripe is told nothing but the ids.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="refund")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True, help_text="The provider's id.")
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    reason = models.CharField(max_length=500)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Refund of {self.payment_id}"


class ProcessedStripeEvent(models.Model):
    """A Stripe event already applied, written in the same transaction as its effect (so never twice)."""

    event_id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=100)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=100, help_text="What the event did (or why it did nothing).")
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-processed_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class ClaimStatus(models.TextChoices):
    OPEN = "open", "Open (waiting for delivery)"
    READY_TO_BILL = "ready_to_bill", "Ready to bill"
    SUBMITTED = "submitted", "Submitted"
    PAID = "paid", "Paid"
    DENIED = "denied", "Denied"


class Claim(models.Model):
    """The insurance claim of an approved insurance order, staged by the payments agent (seed 000:
    "pre-stage claim reconciliation checkpoints"). The date of service is the delivery date, set
    when the order is delivered. No PHI: the order by id, codes and amounts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="claim")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=ClaimStatus.choices, default=ClaimStatus.OPEN)
    date_of_service = models.DateField(null=True, blank=True, help_text="The delivery date.")
    charge_cents = models.PositiveIntegerField()
    paid_cents = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "date_of_service"], name="claim_status_service_idx")]

    def __str__(self) -> str:
        return f"Claim for order {self.order_id}"


class ClaimLine(models.Model):
    """One service line: the HCPCS code with its pricing modifier, units, the charge, and which of the
    order's diagnoses (1-based, at most four, as on a CMS-1500 line) support it."""

    claim = models.ForeignKey(Claim, on_delete=models.CASCADE, related_name="lines")
    order_item = models.ForeignKey("orders.OrderItem", on_delete=models.PROTECT, related_name="+")
    hcpcs_code = models.CharField(max_length=5)
    modifier = models.CharField(max_length=2, blank=True)
    units = models.PositiveIntegerField()
    charge_cents = models.PositiveIntegerField()
    diagnosis_pointers = models.JSONField(default=list)

    class Meta:
        ordering = ["claim", "id"]

    def __str__(self) -> str:
        return f"{self.hcpcs_code}{'-' + self.modifier if self.modifier else ''} x {self.units}"


class ClaimCheckpointKind(models.TextChoices):
    DOCUMENTATION_COMPLETE = "documentation_complete", "Documentation complete"
    DELIVERED = "delivered", "Delivered with proof of delivery"
    READY_TO_BILL = "ready_to_bill", "Ready to bill"
    SUBMITTED = "submitted", "Submitted"
    PAID = "paid", "Paid"
    DENIED = "denied", "Denied"


class ClaimCheckpoint(models.Model):
    """A step of a claim, with its time and actor (None: the system); paid and denied carry amounts."""

    claim = models.ForeignKey(Claim, on_delete=models.CASCADE, related_name="checkpoints")
    kind = models.CharField(max_length=30, choices=ClaimCheckpointKind.choices)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount_cents = models.PositiveIntegerField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, help_text="A payer's reason code or a reference; no PHI.")

    class Meta:
        ordering = ["claim", "at", "id"]
        constraints = [models.UniqueConstraint(fields=["claim", "kind"], name="claim_checkpoint_once")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"
