"""Reads of orders, scoped to the territories the user works in.

Every list and detail goes through here, so territory isolation lives in one place: an order
outside the user's territories is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django_fsm import can_proceed, has_transition_perm

from catalog.models import Product
from compliance.engine import SupplyStatus, already_on_its_way, prior_authorization_valid_until
from compliance.inputs import OpenOrder
from compliance.medications import RecognisedEntry, medication_table
from compliance.models import ComplianceSnapshot
from compliance.rulebook import RuleSet, load_rule_sets
from compliance.selectors import latest_snapshot
from patients.exceptions import PatientNotFound
from patients.models import Coverage, Patient, PriorAuthorization, PriorAuthorizationDecision, Provider
from patients.selectors import active_coverage, patients_for_user, prior_authorizations_of
from territories.exceptions import TerritoryMismatch
from territories.models import Territory, TerritoryPermission
from territories.selectors import territories_for_user, territory_lookup, territory_permits

from .compliance_checks import (
    patient_allergies,
    patient_medications,
    patient_state,
    patient_supply_facts,
    patient_supply_status,
)
from .exceptions import OrderNotFound
from .models import (
    STAGE_OF_STATUS,
    Attachment,
    FulfillmentTask,
    Order,
    OrderDraft,
    OrderEvent,
    OrderItem,
    OrderStatus,
    Stage,
)


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def orders_for_user(*, user: Any, territory: Territory | None = None) -> QuerySet[Order]:
    """Orders in the user's territories (or in ``territory``, which must be one of them)."""
    territories = territories_for_user(user=user, permission=TerritoryPermission.ACCESS)
    if territory is not None:
        territories = territories.filter(pk=territory.pk)
    return Order.objects.filter(territory__in=territories)


def orders_with_items(queryset: QuerySet[Order]) -> QuerySet[Order]:
    return queryset.prefetch_related(Prefetch("items", queryset=OrderItem.objects.order_by("sku")))


def order_get_for_user(*, user: Any, pk: Any) -> Order:
    """The order ``pk`` if the user may see it; raises OrderNotFound otherwise (also for bad ids)."""
    order_id = _as_uuid(pk)
    order = orders_with_items(orders_for_user(user=user)).filter(pk=order_id).first() if order_id else None
    if order is None:
        raise OrderNotFound()
    return order


def orders_in_territory(*, user: Any, territory_key: str, status: str | None = None) -> QuerySet[Order]:
    """The orders of one territory, newest first; raises TerritoryMismatch if the user is not in it."""
    territory = territory_lookup(key=territory_key)
    if territory is None or not territories_for_user(user=user).filter(pk=territory.pk).exists():
        raise TerritoryMismatch(details={"territory_id": territory_key[:64]})
    orders = orders_for_user(user=user, territory=territory)
    if status:
        orders = orders.filter(status=status)
    return orders_with_items(orders).order_by("-created_at", "id")


def order_phi_visible(*, user: Any, order: Order) -> bool:
    """Whether ``user`` may read the order's PHI (diagnosis, notes, insurance, event reasons).

    Everyone who can see an order sees its status, items and timeline; the clinical details are
    for roles that need them (minimum necessary), not, for example, a master distributor.
    """
    return territory_permits(user=user, permission=TerritoryPermission.VIEW_PHI, territory_id=order.territory_id)


def order_timeline(*, order: Order) -> list[OrderEvent]:
    """The events of an order already fetched through ``order_get_for_user``, oldest first."""
    return list(order.events.select_related("actor").order_by("sequence"))


def fulfillment_tasks_of(*, order: Order) -> QuerySet[FulfillmentTask]:
    """The fulfillment tasks of an order the caller already may see, with what lists show."""
    return (
        FulfillmentTask.objects.filter(order=order)
        .select_related("warehouse", "purchase_order")
        .prefetch_related("items")
        .order_by("due_date", "created_at", "pk")
    )


def order_compliance_result(*, order: Order) -> dict[str, Any] | None:
    """The latest compliance result of an order the caller may see (None before any check)."""
    snapshot = latest_snapshot(order_id=order.pk)
    return snapshot.result if snapshot is not None else None


@dataclass(frozen=True)
class ReviewQueue:
    orders: Sequence[Order]
    results: dict[Any, dict[str, Any]]  # latest compliance result per order id


