"""Orders, their items and their immutable timeline.

The lifecycle is one protected django-fsm ``status`` field. Transition methods only guard (source
states, conditions, permission) and flip the state; ``orders.services`` wraps each one with the
lock, the timeline event and the outbox event. ``ConcurrentTransitionMixin`` refuses to save an
order whose status changed in the database since it was loaded.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
from simple_history.models import HistoricalRecords

from compliance.inputs import ArtifactType
from core.fields import EncryptedCharField, EncryptedDateField, EncryptedJSONField, EncryptedTextField, PHIModel
from core.models import AppendOnlyMixin
from patients.models import PayerType
from territories.models import TerritoryPermission
from territories.selectors import territory_permits


class OrderStatus(models.TextChoices):
    PENDING_VERIFICATION = "pending_verification", "Pending verification"
    ON_HOLD = "on_hold", "On hold"
    VERIFIED = "verified", "Verified"
    AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
    PAID = "paid", "Paid"
    IN_PROGRESS = "in_progress", "In progress"
    SHIPPED = "shipped", "Shipped"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset({OrderStatus.COMPLETED, OrderStatus.REJECTED, OrderStatus.CANCELLED})
NON_TERMINAL_STATUSES = [s for s in OrderStatus if s not in TERMINAL_STATUSES]


class Stage(models.TextChoices):
    """The simplified three-stage view (seed 001)."""

    PENDING = "Pending"
    PREPARING = "Preparing"
    SHIPPED = "Shipped"


STAGE_OF_STATUS: dict[str, Stage | None] = {
    OrderStatus.PENDING_VERIFICATION: Stage.PENDING,
    OrderStatus.ON_HOLD: Stage.PENDING,
    OrderStatus.VERIFIED: Stage.PENDING,
    OrderStatus.AWAITING_PAYMENT: Stage.PENDING,
    OrderStatus.PAID: Stage.PENDING,
    OrderStatus.IN_PROGRESS: Stage.PREPARING,
    OrderStatus.SHIPPED: Stage.SHIPPED,
    OrderStatus.COMPLETED: Stage.SHIPPED,
    OrderStatus.REJECTED: None,
    OrderStatus.CANCELLED: None,
}


# Orders that wait for a person (the review queue, the portal's "Needs your action"): held or in
# review before verification, and verified orders that something later put back in review (a
# pharmacy refusing the prescription). Verifying an order sets its disposition to ``clear``, so a
# verified order waits again only when something new is found.
REVIEW_STATUSES = (OrderStatus.ON_HOLD, OrderStatus.PENDING_VERIFICATION)
REVIEW_AFTER_VERIFICATION = (
    OrderStatus.VERIFIED,
    OrderStatus.AWAITING_PAYMENT,
    OrderStatus.PAID,
    OrderStatus.IN_PROGRESS,
)
# Each way of waiting, as one conjunction (no OR), so that a list reads each through its own partial
# index in order (see Order.Meta.indexes and orders.selectors); their union is "waiting for a person".
HELD = models.Q(status__in=REVIEW_STATUSES, ai_disposition="hold")
IN_REVIEW = models.Q(status__in=(*REVIEW_STATUSES, *REVIEW_AFTER_VERIFICATION), ai_disposition="needs_review")


def waiting_for_person(dispositions: tuple[str, ...] | list[str]) -> list[models.Q]:
    """The orders waiting for a person, read from their current status and current disposition (the
    one rule every list uses), as conditions whose union they are: held orders (``hold``), orders in
    review before verification and verified ones put back in review (``needs_review``), and clear
    ones waiting for verification (``clear``, one condition per status)."""
    kinds = []
    if "hold" in dispositions:
        kinds.append(HELD)
    if "needs_review" in dispositions:
        kinds.append(IN_REVIEW)
    if "clear" in dispositions:
        kinds += [models.Q(status=status, ai_disposition="clear") for status in REVIEW_STATUSES]
    return kinds


class Source(models.TextChoices):
    PORTAL = "portal", "Portal"
    INTAKE = "intake", "Intake"
    AUTO_REORDER = "auto_reorder", "Auto-reorder"
    API = "api", "API"


class Priority(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    STAT = "stat", "Stat"


class DeliveryMode(models.TextChoices):
    SHIP_TO_PATIENT = "ship_to_patient", "Ship to patient"
    SHIP_TO_PRACTICE = "ship_to_practice", "Ship to practice"
    PICKUP = "pickup", "Pickup"


class DeliveryWindow(models.TextChoices):
    """The part of the day the patient would like the delivery (a preference the carrier is given)."""

    ANY = "any", "Any time"
    MORNING = "morning", "Morning (8 to 12)"
    AFTERNOON = "afternoon", "Afternoon (12 to 5)"
    EVENING = "evening", "Evening (5 to 8)"


class Disposition(models.TextChoices):
    CLEAR = "clear", "Clear"
    HOLD = "hold", "Hold"
    NEEDS_REVIEW = "needs_review", "Needs review"


class ActorKind(models.TextChoices):
    AI = "ai", "Compliance checks"  # the deterministic engine (compliance.engine), not a person
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"


# --- transition guards -------------------------------------------------------------------------
# Permission callables receive (order, user); a user None means the system itself is acting.


def _permits(permission: TerritoryPermission) -> Any:
    def check(order: Any, user: Any) -> bool:
        if user is None:
            return True
        return territory_permits(user=user, permission=permission, territory_id=order.territory_id)

    check.__name__ = f"can_{permission.value}"
    return check


can_review = _permits(TerritoryPermission.REVIEW_ORDER)
can_fulfill = _permits(TerritoryPermission.FULFILL_ORDER)
can_record_payment = _permits(TerritoryPermission.RECORD_PAYMENT)


def can_cancel(order: Any, user: Any) -> bool:
    """Reviewers cancel any open order; others with the cancel permission only before Preparing."""
    if user is None:
        return True
    if not territory_permits(user=user, permission=TerritoryPermission.CANCEL_ORDER, territory_id=order.territory_id):
        return False
    return order.stage == Stage.PENDING or can_review(order, user)


def is_cash_pay(order: Any) -> bool:
    return order.payer_type == PayerType.CASH


def payment_settled_or_not_needed(order: Any) -> bool:
    return order.status == OrderStatus.PAID or order.payer_type == PayerType.INSURANCE


# --- reference codes ---------------------------------------------------------------------------
_REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I
# 8 characters of 32: 2**40 references, so at ten million orders a new one collides about once in
# a hundred thousand creates, and ``order_create`` then simply draws another (the unique constraint
# decides). Older orders keep their 6-character references.
REFERENCE_LENGTH = 8


def new_reference(random_source: random.Random | None = None) -> str:
    """A short, unguessable, human-readable order reference such as ``2K7X-Q4MB``.

    Drawn from the operating system's randomness; ``random_source`` draws from another generator
    instead (a seeded ``random.Random`` makes the sequence repeatable, for tests).
    """
    choose = random_source.choice if random_source is not None else secrets.choice
    chars = "".join(choose(_REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    half = REFERENCE_LENGTH // 2
    return f"{chars[:half]}-{chars[half:]}"


def reference_candidates(random_source: random.Random | None = None) -> Iterator[str]:
    """New references without end (``new_reference``): what ``order_create`` tries, in turn."""
    while True:
        yield new_reference(random_source)


class Order(ConcurrentTransitionMixin, PHIModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reference = models.CharField(max_length=9, unique=True, default=new_reference, editable=False)
    # The foreign keys the list indexes begin with need no index of their own (db_index=False).
    territory = models.ForeignKey(
        "territories.Territory", on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="orders")
    provider = models.ForeignKey("patients.Provider", on_delete=models.PROTECT, related_name="orders", db_index=False)

    status = FSMField(
        max_length=30, choices=OrderStatus.choices, default=OrderStatus.PENDING_VERIFICATION, protected=True
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.API)
    priority = models.CharField(max_length=20, choices=Priority.choices, default=Priority.ROUTINE)
    delivery_mode = models.CharField(max_length=30, choices=DeliveryMode.choices, default=DeliveryMode.SHIP_TO_PATIENT)
    requested_date = models.DateField(null=True, blank=True, help_text="Requested delivery date.")
    delivery_window = models.CharField(max_length=20, choices=DeliveryWindow.choices, default=DeliveryWindow.ANY)
    order_date = models.DateField(default=timezone.localdate, help_text="The written order's date.")
    payer_type = models.CharField(max_length=20, choices=PayerType.choices)
    ai_disposition = models.CharField(  # noqa: DJ001 - NULL means the checks have not run yet
        max_length=20,
        choices=Disposition.choices,
        null=True,
        blank=True,
        help_text="Set by the compliance checks; empty until they have run.",
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    # PHI, encrypted with the territory bound as associated data.
    service_type = EncryptedTextField()
    diagnosis_codes = EncryptedJSONField(help_text="ICD-10-CM codes.")
    notes = EncryptedTextField()
    insurance_details = EncryptedJSONField(help_text="{carrier, policy_number, group_number}")
    verification_data = EncryptedJSONField(help_text="{verified_by, verification_method, coverage_details}")
    f2f_date = EncryptedDateField("face-to-face encounter date")
    delivery_address = EncryptedJSONField(
        help_text="{line1, line2, city, state, postal_code} when it differs from the patient's address."
    )

    # The practitioner's electronic signature of the written order: who, when, and a hash of the
    # order summary they signed (orders.signing).
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    signature_hash = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        # One index per list filter, ending in the lists' order (created_at, id), so each list reads
        # its page in order and stops (see core.keyset): a territory's orders (API), by status (API
        # filter, portal tabs of staff), a doctor's as provider and as creator in a territory (portal
        # tabs, one status at a time), and the few held or in review (holds, review queue) in partial
        # indexes that leave the long history of settled orders out.
        indexes = [
            models.Index(fields=["territory", "created_at", "id"], name="order_territory_key_idx"),
            models.Index(fields=["territory", "status", "created_at", "id"], name="order_territory_status_key_idx"),
            # A doctor's lists read one territory at a time: a provider works in one territory, so
            # "provider and territory" estimated as independent looks rare, and the planner would
            # rather intersect a territory's whole index than read the provider's in order.
            models.Index(
                fields=["provider", "territory", "status", "created_at", "id"], name="order_provider_status_key_idx"
            ),
            models.Index(
                fields=["created_by", "territory", "status", "created_at", "id"], name="order_creator_status_key_idx"
            ),
            *(
                models.Index(fields=[*owner, "created_at", "id"], condition=condition, name=f"order_{name}_{kind}_idx")
                for owner, name in (
                    (["territory"], "territory"),
                    (["provider", "territory"], "provider"),
                    (["created_by", "territory"], "creator"),
                )
                for kind, condition in (("held", HELD), ("review", IN_REVIEW))
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.reference}"

    @property
    def stage(self) -> Stage | None:
        """Pending / Preparing / Shipped, or None for rejected and cancelled orders."""
        return STAGE_OF_STATUS[self.status]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def total_cents(self) -> int:
        return sum(item.line_total_cents for item in self.items.all())

    @property
    def inventory_flags(self) -> list[dict[str, Any]]:
        """Lines that stock could not cover: ``{sku, requested, available}`` each (the compliance input)."""
        return [
            {"sku": item.sku, "requested": item.quantity, "available": item.stock_available or 0}
            for item in self.items.all()
            if item.has_inventory_flag
        ]

    # --- transitions: guard and flip only ------------------------------------------------------
    @transition(
        field=status,
        source=OrderStatus.PENDING_VERIFICATION,
        target=OrderStatus.ON_HOLD,
        permission=can_review,
    )
    def hold(self) -> None:
        """Park the order until a hold is resolved."""

    @transition(
        field=status,
        source=OrderStatus.ON_HOLD,
        target=OrderStatus.PENDING_VERIFICATION,
        permission=can_review,
    )
    def release_hold(self) -> None:
        """Send a held order back for verification."""

    @transition(
        field=status,
        source=[OrderStatus.PENDING_VERIFICATION, OrderStatus.ON_HOLD],
        target=OrderStatus.VERIFIED,
        permission=can_review,
    )
    def verify(self) -> None:
        """Approve the order."""

    @transition(
        field=status,
        source=[OrderStatus.PENDING_VERIFICATION, OrderStatus.ON_HOLD],
        target=OrderStatus.REJECTED,
        permission=can_review,
    )
    def reject(self) -> None:
        """Refuse the order (terminal)."""

    @transition(
        field=status,
        source=OrderStatus.VERIFIED,
        target=OrderStatus.AWAITING_PAYMENT,
        conditions=[is_cash_pay],
        permission=can_review,
    )
    def request_payment(self) -> None:
        """A verified cash-pay order waits for the patient's payment."""

    @transition(
        field=status,
        source=OrderStatus.AWAITING_PAYMENT,
        target=OrderStatus.PAID,
        permission=can_record_payment,
    )
    def mark_paid(self) -> None:
        """The payment succeeded."""

    @transition(
        field=status,
        source=[OrderStatus.VERIFIED, OrderStatus.PAID],
        target=OrderStatus.IN_PROGRESS,
        conditions=[payment_settled_or_not_needed],
        permission=can_fulfill,
    )
    def start_fulfillment(self) -> None:
        """Insurance orders once verified, cash-pay orders once paid."""

    @transition(field=status, source=OrderStatus.IN_PROGRESS, target=OrderStatus.SHIPPED, permission=can_fulfill)
    def ship(self) -> None:
        """The order left the warehouse or the vendor."""

    @transition(field=status, source=OrderStatus.SHIPPED, target=OrderStatus.COMPLETED, permission=can_fulfill)
    def complete(self) -> None:
        """Delivery confirmed (terminal)."""

    @transition(field=status, source=NON_TERMINAL_STATUSES, target=OrderStatus.CANCELLED, permission=can_cancel)
    def cancel(self) -> None:
        """Cancel an open order (terminal); the service requires a reason."""


class StockStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    INSUFFICIENT_STOCK = "insufficient_stock", "Insufficient stock (inventory flag)"
    NOT_WAREHOUSED = "not_warehoused", "Not shipped from the warehouse"


class FulfillmentPath(models.TextChoices):
    WAREHOUSE = "warehouse", "Warehouse"
    DROPSHIP = "dropship", "Dropship"
    BACKORDER = "backorder", "Warehouse backorder"
    PHARMACY = "pharmacy", "Pharmacy"


class DosePeriodUnit(models.TextChoices):
    """UCUM units of a dosing period (FHIR Timing.repeat.periodUnit)."""

    HOUR = "h", "hour"
    DAY = "d", "day"
    WEEK = "wk", "week"
    MONTH = "mo", "month"


# Refills a prescription may allow (numberOfRepeatsAllowed); one year of monthly fills at most.
MAX_REFILLS = 11
# ICD-10-CM codes an order carries at most (the claim form's diagnosis pointers A to L).
MAX_DIAGNOSIS_CODES = 12
# Days one fill may last (a 90-day supply is the usual maximum; a year is the hard limit).
MAX_DAYS_SUPPLY = 365


class OrderItem(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="+")
    sku = models.CharField("SKU", max_length=64, help_text="The product's SKU when ordered.")
    quantity = models.PositiveIntegerField()
    unit_price_cents = models.PositiveIntegerField(help_text="The product's price when ordered.")
    stock_status = models.CharField(
        max_length=20,
        choices=StockStatus.choices,
        blank=True,
        help_text="What reserving stock for this line found when the order was submitted.",
    )
    stock_available = models.PositiveIntegerField(
        null=True, blank=True, help_text="Units available when reservation failed (the inventory flag)."
    )
    fulfillment_path = models.CharField(max_length=20, choices=FulfillmentPath.choices, blank=True)
    fulfillment_rule = models.CharField(
        max_length=40, blank=True, help_text="The routing rule that chose the path (see the routing rules)."
    )
    # Prescription details of a medication line (the pharmacy's MedicationRequest is built from them).
    dosage_text = models.CharField(
        max_length=500, blank=True, help_text="The sig, e.g. 'Inject 0.25 mg under the skin once weekly'."
    )
    dose_frequency = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Doses per period.")
    dose_period = models.PositiveSmallIntegerField(null=True, blank=True)
    dose_period_unit = models.CharField(max_length=2, choices=DosePeriodUnit.choices, blank=True)
    refills = models.PositiveSmallIntegerField(default=0, help_text="Refills allowed after the first fill.")
    days_supply = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Days one fill lasts (the pharmacy's expected supply duration)."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["sku"]
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gte=1), name="order_item_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_total_cents(self) -> int:
        return self.quantity * self.unit_price_cents

    @property
    def has_inventory_flag(self) -> bool:
        return self.stock_status == StockStatus.INSUFFICIENT_STOCK


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    TRANSITION = "transition", "Status change"
    NOTE = "note", "Note"
    FULFILLMENT = "fulfillment", "Fulfillment"
    COMPLIANCE = "compliance", "Compliance check"
    ATTACHMENT = "attachment", "Attachment"
    PAYMENT = "payment", "Payment"


