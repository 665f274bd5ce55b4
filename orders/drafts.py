"""The portal's order wizard: a draft saved after every step, checked like an order, submitted as one.

A draft belongs to the person who started it; nobody else sees it. Its answers are PHI and
encrypted with the patient's territory. The inline check builds the same compliance input as an
order (``compliance_checks.facts_for_draft``) and submission goes through ``order_create``, the
service behind ``POST /api/portal/orders``, so the wizard never applies a rule of its own.

Answers (``OrderDraft.answers``): provider_id, payer_type, diagnosis_codes, f2f_date, notes,
therapy (the catalog's filter), skus (in the order chosen), quantities {sku: n}, prescriptions
{sku: {dosage_text, dose_frequency, dose_period, dose_period_unit, days_supply, refills}} for
medications, delivery {mode, window, requested_date, address},
and reorder_of (the reference of the order a reorder was copied from).
Dates are ISO strings.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Product, TherapyType
from catalog.selectors import available_quantities, products_by_sku
from compliance.engine import ComplianceResult, evaluate
from compliance.inputs import AttachedArtifact
from core.exceptions import NotFound, PermissionDenied, ValidationFailed
from patients.exceptions import PatientNotFound
from patients.models import Patient, PayerType, Provider
from patients.selectors import patients_for_user, providers_for_user
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .compliance_checks import Draft, DraftItem, facts_for_draft
from .exceptions import OrderNotFound
from .models import DeliveryMode, DeliveryWindow, DraftDocument, DraftStep, Order, OrderDraft, OrderItem, Source
from .routing import RoutingRule, expected_path
from .selectors import _as_uuid, order_get_for_user
from .services import (
    DocumentUpload,
    ItemRequest,
    document_check,
    normalize_hcpcs_codes,
    order_create,
    payer_coverage_check,
    payer_type_default,
)

STEPS: tuple[DraftStep, ...] = tuple(DraftStep)


class DraftNotFound(NotFound):
    code = "DRAFT_NOT_FOUND"
    default_message = "No such draft among yours."


def step_after(step: str) -> DraftStep:
    index = STEPS.index(DraftStep(step))
    return STEPS[min(index + 1, len(STEPS) - 1)]


def step_before(step: str) -> DraftStep:
    return STEPS[max(STEPS.index(DraftStep(step)) - 1, 0)]


# --- reading ------------------------------------------------------------------------------------


def drafts_open(*, actor: Any) -> QuerySet[OrderDraft]:
    """The actor's drafts not yet submitted, most recently touched first."""
    return OrderDraft.objects.filter(created_by=actor, order__isnull=True).select_related("patient")


def draft_get(*, actor: Any, pk: Any) -> OrderDraft:
    """The actor's own open draft ``pk``; DraftNotFound for anyone else's, a submitted one or a bad id."""
    draft_id = _as_uuid(pk)
    draft = drafts_open(actor=actor).filter(pk=draft_id).first() if draft_id else None
    if draft is None or not _may_order(actor, draft.territory_id):
        raise DraftNotFound()
    return draft


def draft_providers(*, actor: Any, draft: OrderDraft) -> list[Provider]:
    """Who may be the ordering provider: the actor's own provider record when they are a
    practitioner of the draft's territory, else the territory's active providers."""
    providers = providers_for_user(user=actor).filter(territory_id=draft.territory_id, active=True)
    own = [p for p in providers if p.user_id == actor.pk]
    return own or list(providers.order_by("name"))


def draft_default_payer(*, draft: OrderDraft, on: dt.date) -> str:
    """The payer type of the patient's coverage in force, cash pay without one (``payer_type_default``)."""
    return payer_type_default(patient=draft.patient, on=on)


def draft_check_payer(*, draft: OrderDraft, payer_type: str, on: dt.date) -> None:
    """CoverageMissing when ``payer_type`` is insurance and the patient has no insurance coverage in
    force: the same refusal ``order_create`` gives at submission, told at the step that chose it."""
    payer_coverage_check(patient=draft.patient, payer_type=payer_type, on=on)


def draft_products(draft: OrderDraft) -> list[Product]:
    """The chosen products, in the order chosen (unknown or retired SKUs left out)."""
    skus = list(draft.answers.get("skus", []))
    found = products_by_sku(skus=skus)
    return [found[sku] for sku in skus if sku in found]


