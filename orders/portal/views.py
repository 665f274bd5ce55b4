"""The clinician portal's pages (server-rendered, htmx for partial updates).

Views are thin: they read through the selectors and write through the same services as the
REST API, so no rule lives here twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import Any

from django import forms as forms_module
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from agents.selectors import agent_exceptions, agent_states
from core.audit import access_record
from core.exceptions import DomainError
from core.keyset import Cursor, InvalidCursor
from core.models import AccessChannel
from orders.downloads import attachment_download
from orders.drafts import draft_reorder
from orders.exceptions import OrderNotFound
from orders.fulfillment import fulfillment_task_assign
from orders.models import Order, Stage, TaskStatus
from orders.selectors import (
    TAB_COUNT_LIMIT,
    attachment_get_for_user,
    findings_shown,
    fulfillment_tasks_of,
    latest_results,
    order_get_for_user,
    order_phi_visible,
    order_timeline,
    patient_card,
    portal_holds_page,
    portal_orders_in_stage,
    portal_scope,
    portal_stage_counts,
    recent_patients,
    review_queue_orders,
    review_queue_page,
    review_reasons,
    transition_allowed,
)
from orders.services import (
    VerificationOffer,
    order_add_note,
    order_approve,
    order_attach,
    order_cancel,
    order_transition,
    verification_offer,
    verification_offer_for,
)
from orders.staffing import people_on_shift
from orders.written_order import written_order_pdf
from patients.exceptions import PatientNotFound
from patients.selectors import patient_search
from territories.exceptions import TerritoryMismatch
from territories.models import TerritoryPermission
from territories.selectors import territories_for_user, territory_ids_for_user

from .forms import ApproveForm, CancelForm, DocumentForm, NoteForm, OverrideForm, add_service_errors, hcpcs_choices

View = Callable[..., HttpResponseBase]

TABS = {"pending": Stage.PENDING, "preparing": Stage.PREPARING, "shipped": Stage.SHIPPED}


def portal_view(view: View) -> View:
    """Signed-in users only; an htmx request from a signed-out page is sent to the sign-in page whole."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            if request.headers.get("HX-Request"):
                redirect_whole = HttpResponse(status=204)
                # the same URL as a page's redirect: the path is query-encoded (it may hold "&" or "?")
                redirect_whole["HX-Redirect"] = redirect_to_login(request.path)["Location"]
                return redirect_whole
            return redirect_to_login(request.get_full_path())
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"  # pages carry PHI: never from a cache
        return response

    return wrapper


# Each of these reads the user's cached territory map (territories.access): no query.


def _can_review(user: Any) -> bool:
    return bool(territory_ids_for_user(user=user, permission=TerritoryPermission.REVIEW_ORDER))


def _can_order(user: Any) -> bool:
    return bool(territory_ids_for_user(user=user, permission=TerritoryPermission.CREATE_ORDER))


def _phi_territories(user: Any) -> set[Any]:
    """Territory ids where the user may read PHI: patient names are shown only for those."""
    return territory_ids_for_user(user=user, permission=TerritoryPermission.VIEW_PHI)


def nav_context(request: HttpRequest, section: str) -> dict[str, Any]:
    return {"section": section, "can_review": _can_review(request.user), "can_order": _can_order(request.user)}


def _cursor(request: HttpRequest, name: str) -> Cursor | None:
    """The page a link's cursor names; a mangled one shows the first page (links are all this takes)."""
    try:
        return Cursor.decode(request.GET[name]) if name in request.GET else None
    except InvalidCursor:
        return None


def _page_link(request: HttpRequest, name: str, cursor: Cursor | None) -> str | None:
    """The current page's query with ``name`` set to ``cursor`` (None when there is no such page)."""
    if cursor is None:
        return None
    query = request.GET.copy()
    query[name] = cursor.encode()
    return f"?{query.urlencode()}"