# An attachment that is not a compliance artifact: the practitioner's drawn signature (orders.services).
SIGNATURE_ARTIFACT = "SIGNATURE"
ATTACHMENT_TYPE_CHOICES = [(t.value, t.value) for t in ArtifactType] + [(SIGNATURE_ARTIFACT, SIGNATURE_ARTIFACT)]


def attachment_path(instance: Attachment, filename: str) -> str:
    """Storage key of an attachment: ids only, never the uploaded file's name (it may hold PHI)."""
    return f"attachments/{instance.territory_id}/{instance.order_id}/{instance.pk}"


class Attachment(PHIModel):
    """A document on an order (WOPD, face-to-face note, prior authorization, CMN, ...).

    Files go through Django's storage API (local media here, S3-compatible storage through
    django-storages in production); the original file name and the document date are PHI and
    encrypted. Attachments are kept for the compliance ledger and never deleted.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="attachments")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    artifact_type = models.CharField(max_length=40, choices=ATTACHMENT_TYPE_CHOICES)
    document_date = EncryptedDateField(help_text="The date on the document (encounter, decision, signature).")
    hcpcs_codes = models.JSONField(
        "HCPCS codes",
        default=list,
        blank=True,
        help_text="For a prior authorization: the HCPCS code(s) of the order's items it is for (a decision is"
        " per code). Empty for other documents.",
    )
    file = models.FileField(upload_to=attachment_path, max_length=200)
    original_name = EncryptedCharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    summary_sha256 = models.CharField(
        max_length=64,
        blank=True,
        help_text="For a signature: the hash of the order summary it signed (the order's signature hash).",
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.artifact_type} for {self.order}"


class DraftStep(models.TextChoices):
    """The order wizard's steps, in order."""

    PATIENT = "patient", "Patient"
    PRESCRIPTION = "prescription", "Prescription"
    CATALOG = "catalog", "Catalog"
    QUANTITIES = "quantities", "Quantities"
    DELIVERY = "delivery", "Delivery"
    DOCUMENTS = "documents", "Documents"
    REVIEW = "review", "Review"


