"""The portal's order wizard: one step per screen, saved server-side after every step.

Every step shows the compliance checks' current answer for the draft, each finding beside the
field it concerns and with the documents that would clear it. A field change re-runs the checks
through htmx (``nav=check``: the step is saved and re-drawn in place); without JavaScript the
Continue button does the same. The drafts service (``orders.drafts``) does the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from catalog.selectors import available_quantities, expected_restock_date, product_groups
from compliance.engine import ComplianceResult, usual_maximums
from core.audit import access_record
from core.exceptions import DomainError
from core.models import AccessChannel
from orders import drafts
from orders.compliance_checks import patient_supply_status
from orders.models import DeliveryMode, DeliveryWindow, DraftStep, OrderDraft
from orders.selectors import patient_card
from patients.exceptions import PatientNotFound

from .forms import (
    CatalogForm,
    DeliveryForm,
    DocumentForm,
    PatientConfirmForm,
    PrescriptionForm,
    QuantitiesForm,
    SignForm,
    add_service_errors,
)
from .views import nav_context, portal_view

# Where each finding is fixed: by the order field it names, else by what it concerns.
STEP_OF_FIELD = {
    "patient_id": DraftStep.PATIENT,
    "provider_id": DraftStep.PRESCRIPTION,
    "order_date": DraftStep.PRESCRIPTION,
    "f2f_date": DraftStep.PRESCRIPTION,
    "diagnosis_codes": DraftStep.PRESCRIPTION,
    "items": DraftStep.CATALOG,
    "quantity": DraftStep.QUANTITIES,
    "requested_date": DraftStep.DELIVERY,
    "attachments": DraftStep.DOCUMENTS,
    "signature": DraftStep.REVIEW,
}


@dataclass(frozen=True)
class ShownFinding:
    code: str
    severity: str
    message: str
    required_artifacts: list[str]
    step: DraftStep
    sku: str | None


@dataclass
class Checks:
    """The checks' answer laid out for the page: all findings, and by field and by product."""

    disposition: str
    findings: list[ShownFinding]
    by_field: dict[str, list[ShownFinding]] = field(default_factory=dict)
    by_sku: dict[str, list[ShownFinding]] = field(default_factory=dict)
    artifacts: dict[str, list[ShownFinding]] = field(default_factory=dict)

    @property
    def blocking(self) -> list[ShownFinding]:
        return [f for f in self.findings if f.severity != "info"]


def _checks(result: ComplianceResult, draft: OrderDraft, *, can_sign: bool) -> Checks:
    """``can_sign``: the viewer is the ordering provider, whose signature on the review step
    settles the signature findings (so no document is suggested for those)."""
    skus = [p.sku for p in drafts.draft_products(draft)]  # the lines the checks saw, by position
    checks = Checks(disposition=str(result.disposition), findings=[])
    for finding in result.findings:
        sku = skus[int(finding.item)] if finding.item is not None and int(finding.item) < len(skus) else None
        if finding.field in STEP_OF_FIELD:
            step = STEP_OF_FIELD[finding.field]
        elif finding.required_artifacts:
            step = DraftStep.DOCUMENTS
        elif sku is not None:
            step = DraftStep.QUANTITIES
        else:
            step = DraftStep.REVIEW
        artifacts = [] if can_sign and finding.field == "signature" else list(finding.required_artifacts)
        shown = ShownFinding(finding.code, str(finding.severity), finding.message, artifacts, step, sku)
        checks.findings.append(shown)
        if finding.field:
            checks.by_field.setdefault(finding.field, []).append(shown)
        if sku is not None:
            checks.by_sku.setdefault(sku, []).append(shown)
        for artifact in artifacts:
            checks.artifacts.setdefault(artifact, []).append(shown)
    return checks


def _draft_or_404(request: HttpRequest, pk: Any) -> OrderDraft:
    try:
        draft = drafts.draft_get(actor=request.user, pk=pk)
    except DomainError:
        raise Http404("No such draft.") from None
    access_record(user=request.user, objects=[draft.patient], channel=AccessChannel.PORTAL)
    return draft