@portal_view
def home(request: HttpRequest) -> HttpResponse:
    """The user's orders in three tabs (Pending, Preparing, Shipped), holds needing action first.

    Every list is read by key and bounded: each tab shows ``PORTAL_PAGE_SIZE`` orders with links to
    older and newer ones (``cursor``), its count says "100+" beyond ``TAB_COUNT_LIMIT``, and the holds
    show the ``HOLDS_PAGE_SIZE`` waiting longest with a link to the next ones (``holds``). The query
    count does not depend on how many orders there are; the reading of PHI is one access record.
    """
    tab = request.GET.get("tab", "pending")
    if tab not in TABS:
        tab = "pending"
    scope = portal_scope(user=request.user)
    counts = portal_stage_counts(scope=scope)
    try:
        page = portal_orders_in_stage(scope=scope, stage=TABS[tab], cursor=_cursor(request, "cursor"))
    except InvalidCursor:  # a cursor of another tab's list: that tab's first page
        page = portal_orders_in_stage(scope=scope, stage=TABS[tab])
    try:
        holds = portal_holds_page(user=request.user, scope=scope, cursor=_cursor(request, "holds"))
    except InvalidCursor:
        holds = portal_holds_page(user=request.user, scope=scope)
    phi_territories = _phi_territories(request.user)
    shown = [o for o in [*(h.order for h in holds.holds), *page.rows] if o.territory_id in phi_territories]
    access_record(user=request.user, objects=shown, channel=AccessChannel.PORTAL)
    context = {
        **nav_context(request, "home"),
        "tab": tab,
        "tabs": [(key, stage.label, counts[stage]) for key, stage in TABS.items()],
        "orders": page.rows,
        "older": _page_link(request, "cursor", page.next),
        "newer": _page_link(request, "cursor", page.previous),
        "holds": holds.holds,
        "more_holds": _page_link(request, "holds", holds.next),
        "earlier_holds": _page_link(request, "holds", holds.previous),
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
class AssignableTask:
    task: Any
    people: list[Any]  # on shift at the task's warehouse on its due day


def _assignable_tasks(user: Any, order: Order, tasks: list[Any]) -> list[AssignableTask]:
    """The order's open warehouse tasks with the people on shift for each, for a user who fulfills
    orders in its territory (one query per such task; none otherwise)."""
    working = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)
    open_tasks = [t for t in tasks if t.warehouse_id is not None and t.status in working]
    if not open_tasks or order.territory_id not in territory_ids_for_user(
        user=user, permission=TerritoryPermission.FULFILL_ORDER
    ):
        return []
    return [
        AssignableTask(task, list(people_on_shift(warehouse_id=task.warehouse_id, day=task.due_date)))
        for task in open_tasks
    ]


@dataclass(frozen=True)
class OrderPage:
    order: Order
    phi: bool
    result: dict[str, Any] | None
    findings: list[dict[str, Any]]  # the hold and review findings, each with what answers it (findings_shown)
    timeline: list[Any]
    tasks: list[Any]
    offer: VerificationOffer  # how the user may verify the order now, if at all
    can_start_fulfillment: bool
    can_cancel: bool
    assignable: list[AssignableTask]  # open warehouse tasks the user may give to someone on shift
    messages: list[Any] = field(default_factory=list)  # the patient's messages (the order page only)


def _order_page(request: HttpRequest, pk: Any) -> OrderPage:
    try:
        order = order_get_for_user(user=request.user, pk=pk)
    except OrderNotFound:
        raise Http404("Order not found.") from None
    phi = order_phi_visible(user=request.user, order=order)
    if phi:
        access_record(user=request.user, objects=[order], channel=AccessChannel.PORTAL)
    results = latest_results([order])
    tasks = list(fulfillment_tasks_of(order=order))
    return OrderPage(
        order=order,
        phi=phi,
        result=results.get(order.pk),
        findings=findings_shown([order], results)[order.pk],
        timeline=order_timeline(order=order),
        tasks=tasks,
        offer=verification_offer(order=order, user=request.user),
        can_start_fulfillment=transition_allowed(order, "start_fulfillment", request.user),
        can_cancel=transition_allowed(order, "cancel", request.user),
        assignable=_assignable_tasks(request.user, order, tasks),
    )