def draft_catalog(draft: OrderDraft) -> list[Product]:
    """The active products that fit the draft's payer: an insurance order offers what insurance is
    billed for (``Product.insurance_billable``: a HCPCS code, not the cash-pay tier); a cash order
    offers everything. Ordered by therapy, coverage tier and name."""
    products = (
        Product.objects.select_related("vendor").filter(active=True).order_by("therapy_type", "coverage_tier", "name")
    )
    if draft.answers.get("payer_type") == PayerType.INSURANCE:
        return [product for product in products if product.insurance_billable]
    return list(products)


def draft_default_therapy(draft: OrderDraft) -> str:
    """The catalog's therapy filter: as last chosen on the draft, else the therapy of the patient's
    latest order (a CPAP patient's resupply starts at CPAP), else every therapy (``""``)."""
    if "therapy" in draft.answers:
        return str(draft.answers["therapy"] or "")
    latest = (
        OrderItem.objects.filter(order__patient_id=draft.patient_id, order__territory_id=draft.territory_id)
        .select_related("product")
        .order_by("-order__created_at")
        .first()
    )
    return latest.product.therapy_type if latest is not None and latest.product is not None else ""


def catalog_search(products: list[Product], *, therapy: str, query: str, favourites: set[Any]) -> list[Product]:
    """``products`` of the therapy (all for ``""``) whose name, SKU, HCPCS code or therapy contains
    every word of ``query`` (any case); the user's ``favourites`` (product ids) first."""
    labels = dict(TherapyType.choices)
    words = query.lower().split()

    def matches(product: Product) -> bool:
        text = " ".join(
            [product.name, product.sku, product.hcpcs_code, labels.get(product.therapy_type, product.therapy_type)]
        ).lower()
        return all(word in text for word in words)

    found = [p for p in products if (not therapy or p.therapy_type == therapy) and matches(p)]
    return sorted(found, key=lambda product: product.pk not in favourites)  # stable: keeps the catalog order


# What a medication line needs before it can be submitted (the pharmacy's prescription): the
# MedicationRequest's dosage instruction (text and timing), days' supply and refills allowed.
PRESCRIPTION_DETAILS = ("dosage_text", "dose_frequency", "dose_period", "dose_period_unit", "days_supply", "refills")


def draft_prescription(draft: OrderDraft, sku: str) -> dict[str, Any]:
    """The prescription details given for the medication ``sku`` (``answers["prescriptions"]``)."""
    return dict((draft.answers.get("prescriptions") or {}).get(sku) or {})


def draft_prescriptions_missing(draft: OrderDraft) -> list[Product]:
    """The chosen medications whose prescription details are not all given (refills may be 0)."""
    return [
        product
        for product in draft_products(draft)
        if product.is_medication
        and any(draft_prescription(draft, product.sku).get(name) in (None, "") for name in PRESCRIPTION_DETAILS)
    ]


def draft_provider(*, actor: Any, draft: OrderDraft) -> Provider | None:
    """The ordering provider chosen, while it may still be chosen (``draft_providers``); a provider
    retired or moved since counts as not chosen."""
    chosen = draft.answers.get("provider_id")
    return next((p for p in draft_providers(actor=actor, draft=draft) if str(p.pk) == chosen), None)


def draft_can_sign(*, actor: Any, draft: OrderDraft) -> bool:
    """Only the ordering provider's own account signs the written order."""
    provider = draft_provider(actor=actor, draft=draft)
    return provider is not None and provider.user_id == actor.pk


def _compliance_draft(draft: OrderDraft, *, provider_id: uuid.UUID | None, signed: bool) -> Draft:
    answers = draft.answers
    quantities = answers.get("quantities", {})
    delivery = answers.get("delivery", {})
    return Draft(
        items=[DraftItem(sku=p.sku, quantity=quantities.get(p.sku)) for p in draft_products(draft)],
        patient_id=draft.patient_id,
        provider_id=provider_id,
        payer_type=answers.get("payer_type"),
        requested_date=_date(delivery.get("requested_date")),
        f2f_date=_date(answers.get("f2f_date")),
        diagnosis_codes=answers.get("diagnosis_codes", []),
        artifacts=[
            AttachedArtifact(d.artifact_type, d.document_date, tuple(d.hcpcs_codes or ()))
            for d in draft.documents.all()
        ],
        signed=signed,
    )


