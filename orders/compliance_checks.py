"""Building the compliance engine's input from an order or an unsaved draft, and applying its result.

The engine (``compliance.engine``) evaluates plain facts; this module is where an order's world —
its patient's coverage, prior authorizations on file, supply history (earlier delivered orders and
the open orders still on their way),
the provider's credentials, the order's attachments and stock — becomes those facts. A draft
(the inline check) goes through the same builder as a saved order, so the portal's live answer
and the decision at submission never differ for the same inputs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from catalog.models import Product
from catalog.selectors import available_quantities, expected_restock_dates, products_by_sku
from compliance.engine import ComplianceResult, SupplyStatus, supply_history_codes, supply_status
from compliance.inputs import (
    AttachedArtifact,
    ComplianceInput,
    Delivery,
    ItemFacts,
    OpenOrder,
    OpenOrderLine,
    PatientFacts,
    PriorAuthorizationFacts,
    ProviderFacts,
)
from compliance.models import ComplianceSnapshot
from compliance.selectors import payer_rules_in_force
from compliance.services import compliance_evaluate_and_record
from core.exceptions import ValidationFailed
from patients.exceptions import PatientProviderMismatch
from patients.models import Coverage, Patient, PayerType, PriorAuthorizationDecision, Provider
from patients.selectors import (
    active_coverage,
    patients_for_user,
    prior_authorizations_of,
    provider_credentialed,
    providers_for_user,
)

from .models import (
    NON_TERMINAL_STATUSES,
    STAGE_OF_STATUS,
    ActorKind,
    EventKind,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
)
from .timeline import new_event, record_event


@dataclass(frozen=True)
class DraftItem:
    """A draft line: a catalog product by ``sku``, or an item outside the catalog by ``hcpcs`` code."""

    sku: str | None = None
    hcpcs: str | None = None
    quantity: int | None = None


@dataclass(frozen=True)
class Draft:
    """An order as filled in so far; every field may still be missing."""

    items: Sequence[DraftItem] = ()
    patient_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None
    provider_npi: str | None = None
    payer_type: str | None = None
    coverage_tier: str | None = None
    order_date: dt.date | None = None
    requested_date: dt.date | None = None
    f2f_date: dt.date | None = None
    diagnosis_codes: Sequence[str] = ()
    artifacts: Sequence[AttachedArtifact] = ()
    signed: bool = False


def _order_fields(order: Order) -> dict[str, Any]:
    """What the checks read from the order row itself, saved or not."""
    return {
        "territory_id": order.territory_id,
        "patient": order.patient,
        "provider": order.provider,
        "payer_type": order.payer_type,
        "coverage_tier": None,
        "order_date": order.order_date,
        "requested_date": order.requested_date,
        "f2f_date": order.f2f_date,
        "diagnosis_codes": order.diagnosis_codes or [],
        "signed_on": timezone.localdate(order.signed_at) if order.signed_at else None,
    }


def facts_for_order(order: Order) -> ComplianceInput:
    """The engine's input for a saved order, read fresh from the database."""
    items = list(order.items.select_related("product__vendor").order_by("sku"))
    restock = expected_restock_dates(product_ids={item.product_id for item in items if item.has_inventory_flag})
    return _facts(
        **_order_fields(order),
        artifacts=[
            AttachedArtifact(attachment.artifact_type, attachment.document_date, tuple(attachment.hcpcs_codes or ()))
            for attachment in order.attachments.all()
        ],
        items=[_line_facts(index, item, restock) for index, item in enumerate(items)],
        order=order,
        delivered_on=order_delivered_on(order),
    )


def facts_for_new_order(
    *,
    order: Order,
    lines: Sequence[OrderItem],
    artifacts: Sequence[AttachedArtifact],
    coverage: Coverage | None,
) -> ComplianceInput:
    """The engine's input for an order being created, from the objects in hand: the same facts
    ``facts_for_order`` reads back once it is saved (lines in SKU order, the attachments in the order
    they are stored), without reading back what this transaction is about to write.

    ``order`` and ``lines`` need not be saved yet (the lines' stock status set); ``coverage`` is the
    patient's coverage in force on the order date, already read (``active_coverage``).
    """
    ordered = sorted(lines, key=lambda line: line.sku)
    restock = expected_restock_dates(product_ids={line.product_id for line in ordered if line.has_inventory_flag})
    return _facts(
        **_order_fields(order),
        artifacts=artifacts,
        items=[_line_facts(index, line, restock) for index, line in enumerate(ordered)],
        order=None,  # not saved: every open order of the patient was placed before it
        coverage=coverage,
    )


