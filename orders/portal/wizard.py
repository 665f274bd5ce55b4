"""The portal's order wizard: one step per screen, saved server-side after every step.

Every step shows the compliance checks' current answer for the draft, each finding beside the
field it concerns and with the documents that would clear it. A field change re-runs the checks
through htmx (``nav=check``: the step is saved and re-drawn in place); without JavaScript the
Continue button does the same. The drafts service (``orders.drafts``) does the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from catalog.models import TherapyType, coverage_tier_label
from catalog.selectors import available_quantities, expected_restock_date, favourite_product_ids, products_by_sku
from catalog.services import product_favourite_toggle
from compliance.engine import ComplianceResult, usual_maximums
from core.audit import access_record
from core.exceptions import DomainError
from core.models import AccessChannel
from orders import drafts
from orders.compliance_checks import patient_medications, patient_supply_status
from orders.models import DeliveryMode, DeliveryWindow, DraftStep, OrderDraft, OrderStatus
from orders.selectors import patient_card
from patients.exceptions import PatientNotFound
from patients.models import PayerType
from patients.selectors import active_coverage

from .forms import (
    CatalogForm,
    DeliveryForm,
    DocumentForm,
    PatientConfirmForm,
    PrescriptionForm,
    QuantitiesForm,
    SignForm,
    add_service_errors,
    hcpcs_choices,
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
    """``/portal/orders/new``: the user's unfinished drafts and the way to find a patient.

    ``?patient=<id>`` (the referral deep link, the patient card's link) only shows a page: the
    patient's draft to continue, or a *Start order* button. The draft is created by that button's
    POST (with the CSRF token), never by a GET that a link preview or prefetch could trigger.
    """
    patient_id = request.POST.get("patient") if request.method == "POST" else request.GET.get("patient")
    if request.method == "POST":
        try:
            draft = drafts.draft_start(actor=request.user, patient_id=patient_id)
        except PatientNotFound:
            raise Http404("No such patient.") from None
        except DomainError as error:
            messages.error(request, str(error))
            return redirect("portal:home")
        return redirect("portal:draft_step", pk=draft.pk, step=draft.step)
    patient = None
    if patient_id:
        try:
            patient = drafts.draft_patient(actor=request.user, patient_id=patient_id)
        except PatientNotFound:
            raise Http404("No such patient.") from None
        except DomainError as error:
            messages.error(request, str(error))
            return redirect("portal:home")
    open_drafts = list(drafts.drafts_open(actor=request.user)[:20])
    access_record(
        user=request.user,
        objects=[d.patient for d in open_drafts] + ([patient] if patient else []),
        channel=AccessChannel.PORTAL,
    )
    context = {
        **nav_context(request, "new"),
        "patient": patient,
        "patient_draft": next((d for d in open_drafts if patient and d.patient_id == patient.pk), None),
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
        """The form's answers to save: only those that passed validation (a partial save keeps what it can)."""
        return {}

    def check(self, request: HttpRequest, draft: OrderDraft, form: Any) -> None:
        """The services' verdict on a complete step: a DomainError names what to change."""

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        return {}


class PatientStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        return PatientConfirmForm(data, initial={"confirm": draft.answers.get("patient_confirmed", False)})

    def answers(self, form: Any) -> dict[str, Any]:
        return {"patient_confirmed": bool(form.cleaned_data.get("confirm"))}

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
        answers = {name: data[name] for name in ("diagnosis_codes", "notes") if name in data}
        answers.update({name: data[name] for name in ("provider_id", "payer_type") if data.get(name)})
        if "f2f_date" in data:
            answers["f2f_date"] = data["f2f_date"].isoformat() if data["f2f_date"] else None
        return answers

    def check(self, request: HttpRequest, draft: OrderDraft, form: Any) -> None:
        drafts.draft_check_payer(draft=draft, payer_type=form.cleaned_data["payer_type"], on=timezone.localdate())

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        return {"coverage": active_coverage(patient=draft.patient, on=timezone.localdate())}


@dataclass(frozen=True)
class CatalogEntry:
    product: Any
    available: int
    restock: Any
    usual_maximum: tuple[int, int] | None
    next_eligible: Any
    in_patient_tier: bool
    favourite: bool


def _catalog_filters(request: HttpRequest, draft: OrderDraft) -> tuple[str, str]:
    """The catalog's therapy filter and search words, from the request (GET or the step's POST)."""
    data = request.POST if request.method == "POST" else request.GET
    therapy = data.get("therapy", drafts.draft_default_therapy(draft)).strip()
    if therapy not in TherapyType.values:
        therapy = ""
    return therapy, data.get("q", "").strip()[:100]


class CatalogStep(Step):
    """The products that fit the payer (``drafts.draft_catalog``), narrowed by therapy and search,
    the doctor's favourites first; chosen products stay listed whatever the filter."""

    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        skus = [p.sku for p in drafts.draft_catalog(draft)]
        return CatalogForm(data, skus=skus, initial={"skus": draft.answers.get("skus", [])})

    def answers(self, form: Any) -> dict[str, Any]:
        return {"skus": form.cleaned_data["skus"]} if "skus" in form.cleaned_data else {}

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        today = timezone.localdate()
        therapy, query = _catalog_filters(request, draft)
        fitting = drafts.draft_catalog(draft)
        favourites = favourite_product_ids(user=request.user)
        # On a POST the boxes as ticked now (none ticked sends no "skus"), else as saved.
        chosen_skus = request.POST.getlist("skus") if request.method == "POST" else draft.answers.get("skus", [])
        chosen = [p for p in fitting if p.sku in chosen_skus]
        found = drafts.catalog_search(fitting, therapy=therapy, query=query, favourites=favourites)
        shown = chosen + [p for p in found if p.sku not in chosen_skus]
        available = available_quantities(product_ids=[p.pk for p in shown])
        diagnoses = draft.answers.get("diagnosis_codes", [])
        maximums = usual_maximums(on=today, diagnosis_codes=diagnoses, medications=patient_medications(draft.patient))
        eligible = {
            s.hcpcs: s.next_eligible
            for s in patient_supply_status(patient=draft.patient, on=today, diagnosis_codes=diagnoses)
            if s.next_eligible and s.next_eligible > today
        }
        coverage = active_coverage(patient=draft.patient, on=today)
        tier = (coverage.coverage_tier if coverage else "") or ""

        def entry(p: Any) -> CatalogEntry:
            return CatalogEntry(
                product=p,
                available=available.get(p.pk, 0),
                restock=expected_restock_date(product=p) if not available.get(p.pk) else None,
                usual_maximum=maximums.get(p.hcpcs_code),
                next_eligible=eligible.get(p.hcpcs_code),
                in_patient_tier=bool(tier) and p.coverage_tier.lower() == tier.lower(),
                favourite=p.pk in favourites,
            )

        therapies_offered = {p.therapy_type for p in fitting}
        left_out = [sku for sku in chosen_skus if sku not in {p.sku for p in chosen}]
        return {
            "chosen_entries": [entry(p) for p in chosen],
            "found_entries": [entry(p) for p in found if p.sku not in chosen_skus],
            "chosen": set(chosen_skus),
            "left_out": list(products_by_sku(skus=left_out).values()),
            "therapy": therapy,
            "therapies": [(value, label) for value, label in TherapyType.choices if value in therapies_offered],
            "query": query,
            "fitting_count": len(fitting),
            "insurance": draft.answers.get("payer_type") == PayerType.INSURANCE,
            "patient_tier": coverage_tier_label(tier) if tier else "",
        }


class QuantitiesStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        products = drafts.draft_products(draft)
        quantities = draft.answers.get("quantities", {})
        initial = {f"qty-{i}": quantities.get(p.sku, 1) for i, p in enumerate(products)}
        for index, product in enumerate(products):
            for name, value in drafts.draft_prescription(draft, product.sku).items():
                initial[f"{name}-{index}"] = value
        return QuantitiesForm(data, products=products, initial=initial)

    def answers(self, form: Any) -> dict[str, Any]:
        return {"quantities": form.quantities(), "prescriptions": form.prescriptions()}

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        today = timezone.localdate()
        maximums = usual_maximums(
            on=today,
            diagnosis_codes=draft.answers.get("diagnosis_codes", []),
            medications=patient_medications(draft.patient),
        )
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
            "document_form": DocumentForm(
                initial={"artifact_type": request.GET.get("attach")},
                codes=hcpcs_choices(drafts.draft_products(draft)),
            ),
        }


