"""The product catalog, vendors, warehouses and the stock of each lot.

Stock is kept per lot. ``Lot.quantity_on_hand`` and ``Lot.quantity_reserved`` are counters that
only ``catalog.services`` change, always together with an append-only ``StockMovement`` row, so
every number is explained by the ledger. Available stock of a lot is on hand minus reserved.
Orders are a higher layer: reservations name them by id, never by foreign key.
"""

from __future__ import annotations

import secrets
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


# The coverage tier of products sold for cash only (the cash-pay medications); they are never
# billed to insurance, so insurance orders do not offer them.
CASH_PAY_TIER = "cash_pay"
COVERAGE_TIER_LABELS = {"standard": "Standard", CASH_PAY_TIER: "Cash pay only"}


def coverage_tier_label(tier: str) -> str:
    """A coverage tier in words: the known ones by name, others as written with spaces for underscores."""
    tier = (tier or "").strip()
    return COVERAGE_TIER_LABELS.get(tier.lower()) or tier.replace("_", " ").capitalize()


class BillingModifier(models.TextChoices):
    """HCPCS Level II pricing modifiers of a DME claim line (descriptors as in CMS's HCPCS modifier
    list: NU "new equipment", RR "rental (use the RR modifier when DME is to be rented)", UE "used
    durable medical equipment"; read 2026-12, the edition of the file was not recorded). Supplies
    billed per unit carry none."""

    NONE = "", "None (supplies)"
    NEW_PURCHASE = "NU", "NU: new equipment, purchased"
    RENTAL = "RR", "RR: rental"
    USED_PURCHASE = "UE", "UE: used equipment, purchased"


class Vendor(models.Model):
    """A supplier that dropships to patients and fills reorders."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    lead_time_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days from sending a purchase order to the goods arriving (vendor reorders plan by it)."
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DispensingUnit(models.TextChoices):
    """What a pharmacy counts a medication in (the prescription's dispense quantity is in this unit)."""

    TABLET = "tablet", "tablet"
    CAPSULE = "capsule", "capsule"
    MILLILITER = "mL", "mL"
    PEN = "pen", "pen"


class Product(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    hcpcs_code = models.CharField("HCPCS code", max_length=5, blank=True, validators=[validate_hcpcs])
    therapy_type = models.CharField(max_length=30, choices=TherapyType.choices)
    rxnorm_code = models.CharField("RxNorm code", max_length=12, blank=True, help_text="Medications only.")
    strength = models.CharField(max_length=50, blank=True, help_text="Medications only, e.g. 2.5 mg/0.5 mL.")
    dose_form = models.CharField(max_length=80, blank=True, help_text="Medications only, e.g. injection pen.")
    rxnorm_name = models.CharField(
        "RxNorm name",
        max_length=255,
        blank=True,
        help_text="Medications only: the RxNorm name of the RxNorm code, e.g. sildenafil 20 MG Oral Tablet.",
    )
    dispensing_unit = models.CharField(
        max_length=10,
        choices=DispensingUnit.choices,
        blank=True,
        help_text="Medications only: what the pharmacy counts, e.g. tablet.",
    )
    dispensing_units_per_unit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Medications only: dispensing units in one unit sold, e.g. 30 for a bottle of 30 tablets.",
    )
    coverage_tier = models.CharField(max_length=50, blank=True)
    price_cents = models.PositiveIntegerField(help_text="Unit price in cents.")
    unit = models.CharField(max_length=30, default="each", help_text="Unit of measure, e.g. each, box of 100.")
    requires_prescription = models.BooleanField(default=True)
    is_perishable = models.BooleanField(default=False, help_text="Lots carry an expiration date.")
    par_level = models.PositiveIntegerField(default=0, help_text="Stock to bring a reorder back up to.")
    reorder_point = models.PositiveIntegerField(default=0, help_text="Alert and reorder at or below this stock.")
    warehouse_fulfillment = models.BooleanField(default=True, help_text="May ship from our warehouse.")
    dropship_fulfillment = models.BooleanField(default=False, help_text="May be dropshipped by the vendor.")
    requires_training = models.BooleanField(
        default=False, help_text="The patient needs training to use it (a patient-training task is created)."
    )
    # Refill rules (compliance/rules/refills.toml) apply to every supply provided on a recurring basis
    # (CMS PIM ch. 5 §5.2.6), not only to codes with a usual maximum (quantity_limits.toml).
    recurring = models.BooleanField(
        default=False,
        help_text="Supplied on a recurring basis (e.g. wound dressings, PAP or diabetic supplies): a repeat"
        " delivery is a refill, which needs the patient's confirmation and may not come too early.",
    )
    days_of_supply = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="For a recurring supply without a Medicare usual maximum: the days one unit (as ordered) usually"
        " lasts, from which the end of a delivered supply is counted. Empty: not known.",
    )
    billing_modifier = models.CharField(
        max_length=2,
        choices=BillingModifier.choices,
        blank=True,
        help_text="The HCPCS modifier an insurance claim line carries: NU new equipment purchased, RR rental,"
        " UE used equipment purchased; blank for supplies.",
    )
    vendor = models.ForeignKey(Vendor, null=True, blank=True, on_delete=models.PROTECT, related_name="products")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["therapy_type", "name"]

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"

    @property
    def is_medication(self) -> bool:
        """A medication (it has an RxNorm code): a pharmacy fills it from a prescription."""
        return bool(self.rxnorm_code)

    @property
    def insurance_billable(self) -> bool:
        """Whether an insurance order may carry it: durable medical equipment or a supply with a
        HCPCS code (the code a DME claim bills), not in the cash-pay tier."""
        return bool(self.hcpcs_code) and self.coverage_tier.strip().lower() != CASH_PAY_TIER

    @property
    def coverage_tier_label(self) -> str:
        return coverage_tier_label(self.coverage_tier)

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


