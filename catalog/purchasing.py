"""Purchase orders to vendors: dropships for patient orders and warehouse restocks.

Every write is here, atomic, with the purchase order locked. The status moves one way:
draft → sent → acknowledged → shipped (dropship) or received (restock), and any open purchase
order may be cancelled. A purchase order carries SKUs and quantities only, never PHI; the
message to the vendor names the purchase order's number, not the patient order.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from core.exceptions import Conflict, NotFound, ValidationFailed

from .models import (
    OPEN_PURCHASE_ORDER_STATUSES,
    Product,
    PurchaseOrder,
    PurchaseOrderKind,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    Vendor,
    Warehouse,
)
from .services import lot_receive


@dataclass(frozen=True)
class PurchaseLine:
    """One line to buy; ``order_line_id`` names the patient order line a dropship fills."""

    product: Product
    quantity: int
    order_line_id: uuid.UUID | None = None


@dataclass(frozen=True)
class LotReceipt:
    """What arrived for one restock line: the lot it goes into."""

    line_id: uuid.UUID
    lot_number: str
    quantity: int
    expiration_date: dt.date | None = None


def purchase_order_lock(*, purchase_order_id: Any) -> PurchaseOrder:
    """Lock and return a purchase order. Call inside an atomic block; raises NotFound."""
    try:
        return PurchaseOrder.objects.select_for_update().get(pk=purchase_order_id)
    except (PurchaseOrder.DoesNotExist, ValueError, TypeError) as error:
        raise NotFound("No such purchase order.") from error


def _require_status(purchase_order: PurchaseOrder, *allowed: PurchaseOrderStatus, action: str) -> None:
    if purchase_order.status not in allowed:
        raise Conflict(f"Purchase order {purchase_order.number} is {purchase_order.status}; it cannot be {action}.")


def _create(*, vendor: Vendor, lines: Sequence[PurchaseLine], actor: Any, **fields: Any) -> PurchaseOrder:
    if not lines:
        raise ValidationFailed(details={"lines": ["A purchase order needs at least one line."]})
    if any(line.quantity < 1 for line in lines):
        raise ValidationFailed(details={"lines": ["Each line buys at least one unit."]})
    purchase_order = PurchaseOrder.objects.create(vendor=vendor, created_by=actor, **fields)
    PurchaseOrderLine.objects.bulk_create(
        PurchaseOrderLine(
            purchase_order=purchase_order,
            product=line.product,
            quantity=line.quantity,
            order_line_id=line.order_line_id,
        )
        for line in lines
    )
    return purchase_order


@transaction.atomic
def purchase_order_create_dropship(
    *, actor: Any, vendor: Vendor, order_id: uuid.UUID, lines: Sequence[PurchaseLine]
) -> PurchaseOrder:
    """A draft dropship purchase order for one patient order's lines."""
    return _create(vendor=vendor, lines=lines, actor=actor, kind=PurchaseOrderKind.DROPSHIP, order_id=order_id)


@transaction.atomic
def purchase_order_create_restock(
    *,
    actor: Any,
    vendor: Vendor,
    warehouse: Warehouse,
    lines: Sequence[PurchaseLine],
    expected_date: dt.date | None = None,
) -> PurchaseOrder:
    """A draft restock purchase order bringing stock into ``warehouse``."""
    return _create(
        vendor=vendor,
        lines=lines,
        actor=actor,
        kind=PurchaseOrderKind.RESTOCK,
        warehouse=warehouse,
        expected_date=expected_date,
    )


def _vendor_message(purchase_order: PurchaseOrder) -> str:
    lines = "\n".join(
        f"  {line.quantity} x {line.product.sku} ({line.product.name}, {line.product.unit})"
        for line in purchase_order.lines.select_related("product")
    )
    what = "Dropship" if purchase_order.kind == PurchaseOrderKind.DROPSHIP else "Restock"
    return f"{what} purchase order {purchase_order.number}\n\n{lines}\n\nPlease acknowledge with your reference."


@transaction.atomic
def purchase_order_send(*, purchase_order_id: Any, actor: Any) -> PurchaseOrder:
    """Send a draft purchase order to its vendor (by email when the vendor has an address).

    The email goes out after commit, so a rolled-back send never reaches the vendor.
    """
    purchase_order = purchase_order_lock(purchase_order_id=purchase_order_id)
    _require_status(purchase_order, PurchaseOrderStatus.DRAFT, action="sent")
    purchase_order.status = PurchaseOrderStatus.SENT
    purchase_order.sent_at = timezone.now()
    purchase_order.save(update_fields=["status", "sent_at"])
    vendor = purchase_order.vendor
    if vendor.email:
        message = EmailMessage(
            subject=f"Purchase order {purchase_order.number}",
            body=_vendor_message(purchase_order),
            to=[vendor.email],
        )
        transaction.on_commit(message.send)
    return purchase_order