class ReviewStep(Step):
    def form(self, request: HttpRequest, draft: OrderDraft, data: Any) -> Any:
        return None

    def context(self, request: HttpRequest, draft: OrderDraft) -> dict[str, Any]:
        paths = drafts.draft_expected_paths(draft)
        delivery = draft.answers.get("delivery", {})
        return {
            "total_cents": sum(path.total_cents for path in paths),
            "prescriptions": draft.answers.get("prescriptions") or {},
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
        if step == DraftStep.CATALOG and request.POST.get("favourite"):
            return _favourite_post(request, draft, view, htmx=htmx)
        form = view.form(request, draft, request.POST)
        valid = _complete(request, draft, view, form)
        if nav == "save" and not valid:
            # Save and finish later: keep what was given, check nothing for completeness, come back here.
            partial = view.form(request, draft, request.POST)
            for field_ in partial.fields.values():
                field_.required = False
            partial.is_valid()
            drafts.draft_save(draft=draft, answers=view.answers(partial), step=step)
            messages.success(
                request, f"Draft saved. It continues at {DraftStep(step).label} when you open it from New order."
            )
            return redirect("portal:home")
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


def _complete(request: HttpRequest, draft: OrderDraft, view: Step, form: Any) -> bool:
    """Whether the step is complete: the form is valid and the services accept it (their refusal
    is shown against the form's fields)."""
    if form is None:
        return True
    if not form.is_valid():
        return False
    try:
        view.check(request, draft, form)
    except DomainError as error:
        add_service_errors(form, error)
        return False
    return True


def _favourite_post(request: HttpRequest, draft: OrderDraft, view: Step, *, htmx: bool) -> HttpResponse:
    """Star or unstar a catalog product (``favourite=<sku>``), keeping the boxes ticked so far."""
    sku = request.POST["favourite"]
    product = products_by_sku(skus=[sku]).get(sku)
    if product is None:
        raise Http404("No such product.")
    now_favourite = product_favourite_toggle(user=request.user, product=product)
    form = view.form(request, draft, request.POST)
    form.fields["skus"].required = False
    if form.is_valid():
        drafts.draft_save(draft=draft, answers=view.answers(form))
    if htmx:
        return _render_step(request, draft, DraftStep.CATALOG, view.form(request, draft, None))
    messages.success(request, f"{product.name} {'added to' if now_favourite else 'removed from'} your favourites.")
    therapy, query = _catalog_filters(request, draft)
    step_url = reverse("portal:draft_step", args=(draft.pk, DraftStep.CATALOG))
    return redirect(f"{step_url}?{urlencode({'therapy': therapy, 'q': query})}")


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
    form = DocumentForm(request.POST, request.FILES, codes=hcpcs_choices(drafts.draft_products(draft)))
    if form.is_valid():
        try:
            data = form.cleaned_data
            drafts.draft_add_document(
                draft=draft,
                artifact_type=data["artifact_type"],
                file=data["file"],
                document_date=data["document_date"],
                hcpcs_codes=data["hcpcs_codes"],
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
            messages.success(request, f"Order {order.reference} submitted. {_what_happens_next(order)}")
            return redirect("portal:order_detail", pk=order.pk)
    return _render_step(request, draft, DraftStep.REVIEW, form, status=400)


def _what_happens_next(order: Any) -> str:
    """After Submit, what the order waits for now, in the doctor's words (by the checks' disposition)."""
    if order.status == OrderStatus.ON_HOLD:
        return (
            "It is on hold until what the checks ask for is on file: see the findings below and attach the "
            "documents they name; ops staff then release it."
        )
    if order.ai_disposition == "needs_review":
        return "A reviewer on the ops team reads the findings below and decides; you will see their note here."
    if order.payer_type == PayerType.CASH:
        return (
            "The checks are clear: ops staff verify it, then the patient gets a payment link; "
            "fulfillment starts once they pay."
        )
    return "The checks are clear: ops staff verify it and fulfillment starts; you can follow it under Preparing."
