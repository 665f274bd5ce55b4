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

from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery
from django_fsm import can_proceed, has_transition_perm

from catalog.models import Product
from compliance.engine import SupplyStatus, already_on_its_way, prior_authorization_valid_until
from compliance.inputs import OpenOrder
from compliance.medications import RecognisedEntry, medication_table
from compliance.models import ComplianceSnapshot
from compliance.rulebook import RuleSet, load_rule_sets
from compliance.selectors import latest_snapshot
from core.keyset import (
    BoundedCount,
    Cursor,
    KeysetPage,
    MergedListing,
    bounded_count_merged,
    keyset_page_merged,
    merged_values,
)
from patients.exceptions import PatientNotFound
from patients.models import Coverage, Patient, PriorAuthorization, PriorAuthorizationDecision, Provider
from patients.selectors import active_coverage, patients_for_user, prior_authorizations_of
from territories.exceptions import TerritoryMismatch
from territories.models import Territory, TerritoryPermission
from territories.selectors import territories_for_user, territory_ids_for_user, territory_lookup, territory_permits

from .compliance_checks import (
    patient_allergies,
    patient_medications,
    patient_state,
    patient_supply_facts,
    patient_supply_status,
)
from .exceptions import OrderNotFound
from .models import (
    REVIEW_AFTER_VERIFICATION,
    STAGE_OF_STATUS,
    Attachment,
    FulfillmentTask,
    Order,
    OrderDraft,
    OrderEvent,
    OrderItem,
    OrderStatus,
    PatientWorkOrder,
    Stage,
    waiting_for_person,
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


# Lists of orders read newest first (or oldest first: the queues), the primary key breaking ties,
# so that each can be paged by key (core.keyset) along the indexes of ``Order.Meta``.
NEWEST_FIRST = ("-created_at", "-id")
OLDEST_FIRST = ("created_at", "id")


def orders_in_territory(*, user: Any, territory_key: str, status: str | None = None) -> QuerySet[Order]:
    """The orders of one territory, newest first (``NEWEST_FIRST``, to page by key); raises
    TerritoryMismatch if the user is not in it."""
    territory = territory_lookup(key=territory_key)
    if territory is None or not territories_for_user(user=user).filter(pk=territory.pk).exists():
        raise TerritoryMismatch(details={"territory_id": territory_key[:64]})
    # The territory itself, not a subquery of the user's: one index range (territory[, status], created_at, id).
    orders = Order.objects.filter(territory_id=territory.pk)
    if status:
        orders = orders.filter(status=status)
    return orders_with_items(orders).order_by(*NEWEST_FIRST)


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
        .select_related("warehouse", "purchase_order", "assignee")
        .prefetch_related("items")
        .order_by("due_date", "created_at", "pk")
    )


def order_compliance_result(*, order: Order) -> dict[str, Any] | None:
    """The latest compliance result of an order the caller may see (None before any check)."""
    snapshot = latest_snapshot(order_id=order.pk)
    return snapshot.result if snapshot is not None else None


@dataclass(frozen=True)
class ReviewQueue:
    orders: Sequence[Order]  # one page, oldest first
    results: dict[Any, dict[str, Any]]  # latest compliance result per order id (of the page at least)
    next: Cursor | None = None  # the page after it (None on the last)
    previous: Cursor | None = None


REVIEW_DISPOSITIONS = ("hold", "needs_review")
REVIEW_PAGE_SIZE = 50
# The reason filter and the list of reasons read the latest results of at most this many waiting
# orders (the oldest): results are encrypted, so they are opened in Python, and a page view must
# not open a backlog of any size.
REVIEW_SCAN_LIMIT = 1000


