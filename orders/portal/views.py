"""The clinician portal's pages (server-rendered, htmx for partial updates).

Views are thin: they read through the selectors and write through the same services as the
REST API, so no rule lives here twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from core.audit import access_record
from core.exceptions import DomainError
from core.models import AccessChannel
from orders.drafts import draft_reorder
from orders.exceptions import OrderNotFound
from orders.models import Order, Stage
from orders.selectors import (
    STATUSES_OF_STAGE,
    fulfillment_tasks_of,
    latest_results,
    order_get_for_user,
    order_phi_visible,
    order_timeline,
    patient_card,
    portal_holds,
    portal_orders,
    portal_orders_in_stage,
    recent_patients,
    transition_allowed,
)
from orders.selectors import (
    review_queue as review_queue_of,
)
from orders.services import order_add_note, order_approve, order_attach, order_transition
from patients.exceptions import PatientNotFound
from patients.selectors import patient_search
from territories.models import TerritoryPermission
from territories.selectors import territories_for_user

from .forms import DocumentForm, NoteForm, add_service_errors

View = Callable[..., HttpResponse]

TABS = {"pending": Stage.PENDING, "preparing": Stage.PREPARING, "shipped": Stage.SHIPPED}
PAGE_SIZE = 25


def portal_view(view: View) -> View:
    """Signed-in users only; an htmx request from a signed-out page is sent to the sign-in page whole."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = f"{reverse('login')}?next={request.path}"
                return response
            return redirect_to_login(request.get_full_path())
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"  # pages carry PHI: never from a cache
        return response

    return wrapper


def _can_review(user: Any) -> bool:
    return territories_for_user(user=user, permission=TerritoryPermission.REVIEW_ORDER).exists()


def _can_order(user: Any) -> bool:
    return territories_for_user(user=user, permission=TerritoryPermission.CREATE_ORDER).exists()


def _phi_territories(user: Any) -> set[Any]:
    """Territory ids where the user may read PHI: patient names are shown only for those."""
    return set(territories_for_user(user=user, permission=TerritoryPermission.VIEW_PHI).values_list("pk", flat=True))


def nav_context(request: HttpRequest, section: str) -> dict[str, Any]:
    return {"section": section, "can_review": _can_review(request.user), "can_order": _can_order(request.user)}


@portal_view
def home(request: HttpRequest) -> HttpResponse:
    """The user's orders in three tabs (Pending, Preparing, Shipped), holds needing action first."""
    tab = request.GET.get("tab", "pending")
    if tab not in TABS:
        tab = "pending"
    mine = portal_orders(user=request.user)
    counts = {key: mine.filter(status__in=STATUSES_OF_STAGE[stage]).count() for key, stage in TABS.items()}
    orders = list(portal_orders_in_stage(user=request.user, stage=TABS[tab])[:PAGE_SIZE])
    holds = portal_holds(user=request.user)
    phi_territories = _phi_territories(request.user)
    shown = [o for o in [*orders, *(h.order for h in holds)] if o.territory_id in phi_territories]
    access_record(user=request.user, objects={o.pk: o for o in shown}.values(), channel=AccessChannel.PORTAL)
    context = {
        **nav_context(request, "home"),
        "tab": tab,
        "tabs": [(key, stage.label, counts[key]) for key, stage in TABS.items()],
        "orders": orders,
        "more": counts[tab] > len(orders),
        "holds": holds,
        "phi_territories": phi_territories,
    }
    return render(request, "portal/home.html", context)


SEARCH_LIMIT = 20


@portal_view
def patients(request: HttpRequest) -> HttpResponse:
    """Find a patient by name and/or date of birth (whole names or their first letters, through the
    blind indexes: ``patient_search``), and the doctor's recent patients (``recent_patients``).

    The query travels in the form body (POST), never in the URL: names and birth dates are PHI.
    An htmx request gets the results list only.
    """
    query = request.POST.get("q", "").strip()[:200] if request.method == "POST" else ""
    found = list(patient_search(user=request.user, query=query)[:SEARCH_LIMIT]) if query else []
    htmx = bool(request.headers.get("HX-Request"))
    recent = [] if htmx else recent_patients(user=request.user)
    access_record(
        user=request.user, objects={p.pk: p for p in [*found, *recent]}.values(), channel=AccessChannel.PORTAL
    )
    context = {
        **nav_context(request, "patients"),
        "query": query,
        "found": found,
        "searched": bool(query),
        "recent": recent,
    }
    template = "portal/_patient_results.html" if htmx else "portal/patients.html"
    return render(request, template, context)


@portal_view
def patient_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    """The patient card: coverage snapshot, prior authorizations, warnings, supply status."""
    try:
        card = patient_card(user=request.user, pk=pk, on=timezone.localdate())
    except PatientNotFound as error:
        raise Http404(str(error)) from None
    access_record(user=request.user, objects=[card.patient], channel=AccessChannel.PORTAL)
    return render(request, "portal/patient.html", {**nav_context(request, "patients"), "card": card})


@dataclass(frozen=True)
class OrderPage:
    order: Order
    phi: bool
    result: dict[str, Any] | None
    timeline: list[Any]
    tasks: list[Any]
    staff_actions: list[tuple[str, str]]


# Lifecycle steps the portal offers staff on an order page (the admin has every other one).
STAFF_ACTIONS = {"verify": "Approve", "start_fulfillment": "Start fulfillment"}