class PurchaseOrderKind(models.TextChoices):
    DROPSHIP = "dropship", "Dropship to a patient"
    RESTOCK = "restock", "Restock a warehouse"


class PurchaseOrderStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SENT = "sent", "Sent to vendor"
    ACKNOWLEDGED = "acknowledged", "Acknowledged by vendor"
    SHIPPED = "shipped", "Shipped by vendor"
    RECEIVED = "received", "Received into stock"
    CANCELLED = "cancelled", "Cancelled"


# A purchase order still expected to bring stock or reach a patient.
OPEN_PURCHASE_ORDER_STATUSES = (
    PurchaseOrderStatus.DRAFT,
    PurchaseOrderStatus.SENT,
    PurchaseOrderStatus.ACKNOWLEDGED,
)


def new_purchase_order_number() -> str:
    """A short unique purchase-order number such as ``PO-7KQ2M9XA``."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "PO-" + "".join(secrets.choice(alphabet) for _ in range(8))


class PurchaseOrder(models.Model):
    """An order to a vendor: a dropship for one patient order, or a restock of a warehouse.

    Status changes only through ``catalog.purchasing``. A dropship names its patient order by id
    (orders are a higher layer) and carries no PHI: the vendor gets SKUs and quantities.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=12, unique=True, default=new_purchase_order_number, editable=False)
    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="purchase_orders")
    kind = models.CharField(max_length=20, choices=PurchaseOrderKind.choices)
    status = models.CharField(max_length=20, choices=PurchaseOrderStatus.choices, default=PurchaseOrderStatus.DRAFT)
    order_id = models.UUIDField(null=True, blank=True, db_index=True, help_text="The patient order (dropship).")
    warehouse = models.ForeignKey(
        Warehouse, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Restock only."
    )
    expected_date = models.DateField(null=True, blank=True, help_text="When the vendor expects to ship or deliver.")
    vendor_reference = models.CharField(max_length=100, blank=True, help_text="The vendor's acknowledgement number.")
    carrier = models.CharField(max_length=50, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="Received or cancelled.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind=PurchaseOrderKind.DROPSHIP, order_id__isnull=False)
                    | models.Q(kind=PurchaseOrderKind.RESTOCK, warehouse__isnull=False)
                ),
                name="purchase_order_names_its_destination",
            )
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_PURCHASE_ORDER_STATUSES


class PurchaseOrderLine(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purchase_order = models.ForeignKey(PurchaseOrder, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    order_line_id = models.UUIDField(null=True, blank=True, help_text="The patient order line (dropship).")

    class Meta:
        ordering = ["product__sku"]
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gte=1), name="po_line_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product.sku}"


class StockAlertKind(models.TextChoices):
    LOW_STOCK = "low_stock", "At or below reorder point"
    EXPIRING_LOT = "expiring_lot", "Lot expiring soon"


class StockAlert(models.Model):
    """One stock condition, raised once and kept open until the condition clears.

    ``condition_key`` names the condition (kind, product, lot); at most one open alert exists per
    key, so the daily check never sends the same alert twice. When the condition clears the alert
    is resolved, and a later recurrence is a new alert.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=StockAlertKind.choices)
    condition_key = models.CharField(max_length=120)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="stock_alerts")
    lot = models.ForeignKey(Lot, null=True, blank=True, on_delete=models.PROTECT, related_name="stock_alerts")
    available_quantity = models.IntegerField(help_text="Available stock when raised.")
    on_order_quantity = models.PositiveIntegerField(default=0, help_text="Units on open purchase orders when raised.")
    suggested_reorder_quantity = models.PositiveIntegerField(default=0, help_text="Back to par, minus on order.")
    expiration_date = models.DateField(null=True, blank=True)
    raised_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True, help_text="When the admins' email went out.")
    texted_at = models.DateTimeField(null=True, blank=True, help_text="When the SMS summary went out.")
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When every configured channel had it.")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["condition_key"],
                condition=models.Q(resolved_at__isnull=True),
                name="stock_alert_one_open_per_condition",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.product.sku}"


class ProductFavourite(models.Model):
    """A product a user (a doctor) keeps at the top of the order wizard's catalog."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="product_favourites")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "product"], name="catalog_favourite_once_per_user")]

    def __str__(self) -> str:
        return f"Favourite {self.product.sku}"