def review_queue_orders(
    *,
    user: Any,
    territory_key: str | None = None,
    reason: str | None = None,
    dispositions: Sequence[str] = REVIEW_DISPOSITIONS,
) -> MergedListing:
    """Orders waiting for a person in the territories the user reviews, oldest first (``OLDEST_FIRST``),
    as a listing to page by key and count (``MergedListing``): one arm per territory and way of
    waiting, each read in order through its own index.

    By default the holds and the reviews (``on_hold`` or ``pending_verification`` orders whose
    latest check is ``hold`` or ``needs_review``, and verified orders put back in review later,
    such as by a pharmacy refusing the prescription); ``dispositions`` may ask for ``clear`` ones
    waiting for verification too. ``territory_key`` (id or code) narrows it to one territory the user
    reviews (else TerritoryMismatch); ``reason`` keeps the orders whose latest check has a finding of
    that code, among the oldest ``REVIEW_SCAN_LIMIT`` waiting orders (three more queries: the scan
    and its latest results).
    """
    reviewing = territory_ids_for_user(user=user, permission=TerritoryPermission.REVIEW_ORDER)
    if territory_key:
        territory = territory_lookup(key=territory_key)
        if territory is None or territory.pk not in reviewing:
            raise TerritoryMismatch(details={"territory_id": territory_key[:64]})
        reviewing = {territory.pk}
    listing = MergedListing(
        arms=tuple(
            Order.objects.filter(kind, territory_id=territory_id)
            for territory_id in sorted(reviewing)
            for kind in waiting_for_person(tuple(dispositions))
        ),
        rows=Order.objects.order_by(*OLDEST_FIRST),
    )
    if reason:
        scanned = listing.values("pk", "status", limit=REVIEW_SCAN_LIMIT)
        results = latest_results_of(scanned)
        listing = listing.filter(pk__in=[pk for pk, _status in scanned if reason in _finding_codes(results.get(pk))])
    return listing


def review_queue(
    *,
    user: Any,
    territory_key: str | None = None,
    reason: str | None = None,
    dispositions: Sequence[str] = REVIEW_DISPOSITIONS,
    cursor: Cursor | None = None,
    size: int = REVIEW_PAGE_SIZE,
) -> ReviewQueue:
    """One page (``size`` orders from ``cursor``, the first without one) of ``review_queue_orders``,
    with the patient and territory of each and their latest compliance results. A constant number of
    queries whatever the length of the queue. Raises InvalidCursor for a cursor of another listing."""
    orders = review_queue_orders(user=user, territory_key=territory_key, reason=reason, dispositions=dispositions)
    return review_queue_page(orders, cursor=cursor, size=size)


def review_queue_page(
    orders: MergedListing, *, cursor: Cursor | None = None, size: int = REVIEW_PAGE_SIZE
) -> ReviewQueue:
    """One page of ``orders`` (from ``review_queue_orders``) as ``review_queue`` gives it (the page's
    keys, its rows, and ``latest_results``)."""
    page = orders.shaped(Order.objects.select_related("patient", "territory").order_by(*OLDEST_FIRST)).page(
        size=size, cursor=cursor
    )
    return ReviewQueue(orders=page.rows, results=latest_results(page.rows), next=page.next, previous=page.previous)


def review_reasons(*, user: Any) -> list[str]:
    """The hold and review finding codes of the waiting orders (the oldest ``REVIEW_SCAN_LIMIT``) in the
    territories the user reviews, sorted: what the queue can be filtered by."""
    results = latest_results_of(review_queue_orders(user=user).values("pk", "status", limit=REVIEW_SCAN_LIMIT))
    return sorted({code for result in results.values() for code in _finding_codes(result)})


def _finding_codes(result: dict[str, Any] | None) -> set[str]:
    """The codes of a result's hold and review findings (not the informational ones)."""
    return {f["code"] for f in (result or {}).get("findings", []) if f.get("severity") != "info"}


def latest_results(orders: Sequence[Order]) -> dict[Any, dict[str, Any]]:
    """The latest compliance result per order id: the newest snapshot, or, for an order put back
    in review after verification, the newest check recorded on its timeline (e.g. pharmacy_rejected)."""
    return latest_results_of([(order.pk, order.status) for order in orders])


