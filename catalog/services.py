"""Catalog writes: products, and stock receipts, adjustments, reservations, releases and picks.

Purchase orders are in ``catalog.purchasing`` and stock alerts in ``catalog.alerts``.

Every change to a lot's counters happens here, under a row lock on the lot, together with the
``StockMovement`` that explains it. Lots are always locked in primary-key order, so two
transactions reserving overlapping lots wait for each other instead of deadlocking, and two
orders racing for the last units can never both get them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.exceptions import PermissionDenied, ValidationFailed

from .models import (
    DispensingUnit,
    Lot,
    MovementKind,
    Product,
    ProductFavourite,
    ReservationStatus,
    StockMovement,
    StockReservation,
    Vendor,
    Warehouse,
)


@dataclass(frozen=True)
class ReservationLine:
    """One order line asking for stock."""

    order_line_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int


@dataclass(frozen=True)
class Shortfall:
    """A line that could not be covered: nothing was reserved for it (the order's inventory flag)."""

    order_line_id: uuid.UUID
    product_id: uuid.UUID
    requested: int
    available: int


def _move(lot: Lot, *, kind: MovementKind, on_hand: int = 0, reserved: int = 0, **fields: Any) -> StockMovement:
    """Apply deltas to a locked lot and write the ledger row that explains them."""
    lot.quantity_on_hand += on_hand
    lot.quantity_reserved += reserved
    if lot.quantity_on_hand < 0 or lot.quantity_reserved < 0 or lot.quantity_reserved > lot.quantity_on_hand:
        raise ValidationFailed(details={"quantity": ["Stock cannot go below what is on hand or reserved."]})
    lot.save(update_fields=["quantity_on_hand", "quantity_reserved"])
    return StockMovement.objects.create(lot=lot, kind=kind, on_hand_delta=on_hand, reserved_delta=reserved, **fields)


@transaction.atomic
def lot_receive(
    *,
    actor: Any,
    product: Product,
    warehouse: Warehouse,
    lot_number: str,
    quantity: int,
    expiration_date: dt.date | None = None,
) -> Lot:
    """Receive ``quantity`` units into a lot (created on first receipt).

    A perishable product needs an expiration date, and a receipt into an existing lot must
    name the same date. Raises ValidationFailed otherwise.
    """
    if quantity < 1:
        raise ValidationFailed(details={"quantity": ["Receive at least one unit."]})
    if product.is_perishable and expiration_date is None:
        raise ValidationFailed(details={"expiration_date": ["A perishable product's lot needs an expiration date."]})
    lot, created = Lot.objects.select_for_update().get_or_create(
        product=product, warehouse=warehouse, lot_number=lot_number, defaults={"expiration_date": expiration_date}
    )
    if not created and lot.expiration_date != expiration_date:
        raise ValidationFailed(details={"expiration_date": ["The lot already has a different expiration date."]})
    _move(lot, kind=MovementKind.RECEIPT, on_hand=quantity, actor=actor, reason="received")
    return lot


@transaction.atomic
def lot_adjust(*, actor: Any, lot_id: uuid.UUID, delta: int, reason: str) -> Lot:
    """Correct a lot's on-hand count (a count, damage, a found box). A reason is required.

    The count can never drop below what is reserved for orders.
    """
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["Say why the stock is adjusted."]})
    if delta == 0:
        raise ValidationFailed(details={"delta": ["An adjustment changes the count."]})
    lot = Lot.objects.select_for_update().get(pk=lot_id)
    _move(lot, kind=MovementKind.ADJUSTMENT, on_hand=delta, actor=actor, reason=reason.strip())
    return lot


@transaction.atomic
def lot_write_off_expired(*, actor: Any, lot_id: uuid.UUID, today: dt.date | None = None) -> int:
    """Write off the unreserved units of an expired lot (an expiry write-off in the ledger).

    Returns the units written off: 0 when nothing is left to write off, so a second call changes
    nothing. Units still reserved stay until their order releases or picks them. Raises
    ValidationFailed for a lot that has not expired (as of ``today``, the local date by default).
    """
    today = today or timezone.localdate()
    lot = Lot.objects.select_for_update().get(pk=lot_id)
    if lot.expiration_date is None or lot.expiration_date >= today:
        raise ValidationFailed(details={"expiration_date": ["Only an expired lot is written off."]})
    units = lot.quantity_available
    if units:
        _move(
            lot,
            kind=MovementKind.EXPIRY_WRITE_OFF,
            on_hand=-units,
            actor=actor,
            reason=f"expired {lot.expiration_date}",
        )
    return units