@transaction.atomic
def purchase_order_acknowledge(
    *, purchase_order_id: Any, actor: Any, vendor_reference: str, expected_date: dt.date | None = None
) -> PurchaseOrder:
    """Record the vendor's acknowledgement of a sent purchase order (their reference is required)."""
    if not vendor_reference.strip():
        raise ValidationFailed(details={"vendor_reference": ["Enter the vendor's reference."]})
    purchase_order = purchase_order_lock(purchase_order_id=purchase_order_id)
    _require_status(purchase_order, PurchaseOrderStatus.SENT, action="acknowledged")
    purchase_order.status = PurchaseOrderStatus.ACKNOWLEDGED
    purchase_order.vendor_reference = vendor_reference.strip()
    purchase_order.acknowledged_at = timezone.now()
    purchase_order.expected_date = expected_date or purchase_order.expected_date
    purchase_order.save(update_fields=["status", "vendor_reference", "acknowledged_at", "expected_date"])
    return purchase_order


@transaction.atomic
def purchase_order_record_shipment(
    *, purchase_order_id: Any, actor: Any, carrier: str, tracking_number: str
) -> PurchaseOrder:
    """The vendor shipped a dropship purchase order to the patient, with carrier and tracking number."""
    errors = {
        field: ["Required."]
        for field, value in (("carrier", carrier), ("tracking_number", tracking_number))
        if not value.strip()
    }
    if errors:
        raise ValidationFailed(details=errors)
    purchase_order = purchase_order_lock(purchase_order_id=purchase_order_id)
    if purchase_order.kind != PurchaseOrderKind.DROPSHIP:
        raise Conflict("Only a dropship purchase order ships to a patient; receive a restock instead.")
    _require_status(purchase_order, PurchaseOrderStatus.SENT, PurchaseOrderStatus.ACKNOWLEDGED, action="shipped")
    purchase_order.status = PurchaseOrderStatus.SHIPPED
    purchase_order.carrier = carrier.strip()
    purchase_order.tracking_number = tracking_number.strip()
    purchase_order.shipped_at = purchase_order.closed_at = timezone.now()
    purchase_order.save(update_fields=["status", "carrier", "tracking_number", "shipped_at", "closed_at"])
    return purchase_order


@transaction.atomic
def purchase_order_receive(*, purchase_order_id: Any, actor: Any, receipts: Sequence[LotReceipt]) -> PurchaseOrder:
    """Receive a sent or acknowledged restock into its warehouse, one lot per receipt.

    Each receipt goes through ``lot_receive`` (the ledger explains it). All or nothing.
    """
    purchase_order = purchase_order_lock(purchase_order_id=purchase_order_id)
    if purchase_order.kind != PurchaseOrderKind.RESTOCK or purchase_order.warehouse is None:
        raise Conflict("Only a restock purchase order is received into stock.")
    _require_status(purchase_order, PurchaseOrderStatus.SENT, PurchaseOrderStatus.ACKNOWLEDGED, action="received")
    if not receipts:
        raise ValidationFailed(details={"receipts": ["Receive at least one lot."]})
    lines = {line.pk: line for line in purchase_order.lines.select_related("product")}
    for receipt in receipts:
        line = lines.get(receipt.line_id)
        if line is None:
            raise ValidationFailed(details={"receipts": ["A receipt names a line of another purchase order."]})
        lot_receive(
            actor=actor,
            product=line.product,
            warehouse=purchase_order.warehouse,
            lot_number=receipt.lot_number,
            quantity=receipt.quantity,
            expiration_date=receipt.expiration_date,
        )
    purchase_order.status = PurchaseOrderStatus.RECEIVED
    purchase_order.closed_at = timezone.now()
    purchase_order.save(update_fields=["status", "closed_at"])
    return purchase_order


@transaction.atomic
def purchase_order_cancel(*, purchase_order_id: Any, actor: Any) -> PurchaseOrder:
    """Cancel an open purchase order (draft, sent or acknowledged). Idempotent for a cancelled one."""
    purchase_order = purchase_order_lock(purchase_order_id=purchase_order_id)
    if purchase_order.status == PurchaseOrderStatus.CANCELLED:
        return purchase_order
    _require_status(purchase_order, *OPEN_PURCHASE_ORDER_STATUSES, action="cancelled")
    purchase_order.status = PurchaseOrderStatus.CANCELLED
    purchase_order.closed_at = timezone.now()
    purchase_order.save(update_fields=["status", "closed_at"])
    return purchase_order