def draft_compliance(*, actor: Any, draft: OrderDraft, signed: bool = False) -> ComplianceResult:
    """The checks' answer for the draft as it stands (``signed``: as if the provider signed it now)."""
    provider = draft_provider(actor=actor, draft=draft)
    facts = facts_for_draft(
        actor=actor,
        draft=_compliance_draft(draft, provider_id=provider.pk if provider else None, signed=signed),
        territory_id=draft.territory_id,
    )
    return evaluate(facts)


@dataclass(frozen=True)
class ExpectedPath:
    product: Product
    quantity: int
    rule: RoutingRule | None

    @property
    def total_cents(self) -> int:
        return self.product.price_cents * self.quantity


def draft_expected_paths(draft: OrderDraft) -> list[ExpectedPath]:
    """How each line would be fulfilled if submitted now (``routing.expected_path``)."""
    products = draft_products(draft)
    quantities = draft.answers.get("quantities", {})
    available = available_quantities(product_ids=[p.pk for p in products])
    return [
        ExpectedPath(
            product,
            int(quantities.get(product.sku) or 1),
            expected_path(
                territory=draft.territory,
                product=product,
                quantity=int(quantities.get(product.sku) or 1),
                available=available.get(product.pk, 0),
            ),
        )
        for product in products
    ]


# --- writing ------------------------------------------------------------------------------------


def _may_order(actor: Any, territory_id: Any) -> bool:
    return territory_permits(user=actor, permission=TerritoryPermission.CREATE_ORDER, territory_id=territory_id)


def draft_patient(*, actor: Any, patient_id: Any) -> Patient:
    """The patient an order may be started for: one whose record the actor may read
    (PatientNotFound otherwise, also for a malformed id) in a territory where they may place orders
    (PermissionDenied). Reads only; ``draft_start`` creates the draft."""
    pk = _as_uuid(patient_id)
    patient = patients_for_user(user=actor).filter(pk=pk).first() if pk else None
    if patient is None:
        raise PatientNotFound()
    if not _may_order(actor, patient.territory_id):
        raise PermissionDenied("You may not place orders in this patient's territory.")
    return patient


def draft_start(*, actor: Any, patient_id: Any) -> OrderDraft:
    """The actor's open draft for the patient, or a new one, which starts with the ordering
    provider (the actor's own provider record, else the patient's provider) and the payer type
    (``draft_default_payer``) filled in.

    The patient must be one whose record the actor may read (PatientNotFound otherwise, also for a
    malformed id) in a territory where they may place orders (PermissionDenied).
    """
    patient = draft_patient(actor=actor, patient_id=patient_id)
    existing = drafts_open(actor=actor).filter(patient=patient).first()
    if existing is not None:
        return existing
    draft = OrderDraft(territory_id=patient.territory_id, patient=patient, created_by=actor, answers={})
    providers = draft_providers(actor=actor, draft=draft)
    provider = next((p for p in providers if p.pk == patient.provider_id), providers[0] if providers else None)
    draft.answers = {
        "provider_id": str(provider.pk) if provider else None,
        "payer_type": draft_default_payer(draft=draft, on=timezone.localdate()),
    }
    draft.save()
    return draft


def draft_reorder(*, actor: Any, order_id: Any) -> OrderDraft:
    """A new draft for the patient of an earlier order, prefilled from it: the ordering provider (while
    the actor may still choose them, else as ``draft_start``), the payer type, the diagnoses, the
    items and quantities (products no longer sold are left out), each medication's prescription
    details (sig, timing, days' supply, refills) and the delivery (mode, window and
    address; not the requested date, which has passed). The draft starts at the patient step and
    goes through the same checks as any other (so an identical order still open is a
    ``DUPLICATE_ORDER`` finding).

    The order must be one the actor sees (OrderNotFound otherwise, also for a malformed id), of a
    patient whose record they may read (OrderNotFound), in a territory where they may place orders
    (PermissionDenied). Writes nothing else.
    """
    order = order_get_for_user(user=actor, pk=order_id)
    if not patients_for_user(user=actor).filter(pk=order.patient_id).exists():
        raise OrderNotFound()
    if not _may_order(actor, order.territory_id):
        raise PermissionDenied("You may not place orders in this patient's territory.")
    lines = list(order.items.all())
    active = products_by_sku(skus=[line.sku for line in lines])
    quantities = {line.sku: line.quantity for line in lines if line.sku in active}
    draft = OrderDraft(territory_id=order.territory_id, patient_id=order.patient_id, created_by=actor, answers={})
    providers = draft_providers(actor=actor, draft=draft)
    provider = next(
        (p for p in providers if p.pk == order.provider_id),
        next((p for p in providers if p.pk == order.patient.provider_id), providers[0] if providers else None),
    )
    draft.answers = {
        "provider_id": str(provider.pk) if provider else None,
        "payer_type": order.payer_type,
        "diagnosis_codes": list(order.diagnosis_codes or []),
        "skus": list(quantities),
        "quantities": quantities,
        "prescriptions": {
            line.sku: {name: getattr(line, name) for name in PRESCRIPTION_DETAILS}
            for line in lines
            if line.sku in active and active[line.sku].is_medication
        },
        "delivery": {
            "mode": order.delivery_mode,
            "window": order.delivery_window,
            "requested_date": None,
            "address": order.delivery_address or None,
        },
        "reorder_of": order.reference,
    }
    draft.save()
    return draft