def _usable(*, today: dt.date, needed_by: dt.date | None) -> Q:
    """Lots that may be reserved: stock left, never expired, never expiring before the delivery date."""
    not_expired_by = max(today, needed_by) if needed_by else today
    return Q(warehouse__active=True, quantity_on_hand__gt=F("quantity_reserved")) & (
        Q(expiration_date__isnull=True) | Q(expiration_date__gte=not_expired_by)
    )


def _fefo_key(lot: Lot) -> tuple[bool, dt.date, dt.datetime, str]:
    """First expired, first out; stock without an expiry date last; then oldest receipt."""
    return (lot.expiration_date is None, lot.expiration_date or dt.date.max, lot.received_at, str(lot.pk))


@dataclass(frozen=True)
class ReservationTake:
    """Units of one lot reserved for one line."""

    line: ReservationLine
    lot: Lot
    quantity: int


@dataclass(frozen=True)
class ReservationPlan:
    """Which lots cover which lines (FEFO), and the lines the usable lots cannot cover.

    ``locked``: the lots were read ``FOR UPDATE`` in this transaction, so the plan may be written
    (``stock_reserve_plan``); an unlocked plan only says what reserving would find now.
    """

    takes: tuple[ReservationTake, ...]
    shortfalls: tuple[Shortfall, ...]
    locked: bool

    def outcome(self) -> dict[uuid.UUID, int | None]:
        """Per line: None when it is covered, else the units available to it (what an order records)."""
        short = {shortfall.order_line_id: shortfall.available for shortfall in self.shortfalls}
        return {**{take.line.order_line_id: None for take in self.takes}, **short}


def stock_plan(
    *,
    lines: Sequence[ReservationLine],
    needed_by: dt.date | None = None,
    today: dt.date | None = None,
    lock: bool = False,
) -> ReservationPlan:
    """Plan reserving stock for ``lines``, FEFO across the usable lots of their products, in one query.

    Each line is all or nothing, in the order given: a line the lots left over by the lines before
    it cannot cover reserves nothing and becomes a Shortfall (never a negative balance). With
    ``lock`` the lots are locked ``FOR UPDATE`` in primary-key order (so two transactions wanting
    overlapping lots queue instead of deadlocking; PostgreSQL re-checks the conditions on rows
    another transaction changed meanwhile): call it inside the transaction that writes the plan,
    as late as possible, so the locks are held only for the writes. Without ``lock`` it is a plain
    read, for deciding before any lock is taken.
    """
    if not lines:
        return ReservationPlan(takes=(), shortfalls=(), locked=lock)
    today = today or timezone.localdate()
    usable = Lot.objects.filter(
        _usable(today=today, needed_by=needed_by), product_id__in={line.product_id for line in lines}
    ).order_by("pk")
    if lock:
        usable = usable.select_for_update(of=("self",))
    by_product: dict[uuid.UUID, list[Lot]] = {}
    for lot in usable:
        by_product.setdefault(lot.product_id, []).append(lot)
    for product_lots in by_product.values():
        product_lots.sort(key=_fefo_key)
    left = {lot.pk: lot.quantity_available for lots in by_product.values() for lot in lots}
    takes: list[ReservationTake] = []
    shortfalls: list[Shortfall] = []
    for line in lines:
        lots = [lot for lot in by_product.get(line.product_id, []) if left[lot.pk] > 0]
        available = sum(left[lot.pk] for lot in lots)
        if available < line.quantity:
            shortfalls.append(Shortfall(line.order_line_id, line.product_id, line.quantity, available))
            continue
        remaining = line.quantity
        for lot in lots:
            if remaining == 0:
                break
            take = min(remaining, left[lot.pk])
            left[lot.pk] -= take
            takes.append(ReservationTake(line=line, lot=lot, quantity=take))
            remaining -= take
    return ReservationPlan(takes=tuple(takes), shortfalls=tuple(shortfalls), locked=lock)


def stock_reserve_plan(*, order_id: uuid.UUID, plan: ReservationPlan) -> None:
    """Write a plan made with ``lock=True`` in the current transaction: the lots' reserved counters
    (one UPDATE), the ledger rows (one INSERT) and the reservations (one INSERT), whatever the
    number of lines. Raises ValueError for an unlocked plan."""
    if not plan.locked:
        raise ValueError("Only a plan made under the lots' locks can be written.")
    if not plan.takes:
        return
    lots: dict[uuid.UUID, Lot] = {}
    for take in plan.takes:
        lot = lots.setdefault(take.lot.pk, take.lot)
        lot.quantity_reserved += take.quantity
        if lot.quantity_reserved > lot.quantity_on_hand:
            raise ValidationFailed(details={"quantity": ["Stock cannot go below what is on hand or reserved."]})
    Lot.objects.bulk_update(sorted(lots.values(), key=lambda lot: lot.pk), ["quantity_reserved"])
    StockMovement.objects.bulk_create(
        StockMovement(lot=take.lot, kind=MovementKind.RESERVATION, reserved_delta=take.quantity, order_id=order_id)
        for take in plan.takes
    )
    StockReservation.objects.bulk_create(
        StockReservation(lot=take.lot, order_id=order_id, order_line_id=take.line.order_line_id, quantity=take.quantity)
        for take in plan.takes
    )


