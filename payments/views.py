"""The patient's payment pages (public, reached only through a signed link) and the sandbox Checkout.

No login: the signed token is the credential. Pages show the practice, the order's reference,
its lines and total — nothing about the patient — and are never cached or indexed. Their
address (the token) is never sent to another site as a referrer: ``Referrer-Policy:
same-origin``. Not ``no-referrer``: under that policy browsers send ``Origin: null`` with the
page's own form posts (Fetch standard, "serializing a request origin"), which Django's CSRF
origin check refuses, so the patient could not press *Pay*.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from .gateway import sandbox_active
from .links import PaymentLinkUnusable, checkout_start, payment_link_for_token, payment_link_url
from .models import PaymentStatus
from .sandbox import SANDBOX_DECLINE_CODE, sandbox_checkout_complete, sandbox_payment
from .selectors import PayPageState, pay_page
from .services import OPEN_PAYMENT_STATUSES, PaymentProviderUnavailable


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "same-origin"
    return response


@require_http_methods(["GET", "POST"])
def pay(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the order to pay; POST sends the patient on to its Checkout Session."""
    link = payment_link_for_token(token)
    if link is None:
        return _private(render(request, "payments/link_invalid.html", status=404))
    error = ""
    if request.method == "POST":
        try:
            return _private(HttpResponseRedirect(checkout_start(link=link)))
        except PaymentLinkUnusable:
            link.refresh_from_db()
        except PaymentProviderUnavailable:
            error = "We could not reach the payment service. Please try again in a few minutes."
    page = pay_page(link=link, now=timezone.now())
    context = {
        "page": page,
        "states": PayPageState,
        "returned": request.GET.get("checkout", ""),
        "error": error,
        "sandbox": sandbox_active(),
    }
    status = 503 if error else 200
    return _private(render(request, "payments/pay.html", context, status=status))


@require_http_methods(["GET", "POST"])
def sandbox_checkout(request: HttpRequest, session_id: str) -> HttpResponse:
    """The sandbox's stand-in for Stripe Checkout (404 when Stripe is configured)."""
    payment = sandbox_payment(checkout_session_id=session_id)
    if payment is None or payment.link is None:
        raise Http404
    declined = False
    if request.method == "POST" and payment.status in OPEN_PAYMENT_STATUSES:
        succeed = request.POST.get("outcome") == "succeed"
        sandbox_checkout_complete(payment=payment, succeed=succeed)
        if succeed:
            return _private(HttpResponseRedirect(f"{payment_link_url(payment.link)}?checkout=done"))
        payment.refresh_from_db()
        declined = True
    context = {
        "payment": payment,
        "open": payment.status in OPEN_PAYMENT_STATUSES,
        "succeeded": payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED),
        "declined": declined,
        "decline_code": SANDBOX_DECLINE_CODE,
        "back_url": f"{payment_link_url(payment.link)}?checkout=cancelled",
        "reference": payment.order.reference,
        "practice_name": payment.territory.name,
    }
    return _private(render(request, "payments/sandbox_checkout.html", context))