def order_delivered_on(order: Order) -> dt.date | None:
    """The day the order was delivered: its completion (delivery confirmed), the same record the
    supply history reads (``patient_supply_facts``); None while it is not delivered."""
    if order.status != OrderStatus.COMPLETED or order.completed_at is None:
        return None
    return timezone.localdate(order.completed_at)


def facts_for_draft(*, actor: Any, draft: Draft, territory_id: Any = None) -> ComplianceInput:
    """The engine's input for a draft nobody has saved.

    The patient and provider must be ones the actor can see (else the same errors as creating
    the order: ValidationFailed for the provider, PatientProviderMismatch for the patient);
    unknown SKUs are a ValidationFailed naming the line.
    """
    provider = None
    if draft.provider_id is not None or draft.provider_npi:
        providers = providers_for_user(user=actor).filter(active=True)
        if draft.provider_id is not None:
            provider = providers.filter(pk=draft.provider_id).first()
            if provider is None:
                raise ValidationFailed(details={"provider_id": ["Unknown provider."]})
        else:
            provider = providers.filter(npi=draft.provider_npi).first()
            if provider is None:
                raise ValidationFailed(details={"provider_npi": ["No provider with this NPI in your territories."]})
    patient = None
    if draft.patient_id is not None:
        patient = patients_for_user(user=actor).filter(pk=draft.patient_id).first()
        if patient is None or (provider is not None and patient.territory_id != provider.territory_id):
            raise PatientProviderMismatch()
    territory_id = territory_id or (provider.territory_id if provider else patient.territory_id if patient else None)
    products = products_by_sku(skus=[item.sku for item in draft.items if item.sku])
    unknown = {
        str(index): {"sku": ["Unknown or inactive product."]}
        for index, item in enumerate(draft.items)
        if item.sku and item.sku not in products
    }
    if unknown:
        raise ValidationFailed(details={"items": unknown})
    available = available_quantities(product_ids=[p.pk for p in products.values()])
    restock = expected_restock_dates(
        product_ids={
            product.pk
            for item in draft.items
            if (product := products.get(item.sku or "")) is not None
            and product.warehouse_fulfillment
            and available.get(product.pk, 0) < (item.quantity or 0)
        }
    )
    items = []
    for index, item in enumerate(draft.items):
        product = products.get(item.sku or "")
        if product is None:
            items.append(
                ItemFacts(
                    key=str(index),
                    hcpcs=item.hcpcs,
                    description=f"HCPCS {item.hcpcs}" if item.hcpcs else None,
                    quantity=item.quantity,
                )
            )
            continue
        short = product.warehouse_fulfillment and available.get(product.pk, 0) < (item.quantity or 0)
        items.append(
            _product_facts(
                index,
                product,
                quantity=item.quantity,
                stock_short=short,
                stock_available=available.get(product.pk, 0) if short else None,
                expected_restock=restock.get(product.pk) if short else None,
            )
        )
    order_date = draft.order_date or timezone.localdate()
    return _facts(
        territory_id=territory_id,
        patient=patient,
        provider=provider,
        payer_type=draft.payer_type,
        coverage_tier=draft.coverage_tier,
        order_date=order_date,  # an order created now is dated today
        requested_date=draft.requested_date,
        f2f_date=draft.f2f_date,
        diagnosis_codes=draft.diagnosis_codes,
        signed_on=order_date if draft.signed else None,
        artifacts=draft.artifacts,
        items=items,
        order=None,
    )


def _line_facts(index: int, item: OrderItem, restock: dict[Any, dt.date]) -> ItemFacts:
    return _product_facts(
        index,
        item.product,
        quantity=item.quantity,
        stock_short=item.has_inventory_flag,
        stock_available=item.stock_available,
        expected_restock=restock.get(item.product_id) if item.has_inventory_flag else None,
    )