class OrderDraft(PHIModel):
    """An order being put together in the portal's wizard, saved after every step so its author
    can stop and come back. Only its author sees it; submitting creates the order
    (``orders.drafts.draft_submit``) and closes the draft.

    ``answers`` (encrypted) holds what has been entered: provider_id, payer_type, diagnosis_codes,
    f2f_date, notes, skus, quantities {sku: n}, delivery {mode, window, requested_date, address}.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    step = models.CharField(max_length=20, choices=DraftStep.choices, default=DraftStep.PATIENT)
    answers = EncryptedJSONField()
    order = models.OneToOneField(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="draft", help_text="Once submitted."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"Draft {self.pk} ({self.get_step_display()})"


def draft_document_path(instance: DraftDocument, filename: str) -> str:
    """Storage key of a draft's document: ids only, never the uploaded file's name."""
    return f"drafts/{instance.territory_id}/{instance.draft_id}/{instance.pk}"


class DraftDocument(PHIModel):
    """A supporting document uploaded in the wizard; it becomes an ``Attachment`` of the order on submission."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    draft = models.ForeignKey(OrderDraft, on_delete=models.CASCADE, related_name="documents")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    artifact_type = models.CharField(max_length=40, choices=[(t.value, t.value) for t in ArtifactType])
    document_date = EncryptedDateField()
    hcpcs_codes = models.JSONField(
        "HCPCS codes", default=list, blank=True, help_text="For a prior authorization: the code(s) it is for."
    )
    file = models.FileField(upload_to=draft_document_path, max_length=200)
    original_name = EncryptedCharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.artifact_type} for draft {self.draft_id}"