@dataclass
class OrderForms:
    note: NoteForm
    document: DocumentForm
    approve: ApproveForm
    override: OverrideForm
    cancel: CancelForm


@portal_view
def order_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    """Items, disposition and findings, fulfillment, tracking, the timeline, documents and notes.

    POST ``action``: ``note`` or ``document`` adds one (a document re-runs the checks while a hold
    is open); ``verify`` approves (``order_approve``: with a review note when the order needs
    review); ``override`` verifies over a hold with a reason (override permission);
    ``start_fulfillment``; ``cancel`` with a reason — through the same services as the
    API; then back here (post/redirect/get). Only what the user may do now is offered; a refused
    form comes back with its errors (400).
    """
    page = _order_page(request, pk)
    page = replace(page, messages=list(page.order.messages.order_by("created_at", "channel")))
    forms = OrderForms(
        note=NoteForm(),
        document=DocumentForm(initial={"artifact_type": request.GET.get("attach")}, codes=_item_codes(page.order)),
        approve=ApproveForm(note_required=page.offer.note_required),
        override=OverrideForm(),
        cancel=CancelForm(),
    )
    if request.method == "POST":
        done = _order_post(request, page, forms)
        if done:
            return redirect("portal:order_detail", pk=page.order.pk)
    context = {
        **nav_context(request, "home"),
        "page": page,
        "note_form": forms.note,
        "document_form": forms.document,
        "approve_form": forms.approve,
        "override_form": forms.override,
        "cancel_form": forms.cancel,
        "status_url": reverse("portal:order_status", args=(page.order.pk,)),
    }
    return render(request, "portal/order.html", context, status=400 if request.method == "POST" else 200)


def _item_codes(order: Order) -> list[tuple[str, str]]:
    """The order's item codes a prior authorization document may name (one query)."""
    return hcpcs_choices(item.product for item in order.items.select_related("product"))


def _order_post(request: HttpRequest, page: OrderPage, forms: OrderForms) -> bool:
    """Run the posted action through its service; True when done (a message says so)."""
    action, order, user = request.POST.get("action"), page.order, request.user
    form: forms_module.Form = forms.note
    try:
        if action == "note":
            form = forms.note = NoteForm(request.POST)
            if form.is_valid():
                order_add_note(order_id=order.pk, actor=user, note=form.cleaned_data["note"])
                messages.success(request, "Note added.")
                return True
        elif action == "document":
            form = forms.document = DocumentForm(request.POST, request.FILES, codes=_item_codes(order))
            if form.is_valid():
                data = form.cleaned_data
                order_attach(
                    order_id=order.pk,
                    actor=user,
                    artifact_type=data["artifact_type"],
                    file=data["file"],
                    document_date=data["document_date"],
                    hcpcs_codes=data["hcpcs_codes"],
                )
                messages.success(request, "Document attached; the checks ran again.")
                return True
        elif action == "verify":
            form = forms.approve = ApproveForm(request.POST, note_required=page.offer.note_required)
            if form.is_valid():
                order_approve(order_id=order.pk, actor=user, notes=form.cleaned_data["notes"])
                messages.success(request, _approved_message(order, note_required=page.offer.note_required))
                return True
        elif action == "override":
            form = forms.override = OverrideForm(request.POST)
            if form.is_valid():
                order_approve(order_id=order.pk, actor=user, override_reason=form.cleaned_data["override_reason"])
                messages.success(request, f"Order {order.reference} approved over its findings (override recorded).")
                return True
        elif action == "start_fulfillment":
            try:
                order_transition(order_id=order.pk, actor=user, transition="start_fulfillment")
            except DomainError as error:  # no form to show it on: say it above the page
                messages.error(request, str(error))
            else:
                messages.success(request, f"Fulfillment of order {order.reference} started.")
            return True
        elif action == "assign":
            assignable = {str(entry.task.pk): entry for entry in page.assignable}
            entry = assignable.get(request.POST.get("task", ""))
            person = (
                next((p for p in entry.people if str(p.pk) == request.POST.get("assignee")), None) if entry else None
            )
            if entry is None or person is None:
                messages.error(request, "Choose an open task and someone on shift for it.")
                return True
            fulfillment_task_assign(task_id=entry.task.pk, actor=user, assignee=person)
            messages.success(request, f"{entry.task.get_kind_display()} assigned to {person.display_name}.")
            return True
        elif action == "cancel":
            form = forms.cancel = CancelForm(request.POST)
            if form.is_valid():
                order_cancel(order_id=order.pk, actor=user, reason=form.cleaned_data["reason"])
                messages.success(request, f"Order {order.reference} cancelled.")
                return True
        else:
            messages.error(request, "Unknown action.")
    except DomainError as error:
        details = error.details if isinstance(error.details, dict) else {}
        if any(field in form.fields for field in details):
            add_service_errors(form, error)  # about what was typed: shown on the form
            return False
        # A refusal of the action itself (state, permission, open findings): said above the page.
        messages.error(request, str(error))
        return True
    return False