def _product_facts(
    index: int,
    product: Product,
    *,
    quantity: int | None,
    stock_short: bool,
    stock_available: int | None,
    expected_restock: dt.date | None,
) -> ItemFacts:
    vendor = product.vendor
    return ItemFacts(
        key=str(index),
        sku=product.sku,
        hcpcs=product.hcpcs_code or None,
        description=product.name,
        quantity=quantity,
        rxnorm_code=product.rxnorm_code or None,
        dropship_allowed=product.dropship_fulfillment and vendor is not None and vendor.active,
        stock_short=stock_short,
        stock_available=stock_available,
        expected_restock=expected_restock,
        recurring=product.recurring,
        days_of_supply=product.days_of_supply,
    )


# ``_facts`` reads the coverage itself unless the caller already has it (None included).
_UNREAD: Any = object()


def _facts(
    *,
    territory_id: Any,
    patient: Patient | None,
    provider: Provider | None,
    payer_type: str | None,
    coverage_tier: str | None,
    order_date: dt.date | None,
    requested_date: dt.date | None,
    f2f_date: dt.date | None,
    diagnosis_codes: Sequence[str],
    signed_on: dt.date | None,
    artifacts: Sequence[AttachedArtifact],
    items: list[ItemFacts],
    order: Order | None,
    delivered_on: dt.date | None = None,
    coverage: Any = _UNREAD,
) -> ComplianceInput:
    on = order_date or timezone.localdate()
    if coverage is _UNREAD:
        coverage = active_coverage(patient=patient, on=on) if patient is not None else None
    if payer_type is None and coverage is not None:
        payer_type = coverage.payer_type
    payer_rules: tuple[Any, ...] = ()
    if coverage is not None and payer_type == PayerType.INSURANCE:
        payer_rules = payer_rules_in_force(
            payer_name=coverage.payer_name or "",
            plan_name=coverage.plan_name or "",
            hcpcs_codes=[item.hcpcs for item in items if item.hcpcs],
            on=on,
        )
    facts = ComplianceInput(
        order_date=order_date,
        requested_date=requested_date,
        payer_type=payer_type,
        coverage_tier=coverage_tier if coverage_tier is not None else (coverage.coverage_tier if coverage else None),
        payer_kind=(coverage.payer_kind or None)
        if coverage is not None and coverage.payer_type == PayerType.INSURANCE
        else None,
        patient=_patient_facts(patient, territory_id),
        provider=_provider_facts(provider, territory_id, on),
        items=tuple(items),
        diagnosis_codes=tuple(diagnosis_codes),
        f2f_date=f2f_date,
        signed_on=signed_on,
        artifacts=tuple(artifacts),
        prior_authorizations=tuple(
            PriorAuthorizationFacts(
                hcpcs=pa.hcpcs_code,
                affirmed=pa.decision == PriorAuthorizationDecision.AFFIRMED,
                decision_date=pa.decision_date,
                expires_on=pa.expires_on,
            )
            for pa in (prior_authorizations_of(patient=patient) if patient is not None else [])
        ),
        payer_rules=payer_rules,
        delivered_on=delivered_on,
    )
    if patient is None:
        return facts
    # Only the deliveries the checks can read (the engine says which codes), however long the history.
    supply = patient_supply_facts(patient=patient, order=order, delivered_codes=supply_history_codes(facts))
    return dataclasses.replace(facts, supply_history=supply.deliveries, open_orders=supply.open_orders)


def _patient_facts(patient: Patient | None, territory_id: Any) -> PatientFacts:
    if patient is None:
        return PatientFacts()
    return PatientFacts(
        known=True,
        has_name=bool((patient.first_name or "").strip() and (patient.last_name or "").strip()),
        has_mbi=bool(patient.mbi),
        in_territory=patient.territory_id == territory_id,
        state=patient_state(patient),
        sex=patient.sex or None,
        allergies=patient_allergies(patient),
        medications=patient_medications(patient),
        conditions=tuple(patient.conditions or ()),
    )