def draft_save(*, draft: OrderDraft, answers: dict[str, Any], step: str | None = None) -> OrderDraft:
    """Merge ``answers`` into the draft and, with ``step``, remember it as the step to come back to.

    Choosing products keeps the quantities (and medications' prescription details) of those still
    chosen, starts new ones at 1 and drops the others.
    """
    merged = {**(draft.answers or {}), **answers}
    if "skus" in answers:
        quantities = merged.get("quantities", {})
        merged["quantities"] = {sku: quantities.get(sku, 1) for sku in answers["skus"]}
        prescriptions = merged.get("prescriptions") or {}
        merged["prescriptions"] = {sku: prescriptions[sku] for sku in answers["skus"] if sku in prescriptions}
    draft.answers = merged
    if step is not None:
        draft.step = step
    draft.save()
    return draft


def draft_hcpcs_codes(draft: OrderDraft) -> list[str]:
    """The HCPCS codes of the draft's chosen products, sorted, each once: what a prior authorization
    document may name."""
    return sorted({product.hcpcs_code for product in draft_products(draft) if product.hcpcs_code})


def draft_add_document(
    *,
    draft: OrderDraft,
    artifact_type: str,
    file: Any,
    document_date: dt.date | None,
    hcpcs_codes: Sequence[str] = (),
) -> DraftDocument:
    """Keep an uploaded document with the draft (checked as ``services.document_check``: a prior
    authorization names the code(s) of the draft's items it is for). ValidationFailed keeps nothing."""
    hcpcs_codes = normalize_hcpcs_codes(hcpcs_codes)
    content_type = document_check(
        artifact_type=artifact_type,
        file=file,
        content_type=file.content_type or "",
        hcpcs_codes=hcpcs_codes,
        order_codes=draft_hcpcs_codes(draft),
    )
    document = DraftDocument(
        draft=draft,
        territory_id=draft.territory_id,
        artifact_type=artifact_type,
        document_date=document_date,
        hcpcs_codes=hcpcs_codes,
        original_name=file.name or "",
        content_type=content_type,
        size=file.size or 0,
    )
    document.file.save(str(document.pk), file, save=False)
    document.save()
    draft.save(update_fields=["updated_at"])
    return document


def draft_remove_document(*, draft: OrderDraft, document_id: Any) -> None:
    """Remove one of the draft's documents and its file; NotFound when the draft has no such document."""
    pk = _as_uuid(document_id)
    document = draft.documents.filter(pk=pk).first() if pk else None
    if document is None:
        raise NotFound("No such document on this draft.")
    _delete_documents([document])


def _delete_documents(documents: list[DraftDocument]) -> None:
    files = [(d.file.storage, d.file.name) for d in documents if d.file.name]
    DraftDocument.objects.filter(pk__in=[d.pk for d in documents]).delete()

    def remove_files() -> None:
        for storage, name in files:
            storage.delete(name)

    transaction.on_commit(remove_files)


def draft_discard(*, draft: OrderDraft) -> None:
    """Delete an open draft and its documents."""
    with transaction.atomic():
        _delete_documents(list(draft.documents.all()))
        draft.delete()