REVIEW_STATUSES = (OrderStatus.ON_HOLD, OrderStatus.PENDING_VERIFICATION)
REVIEW_DISPOSITIONS = ("hold", "needs_review")
# Verified orders that something later put back in review (a pharmacy refusing the prescription).
REVIEW_AFTER_VERIFICATION = (
    OrderStatus.VERIFIED,
    OrderStatus.AWAITING_PAYMENT,
    OrderStatus.PAID,
    OrderStatus.IN_PROGRESS,
)


def _waiting(dispositions: Sequence[str]) -> Q:
    """Orders waiting for a person now, read from their current status and current disposition
    (the one rule every list uses): held or in review before verification, and verified orders put
    back in review later (when ``needs_review`` is asked for). Verifying an order decides what the
    checks asked (``order_approve``) and sets its disposition to ``clear``, so a verified order
    waits again only when something new is found, such as a pharmacy refusing the prescription."""
    waiting = Q(status__in=REVIEW_STATUSES, ai_disposition__in=dispositions)
    if "needs_review" in dispositions:
        waiting |= Q(status__in=REVIEW_AFTER_VERIFICATION, ai_disposition="needs_review")
    return waiting


def review_queue(
    *,
    user: Any,
    territory_key: str | None = None,
    reason: str | None = None,
    dispositions: Sequence[str] = REVIEW_DISPOSITIONS,
) -> ReviewQueue:
    """Orders waiting for a person in the territories the user reviews, oldest first.

    By default the holds and the reviews (``on_hold`` or ``pending_verification`` orders whose
    latest check is ``hold`` or ``needs_review``, and verified orders put back in review later,
    such as by a pharmacy refusing the prescription); ``dispositions`` may ask for ``clear`` ones
    waiting for verification too. ``territory_key`` (id or code) narrows it to one territory the user reviews (else
    TerritoryMismatch); ``reason`` keeps the orders whose latest check has a finding of that code.
    """
    territories = territories_for_user(user=user, permission=TerritoryPermission.REVIEW_ORDER)
    if territory_key:
        territory = territory_lookup(key=territory_key)
        if territory is None or not territories.filter(pk=territory.pk).exists():
            raise TerritoryMismatch(details={"territory_id": territory_key[:64]})
        territories = territories.filter(pk=territory.pk)
    orders = list(
        orders_with_items(Order.objects.filter(_waiting(dispositions), territory__in=territories)).order_by(
            "created_at", "id"
        )
    )
    results = latest_results(orders)
    if reason:
        orders = [
            order for order in orders if any(f["code"] == reason for f in results.get(order.pk, {}).get("findings", []))
        ]
    return ReviewQueue(orders=orders, results=results)


def latest_results(orders: Sequence[Order]) -> dict[Any, dict[str, Any]]:
    """The latest compliance result per order id: the newest snapshot, or, for an order put back
    in review after verification, the newest check recorded on its timeline (e.g. pharmacy_rejected)."""
    results: dict[Any, dict[str, Any]] = {}
    for snapshot in ComplianceSnapshot.objects.filter(order_id__in=[o.pk for o in orders]).order_by("created_at"):
        results[snapshot.order_id] = snapshot.result
    later = [order.pk for order in orders if order.status in REVIEW_AFTER_VERIFICATION]
    for event in OrderEvent.objects.filter(order_id__in=later, kind="compliance").order_by("sequence"):
        # A check's own timeline entry (it names its snapshot) is already read above, with the
        # artifacts that clear each finding and any reviewer's resolution; only later findings
        # recorded on the timeline alone (a pharmacy's refusal) replace it.
        if isinstance(event.payload, dict) and "findings" in event.payload and "snapshot_id" not in event.payload:
            results[event.order_id] = event.payload
    return results


# --- the portal -------------------------------------------------------------------------------

STATUSES_OF_STAGE: dict[Stage, tuple[str, ...]] = {
    stage: tuple(status for status, of in STAGE_OF_STATUS.items() if of == stage) for stage in Stage
}


def portal_orders(*, user: Any) -> QuerySet[Order]:
    """The orders the portal's home lists for ``user``: a doctor's own (placed for them as the
    provider, or placed by them); for anyone else every order of their territories."""
    orders = orders_for_user(user=user)
    provider_id = Provider.objects.filter(user=user).values_list("pk", flat=True).first()
    if provider_id is not None:
        orders = orders.filter(Q(provider_id=provider_id) | Q(created_by=user))
    return orders