def patient_medications(patient: Patient | None) -> tuple[str, ...]:
    """The patient's current medications as recorded (free text; the engine recognises them
    through its medication names table). Used for the medication safety checks and for insulin
    treatment in the usual maximums (LCD L33822), so the checks, the wizard and the patient card
    read the same list."""
    return _recorded_texts(patient.medications) if patient is not None else ()


def patient_state(patient: Patient) -> str | None:
    """The state of the patient's address (a prior-authorization phase may cover some states only)."""
    return (patient.address or {}).get("state") or None


def patient_allergies(patient: Patient | None) -> tuple[str, ...]:
    """The patient's drug allergies as recorded (free text), as the medication safety check and the
    patient card read them."""
    return _recorded_texts(patient.allergies) if patient is not None else ()


def _recorded_texts(entries: Any) -> tuple[str, ...]:
    """A recorded list (strings, as the intake validates them) without its blank entries."""
    return tuple(entry for entry in entries or () if isinstance(entry, str) and entry.strip())


def _provider_facts(provider: Provider | None, territory_id: Any, on: dt.date) -> ProviderFacts:
    if provider is None:
        return ProviderFacts()
    return ProviderFacts(
        known=True,
        name=provider.name,
        npi=provider.npi,
        credentialed_in_territory=territory_id is not None
        and provider_credentialed(provider=provider, territory_id=territory_id, on=on),
    )


OPEN_STATUSES: tuple[str, ...] = tuple(NON_TERMINAL_STATUSES)  # pending_verification up to shipped


@dataclass(frozen=True)
class SupplyFacts:
    """What the patient has had and has on its way: deliveries (by HCPCS code) and open orders."""

    deliveries: tuple[Delivery, ...]
    open_orders: tuple[OpenOrder, ...]


def patient_supply_facts(
    *, patient: Patient, order: Order | None = None, delivered_codes: Collection[str] | None = None
) -> SupplyFacts:
    """The patient's supply history and open orders, in one query whatever the number of lines.

    Deliveries: lines of the patient's completed orders (delivery confirmed) with a HCPCS code, with
    their product's ``recurring`` flag and ``days_of_supply``; only those of ``delivered_codes`` when
    given (an order's checks read no others: ``compliance.engine.supply_history_codes``), every code
    otherwise (the patient card).
    Open orders: the patient's orders in ``OPEN_STATUSES`` (not yet delivered, cancelled or
    rejected), oldest first, each with all its lines. For a saved ``order`` the order itself is left
    out and only orders placed before it are open orders: of two identical orders the one placed
    first stands and the later one is the duplicate, so re-checking the first (at approval) does not
    flag it because of the second. This is the one builder behind submission, approval, the API's
    inline check, the wizard and the patient card.
    """
    lines = OrderItem.objects.filter(order__patient=patient)
    delivered = Q(order__status=OrderStatus.COMPLETED)
    if delivered_codes is not None:
        delivered &= Q(product__hcpcs_code__in=sorted(delivered_codes))
    if order is None:
        lines = lines.filter(delivered | Q(order__status__in=OPEN_STATUSES))
    else:
        lines = lines.exclude(order_id=order.pk).filter(
            delivered | Q(order__status__in=OPEN_STATUSES, order__created_at__lt=order.created_at)
        )
    rows = lines.order_by("order__created_at", "order_id", "sku").values_list(
        "order_id",
        "order__reference",
        "order__status",
        "order__requested_date",
        "order__order_date",
        "order__completed_at",
        "sku",
        "product__hcpcs_code",
        "quantity",
        "product__recurring",
        "product__days_of_supply",
    )
    deliveries: list[Delivery] = []
    open_orders: dict[Any, tuple[str, str, dt.date, list[OpenOrderLine]]] = {}
    for order_id, reference, status, requested, ordered_on, completed_at, sku, hcpcs, quantity, recurring, days in rows:
        if status == OrderStatus.COMPLETED:
            if hcpcs and completed_at is not None:
                deliveries.append(
                    Delivery(
                        hcpcs=hcpcs,
                        quantity=quantity,
                        delivered_on=timezone.localdate(completed_at),
                        recurring=recurring,
                        days_of_supply=days,
                    )
                )
            continue
        stage = STAGE_OF_STATUS[status]
        entry = open_orders.setdefault(
            order_id, (reference, stage.label if stage else status, requested or ordered_on, [])
        )
        entry[3].append(OpenOrderLine(quantity=quantity, sku=sku, hcpcs=hcpcs or None))
    return SupplyFacts(
        deliveries=tuple(deliveries),
        open_orders=tuple(
            OpenOrder(reference=reference, stage=stage, expected_on=expected_on, lines=tuple(order_lines))
            for reference, stage, expected_on, order_lines in open_orders.values()
        ),
    )