@portal_view
def order_new(request: HttpRequest) -> HttpResponse:
    """``/portal/orders/new?patient=<id>``: continue the open draft for the patient or start one.

    Without a patient: the user's drafts to continue, and the way to find a patient.
    """
    patient_id = request.GET.get("patient")
    if patient_id:
        try:
            draft = drafts.draft_start(actor=request.user, patient_id=patient_id)
        except PatientNotFound:
            raise Http404("No such patient.") from None
        except DomainError as error:
            messages.error(request, str(error))
            return redirect("portal:home")
        return redirect("portal:draft_step", pk=draft.pk, step=draft.step)
    open_drafts = list(drafts.drafts_open(actor=request.user)[:20])
    access_record(user=request.user, objects=[d.patient for d in open_drafts], channel=AccessChannel.PORTAL)
    context = {
        **nav_context(request, "new"),
        "drafts": open_drafts,
        "retention_days": settings.ORDER_DRAFT_RETENTION_DAYS,
    }
    return render(request, "portal/drafts.html", context)


@portal_view
def draft_discard(request: HttpRequest, pk: Any) -> HttpResponse:
    if request.method != "POST":
        return redirect("portal:draft_step", pk=pk, step=DraftStep.PATIENT)
    drafts.draft_discard(draft=_draft_or_404(request, pk))
    messages.success(request, "Draft discarded.")
    return redirect("portal:order_new")


class Step:
    """One screen of the wizard: its form, how the form's answers are saved, and its page context."""

    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        raise NotImplementedError

    def answers(self, form: Any) -> dict[str, Any]:
        return {}

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        return {}


class PatientStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        return PatientConfirmForm(data, initial={"confirm": draft.answers.get("patient_confirmed", False)})

    def answers(self, form: Any) -> dict[str, Any]:
        return {"patient_confirmed": True}

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        return {"card": patient_card(user=request.user, pk=draft.patient_id, on=timezone.localdate())}


class PrescriptionStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        providers = drafts.draft_providers(actor=request.user, draft=draft)
        answers = draft.answers
        return PrescriptionForm(
            data,
            providers=providers,
            initial={
                "provider_id": answers.get("provider_id"),  # draft_start chose the default
                "payer_type": answers.get("payer_type")
                or drafts.draft_default_payer(draft=draft, on=timezone.localdate()),
                "diagnosis_codes": ", ".join(answers.get("diagnosis_codes", [])),
                "f2f_date": answers.get("f2f_date"),
                "notes": answers.get("notes", ""),
            },
        )

    def answers(self, form: Any) -> dict[str, Any]:
        data = form.cleaned_data
        return {
            "provider_id": data["provider_id"],
            "payer_type": data["payer_type"],
            "diagnosis_codes": data["diagnosis_codes"],
            "f2f_date": data["f2f_date"].isoformat() if data["f2f_date"] else None,
            "notes": data["notes"],
        }


@dataclass(frozen=True)
class CatalogEntry:
    product: Any
    available: int
    restock: Any
    usual_maximum: tuple[int, int] | None
    next_eligible: Any
    in_patient_tier: bool


class CatalogStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        skus = [p.sku for group in product_groups() for tier in group.coverage_tiers for p in tier.products]
        return CatalogForm(data, skus=skus, initial={"skus": draft.answers.get("skus", [])})

    def answers(self, form: Any) -> dict[str, Any]:
        return {"skus": form.cleaned_data["skus"]}

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        today = timezone.localdate()
        groups = product_groups()
        products = [p for group in groups for tier in group.coverage_tiers for p in tier.products]
        available = available_quantities(product_ids=[p.pk for p in products])
        diagnoses = draft.answers.get("diagnosis_codes", [])
        maximums = usual_maximums(on=today, diagnosis_codes=diagnoses)
        eligible = {
            s.hcpcs: s.next_eligible
            for s in patient_supply_status(patient=draft.patient, on=today, diagnosis_codes=diagnoses)
            if s.next_eligible and s.next_eligible > today
        }
        card = patient_card(user=request.user, pk=draft.patient_id, on=today)
        tier = (card.coverage.coverage_tier if card.coverage else "") or ""
        entries = {
            p.pk: CatalogEntry(
                product=p,
                available=available.get(p.pk, 0),
                restock=expected_restock_date(product=p) if not available.get(p.pk) else None,
                usual_maximum=maximums.get(p.hcpcs_code),
                next_eligible=eligible.get(p.hcpcs_code),
                in_patient_tier=bool(tier) and p.coverage_tier.lower() == tier.lower(),
            )
            for p in products
        }
        catalog = [
            (group, [(t.coverage_tier, [entries[p.pk] for p in t.products]) for t in group.coverage_tiers])
            for group in groups
        ]
        return {"catalog": catalog, "chosen": set(draft.answers.get("skus", [])), "patient_tier": tier}


class QuantitiesStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        products = drafts.draft_products(draft)
        quantities = draft.answers.get("quantities", {})
        initial = {f"qty-{i}": quantities.get(p.sku, 1) for i, p in enumerate(products)}
        return QuantitiesForm(data, products=products, initial=initial)

    def answers(self, form: Any) -> dict[str, Any]:
        return {"quantities": form.quantities()}

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        today = timezone.localdate()
        maximums = usual_maximums(on=today, diagnosis_codes=draft.answers.get("diagnosis_codes", []))
        return {"maximums": maximums}


class DeliveryStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        delivery = draft.answers.get("delivery", {})
        return DeliveryForm(
            data,
            initial={
                "mode": delivery.get("mode", "ship_to_patient"),
                "window": delivery.get("window", "any"),
                "requested_date": delivery.get("requested_date"),
                **(delivery.get("address") or {}),
            },
        )

    def answers(self, form: Any) -> dict[str, Any]:
        return {"delivery": form.delivery()}

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        return {"address_on_file": draft.patient.address}


class DocumentsStep(Step):
    """Uploads are their own POST (``action=upload``/``remove``); Continue only moves on."""

    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        return None

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        return {
            "documents": list(draft.documents.all()),
            "document_form": DocumentForm(initial={"artifact_type": request.GET.get("attach")}),
        }


class ReviewStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        return None

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        paths = drafts.draft_expected_paths(draft)
        delivery = draft.answers.get("delivery", {})
        return {
            "total_cents": sum(path.total_cents for path in paths),
            "provider": drafts.draft_provider(actor=request.user, draft=draft),
            "paths": paths,
            "documents": list(draft.documents.all()),
            "delivery": delivery,
            "delivery_mode": DeliveryMode(delivery.get("mode", DeliveryMode.SHIP_TO_PATIENT)).label,
            "delivery_window": DeliveryWindow(delivery.get("window", DeliveryWindow.ANY)).label,
        }


STEP_VIEWS: dict[str, Step] = {
    DraftStep.PATIENT: PatientStep(),
    DraftStep.PRESCRIPTION: PrescriptionStep(),
    DraftStep.CATALOG: CatalogStep(),
    DraftStep.QUANTITIES: QuantitiesStep(),
    DraftStep.DELIVERY: DeliveryStep(),
    DraftStep.DOCUMENTS: DocumentsStep(),
    DraftStep.REVIEW: ReviewStep(),
}


@portal_view
def draft_step(request: HttpRequest, pk: Any, step: str) -> HttpResponse:
    """One step of the wizard. POST ``nav`` = ``next`` (save, go on), ``back`` (save if valid, go
    back), ``save`` (save, stop for now: the draft resumes at the next step) or ``check`` (htmx:
    save if valid and re-draw the step with the checks)."""
    if step not in STEP_VIEWS:
        raise Http404("No such step.")
    draft = _draft_or_404(request, pk)
    view = STEP_VIEWS[step]
    htmx = bool(request.headers.get("HX-Request"))
    if request.method == "POST":
        action = request.POST.get("action")
        if step == DraftStep.DOCUMENTS and action in ("upload", "remove"):
            return _documents_post(request, draft, action)
        if step == DraftStep.REVIEW and action == "submit":
            return _submit(request, draft)
        nav = request.POST.get("nav", "next")
        form = view.form(request, draft, request.POST)
        valid = form is None or form.is_valid()
        if valid:
            drafts.draft_save(draft=draft, answers=view.answers(form) if form is not None else {}, step=step)
        if nav == "back":
            return redirect("portal:draft_step", pk=draft.pk, step=drafts.step_before(step))
        if valid and nav in ("next", "save"):
            # A finished step: the draft comes back at the next one.
            following = drafts.step_after(step)
            drafts.draft_save(draft=draft, answers={}, step=following)
            if nav == "save":
                messages.success(request, "Draft saved. Continue it any time from New order.")
                return redirect("portal:home")
            return redirect("portal:draft_step", pk=draft.pk, step=following)
        status = 200 if valid or htmx else 400
    else:
        form = view.form(request, draft, None)
        status = 200
    return _render_step(request, draft, step, form, status=status)