def _approved_message(order: Order, *, note_required: bool) -> str:
    if note_required:
        return f"Review of order {order.reference} resolved; the order is approved."
    return f"Order {order.reference} approved."


@portal_view
def order_status(request: HttpRequest, pk: Any) -> HttpResponse:
    """The order page's live part (status, disposition, fulfillment, timeline), polled by htmx."""
    return render(request, "portal/_order_status.html", {"page": _order_page(request, pk)})


@portal_view
def review_queue(request: HttpRequest) -> HttpResponse:
    """Ops staff's queue: holds and orders needing review, oldest first, by territory and finding code.

    Each row offers what the reviewer may do now (``verification_offer``): *Approve* on a clear
    order, *Resolve review* with a review note on one that needs review, *Override* with a reason on
    a hold for users with the override permission; POST ``action`` (``verify`` or ``override``) and
    ``order`` run ``order_approve``. Documents are attached on the order's page, which each
    finding's "clears with" link opens at the right document type.
    """
    if not _can_review(request.user):
        raise PermissionDenied
    if request.method == "POST":
        try:
            order = order_get_for_user(user=request.user, pk=request.POST.get("order"))
            prefix = f"order-{order.pk}"
            if request.POST.get("action") == "override":
                override = OverrideForm(request.POST, prefix=prefix)
                reason = override.cleaned_data["override_reason"] if override.is_valid() else ""
                order_approve(order_id=order.pk, actor=request.user, override_reason=reason)
                messages.success(request, f"Order {order.reference} approved over its findings (override recorded).")
            else:
                approve = ApproveForm(request.POST, prefix=prefix)
                notes = approve.cleaned_data["notes"] if approve.is_valid() else ""
                note_required = order.ai_disposition == "needs_review"
                order_approve(order_id=order.pk, actor=request.user, notes=notes)
                messages.success(request, _approved_message(order, note_required=note_required))
        except DomainError as error:
            messages.error(request, _refusal_text(error))
        return redirect(f"{reverse('portal:review_queue')}?{request.GET.urlencode()}")
    territory, reason = request.GET.get("territory", "")[:64], request.GET.get("reason", "")[:64]
    try:
        orders = review_queue_orders(user=request.user, territory_key=territory or None, reason=reason or None)
    except TerritoryMismatch:
        messages.error(request, "You do not review orders in that territory.")
        territory = ""
        orders = review_queue_orders(user=request.user, reason=reason or None)
    count = orders.count(limit=TAB_COUNT_LIMIT)
    try:
        queue = review_queue_page(orders, cursor=_cursor(request, "cursor"))
    except InvalidCursor:  # a cursor of another filter's list: its first page
        queue = review_queue_page(orders)
    shown = list(queue.orders)
    phi_territories = _phi_territories(request.user)
    access_record(
        user=request.user,
        objects=[o for o in shown if o.territory_id in phi_territories],
        channel=AccessChannel.PORTAL,
    )
    findings = findings_shown(shown, queue.results)
    # The permissions every row's offer needs, asked once for the page (not once per row).
    reviewing = territory_ids_for_user(user=request.user, permission=TerritoryPermission.REVIEW_ORDER)
    overriding = territory_ids_for_user(user=request.user, permission=TerritoryPermission.OVERRIDE_COMPLIANCE)
    rows = []
    for order in shown:
        offer = verification_offer_for(
            order=order,
            may_review=order.territory_id in reviewing,
            may_override=order.territory_id in overriding,
        )
        prefix = f"order-{order.pk}"
        rows.append(
            QueueRow(
                order=order,
                findings=findings[order.pk],
                offer=offer,
                approve_form=ApproveForm(prefix=prefix, note_required=offer.note_required),
                override_form=OverrideForm(prefix=prefix),
            )
        )
    context = {
        **nav_context(request, "review"),
        "rows": rows,
        "count": count,
        "next": _page_link(request, "cursor", queue.next),
        "previous": _page_link(request, "cursor", queue.previous),
        "territories": territories_for_user(user=request.user, permission=TerritoryPermission.REVIEW_ORDER),
        "reasons": review_reasons(user=request.user),
        "territory": territory,
        "reason": reason,
        "phi_territories": phi_territories,
    }
    return render(request, "portal/review.html", context)