def patient_supply_status(
    *,
    patient: Patient,
    on: dt.date,
    diagnosis_codes: Sequence[str] | None = None,
    supply: SupplyFacts | None = None,
) -> list[SupplyStatus]:
    """What the patient has been delivered and when each supply may next be refilled (the same
    rules as an order's checks, open orders included; insulin treatment read from
    ``diagnosis_codes``, else from the newest order's diagnoses, and from the patient's medications).
    ``supply``: the patient's
    ``patient_supply_facts`` when already read."""
    if diagnosis_codes is None:
        latest = Order.objects.filter(patient=patient).order_by("-created_at").only("diagnosis_codes").first()
        diagnosis_codes = (latest.diagnosis_codes or []) if latest is not None else []
    supply = supply if supply is not None else patient_supply_facts(patient=patient)
    return supply_status(
        supply.deliveries,
        on=on,
        diagnosis_codes=diagnosis_codes,
        medications=patient_medications(patient),
        open_orders=supply.open_orders,
    )


def order_check_compliance(
    *,
    order: Order,
    actor: Any,
    kind: str,
    resolve: Callable[[ComplianceResult], dict[str, Any] | None] | None = None,
) -> ComplianceResult:
    """Evaluate the (locked) order, freeze the snapshot, set its disposition and note it on the timeline.

    ``resolve``: a person's decision on the result, frozen in the snapshot (see
    ``compliance_evaluate_and_record``). Call inside the transaction that holds the order's lock.
    Does not change the order's status.
    """
    facts = facts_for_order(order)
    result, snapshot = compliance_evaluate_and_record(
        order_id=order.pk, territory_id=order.territory_id, kind=kind, facts=facts, actor=actor, resolve=resolve
    )
    # The decision's audit record is the snapshot and the timeline event; the column is its summary
    # for lists and filters, so it is set without another history row.
    order.ai_disposition = str(result.disposition)
    Order.objects.filter(pk=order.pk).update(ai_disposition=order.ai_disposition)
    record_event(
        order=order,
        kind=EventKind.COMPLIANCE,
        actor=None,
        actor_kind=ActorKind.AI,
        from_status=order.status,
        to_status=order.status,
        payload=_compliance_payload(result=result, snapshot=snapshot, kind=kind),
    )
    return result


def compliance_event(
    *, order: Order, result: ComplianceResult, snapshot: ComplianceSnapshot, kind: str, sequence: int, status: str
) -> OrderEvent:
    """The (unsaved) timeline entry of a check of ``order`` in ``status`` at ``sequence``, as
    ``order_check_compliance`` writes it."""
    return new_event(
        order=order,
        sequence=sequence,
        kind=EventKind.COMPLIANCE,
        actor=None,
        actor_kind=ActorKind.AI,
        from_status=status,
        to_status=status,
        payload=_compliance_payload(result=result, snapshot=snapshot, kind=kind),
    )


def _compliance_payload(*, result: ComplianceResult, snapshot: ComplianceSnapshot, kind: str) -> dict[str, Any]:
    return {
        "snapshot_id": str(snapshot.pk),
        "check": kind,
        "disposition": str(result.disposition),
        "findings": [
            {"code": f.code, "severity": str(f.severity), "message": f.message, "item": f.item} for f in result.findings
        ],
    }


def hold_reason(result: ComplianceResult) -> str:
    """A short reason naming the finding codes (no PHI: codes and HCPCS only)."""
    codes = sorted({f.code for f in result.findings if f.severity != "info"})
    return "Compliance: " + ", ".join(codes) if codes else "Compliance"