def _signing(request: HttpRequest, draft: OrderDraft) -> tuple[bool, Checks, bool]:
    """Whether the viewer signs (the ordering provider), the checks as the draft stands unsigned,
    and whether the order needs that signature (a finding about it is open)."""
    can_sign = drafts.draft_can_sign(actor=request.user, draft=draft)
    unsigned = _checks(drafts.draft_compliance(actor=request.user, draft=draft), draft, can_sign=can_sign)
    return can_sign, unsigned, can_sign and "signature" in unsigned.by_field


def _render_step(
    request: HttpRequest,
    draft: OrderDraft,
    step: str,
    form: Any,
    *,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    view = STEP_VIEWS[step]
    can_sign, checks, signature_needed = _signing(request, draft)
    if step == DraftStep.REVIEW and can_sign:
        # What the order's disposition will be with the signature given on this page.
        signed = drafts.draft_compliance(actor=request.user, draft=draft, signed=True)
        checks = _checks(signed, draft, can_sign=can_sign)
    if step == DraftStep.REVIEW and form is None:
        form = SignForm(signature_needed=signature_needed)
    index = drafts.STEPS.index(DraftStep(step))
    context = {
        **nav_context(request, "new"),
        "draft": draft,
        "step": DraftStep(step),
        "steps": [(s, i < index, s == step) for i, s in enumerate(drafts.STEPS)],
        "step_number": index + 1,
        "step_count": len(drafts.STEPS),
        "form": form,
        "checks": checks,
        "can_sign": can_sign,
        "signature_needed": signature_needed,
        "step_url": reverse("portal:draft_step", args=(draft.pk, step)),
        **view.context(request, draft),
        **(extra or {}),
    }
    return render(request, f"portal/wizard/{step}.html", context, status=status)


def _documents_post(request: HttpRequest, draft: OrderDraft, action: str) -> HttpResponse:
    if action == "remove":
        try:
            drafts.draft_remove_document(draft=draft, document_id=request.POST.get("document"))
        except DomainError as error:
            messages.error(request, str(error))
        return redirect("portal:draft_step", pk=draft.pk, step=DraftStep.DOCUMENTS)
    form = DocumentForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            data = form.cleaned_data
            drafts.draft_add_document(
                draft=draft, artifact_type=data["artifact_type"], file=data["file"], document_date=data["document_date"]
            )
            messages.success(request, "Document added; the checks ran again.")
            return redirect("portal:draft_step", pk=draft.pk, step=DraftStep.DOCUMENTS)
        except DomainError as error:
            add_service_errors(form, error)
    return _render_step(request, draft, DraftStep.DOCUMENTS, None, status=400, extra={"document_form": form})


def _submit(request: HttpRequest, draft: OrderDraft) -> HttpResponse:
    can_sign, _checks_now, signature_needed = _signing(request, draft)
    form = SignForm(request.POST, signature_needed=signature_needed)
    if form.is_valid():
        data = form.cleaned_data
        try:
            order = drafts.draft_submit(
                actor=request.user,
                draft_id=draft.pk,
                sign=bool(can_sign and data["signature_image"]),
                signature_image=data["signature_image"] if can_sign else None,
            )
        except DomainError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Order {order.reference} submitted.")
            return redirect("portal:order_detail", pk=order.pk)
    return _render_step(request, draft, DraftStep.REVIEW, form, status=400)