@dataclass(frozen=True)
class QueueRow:
    order: Order
    findings: list[dict[str, Any]]
    offer: VerificationOffer
    approve_form: ApproveForm
    override_form: OverrideForm


def _refusal_text(error: DomainError) -> str:
    """A service's refusal in one line: its message and what it says about the fields."""
    details = error.details if isinstance(error.details, dict) else {}
    extra = [str(m) for key in ("notes", "override_reason") for m in details.get(key, []) if isinstance(m, str)]
    return " ".join([str(error), *extra])


@portal_view
def attachment_open(request: HttpRequest, pk: Any, attachment_pk: Any) -> HttpResponseBase:
    """Download one of the order's documents (``attachment_download``): for readers of the order's PHI
    only (404 for anyone else, as for an order that does not exist), recorded as an access."""
    try:
        attachment = attachment_get_for_user(user=request.user, order_pk=pk, pk=attachment_pk)
    except OrderNotFound:
        raise Http404("Document not found.") from None
    access_record(user=request.user, objects=[attachment], channel=AccessChannel.PORTAL)
    return attachment_download(attachment)


@portal_view
def written_order_download(request: HttpRequest, pk: Any) -> HttpResponse:
    """The signed written order as a printable PDF (signature, signer, time, summary hash): for
    readers of the order's PHI, once signed (404 otherwise); recorded as an access."""
    try:
        order = order_get_for_user(user=request.user, pk=pk)
    except OrderNotFound:
        raise Http404("Order not found.") from None
    if order.signed_at is None or not order_phi_visible(user=request.user, order=order):
        raise Http404("Order not found.")
    access_record(user=request.user, objects=[order, order.patient], channel=AccessChannel.PORTAL)  # the PDF names them
    response = HttpResponse(written_order_pdf(order=order), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="written-order-{order.reference}.pdf"'
    return response


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


@portal_view
def agent_status(request: HttpRequest) -> HttpResponse:
    """Agent Status for ops staff and admins: each agent's state and the orders waiting for a person
    in their territories, longest first (``agents.selectors``); the live part refreshes itself."""
    if not _can_review(request.user):
        raise PermissionDenied
    return render(request, "portal/agents.html", {**nav_context(request, "agents"), "status": _agent_status(request)})


@portal_view
def agent_status_live(request: HttpRequest) -> HttpResponse:
    """The live part of Agent Status, polled by htmx."""
    if not _can_review(request.user):
        raise PermissionDenied
    return render(request, "portal/_agents_live.html", {"status": _agent_status(request)})


def _agent_status(request: HttpRequest) -> dict[str, Any]:
    now = timezone.now()
    return {
        "generated_at": now,
        "agents": agent_states(now=now),
        "exceptions": agent_exceptions(user=request.user, now=now),
    }