def _order_page(request: HttpRequest, pk: Any) -> OrderPage:
    try:
        order = order_get_for_user(user=request.user, pk=pk)
    except OrderNotFound:
        raise Http404("Order not found.") from None
    phi = order_phi_visible(user=request.user, order=order)
    if phi:
        access_record(user=request.user, objects=[order], channel=AccessChannel.PORTAL)
    return OrderPage(
        order=order,
        phi=phi,
        result=latest_results([order]).get(order.pk),
        timeline=order_timeline(order=order),
        tasks=list(fulfillment_tasks_of(order=order)),
        staff_actions=[
            (name, label) for name, label in STAFF_ACTIONS.items() if transition_allowed(order, name, request.user)
        ],
    )


@portal_view
def order_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    """Items, disposition and findings, fulfillment, tracking, the timeline, documents and notes.

    POST ``action=note`` adds a note, ``action=document`` a document (re-running the checks while a
    hold is open) — through the same services as the API; then back here (post/redirect/get).
    """
    page = _order_page(request, pk)
    note_form, document_form = NoteForm(), DocumentForm(initial={"artifact_type": request.GET.get("attach")})
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "note":
                note_form = NoteForm(request.POST)
                if note_form.is_valid():
                    order_add_note(order_id=page.order.pk, actor=request.user, note=note_form.cleaned_data["note"])
                    messages.success(request, "Note added.")
                    return redirect("portal:order_detail", pk=page.order.pk)
            elif action in STAFF_ACTIONS:
                try:
                    _staff_action(request, page.order, action)
                except DomainError as error:
                    messages.error(request, str(error))
                return redirect("portal:order_detail", pk=page.order.pk)
            elif action == "document":
                document_form = DocumentForm(request.POST, request.FILES)
                if document_form.is_valid():
                    data = document_form.cleaned_data
                    order_attach(
                        order_id=page.order.pk,
                        actor=request.user,
                        artifact_type=data["artifact_type"],
                        file=data["file"],
                        document_date=data["document_date"],
                    )
                    messages.success(request, "Document attached; the checks ran again.")
                    return redirect("portal:order_detail", pk=page.order.pk)
        except DomainError as error:
            add_service_errors(note_form if action == "note" else document_form, error)
    context = {
        **nav_context(request, "home"),
        "page": page,
        "note_form": note_form,
        "document_form": document_form,
        "status_url": reverse("portal:order_status", args=(page.order.pk,)),
    }
    return render(request, "portal/order.html", context, status=400 if request.method == "POST" else 200)


def _staff_action(request: HttpRequest, order: Order, action: str) -> None:
    """Approve (``order_approve``: the checks run again and must be clear) or start fulfillment."""
    if action == "verify":
        order_approve(order_id=order.pk, actor=request.user, notes="Approved in the portal")
        messages.success(request, f"Order {order.reference} approved.")
    else:
        order_transition(order_id=order.pk, actor=request.user, transition=action)
        messages.success(request, f"Fulfillment of order {order.reference} started.")


@portal_view
def order_status(request: HttpRequest, pk: Any) -> HttpResponse:
    """The order page's live part (status, disposition, fulfillment, timeline), polled by htmx."""
    return render(request, "portal/_order_status.html", {"page": _order_page(request, pk)})


QUEUE_PAGE_SIZE = 50


@portal_view
def review_queue(request: HttpRequest) -> HttpResponse:
    """Ops staff's queue: holds and orders needing review, oldest first, by territory and finding code.

    POST ``action=verify`` approves one (``order_approve``); documents are attached on the order's
    page, which each finding's "clears with" link opens at the right document type.
    """
    if not _can_review(request.user):
        raise PermissionDenied
    if request.method == "POST":
        try:
            order = order_get_for_user(user=request.user, pk=request.POST.get("order"))
            _staff_action(request, order, "verify")
        except DomainError as error:
            messages.error(request, str(error))
        return redirect(f"{reverse('portal:review_queue')}?{request.GET.urlencode()}")
    territory, reason = request.GET.get("territory", "")[:64], request.GET.get("reason", "")[:64]
    everything = review_queue_of(user=request.user)
    try:
        queue = review_queue_of(user=request.user, territory_key=territory or None, reason=reason or None)
    except DomainError:
        messages.error(request, "You do not review orders in that territory.")
        queue, territory = everything, ""
    reasons = sorted(
        {
            f["code"]
            for result in everything.results.values()
            for f in result.get("findings", [])
            if f["severity"] != "info"
        }
    )
    shown = queue.orders[:QUEUE_PAGE_SIZE]
    phi_territories = _phi_territories(request.user)
    access_record(
        user=request.user,
        objects=[o for o in shown if o.territory_id in phi_territories],
        channel=AccessChannel.PORTAL,
    )
    context = {
        **nav_context(request, "review"),
        "orders": [(o, queue.results.get(o.pk, {})) for o in shown],
        "count": len(queue.orders),
        "territories": territories_for_user(user=request.user, permission=TerritoryPermission.REVIEW_ORDER),
        "reasons": reasons,
        "territory": territory,
        "reason": reason,
        "phi_territories": phi_territories,
    }
    return render(request, "portal/review.html", context)


@portal_view
def order_reorder(request: HttpRequest, pk: Any) -> HttpResponse:
    """POST: a new wizard draft prefilled from order ``pk`` (``drafts.draft_reorder``), opened at its
    first step. A GET only shows the order: creating a draft is a POST."""
    if request.method != "POST":
        return redirect("portal:order_detail", pk=pk)
    try:
        draft = draft_reorder(actor=request.user, order_id=pk)
    except OrderNotFound:
        raise Http404("Order not found.") from None
    except DomainError as error:
        messages.error(request, str(error))
        return redirect("portal:order_detail", pk=pk)
    messages.success(
        request,
        f"A new order copied from {draft.answers['reorder_of']}: check each step before you submit it.",
    )
    return redirect("portal:draft_step", pk=draft.pk, step=draft.step)
