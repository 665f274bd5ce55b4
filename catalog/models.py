"""The product catalog, vendors, warehouses and the stock of each lot.

Stock is kept per lot. ``Lot.quantity_on_hand`` and ``Lot.quantity_reserved`` are counters that
only ``catalog.services`` change, always together with an append-only ``StockMovement`` row, so
every number is explained by the ledger. Available stock of a lot is on hand minus reserved.
Orders are a higher layer: reservations name them by id, never by foreign key.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from core.identifiers import validate_hcpcs
from core.models import AppendOnlyMixin


class TherapyType(models.TextChoices):
    CPAP = "cpap", "CPAP / sleep"
    DIABETES = "diabetes", "Diabetes"
    WOUND_CARE = "wound_care", "Wound care"
    MOBILITY = "mobility", "Mobility"
    RESPIRATORY = "respiratory", "Respiratory"
    OSTOMY = "ostomy", "Ostomy"
    UROLOGY = "urology", "Urology"
    WEIGHT_MANAGEMENT = "weight_management", "Weight management"
    HAIR_LOSS = "hair_loss", "Hair loss"
    ED = "ed", "Erectile dysfunction"


class Vendor(models.Model):
    """A supplier that dropships to patients and fills reorders."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    hcpcs_code = models.CharField("HCPCS code", max_length=5, blank=True, validators=[validate_hcpcs])
    therapy_type = models.CharField(max_length=30, choices=TherapyType.choices)
    rxnorm_code = models.CharField("RxNorm code", max_length=12, blank=True, help_text="Medications only.")
    strength = models.CharField(max_length=50, blank=True, help_text="Medications only, e.g. 2.5 mg/0.5 mL.")
    dose_form = models.CharField(max_length=80, blank=True, help_text="Medications only, e.g. injection pen.")
    coverage_tier = models.CharField(max_length=50, blank=True)
    price_cents = models.PositiveIntegerField(help_text="Unit price in cents.")
    unit = models.CharField(max_length=30, default="each", help_text="Unit of measure, e.g. each, box of 100.")
    requires_prescription = models.BooleanField(default=True)
    is_perishable = models.BooleanField(default=False, help_text="Lots carry an expiration date.")
    par_level = models.PositiveIntegerField(default=0, help_text="Stock to bring a reorder back up to.")
    reorder_point = models.PositiveIntegerField(default=0, help_text="Alert and reorder at or below this stock.")
    warehouse_fulfillment = models.BooleanField(default=True, help_text="May ship from our warehouse.")
    dropship_fulfillment = models.BooleanField(default=False, help_text="May be dropshipped by the vendor.")
    vendor = models.ForeignKey(Vendor, null=True, blank=True, on_delete=models.PROTECT, related_name="products")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["therapy_type", "name"]

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"

    @property
    def fulfillment_modes(self) -> list[str]:
        return [
            mode
            for mode, allowed in (("warehouse", self.warehouse_fulfillment), ("dropship", self.dropship_fulfillment))
            if allowed
        ]


class Warehouse(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Lot(models.Model):
    """One lot of a product in one warehouse. Counters change only through ``catalog.services``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="lots")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="lots")
    lot_number = models.CharField(max_length=64)
    expiration_date = models.DateField(null=True, blank=True, help_text="Empty for stock that does not expire.")
    quantity_on_hand = models.PositiveIntegerField(default=0)
    quantity_reserved = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product", "expiration_date", "received_at"]
        constraints = [
            models.UniqueConstraint(fields=["product", "warehouse", "lot_number"], name="lot_unique_per_warehouse"),
            models.CheckConstraint(
                condition=models.Q(quantity_reserved__lte=models.F("quantity_on_hand")),
                name="lot_reserved_within_on_hand",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.sku} lot {self.lot_number}"

    @property
    def quantity_available(self) -> int:
        return self.quantity_on_hand - self.quantity_reserved


class MovementKind(models.TextChoices):
    RECEIPT = "receipt", "Receipt"
    RESERVATION = "reservation", "Reservation"
    RELEASE = "release", "Release"
    PICK = "pick", "Pick"
    ADJUSTMENT = "adjustment", "Adjustment"
    EXPIRY_WRITE_OFF = "expiry_write_off", "Expiry write-off"


class StockMovement(AppendOnlyMixin, models.Model):
    """One entry of the append-only stock ledger.

    ``on_hand_delta`` and ``reserved_delta`` are what the movement did to the lot's counters, so
    the sum of a lot's movements equals its counters.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(max_length=20, choices=MovementKind.choices)
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    reason = models.CharField(max_length=300, blank=True)
    order_id = models.UUIDField(null=True, blank=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.on_hand_delta:+d}/{self.reserved_delta:+d}"


class ReservationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    CONSUMED = "consumed", "Consumed (picked)"


class StockReservation(models.Model):
    """Units of one lot held for one order line until they are picked or released."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="reservations")
    order_id = models.UUIDField(db_index=True)
    order_line_id = models.UUIDField()
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=ReservationStatus.choices, default=ReservationStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="reservation_quantity_positive")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} of {self.lot_id} for order {self.order_id}"