class OrderEvent(AppendOnlyMixin, PHIModel):
    """One immutable entry of an order's timeline.

    Rows are only ever inserted: saving an existing row or deleting one raises, and on
    PostgreSQL a trigger refuses UPDATE and DELETE as well. ``reason`` and ``payload`` may hold
    clinical text, so they are encrypted like the order's PHI.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    from_status = models.CharField(max_length=30, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=30, choices=OrderStatus.choices, blank=True)
    transition = models.CharField(max_length=50, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    reason = EncryptedTextField()
    payload = EncryptedJSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sequence = models.PositiveIntegerField(editable=False, help_text="Position in the order's timeline, from 1.")

    class Meta:
        ordering = ["order", "sequence"]
        constraints = [models.UniqueConstraint(fields=["order", "sequence"], name="order_event_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.from_status}→{self.to_status}"


class TaskKind(models.TextChoices):
    PICK_PACK = "pick_pack", "Warehouse pick and pack"
    DROPSHIP = "dropship", "Dropship purchase order"
    PATIENT_TRAINING = "patient_training", "Patient training"


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


# Tasks whose completion puts goods on their way to the patient.
SHIPPING_TASK_KINDS = (TaskKind.PICK_PACK, TaskKind.DROPSHIP)


class FulfillmentTask(models.Model):
    """A unit of fulfillment work for one order.

    A pick/pack task ships the order's warehouse items from one warehouse; a dropship task follows
    one purchase order to a vendor; a patient-training task teaches the patient to use an item.
    Shipping tasks carry the carrier and tracking number once shipped. The status changes only
    through ``orders.fulfillment``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fulfillment_tasks")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=TaskKind.choices)
    status = FSMField(max_length=20, choices=TaskStatus.choices, default=TaskStatus.OPEN, protected=True)
    items = models.ManyToManyField(
        OrderItem, related_name="fulfillment_tasks", blank=True, through="FulfillmentTaskItem"
    )
    warehouse = models.ForeignKey(
        "catalog.Warehouse", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    purchase_order = models.ForeignKey(
        "catalog.PurchaseOrder", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="fulfillment_tasks"
    )
    due_date = models.DateField()
    effort_minutes = models.PositiveIntegerField(help_text="Standard effort for this task.")
    carrier = models.CharField(max_length=50, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_date", "created_at"]
        indexes = [models.Index(fields=["status", "due_date"], name="task_status_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.order}"

    @transition(field=status, source=TaskStatus.OPEN, target=TaskStatus.IN_PROGRESS)
    def start(self) -> None:
        """Someone is working on it."""

    @transition(field=status, source=[TaskStatus.OPEN, TaskStatus.IN_PROGRESS], target=TaskStatus.DONE)
    def finish(self) -> None:
        """The work is done."""

    @transition(field=status, source=[TaskStatus.OPEN, TaskStatus.IN_PROGRESS], target=TaskStatus.CANCELLED)
    def cancel(self) -> None:
        """The work is no longer needed (the order was cancelled)."""


class FulfillmentTaskItem(models.Model):
    """An order line a fulfillment task handles (the task's pick list)."""

    id = models.BigAutoField(primary_key=True)
    fulfillmenttask = models.ForeignKey(FulfillmentTask, on_delete=models.CASCADE)
    orderitem = models.ForeignKey(OrderItem, on_delete=models.CASCADE)

    class Meta:
        # The table (and unique pair) of the automatic many-to-many this model names.
        db_table = "orders_fulfillmenttask_items"
        unique_together = [("fulfillmenttask", "orderitem")]
        verbose_name = "task item"

    def __str__(self) -> str:
        """Quantity, a multiplication sign, product name and HCPCS code (the SKU when there is none)."""
        product = self.orderitem.product
        code = product.hcpcs_code or self.orderitem.sku
        return f"{self.orderitem.quantity} \N{MULTIPLICATION SIGN} {product.name} ({code})"


class Shift(models.Model):
    """A person on shift at a warehouse on a day, with the minutes they have for fulfillment work.
    The workforce agent plans each warehouse's day from its shifts (``StaffingPlan``); open tasks
    are assigned to people on shift."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    warehouse = models.ForeignKey("catalog.Warehouse", on_delete=models.PROTECT, related_name="+")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="shifts")
    day = models.DateField()
    minutes = models.PositiveIntegerField(help_text="Minutes available for fulfillment work that day.")

    class Meta:
        ordering = ["day", "warehouse"]
        constraints = [models.UniqueConstraint(fields=["warehouse", "day", "person"], name="shift_person_day_unique")]

    def __str__(self) -> str:
        return f"{self.person} at {self.warehouse} on {self.day:%Y-%m-%d}"


class StaffingPlan(models.Model):
    """A warehouse's day as the workforce agent last calculated it: the standard effort of the open
    tasks due that day (``required_minutes``), the minutes of the people on shift
    (``available_minutes``), their ratio in percent (None: nobody on shift), and the tasks that do not
    fit, taken in the order they were created (``unfitted_task_ids``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    warehouse = models.ForeignKey("catalog.Warehouse", on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    open_tasks = models.PositiveIntegerField(default=0)
    required_minutes = models.PositiveIntegerField(default=0)
    available_minutes = models.PositiveIntegerField(default=0)
    utilisation_percent = models.PositiveIntegerField(null=True, blank=True)
    unfitted_task_ids = models.JSONField(default=list, blank=True)
    calculated_at = models.DateTimeField()

    class Meta:
        ordering = ["day", "warehouse"]
        constraints = [models.UniqueConstraint(fields=["warehouse", "day"], name="staffing_plan_warehouse_day_unique")]

    def __str__(self) -> str:
        return f"{self.warehouse} on {self.day:%Y-%m-%d}"

    @property
    def over_capacity(self) -> bool:
        """More work due than the people on shift have minutes for (or work and nobody on shift)."""
        return self.required_minutes > self.available_minutes


class WorkOrderState(models.TextChoices):
    UPCOMING = "upcoming", "Upcoming"
    DUE = "due", "Due"
    CONTACTED = "contacted", "Patient contacted"
    CONFIRMED = "confirmed", "Patient confirmed"
    ORDERED = "ordered", "Ordered"
    SKIPPED = "skipped", "Skipped"


# States a person (or the engagement agent) sets for one refill cycle; a new cycle starts over.
WORK_ORDER_STATES_KEPT = (WorkOrderState.CONTACTED, WorkOrderState.CONFIRMED, WorkOrderState.SKIPPED)


class PatientWorkOrder(models.Model):
    """The next refill of one recurring supply of a patient (seed 000: patient_work_orders), kept by
    the ordering agent: the HCPCS code, the day an order of the usual quantity may be delivered
    (``eligible_on``, from the same quantity-limit and refill rules as the checks and the patient
    card), and where the refill stands. No PHI beyond the patient's id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="work_orders")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    hcpcs_code = models.CharField(max_length=5)
    last_delivered_on = models.DateField()
    last_quantity = models.PositiveIntegerField()
    supply_ends = models.DateField(null=True, blank=True)
    eligible_on = models.DateField()
    state = models.CharField(max_length=20, choices=WorkOrderState.choices, default=WorkOrderState.UPCOMING)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["eligible_on", "id"]
        constraints = [models.UniqueConstraint(fields=["patient", "hcpcs_code"], name="work_order_patient_code_unique")]
        indexes = [models.Index(fields=["territory", "eligible_on", "id"], name="work_order_territory_key_idx")]

    def __str__(self) -> str:
        return f"{self.hcpcs_code} eligible {self.eligible_on:%Y-%m-%d}"


class MessageChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "Text message"


class MessageTemplate(models.TextChoices):
    CONFIRMATION = "confirmation", "Order confirmed"
    SHIPPED = "shipped", "Order shipped"
    DELIVERED = "delivered", "Order delivered"


class MessageStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Not sent (no consent or no contact)"


class Message(models.Model):
    """A message to a patient about an order, by one channel (the engagement agent's log). The body
    is not stored: it is written from the template when sent, and holds no clinical detail."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="messages")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=10, choices=MessageChannel.choices)
    template = models.CharField(max_length=20, choices=MessageTemplate.choices)
    status = models.CharField(max_length=20, choices=MessageStatus.choices, default=MessageStatus.SCHEDULED)
    scheduled_for = models.DateTimeField(help_text="Not sent before this time (quiet hours).")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=100, blank=True, help_text="An error code, never a message.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["order", "template", "channel"], name="message_once_per_order_template")
        ]
        indexes = [models.Index(fields=["status", "scheduled_for"], name="message_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_template_display()} by {self.get_channel_display()}"
