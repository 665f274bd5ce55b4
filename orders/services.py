"""Order writes: creation and every lifecycle transition.

Each service runs in one database transaction: it locks the order (scoped to the actor's
territories), checks the transition and the actor's permission, flips the state through the
django-fsm method, records an immutable ``OrderEvent`` and writes the outbox events that the
dispatcher delivers after commit. Nothing here sends anything before commit.

``actor`` is the acting user, or None when the system itself acts (a webhook, an agent).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django_fsm import can_proceed, has_transition_perm
from simple_history.utils import bulk_create_with_history

from catalog.selectors import products_by_sku
from catalog.services import ReservationLine, ReservationPlan, stock_plan, stock_reserve_plan
from compliance.engine import ComplianceResult, Disposition, evaluate
from compliance.inputs import ArtifactType, AttachedArtifact
from compliance.models import SnapshotKind
from compliance.services import compliance_record
from core.audit import access_record, with_history_user
from core.exceptions import PermissionDenied, ValidationFailed
from core.identifiers import is_valid_hcpcs, normalize_icd10
from core.models import AccessChannel
from core.outbox import outbox_publish, outbox_publish_all
from patients.exceptions import PatientProviderMismatch
from patients.models import Coverage, Patient, PayerType, Provider
from patients.selectors import active_coverage, providers_for_user
from territories.exceptions import TerritoryMismatch
from territories.models import Territory, TerritoryPermission
from territories.selectors import territory_permits

from .compliance_checks import compliance_event, facts_for_new_order, hold_reason, order_check_compliance
from .exceptions import ComplianceNotClear, CoverageMissing, InvalidStatusTransition, OrderNotFound, ReviewNoteRequired
from .models import (
    SIGNATURE_ARTIFACT,
    ActorKind,
    Attachment,
    DeliveryMode,
    DeliveryWindow,
    EventKind,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    Priority,
    Source,
    StockStatus,
    reference_candidates,
)
from .routing import fulfillment_delivered, fulfillment_route, fulfillment_stop
from .selectors import _as_uuid, orders_for_user
from .timeline import actor_kind_of, event_payload, new_event, record_event


@dataclass(frozen=True)
class ItemRequest:
    """One line of a new order; the dosage and refills matter for medications (the pharmacy's prescription)."""

    sku: str
    quantity: int
    dosage_text: str = ""
    dose_frequency: int | None = None
    dose_period: int | None = None
    dose_period_unit: str = ""
    refills: int = 0
    days_supply: int | None = None


@dataclass(frozen=True)
class TransitionSpec:
    target: OrderStatus
    topics: tuple[str, ...]
    reason_required: bool = False
    stamp: Callable[[Order, Any], None] | None = None
    # Runs inside the transition, after the state changed and before the outbox events.
    after: Callable[..., Any] | None = None


def _stamp_verified(order: Order, actor: Any) -> None:
    order.verified_at = timezone.now()
    order.approver = actor


def _stamp_completed(order: Order, actor: Any) -> None:
    order.completed_at = timezone.now()


def _stamp_cancelled(order: Order, actor: Any) -> None:
    order.cancelled_at = timezone.now()


def _after_withdrawn(*, order: Order, actor: Any) -> None:
    """After a cancellation or rejection: stop its fulfillment, and check again the patient's other
    orders that were judged with it counted (``_recheck_waiting_orders_of_patient``)."""
    fulfillment_stop(order=order, actor=actor)
    _recheck_waiting_orders_of_patient(order=order)


TRANSITIONS: dict[str, TransitionSpec] = {
    "hold": TransitionSpec(OrderStatus.ON_HOLD, ("order.held",)),
    "release_hold": TransitionSpec(OrderStatus.PENDING_VERIFICATION, ("order.hold_released",)),
    # Seed 000's agents listen for order.approved; order.verified names the same state change.
    "verify": TransitionSpec(OrderStatus.VERIFIED, ("order.verified", "order.approved"), stamp=_stamp_verified),
    "reject": TransitionSpec(OrderStatus.REJECTED, ("order.rejected",), after=_after_withdrawn),
    "request_payment": TransitionSpec(OrderStatus.AWAITING_PAYMENT, ("order.awaiting_payment",)),
    "mark_paid": TransitionSpec(OrderStatus.PAID, ("order.paid",)),
    "start_fulfillment": TransitionSpec(
        OrderStatus.IN_PROGRESS, ("order.fulfillment.started",), after=fulfillment_route
    ),
    "ship": TransitionSpec(OrderStatus.SHIPPED, ("order.shipped",)),
    "complete": TransitionSpec(
        OrderStatus.COMPLETED, ("order.delivered",), stamp=_stamp_completed, after=fulfillment_delivered
    ),
    "cancel": TransitionSpec(
        OrderStatus.CANCELLED,
        ("order.cancelled",),
        reason_required=True,
        stamp=_stamp_cancelled,
        after=_after_withdrawn,
    ),
}

# PUT /orders/{id}/status names the target status; each has exactly one transition.
TRANSITION_FOR_STATUS: dict[str, str] = {spec.target.value: name for name, spec in TRANSITIONS.items()}

_CONDITION_HINTS = {
    "request_payment": "only cash-pay orders wait for payment",
    "start_fulfillment": "cash-pay orders start fulfillment once paid",
}


_READ_IT: Any = object()  # a coverage argument not given: the function reads it


def payer_type_default(*, patient: Patient, on: dt.date, coverage: Coverage | None = _READ_IT) -> str:
    """How an order for the patient is paid unless someone says otherwise: by the payer type of
    the coverage in force on ``on`` (``active_coverage``; pass ``coverage`` when already read),
    cash pay when none is."""
    if coverage is _READ_IT:
        coverage = active_coverage(patient=patient, on=on)
    insured = coverage is not None and coverage.payer_type == PayerType.INSURANCE
    return PayerType.INSURANCE if insured else PayerType.CASH


def payer_coverage_check(
    *,
    patient: Patient,
    payer_type: str,
    on: dt.date,
    insurance: dict[str, str] | None = None,
    coverage: Coverage | None = _READ_IT,
) -> None:
    """Refuse an insurance order that nobody could bill: raises CoverageMissing (``COVERAGE_MISSING``)
    unless the coverage in force on ``on`` is insurance or, from the API, the plan's carrier and
    policy number come with the order (``insurance``). Cash pay needs nothing. ``coverage``: the
    coverage in force on ``on`` when already read."""
    if payer_type != PayerType.INSURANCE:
        return
    if insurance and insurance.get("carrier") and insurance.get("policy_number"):
        return
    if payer_type_default(patient=patient, on=on, coverage=coverage) != PayerType.INSURANCE:
        raise CoverageMissing()


def order_lock(*, pk: Any, actor: Any) -> Order:
    """Lock and return the order ``pk``. Call inside an atomic block.

    Scoped to the actor's territories (the system, ``actor=None``, sees every order); raises
    OrderNotFound for an order the actor cannot see or a malformed id.
    """
    order_id = _as_uuid(pk)
    if order_id is None:
        raise OrderNotFound()
    orders = Order.objects.all() if actor is None else orders_for_user(user=actor)
    order = orders.select_for_update(of=("self",)).filter(pk=order_id).first()
    if order is None:
        raise OrderNotFound()
    return order


# A new reference is drawn this many times at most when the one drawn is already taken.
REFERENCE_ATTEMPTS = 5


class _StockMoved(Exception):
    """Another order took stock between reading it and locking it: create again, locking it first."""


def order_create(
    *,
    actor: Any,
    patient_id: uuid.UUID,
    provider_id: uuid.UUID,
    items: Sequence[ItemRequest],
    payer_type: str,
    territory: Territory | None = None,
    source: str = Source.API,
    priority: str = Priority.ROUTINE,
    delivery_mode: str = DeliveryMode.SHIP_TO_PATIENT,
    requested_date: dt.date | None = None,
    service_type: str | None = None,
    diagnosis_codes: Sequence[str] = (),
    notes: str | None = None,
    insurance: dict[str, str] | None = None,
    actor_kind: ActorKind | None = None,
    order_date: dt.date | None = None,
    f2f_date: dt.date | None = None,
    delivery_window: str = DeliveryWindow.ANY,
    delivery_address: dict[str, str] | None = None,
    sign: bool = False,
    signature_image: bytes | None = None,
    documents: Sequence[DocumentUpload] = (),
    read_channel: AccessChannel | None = None,
    references: Iterator[str] | None = None,
) -> Order:
    """Create an order with its items, timeline entry and ``order.created``, then run the compliance checks.

    The order starts in ``pending_verification``; the checks record a ComplianceSnapshot, set
    ``ai_disposition`` and move an order whose disposition is ``hold`` to ``on_hold``
    (``order.held``). ``sign`` is the ordering practitioner's electronic signature of the
    written order: only the provider's own user may sign (PermissionDenied otherwise).

    The order's territory is ``territory`` (the request's ``Territory-Id``) or else the
    provider's. Raises ValidationFailed for an unknown provider (one outside the actor's
    territories counts as unknown) or product, TerritoryMismatch when the actor does not work in
    that territory, PermissionDenied when they may not order there, and PatientProviderMismatch
    when the provider is not of that territory or ``patient_id`` names no patient assigned to the
    provider's territory — the same answer whether the patient is elsewhere or does not exist,
    so patient ids cannot be probed. CoverageMissing (``COVERAGE_MISSING``) refuses insurance for
    a patient without insurance coverage in force (``payer_coverage_check``). On any error nothing
    is written.

    ``read_channel``: the new order is shown to the actor (an API or portal response); when they
    may read its PHI, that read is recorded (an AccessRecord) in the order's own transaction.
    ``references``: the references to try, in turn (default ``reference_candidates()``, fresh random
    ones); one that another order already holds is passed over, up to ``REFERENCE_ATTEMPTS`` times
    (the unique constraint decides, so two concurrent creates can never share one). A seam for
    tests that force a collision and for bulk loaders.

    One transaction, in this order: the patient's row is locked (one order at a time per patient:
    the checks count the patient's open orders, so a second submission waits for the first to
    commit and sees it), everything the checks need is read and evaluated, the order, its lines,
    their history, timeline, snapshot, outbox events and access record are written in bulk, and
    only then are the stock lots locked (``FOR UPDATE``, primary-key order) and reserved, so the
    lots are held only while their three writes and the commit run. If another order took stock
    between the first read and the lock, so that a line's stock status would differ, the whole
    create runs again with the lots locked before the checks.
    """
    # Patients and providers outside the actor's territories read as unknown, so ids cannot be probed.
    providers = Provider.objects.all() if actor is None else providers_for_user(user=actor)
    provider = providers.filter(pk=provider_id, active=True).first()
    if provider is None:
        raise ValidationFailed(details={"provider_id": ["Unknown provider."]})
    territory_id = territory.pk if territory is not None else provider.territory_id
    if actor is not None:
        if not territory_permits(user=actor, permission=TerritoryPermission.ACCESS, territory_id=territory_id):
            raise TerritoryMismatch(details={"territory_id": str(territory_id)})
        if not territory_permits(user=actor, permission=TerritoryPermission.CREATE_ORDER, territory_id=territory_id):
            raise PermissionDenied("You may not place orders in this territory.")
    if provider.territory_id != territory_id:
        raise PatientProviderMismatch("The provider does not belong to the order's territory.")
    new_order = _NewOrder(
        actor=actor,
        provider=provider,
        patient_id=patient_id,
        items=items,
        fields={
            "territory_id": territory_id,
            "provider": provider,
            "source": source,
            "priority": priority,
            "delivery_mode": delivery_mode,
            "requested_date": requested_date,
            "payer_type": payer_type,
            "created_by": actor,
            "service_type": service_type or None,
            "diagnosis_codes": [normalize_icd10(code) for code in diagnosis_codes] or None,
            "notes": notes or None,
            "insurance_details": insurance or None,
            "order_date": order_date or timezone.localdate(),
            "f2f_date": f2f_date,
            "delivery_window": delivery_window,
            "delivery_address": delivery_address or None,
        },
        insurance=insurance,
        actor_kind=actor_kind_of(actor, actor_kind),
        sign=sign,
        signature_image=signature_image,
        documents=documents,
        read_channel=read_channel,
    )
    candidates = references if references is not None else reference_candidates()
    reference, attempts, lock_stock_first = next(candidates), 1, False
    while True:
        try:
            with transaction.atomic():
                return new_order.create(reference=reference, lock_stock_first=lock_stock_first)
        except _StockMoved:
            lock_stock_first = True  # the same reference: it was not the problem
        except IntegrityError:
            # Only a reference another order holds is worth another draw; anything else is a real error.
            taken = Order.objects.filter(reference=reference).exists()
            following = next(candidates, None) if taken and attempts < REFERENCE_ATTEMPTS else None
            if following is None:
                raise
            reference, attempts = following, attempts + 1


@dataclass
class _NewOrder:
    """What ``order_create`` was asked for, created inside its transaction (``create``), perhaps twice."""

    actor: Any
    provider: Provider
    patient_id: uuid.UUID
    items: Sequence[ItemRequest]
    fields: dict[str, Any]
    insurance: dict[str, str] | None
    actor_kind: ActorKind
    sign: bool
    signature_image: bytes | None
    documents: Sequence[DocumentUpload]
    read_channel: AccessChannel | None
    # Attachments whose files are already stored: a second attempt writes their rows again, not the files.
    stored: list[Attachment] | None = None

    def create(self, *, reference: str, lock_stock_first: bool) -> Order:
        actor = self.actor
        patient = (
            Patient.objects.select_for_update()
            .filter(pk=self.patient_id, territory_id=self.provider.territory_id)
            .first()
        )
        if patient is None:
            raise PatientProviderMismatch()
        products = products_by_sku(skus=[item.sku for item in self.items])
        item_errors = {
            str(index): {"sku": ["Unknown or inactive product."]}
            for index, item in enumerate(self.items)
            if item.sku not in products
        }
        if item_errors:
            raise ValidationFailed(details={"items": item_errors})
        order_date = self.fields["order_date"]
        coverage = active_coverage(patient=patient, on=order_date)
        payer_coverage_check(
            patient=patient,
            payer_type=self.fields["payer_type"],
            on=order_date,
            insurance=self.insurance,
            coverage=coverage,
        )
        if self.sign and (actor is None or self.provider.user_id != actor.pk):
            raise PermissionDenied("Only the ordering practitioner can sign the order.")
        signature_file = _signature_file(self.signature_image, sign=self.sign)
        document_types = [
            document_check(
                artifact_type=d.artifact_type, file=d.file, content_type=d.content_type, hcpcs_codes=d.hcpcs_codes
            )
            for d in self.documents
        ]

        order = Order(reference=reference, patient=patient, **self.fields)
        if self.sign:
            _sign(order=order, actor=actor, items=self.items)
        with_history_user(order, actor)
        lines = [
            OrderItem(
                order=order,
                product=products[item.sku],
                sku=item.sku,
                quantity=item.quantity,
                unit_price_cents=products[item.sku].price_cents,
                dosage_text=item.dosage_text,
                dose_frequency=item.dose_frequency,
                dose_period=item.dose_period,
                dose_period_unit=item.dose_period_unit,
                refills=item.refills,
                days_supply=item.days_supply,
            )
            for item in self.items
        ]
        for line in lines:
            with_history_user(line, actor)
        wanted = [
            ReservationLine(line.pk, line.product_id, line.quantity)
            for line in lines
            if line.product.warehouse_fulfillment
        ]
        plan = stock_plan(lines=wanted, needed_by=order.requested_date, lock=lock_stock_first)
        flags = _stock_status(lines=lines, plan=plan)

        # The documents as they will be stored, the signature last: what the checks see of them.
        artifacts = [AttachedArtifact(d.artifact_type, d.document_date, tuple(d.hcpcs_codes)) for d in self.documents]
        if signature_file is not None:
            artifacts.append(AttachedArtifact(SIGNATURE_ARTIFACT, timezone.localdate(order.signed_at), ()))
        facts = facts_for_new_order(order=order, lines=lines, artifacts=artifacts, coverage=coverage)
        result = evaluate(facts)
        created_status = order.status

        # Writes. The order row as the checks leave it; its history as before: created (pending,
        # not yet checked), then, for a hold, the system's transition.
        order.ai_disposition = str(result.disposition)
        held = result.disposition == Disposition.HOLD
        if held:
            order.hold()
        Order.objects.bulk_create([order])
        order._update_initial_state()  # django-fsm's optimistic lock: the state just written
        as_created = copy.copy(order)
        vars(as_created).update(status=created_status, ai_disposition=None)  # bypasses the protected field
        Order.history.bulk_history_create([as_created])
        if held:
            # As a transition by the system: no acting user of its own (the request's, if any).
            vars(order).pop("_history_user", None)
            Order.history.bulk_history_create([order], update=True)
        bulk_create_with_history(lines, OrderItem)

        events = [
            new_event(
                order=order,
                sequence=1,
                kind=EventKind.CREATED,
                actor=actor,
                actor_kind=self.actor_kind,
                to_status=created_status,
                payload={"inventory_flags": flags} if flags else None,
            )
        ]
        # Attached and checked while the order was still pending (a hold comes after both).
        for attachment in self._attachments(order=order, signature_file=signature_file, document_types=document_types):
            events.append(
                _attachment_event(
                    order=order, attachment=attachment, actor=actor, sequence=len(events) + 1, status=created_status
                )
            )
        snapshot = compliance_record(
            order_id=order.pk,
            territory_id=order.territory_id,
            kind=SnapshotKind.SUBMISSION,
            facts=facts,
            result=result,
            actor=actor,
        )
        events.append(
            compliance_event(
                order=order,
                result=result,
                snapshot=snapshot,
                kind=SnapshotKind.SUBMISSION,
                sequence=len(events) + 1,
                status=created_status,
            )
        )
        topics = [("order.created", events[0])]
        if held:
            hold = new_event(
                order=order,
                sequence=len(events) + 1,
                kind=EventKind.TRANSITION,
                actor=None,
                actor_kind=ActorKind.AI,
                from_status=created_status,
                to_status=order.status,
                transition="hold",
                reason=hold_reason(result),
                payload={"disposition": str(result.disposition)},
            )
            events.append(hold)
            topics.extend((topic, hold) for topic in TRANSITIONS["hold"].topics)
        OrderEvent.objects.bulk_create(events)
        outbox_publish_all(aggregate=order, events=[(topic, event_payload(order, event)) for topic, event in topics])
        if (
            self.read_channel is not None
            and actor is not None
            and territory_permits(user=actor, permission=TerritoryPermission.VIEW_PHI, territory_id=order.territory_id)
        ):
            access_record(user=actor, objects=[order], channel=self.read_channel)

        # Last, the stock: lock the lots and write the reservations.
        if not lock_stock_first:
            locked = stock_plan(lines=wanted, needed_by=order.requested_date, lock=True)
            if locked.outcome() != plan.outcome():
                raise _StockMoved()
            plan = locked
        stock_reserve_plan(order_id=order.pk, plan=plan)
        _with_items_in_hand(order, lines)
        return order

    def _attachments(
        self, *, order: Order, signature_file: ContentFile | None, document_types: list[str]
    ) -> list[Attachment]:
        """Store the documents and the signature (files once, however many attempts) and write their rows."""
        if self.stored is None:
            self.stored = [
                _attachment_file_stored(
                    order=order,
                    actor=self.actor,
                    artifact_type=document.artifact_type,
                    file=document.file,
                    content_type=content_type,
                    document_date=document.document_date,
                    original_name=document.original_name,
                    hcpcs_codes=document.hcpcs_codes,
                )
                for document, content_type in zip(self.documents, document_types, strict=True)
            ]
            if signature_file is not None:
                self.stored.append(
                    _attachment_file_stored(
                        order=order,
                        actor=self.actor,
                        artifact_type=SIGNATURE_ARTIFACT,
                        file=signature_file,
                        content_type="image/png",
                        document_date=timezone.localdate(order.signed_at),
                        original_name="signature.png",
                        summary_sha256=order.signature_hash,
                    )
                )
        for attachment in self.stored:
            attachment.order = order
            attachment._state.adding = True
        Attachment.objects.bulk_create(self.stored)
        return self.stored


def _stock_status(*, lines: Sequence[OrderItem], plan: ReservationPlan) -> list[dict[str, Any]]:
    """Set each (unsaved) line's stock status from the plan; returns the inventory flags.

    Lines whose product never ships from the warehouse reserve nothing. A line the usable lots
    cannot cover gets the inventory flag (nothing reserved for it, the units available noted);
    the compliance checks decide what it means for the order.
    """
    shortfalls = {shortfall.order_line_id: shortfall for shortfall in plan.shortfalls}
    flags: list[dict[str, Any]] = []
    for line in lines:
        shortfall = shortfalls.get(line.pk)
        if not line.product.warehouse_fulfillment:
            line.stock_status = StockStatus.NOT_WAREHOUSED
        elif shortfall is None:
            line.stock_status = StockStatus.RESERVED
        else:
            line.stock_status = StockStatus.INSUFFICIENT_STOCK
            line.stock_available = shortfall.available
            flags.append({"sku": line.sku, "requested": line.quantity, "available": shortfall.available})
    return flags


def _with_items_in_hand(order: Order, lines: Sequence[OrderItem]) -> None:
    """Make ``order.items.all()`` answer with the lines just written, in SKU order, without a query
    (what ``prefetch_related("items")`` leaves on an order), so its response is built from them."""
    items = OrderItem.objects.filter(order=order)
    items._result_cache = sorted(lines, key=lambda line: line.sku)
    items._prefetch_done = True  # type: ignore[attr-defined]
    order._prefetched_objects_cache = {"items": items}  # type: ignore[attr-defined]


def _signature_file(image: bytes | None, *, sign: bool) -> ContentFile | None:
    """The drawn signature as a file: PNG bytes of at most ``SIGNATURE_MAX_BYTES``, given only when signing."""
    if image is None:
        return None
    if not sign:
        raise ValidationFailed(details={"signature": ["A signature image comes only with the signature itself."]})
    if not image.startswith(ATTACHMENT_SIGNATURES["image/png"]) or len(image) > SIGNATURE_MAX_BYTES:
        raise ValidationFailed(
            details={"signature": [f"The signature must be a PNG of at most {SIGNATURE_MAX_BYTES} bytes."]}
        )
    return ContentFile(image, name="signature.png")


def _sign(*, order: Order, actor: Any, items: Sequence[ItemRequest]) -> None:
    """Stamp the (unsaved) order with the practitioner's signature and a hash of the summary it covers."""
    summary = {
        "order": str(order.pk),
        "patient": str(order.patient_id),
        "provider": str(order.provider_id),
        "order_date": order.order_date.isoformat(),
        "items": sorted([item.sku, item.quantity] for item in items),
        "diagnosis_codes": order.diagnosis_codes or [],
    }
    order.signed_by = actor
    order.signed_at = timezone.now()
    order.signature_hash = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def _apply_compliance(*, order: Order, actor: Any, kind: str) -> tuple[Order, ComplianceResult]:
    """Run the checks on the locked order and move it to match: a hold parks a pending order, a
    cleared hold goes back to pending verification. Call inside the order's transaction."""
    result = order_check_compliance(order=order, actor=actor, kind=kind)
    transition = None
    if result.disposition == Disposition.HOLD and order.status == OrderStatus.PENDING_VERIFICATION:
        transition = "hold"
    elif result.disposition != Disposition.HOLD and order.status == OrderStatus.ON_HOLD:
        transition = "release_hold"
    if transition is not None:
        order = order_transition(
            order_id=order.pk,
            actor=None,
            transition=transition,
            reason=hold_reason(result) if transition == "hold" else "Compliance: no hold remains",
            payload={"disposition": str(result.disposition)},
            actor_kind=ActorKind.AI,
        )
    return order, result


def _recheck_waiting_orders_of_patient(*, order: Order) -> None:
    """Run the checks again on the patient's other orders still waiting on them (pending verification
    or held, not clear), now that ``order`` no longer counts against their supply limits or as their
    duplicate: one that it alone held or sent to review is released. Locks them in primary-key order
    after ``order``'s own lock; call inside its transaction. A patient has few waiting orders."""
    waiting = (
        Order.objects.filter(
            patient_id=order.patient_id, status__in=(OrderStatus.PENDING_VERIFICATION, OrderStatus.ON_HOLD)
        )
        .exclude(pk=order.pk)
        .exclude(ai_disposition=Disposition.CLEAR)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in waiting:
        _apply_compliance(order=order_lock(pk=pk, actor=None), actor=None, kind=SnapshotKind.RECHECK)


def order_transition(
    *,
    order_id: Any,
    actor: Any,
    transition: str,
    reason: str = "",
    payload: dict[str, Any] | None = None,
    actor_kind: ActorKind | None = None,
    verification_data: dict[str, Any] | None = None,
    override_reason: str = "",
) -> Order:
    """Run the named lifecycle transition on an order the actor can see.

    Verifying runs the compliance checks again first and applies ``_compliance_gate``: a ``clear``
    result verifies, a ``needs_review`` one with ``reason`` as the review note, a ``hold`` only with
    ``override_reason`` from a user with the override permission (audited on the timeline).
    Raises OrderNotFound, InvalidStatusTransition (naming the current and requested status),
    PermissionDenied when the actor's role may not make this change, ComplianceNotClear,
    ReviewNoteRequired, and ValidationFailed when a required reason is missing. On any error
    nothing is written.
    """
    spec = TRANSITIONS[transition]
    if spec.reason_required and not (reason or "").strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        order = order_lock(pk=order_id, actor=actor)
        method = getattr(order, transition)
        if not can_proceed(method):
            hint = _CONDITION_HINTS.get(transition) if can_proceed(method, check_conditions=False) else None
            message = f"Cannot transition from {order.status} to {spec.target.value}" + (f": {hint}" if hint else "")
            raise InvalidStatusTransition(
                order_id=order.pk,
                current_status=order.status,
                requested_status=spec.target.value,
                message=message,
            )
        if actor is not None and not has_transition_perm(method, actor):
            raise PermissionDenied("Your role may not make this change to the order.")
        if transition == "verify":
            gate = _compliance_gate(order=order, actor=actor, note=reason or "", override_reason=override_reason)
            payload = {**(payload or {}), **gate}
            reason = reason or override_reason
        from_status = order.status
        method()
        if transition == "verify":
            # Verified: whatever the checks asked of a person is decided (recorded above), so nothing
            # about this order waits for one until something new is found (a pharmacy's refusal).
            order.ai_disposition = Disposition.CLEAR
        if spec.stamp is not None:
            spec.stamp(order, actor)
        if verification_data is not None:
            order.verification_data = verification_data
        with_history_user(order, actor)
        order.save()
        event = record_event(
            order=order,
            kind=EventKind.TRANSITION,
            actor=actor,
            actor_kind=actor_kind_of(actor, actor_kind),
            from_status=from_status,
            to_status=order.status,
            transition=transition,
            reason=reason.strip(),
            payload=payload,
        )
        if spec.after is not None:
            spec.after(order=order, actor=actor)
        for topic in spec.topics:
            outbox_publish(topic=topic, aggregate=order, payload=event_payload(order, event))
    return order


@dataclass(frozen=True)
class VerificationOffer:
    """What the portal and the admin offer ``user`` for verifying ``order`` as it stands (``verification_offer``)."""

    approve: bool  # verifying is possible now: a plain approval, or with a review note when ``note_required``
    note_required: bool  # the order needs review: a review note resolves it
    override: bool  # open findings a user with the override permission may verify over, with a reason


def verification_offer(*, order: Order, user: Any) -> VerificationOffer:
    """Which ways of verifying to offer ``user`` on ``order``, from its state and current disposition,
    by the same rule as ``_compliance_gate`` (which decides again on a fresh check): nothing on an
    order that cannot be verified now or by this user; *Approve* on a clear order, *Resolve review*
    (a note) on one that needs review, and the override (a reason) on a held or in-review order
    only to users with ``override_compliance`` in its territory."""
    method = order.verify
    if not (can_proceed(method) and has_transition_perm(method, user)):
        return VerificationOffer(approve=False, note_required=False, override=False)
    disposition = order.ai_disposition or Disposition.CLEAR
    may_override = disposition != Disposition.CLEAR and territory_permits(
        user=user, permission=TerritoryPermission.OVERRIDE_COMPLIANCE, territory_id=order.territory_id
    )
    return verification_offer_for(order=order, may_review=True, may_override=may_override)


def verification_offer_for(*, order: Order, may_review: bool, may_override: bool) -> VerificationOffer:
    """``verification_offer`` for a user whose permissions in the order's territory are already known
    (``review_order``: ``may_review``; ``override_compliance``: ``may_override``), so that a list asks
    them once for all its rows. No query."""
    if not (may_review and can_proceed(order.verify)):
        return VerificationOffer(approve=False, note_required=False, override=False)
    disposition = order.ai_disposition or Disposition.CLEAR
    return VerificationOffer(
        approve=disposition != Disposition.HOLD,
        note_required=disposition == Disposition.NEEDS_REVIEW,
        override=may_override and disposition != Disposition.CLEAR,
    )


def _compliance_gate(*, order: Order, actor: Any, note: str, override_reason: str) -> dict[str, Any]:
    """Run the checks again before verification and apply what their disposition asks of the person
    verifying; returns what the verify event records. The one place of this rule:

    * ``clear``: nothing more is asked; ``note`` is only recorded.
    * ``needs_review`` (a person must decide): the reviewer resolves it with ``note``, the review note
      (ReviewNoteRequired without one).
    * ``hold``: only an override resolves it: ``override_reason`` from a user with the
      ``override_compliance`` permission in the order's territory (ComplianceNotClear without a
      reason, PermissionDenied without the permission). An override resolves a review as well, but
      a review that comes with a note is resolved by the note (the override reason is not needed).

    The decision (how, the note or reason, who, the finding codes it covers) is frozen in the
    approval snapshot as its ``resolution``; a refusal raises before anything is written.
    """
    recorded: dict[str, Any] = {}

    def resolve(result: ComplianceResult) -> dict[str, Any] | None:
        if result.disposition == Disposition.CLEAR:
            recorded["compliance"] = "clear"
            return None
        codes = sorted({f.code for f in result.findings if f.severity != "info"})
        # Codes only in error details: messages can name a patient's allergies or dates of service,
        # and error bodies travel further than the order's own page (which shows them in full).
        findings = [
            {"code": f.code, "severity": str(f.severity), "rule": f.rule, "item": f.item} for f in result.findings
        ]
        recorded["compliance"] = str(result.disposition)
        reviewed = result.disposition == Disposition.NEEDS_REVIEW and note.strip()
        if override_reason.strip() and not reviewed:  # a review note resolves a review: no override needed
            if actor is None or not territory_permits(
                user=actor, permission=TerritoryPermission.OVERRIDE_COMPLIANCE, territory_id=order.territory_id
            ):
                raise PermissionDenied("Verifying over open compliance findings needs the override permission.")
            recorded["override"] = {"reason": override_reason.strip(), "findings": codes}
            return {"by": "override", "reason": override_reason.strip(), "actor_id": str(actor.pk), "findings": codes}
        if result.disposition == Disposition.NEEDS_REVIEW:
            if not note.strip():
                raise ReviewNoteRequired(order_id=order.pk, findings=findings)
            if actor is None:
                raise PermissionDenied("A review is resolved by a person.")
            recorded["review"] = {"note": note.strip(), "findings": codes}
            return {"by": "review", "note": note.strip(), "actor_id": str(actor.pk), "findings": codes}
        raise ComplianceNotClear(
            order_id=order.pk,
            disposition=str(result.disposition),
            findings=findings,
            required_artifacts=result.required_artifacts,
        )

    order_check_compliance(order=order, actor=actor, kind=SnapshotKind.APPROVAL, resolve=resolve)
    return recorded


def order_approve(*, order_id: Any, actor: Any, notes: str = "", override_reason: str = "") -> Order:
    """``POST /api/portal/orders/{id}/approve``, the portal's *Approve* and the admin's *Verify*:
    run the checks again and verify the order (``order.verified``, ``order.approved``).

    What the checks' disposition asks (``_compliance_gate``): nothing more when ``clear``; a review
    note ``notes`` when ``needs_review`` (ReviewNoteRequired, 400, without one); an
    ``override_reason`` and the override permission for a ``hold`` (ComplianceNotClear, 409;
    PermissionDenied, 403). The note or reason is recorded on the timeline (the verify event's
    reason and payload) and in the approval snapshot; the order's disposition is then ``clear``:
    nothing waits for a person any more. Otherwise raises as ``order_transition``; a refusal
    changes nothing.
    """
    return order_transition(
        order_id=order_id, actor=actor, transition="verify", reason=notes.strip(), override_reason=override_reason
    )


SIGNATURE_MAX_BYTES = 512 * 1024

# Accepted document types and the bytes each file must start with (the declared type alone is the
# uploader's word; the signature is the file's).
ATTACHMENT_SIGNATURES = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


@dataclass(frozen=True)
class DocumentUpload:
    """A document to attach to a new order (the wizard's uploads): ``file`` is any Django File."""

    artifact_type: str
    file: Any
    document_date: dt.date | None = None
    original_name: str = ""
    content_type: str = ""
    hcpcs_codes: Sequence[str] = ()


def document_check(
    *,
    artifact_type: str,
    file: Any,
    content_type: str,
    hcpcs_codes: Sequence[str] = (),
    order_codes: Sequence[str] | None = None,
) -> str:
    """The normalised content type of an acceptable document; ValidationFailed otherwise.

    Acceptable: a known artifact type, and a PDF, PNG or JPEG file (its first bytes must say so,
    not just its declared type) of 1 byte to ``settings.ATTACHMENT_MAX_BYTES``; and the HCPCS codes
    as ``hcpcs_codes_errors`` says (a prior authorization names its codes, among ``order_codes``
    when given: the HCPCS codes of the order's or draft's items).
    """
    errors: dict[str, list[str]] = {}
    if artifact_type not in ArtifactType.__members__.values():
        errors["artifact_type"] = [f"Choose one of {', '.join(t.value for t in ArtifactType)}."]
    code_errors = hcpcs_codes_errors(artifact_type=artifact_type, hcpcs_codes=hcpcs_codes, order_codes=order_codes)
    if code_errors:
        errors["hcpcs_codes"] = code_errors
    content_type = (content_type or "").split(";")[0].strip().lower()
    signature = ATTACHMENT_SIGNATURES.get(content_type)
    if not file.size or file.size > settings.ATTACHMENT_MAX_BYTES:
        errors["file"] = [f"The file must hold between 1 byte and {settings.ATTACHMENT_MAX_BYTES} bytes."]
    elif signature is None or _first_bytes(file, len(signature)) != signature:
        errors["file"] = ["Attach a PDF, PNG or JPEG file."]
    if errors:
        raise ValidationFailed(details=errors)
    return content_type


def hcpcs_codes_errors(
    *, artifact_type: str, hcpcs_codes: Sequence[str], order_codes: Sequence[str] | None = None
) -> list[str]:
    """What is wrong with the HCPCS codes a document names (``[]``: nothing).

    A prior authorization decision is per HCPCS code, so a ``PRIOR_AUTH`` document must name the
    code(s) it is for, each a valid HCPCS Level II code and, when ``order_codes`` is given, one of
    them; other documents name none.
    """
    if artifact_type != ArtifactType.PRIOR_AUTH:
        return ["Only a prior authorization names HCPCS codes."] if hcpcs_codes else []
    if not hcpcs_codes:
        return ["Say which item (HCPCS code) this prior authorization is for."]
    bad = [code for code in hcpcs_codes if not is_valid_hcpcs(code)]
    if bad:
        return [f"Not a HCPCS Level II code (a letter and four digits): {', '.join(bad)}."]
    if order_codes is not None:
        elsewhere = sorted({code for code in hcpcs_codes if code not in order_codes})
        if elsewhere:
            return [f"Not an item of this order: {', '.join(elsewhere)}."]
    return []


def normalize_hcpcs_codes(codes: Sequence[str] | None) -> list[str]:
    """Codes as the engine compares them: stripped, upper-case, each once, in the order given."""
    normalised = [code.strip().upper() for code in codes or () if code and code.strip()]
    return list(dict.fromkeys(normalised))


def order_hcpcs_codes(order: Order) -> list[str]:
    """The HCPCS codes of the order's items, sorted, each once: what a prior authorization may name."""
    codes = order.items.exclude(product__hcpcs_code="").values_list("product__hcpcs_code", flat=True)
    return sorted({code for code in codes if code})


def _attachment_file_stored(
    *,
    order: Order,
    actor: Any,
    artifact_type: str,
    file: Any,
    content_type: str,
    document_date: dt.date | None,
    original_name: str,
    summary_sha256: str = "",
    hcpcs_codes: Sequence[str] = (),
) -> Attachment:
    """An attachment of ``order`` with ``file`` saved through the storage API; its row not yet written."""
    digest = hashlib.sha256()
    file.seek(0)
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    attachment = Attachment(
        order=order,
        territory_id=order.territory_id,
        artifact_type=artifact_type,
        document_date=document_date,
        hcpcs_codes=list(hcpcs_codes),
        original_name=original_name,
        content_type=content_type,
        size=file.size or 0,
        sha256=digest.hexdigest(),
        summary_sha256=summary_sha256,
        uploaded_by=actor,
    )
    attachment.file.save(str(attachment.pk), file, save=False)
    return attachment


def _attachment_event(
    *, order: Order, attachment: Attachment, actor: Any, sequence: int, status: str | None = None
) -> OrderEvent:
    """The timeline entry of a new attachment (unsaved), at ``sequence``, while the order is in
    ``status`` (default: its status now)."""
    return new_event(
        order=order,
        sequence=sequence,
        kind=EventKind.ATTACHMENT,
        actor=actor,
        actor_kind=actor_kind_of(actor, None),
        from_status=status or order.status,
        to_status=status or order.status,
        payload={
            "attachment_id": str(attachment.pk),
            "artifact_type": attachment.artifact_type,
            **({"hcpcs_codes": list(attachment.hcpcs_codes)} if attachment.hcpcs_codes else {}),
        },
    )


def _store_attachment(
    *,
    order: Order,
    actor: Any,
    artifact_type: str,
    file: Any,
    content_type: str,
    document_date: dt.date | None,
    original_name: str,
    summary_sha256: str = "",
    hcpcs_codes: Sequence[str] = (),
) -> Attachment:
    """Save ``file`` through the storage API as an attachment of the locked ``order``, with its timeline entry."""
    attachment = _attachment_file_stored(
        order=order,
        actor=actor,
        artifact_type=artifact_type,
        file=file,
        content_type=content_type,
        document_date=document_date,
        original_name=original_name,
        summary_sha256=summary_sha256,
        hcpcs_codes=hcpcs_codes,
    )
    attachment.save()
    last = order.events.aggregate(last=Max("sequence"))["last"] or 0
    _attachment_event(order=order, attachment=attachment, actor=actor, sequence=last + 1).save()
    return attachment


def order_attach(
    *,
    order_id: Any,
    actor: Any,
    artifact_type: str,
    file: UploadedFile,
    document_date: dt.date | None = None,
    hcpcs_codes: Sequence[str] = (),
) -> Attachment:
    """Attach a document to an open order; while the order waits for verification, re-run the checks.

    ``hcpcs_codes``: for a prior authorization, the order's item code(s) it is for (required: it
    clears only those). Anyone who places or reviews orders in the territory may attach. Raises
    ValidationFailed as ``document_check`` (unknown artifact type; not a PDF, PNG or JPEG; empty or
    above ``settings.ATTACHMENT_MAX_BYTES``; a prior authorization without codes or with codes
    not on the order), with nothing stored; InvalidStatusTransition for a closed order.
    """
    hcpcs_codes = normalize_hcpcs_codes(hcpcs_codes)
    content_type = document_check(
        artifact_type=artifact_type, file=file, content_type=file.content_type or "", hcpcs_codes=hcpcs_codes
    )
    with transaction.atomic():
        order = order_lock(pk=order_id, actor=actor)
        if actor is not None and not (
            territory_permits(user=actor, permission=TerritoryPermission.VIEW_PHI, territory_id=order.territory_id)
            and (
                territory_permits(
                    user=actor, permission=TerritoryPermission.CREATE_ORDER, territory_id=order.territory_id
                )
                or territory_permits(
                    user=actor, permission=TerritoryPermission.REVIEW_ORDER, territory_id=order.territory_id
                )
            )
        ):
            raise PermissionDenied("Your role may not add documents to orders.")
        if order.is_terminal:
            raise InvalidStatusTransition(
                order_id=order.pk,
                current_status=order.status,
                requested_status=order.status,
                message=f"Documents cannot be added to a {order.status} order.",
            )
        code_errors = hcpcs_codes_errors(
            artifact_type=artifact_type, hcpcs_codes=hcpcs_codes, order_codes=order_hcpcs_codes(order)
        )
        if code_errors:
            raise ValidationFailed(details={"hcpcs_codes": code_errors})
        attachment = _store_attachment(
            order=order,
            actor=actor,
            artifact_type=artifact_type,
            file=file,
            content_type=content_type,
            document_date=document_date,
            original_name=file.name or "",
            hcpcs_codes=hcpcs_codes,
        )
        if order.status in (OrderStatus.PENDING_VERIFICATION, OrderStatus.ON_HOLD):
            _apply_compliance(order=order, actor=actor, kind=SnapshotKind.ATTACHMENT)
    return attachment


def _first_bytes(file: Any, count: int) -> bytes:
    file.seek(0)
    head = file.read(count)
    file.seek(0)
    return bytes(head)


def order_set_status(
    *,
    order_id: Any,
    actor: Any,
    status: str,
    notes: str = "",
    verification_data: dict[str, Any] | None = None,
) -> Order:
    """``PUT /orders/{id}/status``: move the order to ``status`` through its one transition."""
    transition = TRANSITION_FOR_STATUS.get(status)
    if transition is None:
        # Every status but the initial one has exactly one transition into it (pending_verification's
        # is releasing a hold); anything else is not a status at all.
        raise ValidationFailed(details={"status": ["Unknown status."]})
    if TRANSITIONS[transition].reason_required and not (notes or "").strip():
        # Here the reason travels in ``notes``: name the field the caller sent.
        raise ValidationFailed(details={"notes": ["A reason is required for this status."]})
    return order_transition(
        order_id=order_id,
        actor=actor,
        transition=transition,
        reason=notes,
        verification_data=verification_data if transition == "verify" else None,
    )


def order_verify(
    *, order_id: Any, actor: Any, notes: str = "", verification_data: dict[str, Any] | None = None
) -> Order:
    return order_transition(
        order_id=order_id, actor=actor, transition="verify", reason=notes, verification_data=verification_data
    )


def order_complete(*, order_id: Any, actor: Any, notes: str = "") -> Order:
    return order_transition(order_id=order_id, actor=actor, transition="complete", reason=notes)


def order_cancel(*, order_id: Any, actor: Any, reason: str) -> Order:
    return order_transition(order_id=order_id, actor=actor, transition="cancel", reason=reason)


def order_add_note(*, order_id: Any, actor: Any, note: str) -> OrderEvent:
    """Append a note to the order's timeline (anyone who can see the order)."""
    if not (note or "").strip():
        raise ValidationFailed(details={"note": ["A note cannot be empty."]})
    with transaction.atomic():
        order = order_lock(pk=order_id, actor=actor)
        return record_event(
            order=order,
            kind=EventKind.NOTE,
            actor=actor,
            actor_kind=actor_kind_of(actor, None),
            from_status=order.status,
            to_status=order.status,
            reason=note.strip(),
        )