def portal_orders_in_stage(*, user: Any, stage: Stage) -> QuerySet[Order]:
    """``portal_orders`` in one display stage (Pending, Preparing, Shipped), newest first."""
    return (
        portal_orders(user=user)
        .filter(status__in=STATUSES_OF_STAGE[stage])
        .select_related("patient", "provider")
        .order_by("-created_at", "id")
    )


@dataclass(frozen=True)
class HoldForDoctor:
    order: Order
    findings: list[dict[str, Any]]  # as ``findings_shown``: what each needs, or the document that answered it


def portal_holds(*, user: Any) -> list[HoldForDoctor]:
    """What waits for ``user`` now among their portal orders, oldest first, with what each needs:
    holds (a document or an override answers them), and reviews only in the territories the user
    reviews (a review waits for a reviewer, not for the doctor who ordered)."""
    reviewing = territories_for_user(user=user, permission=TerritoryPermission.REVIEW_ORDER)
    waiting = _waiting(("hold",)) | (_waiting(("needs_review",)) & Q(territory__in=reviewing))
    orders = list(portal_orders(user=user).filter(waiting).select_related("patient").order_by("created_at", "id"))
    results = latest_results(orders)
    shown = findings_shown(orders, results)
    return [HoldForDoctor(order=order, findings=shown[order.pk]) for order in orders]


