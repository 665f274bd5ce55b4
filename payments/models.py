"""Invoices for cash-pay orders (payments and Stripe events arrive with the payment flows).

Money is kept in integer cents. An invoice's lines are a copy of the order's lines when it was
issued, so a later price change never alters an issued invoice. Orders are a lower layer: the
invoice points at its order; the order never imports payments.
"""

from __future__ import annotations

import uuid

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


class Payment(models.Model):
    """One attempt to collect an order's total; its state mirrors the provider's, apart from the order's."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    provider = models.CharField(max_length=20, choices=PaymentProvider.choices)
    attempt = models.PositiveIntegerField(default=1, help_text="Numbered per order; part of the idempotency key.")
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
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
