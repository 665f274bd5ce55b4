"""Insurance claims, staged by the payments agent (seed 000: "consumes order.approved to pre-stage
claim reconciliation checkpoints"; seed 004: insurance billing coordination).

- ``claim_open`` (``order.approved``): an approved insurance order gets its claim, once: one line per
  order line with a HCPCS code (the product's pricing modifier, units, the charge at the order's
  price, pointers to the order's first four diagnoses) and the *documentation complete* checkpoint
  (approval means the compliance checks were cleared, by the documents or by a person).
- ``claim_delivered`` (``order.delivered``): the date of service becomes the delivery date (the day
  staff confirmed delivery), with the *delivered* checkpoint, and the claim is *ready to bill*.
- ``claim_submit``, ``claim_pay``, ``claim_deny``: staff record what happened with the payer.

Every step is idempotent and writes each checkpoint once, with its time and actor (None: the system).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core.exceptions import Conflict, PermissionDenied, ValidationFailed
from orders.models import Order, OrderStatus
from patients.models import PayerType
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .models import Claim, ClaimCheckpoint, ClaimCheckpointKind, ClaimLine, ClaimStatus

# A CMS-1500 service line points at up to four of the claim's diagnoses (item 24E).
DIAGNOSIS_POINTERS_PER_LINE = 4
# Orders whose claim is staged: approved, and not withdrawn since.
CLAIMED_STATUSES = (
    OrderStatus.VERIFIED,
    OrderStatus.AWAITING_PAYMENT,
    OrderStatus.PAID,
    OrderStatus.IN_PROGRESS,
    OrderStatus.SHIPPED,
    OrderStatus.COMPLETED,
)


def _checkpoint(claim: Claim, kind: ClaimCheckpointKind, *, actor: Any = None, **fields: Any) -> bool:
    """Record ``kind`` on ``claim`` unless it is there already; True when recorded now."""
    _checkpoint_row, created = ClaimCheckpoint.objects.get_or_create(
        claim=claim, kind=kind, defaults={"at": timezone.now(), "actor": actor, **fields}
    )
    return created


def claim_open(*, order_id: Any) -> Claim | None:
    """Stage the claim of an approved insurance order (once; a repeat returns the same claim). Cash
    orders and orders no longer approved (rejected, cancelled) get none. Marks it delivered too when
    the order was delivered before this ran."""
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
        if order is None or order.payer_type != PayerType.INSURANCE or order.status not in CLAIMED_STATUSES:
            return None
        claim = Claim.objects.filter(order=order).first()
        if claim is None:
            items = [item for item in order.items.select_related("product").order_by("pk") if item.product.hcpcs_code]
            pointers = list(range(1, min(len(order.diagnosis_codes or []), DIAGNOSIS_POINTERS_PER_LINE) + 1))
            claim = Claim.objects.create(
                order=order,
                territory_id=order.territory_id,
                charge_cents=sum(item.line_total_cents for item in items),
            )
            ClaimLine.objects.bulk_create(
                ClaimLine(
                    claim=claim,
                    order_item=item,
                    hcpcs_code=item.product.hcpcs_code,
                    modifier=item.product.billing_modifier,
                    units=item.quantity,
                    charge_cents=item.line_total_cents,
                    diagnosis_pointers=pointers,
                )
                for item in items
            )
            _checkpoint(claim, ClaimCheckpointKind.DOCUMENTATION_COMPLETE, actor=order.approver)
        if order.status == OrderStatus.COMPLETED:
            _delivered(claim, order)
    return claim


def claim_delivered(*, order_id: Any) -> Claim | None:
    """The order was delivered: its claim's date of service and the *delivered* and *ready to bill*
    checkpoints (once). None when the order has no claim (cash, or not yet approved)."""
    with transaction.atomic():
        claim = Claim.objects.select_for_update().select_related("order").filter(order_id=order_id).first()
        if claim is None or claim.order.status != OrderStatus.COMPLETED:
            return claim
        _delivered(claim, claim.order)
    return claim


def _delivered(claim: Claim, order: Order) -> None:
    assert order.completed_at is not None
    if claim.date_of_service is None:
        claim.date_of_service = timezone.localdate(order.completed_at)
        claim.save(update_fields=["date_of_service", "updated_at"])
    _checkpoint(claim, ClaimCheckpointKind.DELIVERED)
    if (
        claim.status == ClaimStatus.OPEN
        and claim.checkpoints.filter(kind=ClaimCheckpointKind.DOCUMENTATION_COMPLETE).exists()
    ):
        _checkpoint(claim, ClaimCheckpointKind.READY_TO_BILL)
        claim.status = ClaimStatus.READY_TO_BILL
        claim.save(update_fields=["status", "updated_at"])


def _claim_for_step(claim_id: Any, actor: Any, *allowed: ClaimStatus, step: str) -> Claim:
    """The claim, locked, for a step that needs ``allowed`` status and the actor's permission to record
    payments in its territory (billing staff, admins)."""
    claim = Claim.objects.select_for_update().filter(pk=claim_id).first()
    if claim is None:
        raise ValidationFailed(details={"claim": ["No such claim."]})
    if not territory_permits(
        user=actor, permission=TerritoryPermission.RECORD_PAYMENT, territory_id=claim.territory_id
    ):
        raise PermissionDenied("Recording a claim's steps needs the permission to record payments.")
    if claim.status not in allowed:
        raise Conflict(f"A claim that is {claim.get_status_display().lower()} cannot be {step}.")
    return claim


def claim_submit(*, claim_id: Any, actor: Any, reference: str = "") -> Claim:
    """Staff sent a ready claim to the payer (``reference``: the payer's claim or batch number)."""
    with transaction.atomic():
        claim = _claim_for_step(claim_id, actor, ClaimStatus.READY_TO_BILL, step="submitted")
        _checkpoint(claim, ClaimCheckpointKind.SUBMITTED, actor=actor, note=reference[:200])
        claim.status = ClaimStatus.SUBMITTED
        claim.save(update_fields=["status", "updated_at"])
    return claim


def claim_pay(*, claim_id: Any, actor: Any, amount_cents: int) -> Claim:
    """The payer paid ``amount_cents`` on a submitted claim."""
    if amount_cents < 0:
        raise ValidationFailed(details={"amount_cents": ["The amount cannot be negative."]})
    with transaction.atomic():
        claim = _claim_for_step(claim_id, actor, ClaimStatus.SUBMITTED, step="paid")
        _checkpoint(claim, ClaimCheckpointKind.PAID, actor=actor, amount_cents=amount_cents)
        claim.status, claim.paid_cents = ClaimStatus.PAID, amount_cents
        claim.save(update_fields=["status", "paid_cents", "updated_at"])
    return claim


def claim_deny(*, claim_id: Any, actor: Any, reason_code: str, amount_cents: int | None = None) -> Claim:
    """The payer denied a submitted claim (``reason_code``: e.g. the remittance's CARC code; no PHI)."""
    if not reason_code.strip():
        raise ValidationFailed(details={"reason_code": ["The payer's reason code is required."]})
    with transaction.atomic():
        claim = _claim_for_step(claim_id, actor, ClaimStatus.SUBMITTED, step="denied")
        _checkpoint(
            claim, ClaimCheckpointKind.DENIED, actor=actor, amount_cents=amount_cents, note=reason_code.strip()[:200]
        )
        claim.status = ClaimStatus.DENIED
        claim.save(update_fields=["status", "updated_at"])
    return claim