def latest_results_of(orders: Sequence[tuple[Any, str]]) -> dict[Any, dict[str, Any]]:
    """``latest_results`` of orders given as (id, status) pairs. Two queries, each opening one
    snapshot per order (its newest) and the timeline checks of orders put back in review."""
    results: dict[Any, dict[str, Any]] = {}
    if not orders:
        return results
    newest = ComplianceSnapshot.objects.filter(order_id=OuterRef("order_id")).order_by("-created_at", "-id")
    snapshots = ComplianceSnapshot.objects.filter(
        order_id__in=[pk for pk, _status in orders], pk=Subquery(newest.values("pk")[:1])
    )
    for snapshot in snapshots:
        results[snapshot.order_id] = snapshot.result
    later = [pk for pk, status in orders if status in REVIEW_AFTER_VERIFICATION]
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


PORTAL_PAGE_SIZE = 25
HOLDS_PAGE_SIZE = 10
# The portal's tabs count their orders up to this many ("100+" beyond).
TAB_COUNT_LIMIT = 100


@dataclass(frozen=True)
class PortalScope:
    """Whose orders the portal's home lists for a user: a doctor's own (placed for them as the
    provider, or placed by them, in their territories); for anyone else every order of their
    territories. Read in *arms* (``core.keyset``), one index range each, because no one index
    serves "provider or creator" or several territories in the lists' order."""

    user_id: Any
    territory_ids: tuple[uuid.UUID, ...]  # where the user may see orders
    reviewing: tuple[uuid.UUID, ...]  # where the user reviews orders
    provider_id: uuid.UUID | None  # the doctor's provider record, if the user is one

    def arms(
        self,
        condition: Q | None = None,
        *,
        statuses: Sequence[str] | None = None,
        within: Sequence[uuid.UUID] | None = None,
    ) -> list[QuerySet[Order]]:
        """The scope's orders meeting ``condition`` (in the territories ``within``, if given) as
        index-friendly querysets whose union is the list: one per owner (the provider, the creator,
        each in each territory; or each territory) and, given ``statuses``, one per status (so each
        arm reads (owner, territory, status, created_at, id) in order)."""
        territory_ids = self.territory_ids if within is None else tuple(t for t in self.territory_ids if t in within)
        if not territory_ids:
            return []
        condition = condition if condition is not None else Q()
        if self.provider_id is not None:
            owners = [
                Q(**{owner: value, "territory_id": territory_id})
                for owner, value in (("provider_id", self.provider_id), ("created_by_id", self.user_id))
                for territory_id in territory_ids
            ]
        else:
            owners = [Q(territory_id=territory_id) for territory_id in territory_ids]
        by_status = [Q(status=status) for status in statuses] if statuses is not None else [Q()]
        return [Order.objects.filter(owner, one, condition) for owner in owners for one in by_status]


def portal_scope(*, user: Any) -> PortalScope:
    """The user's ``PortalScope`` (three small queries: territories, reviewed territories, provider)."""
    return PortalScope(
        user_id=user.pk,
        territory_ids=tuple(sorted(territory_ids_for_user(user=user))),
        reviewing=tuple(sorted(territory_ids_for_user(user=user, permission=TerritoryPermission.REVIEW_ORDER))),
        provider_id=Provider.objects.filter(user=user).values_list("pk", flat=True).first(),
    )


def portal_stage_counts(*, scope: PortalScope, limit: int = TAB_COUNT_LIMIT) -> dict[Stage, BoundedCount]:
    """How many of the scope's orders each display stage holds, counted up to ``limit`` (one query per stage)."""
    return {
        stage: bounded_count_merged(scope.arms(statuses=STATUSES_OF_STAGE[stage]), limit=limit, ordering=NEWEST_FIRST)
        for stage in Stage
    }


def portal_orders_in_stage(
    *, scope: PortalScope, stage: Stage, cursor: Cursor | None = None, size: int = PORTAL_PAGE_SIZE
) -> KeysetPage:
    """A page of the scope's orders in one display stage (Pending, Preparing, Shipped), newest first,
    with patient and provider (two queries: the page's keys, its rows). Raises InvalidCursor for a
    cursor of another listing."""
    return keyset_page_merged(
        scope.arms(statuses=STATUSES_OF_STAGE[stage]),
        rows=Order.objects.select_related("patient", "provider").order_by(*NEWEST_FIRST),
        size=size,
        cursor=cursor,
    )