def findings_shown(orders: Sequence[Order], results: dict[Any, dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    """The hold and review findings of each order's latest result, each with what answers it now.

    Each finding (a copy) gains ``answered_by``: the attached documents among its required
    artifacts, ``[{"artifact_type", "attached_at"}]``, when the finding is no longer a hold (the
    document was taken into account and a person now decides), else ``[]``: then its
    ``required_artifacts`` are what would clear it, and ``not_enough`` lists those attached that
    do not yet (a document dated too late, say: the message tells why). One query for all the
    orders' attachments.
    """
    attached: dict[Any, dict[str, Any]] = {}
    for order_id, artifact_type, created_at in (
        Attachment.objects.filter(order_id__in=[o.pk for o in orders])
        .order_by("created_at")
        .values_list("order_id", "artifact_type", "created_at")
    ):
        attached.setdefault(order_id, {})[artifact_type] = created_at  # the newest of each type
    shown: dict[Any, list[dict[str, Any]]] = {}
    for order in orders:
        documents = attached.get(order.pk, {})
        findings = []
        for finding in results.get(order.pk, {}).get("findings", []):
            if finding.get("severity") == "info":
                continue
            present = [
                {"artifact_type": artifact, "attached_at": documents[artifact]}
                for artifact in finding.get("required_artifacts", [])
                if artifact in documents
            ]
            held = finding.get("severity") == "hold"
            findings.append({**finding, "answered_by": [] if held else present, "not_enough": present if held else []})
        shown[order.pk] = findings
    return shown


@dataclass(frozen=True)
class OnItsWay:
    """An open order of the patient, in the words the checks use (``already_on_its_way``)."""

    order: OpenOrder
    notice: str
    items: list[str]  # product names of its lines


@dataclass(frozen=True)
class PriorAuthorizationOnCard:
    """A prior-authorization decision on file and, when affirmed, the last day it covers a delivery:
    its stated end, else its program's validity (``prior_authorization_valid_until``, the function
    the compliance check uses). ``valid_until`` is None for a decision that is not affirmed, or that
    states no end for a code on no program today (no known end)."""

    authorization: PriorAuthorization
    valid_until: dt.date | None

    @property
    def affirmed(self) -> bool:
        return self.authorization.decision == PriorAuthorizationDecision.AFFIRMED

    @property
    def by_program(self) -> bool:
        """Whether ``valid_until`` comes from the program's validity, not from the decision."""
        return self.valid_until is not None and self.authorization.expires_on is None


@dataclass(frozen=True)
class RecognisedIngredient:
    label: str  # the ingredient, e.g. "isosorbide mononitrate"
    classes: list[str]  # the labels of its drug classes in the medication safety table


@dataclass(frozen=True)
class RecordedMedication:
    """A medication or allergy as recorded and what the medication safety table recognised in it
    (``ingredients`` empty: not recognised, so the safety checks did not check it)."""

    text: str
    ingredients: list[RecognisedIngredient]


@dataclass(frozen=True)
class PatientCard:
    """What a doctor sees before ordering for a patient (portal patient card)."""

    patient: Patient
    coverage: Coverage | None
    prior_authorizations: list[PriorAuthorizationOnCard]
    supply: list[tuple[SupplyStatus, str]]  # with the product name of the code
    warnings: list[str]
    orders: list[Order] = field(default_factory=list)  # newest first, at most PATIENT_CARD_ORDERS
    more_orders: bool = False
    on_its_way: list[OnItsWay] = field(default_factory=list)
    medications: list[RecordedMedication] = field(default_factory=list)  # as recorded, in order
    allergies: list[RecordedMedication] = field(default_factory=list)


EXPIRY_WARNING_DAYS = 30
PATIENT_CARD_ORDERS = 10


def patient_card(*, user: Any, pk: Any, on: dt.date) -> PatientCard:
    """The patient ``pk`` with coverage, prior authorizations, supply status, warnings, the patient's
    orders the user sees (newest first, at most ``PATIENT_CARD_ORDERS``, with their items), what
    is on its way (the open orders, in the checks' words: ``already_on_its_way``), and the recorded
    medications and allergies with what the medication safety table recognised in each.

    Only for patients whose PHI the user may read (else PatientNotFound, also for bad ids).
    Warnings: no coverage in force, coverage or an affirmed prior authorization ending within 30
    days, prior authorizations expired or not affirmed. An affirmed decision's end is the one the
    compliance check uses for a delivery on ``on`` (``prior_authorization_valid_until``).
    """
    patient_id = _as_uuid(pk)
    patient = patients_for_user(user=user).filter(pk=patient_id).first() if patient_id else None
    if patient is None:
        raise PatientNotFound()
    rule_sets = load_rule_sets()
    coverage = active_coverage(patient=patient, on=on)
    authorizations = _prior_authorizations_on_card(patient, on=on, rule_sets=rule_sets)
    soon = on + dt.timedelta(days=EXPIRY_WARNING_DAYS)
    warnings = []
    if coverage is None:
        warnings.append("No coverage is in force today: insurance orders will need coverage details.")
    elif coverage.effective_to is not None and coverage.effective_to <= soon:
        warnings.append(f"Coverage ends on {coverage.effective_to:%b %-d, %Y}.")
    for shown in authorizations:
        pa, until = shown.authorization, shown.valid_until
        if pa.decision != PriorAuthorizationDecision.AFFIRMED:
            warnings.append(f"The prior authorization for {pa.hcpcs_code} was not affirmed.")
        elif until is not None and until < on:
            warnings.append(f"The prior authorization for {pa.hcpcs_code} expired on {until:%b %-d, %Y}.")
        elif until is not None and until <= soon:
            warnings.append(f"The prior authorization for {pa.hcpcs_code} expires on {until:%b %-d, %Y}.")
    supply = patient_supply_facts(patient=patient)
    statuses = patient_supply_status(patient=patient, on=on, supply=supply)
    skus = {line.sku for order in supply.open_orders for line in order.lines if line.sku}
    products = Product.objects.filter(Q(hcpcs_code__in=[s.hcpcs for s in statuses]) | Q(sku__in=skus))
    names_of_code: dict[str, str] = {}
    names_of_sku: dict[str, str] = {}
    for code, sku, name in products.values_list("hcpcs_code", "sku", "name"):
        names_of_code.setdefault(code, name)
        names_of_sku[sku] = name
    orders = list(
        orders_with_items(orders_for_user(user=user).filter(patient=patient))
        .select_related("provider")
        .order_by("-created_at", "id")[: PATIENT_CARD_ORDERS + 1]
    )
    return PatientCard(
        patient=patient,
        coverage=coverage,
        prior_authorizations=authorizations,
        supply=[(status, names_of_code.get(status.hcpcs, status.hcpcs)) for status in statuses],
        warnings=warnings,
        orders=orders[:PATIENT_CARD_ORDERS],
        more_orders=len(orders) > PATIENT_CARD_ORDERS,
        on_its_way=[
            OnItsWay(
                order=order,
                notice=already_on_its_way(order, items=len(order.lines)),
                items=[names_of_sku.get(line.sku or "", line.sku or line.hcpcs or "") for line in order.lines],
            )
            for order in reversed(supply.open_orders)  # newest first, as the orders list
        ],
        medications=_recorded_medications(patient_medications(patient), rule_sets["medication_safety"]),
        allergies=_recorded_medications(patient_allergies(patient), rule_sets["medication_safety"]),
    )


def _prior_authorizations_on_card(
    patient: Patient, *, on: dt.date, rule_sets: dict[str, RuleSet]
) -> list[PriorAuthorizationOnCard]:
    """The patient's decisions by code and newest first, each affirmed one with the last day it
    covers a delivery on ``on`` (the compliance check's function)."""
    state = patient_state(patient)
    decisions = sorted(
        prior_authorizations_of(patient=patient), key=lambda pa: (pa.hcpcs_code, pa.decision_date), reverse=True
    )
    return [
        PriorAuthorizationOnCard(
            authorization=pa,
            valid_until=prior_authorization_valid_until(
                pa.hcpcs_code, pa.decision_date, pa.expires_on, on=on, state=state, rule_sets=rule_sets
            )
            if pa.decision == PriorAuthorizationDecision.AFFIRMED
            else None,
        )
        for pa in decisions
    ]


def _recorded_medications(texts: Sequence[str], medication_safety: RuleSet) -> list[RecordedMedication]:
    """Each recorded text with what the medication safety table (the one the checks use) recognised."""
    class_labels = {entry["id"]: entry["label"] for entry in medication_safety.tables["drug_classes"]}

    def shown(recognised: RecognisedEntry) -> RecordedMedication:
        return RecordedMedication(
            text=recognised.text,
            ingredients=[
                RecognisedIngredient(label=entry.label, classes=[class_labels.get(c, c) for c in entry.classes])
                for entry in recognised.entries
            ],
        )

    return [shown(recognised) for recognised in medication_table(medication_safety).recognise_all(texts)]


RECENT_PATIENTS = 8


def recent_patients(*, user: Any, limit: int = RECENT_PATIENTS) -> list[Patient]:
    """The patients of the user's most recent orders and drafts, most recent first, each once.

    "The user's" orders: placed by them or for them as the ordering provider; drafts: the ones they
    started. At most ``limit`` patients, from the newest ``limit * 4`` orders and drafts (two
    bounded queries), and only patients whose record the user may read (``patients_for_user``).
    """
    window = limit * 4
    order_rows = (
        orders_for_user(user=user)
        .filter(Q(created_by=user) | Q(provider__user=user))
        .order_by("-created_at")
        .values_list("patient_id", "created_at")[:window]
    )
    draft_rows = (
        OrderDraft.objects.filter(created_by=user)
        .order_by("-updated_at")
        .values_list("patient_id", "updated_at")[:window]
    )
    newest_first = sorted([*order_rows, *draft_rows], key=lambda row: row[1], reverse=True)
    patient_ids = list(dict.fromkeys(patient_id for patient_id, _when in newest_first))
    readable = {
        patient.pk: patient
        for patient in patients_for_user(user=user).filter(pk__in=patient_ids).select_related("territory")
    }
    return [readable[pk] for pk in patient_ids if pk in readable][:limit]


def transition_allowed(order: Order, transition: str, user: Any) -> bool:
    """Whether ``user`` may run the lifecycle ``transition`` on ``order`` as it stands (state,
    conditions and the transition's permission), for offering it as a button."""
    method = getattr(order, transition)
    return bool(can_proceed(method) and has_transition_perm(method, user))


def attachment_get_for_user(*, user: Any, order_pk: Any, pk: Any) -> Attachment:
    """The attachment ``pk`` of the order ``order_pk``, for a user who may read that order's PHI
    (``view_phi`` in its territory); OrderNotFound otherwise, the same for an order or attachment
    elsewhere, a reader without PHI access, and malformed ids, so nothing can be probed."""
    order_id, attachment_id = _as_uuid(order_pk), _as_uuid(pk)
    if order_id is None or attachment_id is None:
        raise OrderNotFound()
    readable = territories_for_user(user=user, permission=TerritoryPermission.VIEW_PHI)
    attachment = (
        Attachment.objects.filter(pk=attachment_id, order_id=order_id, territory__in=readable)
        .filter(order__territory__in=readable)
        .first()
    )
    if attachment is None:
        raise OrderNotFound()
    return attachment