def drafts_purge_stale(*, now: dt.datetime | None = None) -> int:
    """Delete drafts (open or submitted) untouched for ``settings.ORDER_DRAFT_RETENTION_DAYS``,
    with their documents; the number deleted. Unfinished drafts hold PHI nobody is using."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.ORDER_DRAFT_RETENTION_DAYS)
    stale = list(OrderDraft.objects.filter(updated_at__lt=cutoff).prefetch_related("documents"))
    with transaction.atomic():
        _delete_documents([document for draft in stale for document in draft.documents.all()])
        OrderDraft.objects.filter(pk__in=[draft.pk for draft in stale]).delete()
    return len(stale)


def draft_submit(*, actor: Any, draft_id: Any, sign: bool, signature_image: bytes | None) -> Order:
    """Create the order from the draft through ``order_create`` and close the draft; idempotent.

    The draft's documents become the order's attachments before the checks run; ``sign`` with
    ``signature_image`` is the provider's signature (``order_create`` refuses anyone else).
    ValidationFailed names the step to finish when the draft lacks a provider, a payer type or
    items. Submitting a draft a second time (a double click) answers the order already created.
    """
    with transaction.atomic():
        draft_pk = _as_uuid(draft_id)
        draft = (
            OrderDraft.objects.select_for_update().filter(pk=draft_pk, created_by=actor).first() if draft_pk else None
        )
        if draft is None:
            raise DraftNotFound()
        if draft.order_id is not None:
            return draft.order  # type: ignore[return-value]
        answers = draft.answers
        missing: dict[str, list[str]] = {}
        if not answers.get("provider_id") or not answers.get("payer_type"):
            missing[DraftStep.PRESCRIPTION] = ["Choose the ordering provider and how the order is paid."]
        products = draft_products(draft)
        if not products:
            missing[DraftStep.CATALOG] = ["Choose at least one product."]
        unprescribed = draft_prescriptions_missing(draft)
        if unprescribed:
            missing[DraftStep.QUANTITIES] = [
                f"Give the prescription details of {product.name}: sig, dose frequency, days' supply and refills."
                for product in unprescribed
            ]
        if missing:
            raise ValidationFailed("The draft is not complete.", details=missing)
        quantities = answers.get("quantities", {})
        delivery = answers.get("delivery", {})
        documents = list(draft.documents.all())
        for document in documents:
            document.file.open("rb")
        try:
            order = order_create(
                actor=actor,
                patient_id=draft.patient_id,
                provider_id=uuid.UUID(answers["provider_id"]),
                items=[_item_request(draft, product, quantities) for product in products],
                payer_type=answers["payer_type"],
                territory=draft.territory,
                source=Source.PORTAL,
                delivery_mode=delivery.get("mode", DeliveryMode.SHIP_TO_PATIENT),
                delivery_window=delivery.get("window", DeliveryWindow.ANY),
                delivery_address=delivery.get("address") or None,
                requested_date=_date(delivery.get("requested_date")),
                diagnosis_codes=answers.get("diagnosis_codes", []),
                f2f_date=_date(answers.get("f2f_date")),
                notes=answers.get("notes") or None,
                order_date=timezone.localdate(),
                sign=sign,
                signature_image=signature_image,
                documents=[
                    DocumentUpload(
                        artifact_type=d.artifact_type,
                        file=d.file,
                        document_date=d.document_date,
                        original_name=d.original_name or "",
                        content_type=d.content_type,
                        hcpcs_codes=tuple(d.hcpcs_codes or ()),
                    )
                    for d in documents
                ],
            )
        finally:
            for document in documents:
                document.file.close()
        draft.order = order
        draft.step = DraftStep.REVIEW
        draft.save()
        _delete_documents(documents)  # the order holds its own copies now
    return order


def _item_request(draft: OrderDraft, product: Product, quantities: dict[str, Any]) -> ItemRequest:
    """The order line for a chosen product; a medication carries its prescription details."""
    quantity = int(quantities.get(product.sku) or 1)
    if not product.is_medication:
        return ItemRequest(sku=product.sku, quantity=quantity)
    details = draft_prescription(draft, product.sku)
    return ItemRequest(
        sku=product.sku,
        quantity=quantity,
        dosage_text=details["dosage_text"],
        dose_frequency=int(details["dose_frequency"]),
        dose_period=int(details["dose_period"]),
        dose_period_unit=details["dose_period_unit"],
        days_supply=int(details["days_supply"]),
        refills=int(details["refills"]),
    )


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None