@dataclass(frozen=True)
class HoldForDoctor:
    order: Order
    findings: list[dict[str, Any]]  # as ``findings_shown``: what each needs, or the document that answered it


@dataclass(frozen=True)
class HoldsPage:
    holds: list[HoldForDoctor]  # oldest first
    next: Cursor | None  # the holds after these (None when these are the last)
    previous: Cursor | None


def portal_holds_page(
    *, user: Any, scope: PortalScope | None = None, cursor: Cursor | None = None, size: int = HOLDS_PAGE_SIZE
) -> HoldsPage:
    """What waits for ``user`` now among their portal orders (``PortalScope``), oldest first (the
    longest waiting first), a page of ``size`` at a time, with what each needs: holds (a document or
    an override answers them), and reviews only in the territories the user reviews (a review waits
    for a reviewer, not for the doctor who ordered). A constant number of queries for any number of
    holds. Raises InvalidCursor for a cursor of another listing."""
    scope = scope or portal_scope(user=user)
    (held,) = waiting_for_person(("hold",))
    (in_review,) = waiting_for_person(("needs_review",))
    arms = scope.arms(held) + (scope.arms(in_review, within=scope.reviewing) if scope.reviewing else [])
    page = keyset_page_merged(
        arms,
        rows=Order.objects.select_related("patient").order_by(*OLDEST_FIRST),
        size=size,
        cursor=cursor,
    )
    results = latest_results(page.rows)
    shown = findings_shown(page.rows, results)
    holds = [HoldForDoctor(order=order, findings=shown[order.pk]) for order in page.rows]
    return HoldsPage(holds=holds, next=page.next, previous=page.previous)


def portal_holds(*, user: Any) -> list[HoldForDoctor]:
    """The first page of ``portal_holds_page``: the ``HOLDS_PAGE_SIZE`` holds waiting longest."""
    return portal_holds_page(user=user).holds


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
    started. At most ``limit`` patients, from the newest ``limit * 4`` orders and drafts (bounded
    queries, each read along an index), and only patients whose record the user may read
    (``patients_for_user``).
    """
    window = limit * 4
    territory_ids = tuple(sorted(territory_ids_for_user(user=user)))
    owners = [Q(created_by=user)] + [
        Q(provider_id=pk) for pk in Provider.objects.filter(user=user).values_list("pk", flat=True)
    ]
    # One arm per owner, territory and status, each read along its index in order and stopped at the
    # window: "created by or for the user", newest first, over the whole table would read it in date
    # order until enough of the user's turned up (all of it for a doctor with few orders).
    arms = [
        Order.objects.filter(owner, territory_id=territory_id, status=status)
        for owner in owners
        for territory_id in territory_ids
        for status in OrderStatus.values
    ]
    order_rows = (
        merged_values(arms, ordering=NEWEST_FIRST, fields=("patient_id", "created_at"), limit=window)
        if territory_ids
        else []
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


WORK_ORDERS_FIRST = ("eligible_on", "id")


def work_orders_for_user(*, user: Any, state: str | None = None, territory_key: str | None = None) -> MergedListing:
    """The patient work orders of the user's territories (``territory_key``, id or code: only that
    one, else TerritoryMismatch), soonest eligible first, optionally in one ``state``: one arm per
    territory, each read in order through the territory index."""
    territories = territory_ids_for_user(user=user)
    if territory_key:
        territory = territory_lookup(key=territory_key)
        if territory is None or territory.pk not in territories:
            raise TerritoryMismatch(details={"territory_id": territory_key[:64]})
        territories = {territory.pk}
    arms = PatientWorkOrder.objects.filter(state=state) if state else PatientWorkOrder.objects.all()
    return MergedListing(
        arms=tuple(arms.filter(territory_id=territory_id) for territory_id in sorted(territories)),
        rows=PatientWorkOrder.objects.order_by(*WORK_ORDERS_FIRST),
    )