def stock_reserve(
    *,
    order_id: uuid.UUID,
    lines: Sequence[ReservationLine],
    needed_by: dt.date | None = None,
    today: dt.date | None = None,
) -> list[Shortfall]:
    """Reserve stock for an order's lines, FEFO across lots; returns the lines that could not be covered.

    Each line is all or nothing: a line that the usable lots cannot cover reserves nothing and is
    returned as a Shortfall (never a negative balance). Call inside the order's transaction: the
    lots stay locked until it ends (``stock_plan`` with ``lock``, then ``stock_reserve_plan``).
    """
    with transaction.atomic():
        plan = stock_plan(lines=lines, needed_by=needed_by, today=today, lock=True)
        stock_reserve_plan(order_id=order_id, plan=plan)
    return list(plan.shortfalls)


def _close_reservations(
    *,
    order_id: uuid.UUID,
    status: ReservationStatus,
    actor: Any,
    warehouse_id: uuid.UUID | None = None,
    order_line_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    active = StockReservation.objects.filter(order_id=order_id, status=ReservationStatus.ACTIVE)
    if warehouse_id is not None:
        active = active.filter(lot__warehouse_id=warehouse_id)
    if order_line_ids is not None:
        active = active.filter(order_line_id__in=list(order_line_ids))
    reservations = list(active.order_by("lot_id"))
    if not reservations:
        return 0
    locked = Lot.objects.select_for_update().filter(pk__in={r.lot_id for r in reservations}).order_by("pk")
    lots = {lot.pk: lot for lot in locked}
    now = timezone.now()
    for reservation in reservations:
        lot = lots[reservation.lot_id]
        if status == ReservationStatus.RELEASED:
            _move(lot, kind=MovementKind.RELEASE, reserved=-reservation.quantity, order_id=order_id, actor=actor)
        else:
            _move(
                lot,
                kind=MovementKind.PICK,
                on_hand=-reservation.quantity,
                reserved=-reservation.quantity,
                order_id=order_id,
                actor=actor,
            )
        reservation.status = status
        reservation.closed_at = now
        reservation.save(update_fields=["status", "closed_at"])
    return sum(r.quantity for r in reservations)


@transaction.atomic
def stock_release(*, order_id: uuid.UUID, actor: Any = None, order_line_ids: Sequence[uuid.UUID] | None = None) -> int:
    """Give back an order's active reservations (cancel, rejection), or only those of some of its
    lines (a line another party fills). Returns the units released.

    Idempotent: a second call finds nothing active and changes nothing.
    """
    return _close_reservations(
        order_id=order_id, status=ReservationStatus.RELEASED, actor=actor, order_line_ids=order_line_ids
    )


@transaction.atomic
def stock_pick(*, order_id: uuid.UUID, actor: Any = None, warehouse_id: uuid.UUID | None = None) -> int:
    """Consume an order's active reservations (in one warehouse, if given): the units leave the shelf.

    Returns the units picked. Idempotent like ``stock_release``.
    """
    return _close_reservations(
        order_id=order_id, status=ReservationStatus.CONSUMED, actor=actor, warehouse_id=warehouse_id
    )


# --- Catalog products, and receipts by back-office users -------------------------------------

FULFILLMENT_MODES = ("warehouse", "dropship")
PRODUCT_ADD_PERMISSION = "catalog.add_product"
PRODUCT_CHANGE_PERMISSION = "catalog.change_product"
LOT_ADD_PERMISSION = "catalog.add_lot"


@dataclass(frozen=True)
class ProductData:
    """Every writable field of a product; a create or full update sets all of them.

    Defaults are the model's. ``fulfillment_modes`` names the model's ``warehouse_fulfillment`` /
    ``dropship_fulfillment``. ``rxnorm_name``, ``dispensing_unit`` and ``dispensing_units_per_unit``
    describe a medication (a product with an RxNorm code) to its pharmacy; ``recurring`` and
    ``days_of_supply`` feed the refill rules. ``product_rule_errors`` says how they fit together.
    """

    sku: str
    name: str
    therapy_type: str
    price_cents: int
    hcpcs_code: str = ""
    rxnorm_code: str = ""
    rxnorm_name: str = ""
    strength: str = ""
    dose_form: str = ""
    coverage_tier: str = ""
    billing_modifier: str = ""
    unit: str = "each"
    dispensing_unit: str = ""
    dispensing_units_per_unit: int | None = None
    requires_prescription: bool = True
    is_perishable: bool = False
    requires_training: bool = False
    recurring: bool = False
    days_of_supply: int | None = None
    par_level: int = 0
    reorder_point: int = 0
    fulfillment_modes: tuple[str, ...] = ("warehouse",)
    vendor: Vendor | None = None
    active: bool = True


def _require_permission(actor: Any, permission: str, message: str) -> None:
    """``actor=None`` is the system (seed data, imports) and may do anything."""
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied(message)


def _fulfillment_mode_errors(modes: Sequence[str]) -> list[str]:
    if not modes:
        return ["Choose at least one fulfillment mode."]
    if set(modes) - set(FULFILLMENT_MODES):
        return [f"Fulfillment modes are {' and '.join(FULFILLMENT_MODES)}."]
    if len(set(modes)) != len(modes):
        return ["List each fulfillment mode once."]
    return []


# Fields that only a medication (a product with an RxNorm code) has: what its pharmacy is told.
MEDICATION_ONLY_FIELDS = ("rxnorm_name", "dispensing_unit", "dispensing_units_per_unit")


def _medication_errors(data: ProductData) -> dict[str, list[str]]:
    """A medication's pharmacy fields: only with an RxNorm code; a known dispensing unit and a count
    of at least 1, given together (the FHIR dispense quantity needs both) or not at all."""
    errors: dict[str, list[str]] = {}
    if not data.rxnorm_code.strip():
        for name in MEDICATION_ONLY_FIELDS:
            if getattr(data, name) not in ("", None):
                errors[name] = ["Only a medication has this: enter the RxNorm code too, or leave it empty."]
        return errors
    if data.dispensing_unit and data.dispensing_unit not in DispensingUnit.values:
        errors["dispensing_unit"] = [f"Dispensing units are {', '.join(DispensingUnit.values)}."]
    if data.dispensing_units_per_unit is not None and data.dispensing_units_per_unit < 1:
        errors["dispensing_units_per_unit"] = ["One unit sold holds at least 1 dispensing unit."]
    if data.dispensing_unit and data.dispensing_units_per_unit is None:
        errors["dispensing_units_per_unit"] = ["Say how many dispensing units one unit sold holds."]
    if data.dispensing_units_per_unit is not None and not data.dispensing_unit:
        errors["dispensing_unit"] = ["Choose the dispensing unit the count is in."]
    return errors


def _supply_errors(data: ProductData) -> dict[str, list[str]]:
    """Days of supply: at least 1, and only for a recurring supply (the refill rules read nothing else)."""
    if data.days_of_supply is None:
        return {}
    if data.days_of_supply < 1:
        return {"days_of_supply": ["One unit lasts at least 1 day; leave it empty when not known."]}
    if not data.recurring:
        return {
            "days_of_supply": [
                "Days of supply count only for a recurring supply: mark it recurring or leave this empty."
            ]
        }
    return {}


def product_rule_errors(data: ProductData) -> dict[str, list[str]]:
    """The catalog's rules beyond the model's field validators, as ``{field: [message]}`` (empty when met).

    Fulfillment modes are non-empty, known and not repeated; dropship needs a vendor; the reorder
    point is not above the par level. ``rxnorm_name``, ``dispensing_unit`` and
    ``dispensing_units_per_unit`` are for medications only (a product with an RxNorm code); the
    dispensing unit is one of ``DispensingUnit`` and comes with a count of at least 1, or neither is
    given. ``days_of_supply`` is at least 1 and only for a ``recurring`` product. Every product write
    checks these (through ``product_create`` and ``product_update``); forms call this to show the
    same answers beside their fields.
    """
    errors: dict[str, list[str]] = {}
    modes = list(data.fulfillment_modes)
    if mode_errors := _fulfillment_mode_errors(modes):
        errors["fulfillment_modes"] = mode_errors
    if "dropship" in modes and data.vendor is None:
        errors["vendor"] = ["Dropship fulfillment needs a vendor."]
    if data.reorder_point > data.par_level:
        errors["reorder_point"] = ["The reorder point cannot be above the par level."]
    errors.update(_medication_errors(data))
    errors.update(_supply_errors(data))
    return errors


def product_data_of(product: Product) -> ProductData:
    """The writable fields of a (possibly unsaved) product instance, as ``product_create`` takes them."""
    names = [field.name for field in dataclasses.fields(ProductData) if field.name != "fulfillment_modes"]
    return ProductData(
        **{name: getattr(product, name) for name in names}, fulfillment_modes=tuple(product.fulfillment_modes)
    )


def _product_save(product: Product, data: ProductData) -> Product:
    """Copy ``data`` onto ``product``, check every rule and save it.

    Raises ValidationFailed naming each bad field at once; call inside an atomic block.
    """
    errors = product_rule_errors(data)
    modes = list(data.fulfillment_modes)
    for name, value in vars(data).items():
        if name != "fulfillment_modes":
            setattr(product, name, value)
    product.hcpcs_code = data.hcpcs_code.strip().upper()
    product.warehouse_fulfillment = "warehouse" in modes
    product.dropship_fulfillment = "dropship" in modes
    try:
        # The model's own checks: HCPCS format, therapy type choices, lengths, a unique SKU.
        product.full_clean()
    except DjangoValidationError as exc:
        for field, messages in exc.message_dict.items():
            if field not in errors:  # a catalog rule already said what is wrong with it, in its words
                errors[field] = messages
    if errors:
        raise ValidationFailed(details=errors)
    try:
        with transaction.atomic():
            product.save()
    except IntegrityError:
        # Another request took the SKU between the check above and this write.
        if Product.objects.filter(sku=product.sku).exclude(pk=product.pk).exists():
            raise ValidationFailed(details={"sku": ["Product with this SKU already exists."]}) from None
        raise
    return product


@transaction.atomic
def product_create(*, actor: Any, data: ProductData) -> Product:
    """Add a product to the catalog; ``actor`` needs ``catalog.add_product`` (PermissionDenied).

    Raises ValidationFailed naming each bad field: a SKU already taken, an HCPCS code that is not a
    letter and four digits (a blank one is allowed, medications have none), an unknown therapy
    type, fulfillment modes that are empty, unknown or repeated, dropship without a vendor, a
    reorder point above the par level, and the medication and supply fields as
    ``product_rule_errors`` says. HCPCS codes are stored upper-case.
    """
    _require_permission(actor, PRODUCT_ADD_PERMISSION, "You may not add products to the catalog.")
    return _product_save(Product(), data)


@transaction.atomic
def product_update(*, actor: Any, product: Product, data: ProductData) -> Product:
    """Replace every writable field of ``product`` with ``data``; needs ``catalog.change_product``.

    The SKU never changes (order lines and purchase orders keep it as a copy): ``data.sku`` must be
    the product's SKU, else ValidationFailed; to rename, add a new product and make this one
    inactive. Other errors as ``product_create``. Returns the updated product.
    """
    _require_permission(actor, PRODUCT_CHANGE_PERMISSION, "You may not change the catalog.")
    locked = Product.objects.select_for_update().get(pk=product.pk)
    if data.sku != locked.sku:
        raise ValidationFailed(
            details={"sku": ["A product's SKU cannot change; add a new product and make this one inactive."]}
        )
    return _product_save(locked, data)


def stock_receive(
    *,
    actor: Any,
    product: Product,
    warehouse: Warehouse,
    lot_number: str,
    quantity: int,
    expiration_date: dt.date | None = None,
    today: dt.date | None = None,
) -> Lot:
    """Receive stock for a back-office user: ``lot_receive`` after two checks.

    ``actor`` needs ``catalog.add_lot`` (PermissionDenied), and a lot whose expiration date is
    already past is refused (ValidationFailed); one expiring today is still usable, as for
    reservations. Returns the lot with its new counters.
    """
    _require_permission(actor, LOT_ADD_PERMISSION, "You may not receive stock.")
    today = today or timezone.localdate()
    if expiration_date is not None and expiration_date < today:
        raise ValidationFailed(details={"expiration_date": ["The lot has already expired; it cannot be received."]})
    return lot_receive(
        actor=actor,
        product=product,
        warehouse=warehouse,
        lot_number=lot_number,
        quantity=quantity,
        expiration_date=expiration_date,
    )


def product_favourite_toggle(*, user: Any, product: Product) -> bool:
    """Make ``product`` one of the user's favourites, or stop it being one; True when it now is.
    Safe against a double click: a second add is absorbed by the unique constraint."""
    with transaction.atomic():
        deleted, _ = ProductFavourite.objects.filter(user=user, product=product).delete()
        if deleted:
            return False
        ProductFavourite.objects.get_or_create(user=user, product=product)
    return True
