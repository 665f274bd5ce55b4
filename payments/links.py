"""Payment links: ``/pay/<token>`` for one order, expiring, revocable; and the Checkout they lead to.

The token is the link's id signed with Django's signing (HMAC under SECRET_KEY), so it cannot
be guessed or forged, and it says nothing about the order or the patient. Whether a link still
works is decided by its row: expiry, revocation, and the order still awaiting payment.

Issuing a new link for an order revokes the previous one in the same transaction and publishes
``payment_link.revoked``; the payments agent then expires every Checkout Session still open on
the revoked link, so an old link can never take a second payment (and if one completed first,
the duplicate is refunded by the webhook handler).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from core.exceptions import PermissionDenied, ValidationFailed
from core.outbox import outbox_publish
from core.sms import sms_send
from orders.models import ActorKind, EventKind, Order, OrderStatus
from orders.services import order_lock
from orders.timeline import record_event
from patients.models import PayerType
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .gateway import PaymentGatewayError, checkout_expiry, gateway
from .models import Payment, PaymentLink, PaymentStatus
from .services import (
    OPEN_PAYMENT_STATUSES,
    PaymentNotPossible,
    PaymentProviderUnavailable,
    gateway_for,
    invoice_issue,
    payment_attempt_next,
    payment_metadata,
)

_SALT = "payments.payment-link"
# A Checkout Session closer than this to its expiry is not handed out again; a new one is made.
_SESSION_REUSE_MARGIN = dt.timedelta(minutes=5)


class PaymentLinkUnusable(PaymentNotPossible):
    code = "PAYMENT_LINK_UNUSABLE"
    default_message = "This payment link can no longer be used."


def payment_link_token(link: PaymentLink) -> str:
    return signing.Signer(salt=_SALT).sign(link.pk.hex)


def payment_link_url(link: PaymentLink) -> str:
    """The absolute address the patient opens (``PUBLIC_BASE_URL`` + ``/pay/<token>``)."""
    path = reverse("payments-pay", args=[payment_link_token(link)])
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def payment_link_for_token(token: str) -> PaymentLink | None:
    """The link a token names, or None for a forged, damaged or unknown token (whatever its state)."""
    try:
        link_id = uuid.UUID(hex=signing.Signer(salt=_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None
    return PaymentLink.objects.select_related("order", "territory").filter(pk=link_id).first()


def _awaiting_payment(order: Order) -> None:
    if order.payer_type != PayerType.CASH or order.status != OrderStatus.AWAITING_PAYMENT:
        raise PaymentNotPossible(
            "Only a cash-pay order awaiting payment has a payment link.",
            details={"order_id": str(order.pk), "status": order.status},
        )


def _revoke(*, order: Order, links: Any, actor: Any, reason: str) -> list[PaymentLink]:
    """Revoke ``links`` (order locked) and ask the agent to expire their open Checkout Sessions."""
    now = timezone.now()
    revoked = []
    for link in links.select_for_update():
        link.revoked_at, link.revoked_by, link.revoke_reason = now, actor, reason[:200]
        link.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        outbox_publish(topic="payment_link.revoked", aggregate=link, payload={"order_id": str(order.pk)})
        revoked.append(link)
    return revoked


def _actor_kind(actor: Any) -> ActorKind:
    return ActorKind.SYSTEM if actor is None else ActorKind.STAFF


def payment_link_issue(*, order_id: Any, actor: Any) -> PaymentLink:
    """Issue a payment link for a cash-pay order awaiting payment, revoking any earlier link.

    ``actor`` None is the system (on ``order.awaiting_payment``); a user needs the territory's
    ``send_payment_link`` permission (doctors, ops, admins) and must see the order. The link
    expires after ``PAYMENT_LINK_TTL_HOURS``. Raises OrderNotFound, PermissionDenied and
    PaymentNotPossible (not a cash-pay order awaiting payment); on any error nothing changes.
    """
    with transaction.atomic():
        order = order_lock(pk=order_id, actor=actor)
        if actor is not None and not territory_permits(
            user=actor, permission=TerritoryPermission.SEND_PAYMENT_LINK, territory_id=order.territory_id
        ):
            raise PermissionDenied("You may not send payment links in this territory.")
        _awaiting_payment(order)
        _revoke(order=order, links=order.payment_links.filter(revoked_at__isnull=True), actor=actor, reason="Re-issued")
        link = PaymentLink.objects.create(
            order=order,
            territory_id=order.territory_id,
            expires_at=timezone.now() + dt.timedelta(hours=settings.PAYMENT_LINK_TTL_HOURS),
            created_by=actor,
        )
        record_event(
            order=order,
            kind=EventKind.PAYMENT,
            actor=actor,
            actor_kind=_actor_kind(actor),
            reason="Payment link issued",
            payload={"payment_link_id": str(link.pk), "expires_at": link.expires_at.isoformat()},
        )
    return link


def payment_link_ensure(*, order_id: Any) -> PaymentLink | None:
    """``order.awaiting_payment``: the order's usable link, issuing one if it has none (idempotent).

    None when the order is no longer a cash-pay order awaiting payment.
    """
    now = timezone.now()
    link = PaymentLink.objects.filter(order_id=order_id, revoked_at__isnull=True, expires_at__gt=now).first()
    if link is not None:
        return link
    try:
        return payment_link_issue(order_id=order_id, actor=None)
    except PaymentNotPossible:
        return None


def payment_links_withdraw(*, order_id: Any) -> int:
    """``order.cancelled``: revoke the order's links (their open Checkout Sessions are then expired).

    Returns how many were revoked; a repeat revokes nothing more.
    """
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
        if order is None or order.status != OrderStatus.CANCELLED:
            return 0
        pending = order.payment_links.filter(revoked_at__isnull=True)
        return len(_revoke(order=order, links=pending, actor=None, reason="Order cancelled"))


def payment_link_revoke(*, link_id: Any, actor: Any, reason: str) -> PaymentLink:
    """Withdraw a link (staff with ``revoke_payment_link``); its open Checkout Sessions are expired.

    Revoking a revoked link changes nothing. Raises ValidationFailed without a reason and
    PermissionDenied (also for a link outside the actor's territories: ids are not probed).
    """
    if not (reason or "").strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        link = PaymentLink.objects.filter(pk=link_id).first()
        if link is None or not territory_permits(
            user=actor, permission=TerritoryPermission.REVOKE_PAYMENT_LINK, territory_id=link.territory_id
        ):
            raise PermissionDenied("You may not revoke this payment link.")
        order = order_lock(pk=link.order_id, actor=actor)
        if _revoke(
            order=order,
            links=PaymentLink.objects.filter(pk=link.pk, revoked_at__isnull=True),
            actor=actor,
            reason=reason.strip(),
        ):
            record_event(
                order=order,
                kind=EventKind.PAYMENT,
                actor=actor,
                actor_kind=_actor_kind(actor),
                reason=f"Payment link revoked: {reason.strip()[:200]}",
                payload={"payment_link_id": str(link.pk)},
            )
    return PaymentLink.objects.get(pk=link.pk)


def checkout_sessions_expire(*, link_id: Any) -> int:
    """Expire every Checkout Session still open on a revoked or expired link; returns how many.

    A session the provider reports ``complete`` is left to its webhook (which refunds it if the
    order was paid otherwise). Raises PaymentProviderUnavailable for the agent to retry.
    """
    expired = 0
    open_payments = Payment.objects.filter(
        link_id=link_id, checkout_session_id__isnull=False, status__in=OPEN_PAYMENT_STATUSES
    )
    for payment in open_payments:
        try:
            status = gateway_for(payment).checkout_session_expire(checkout_session_id=str(payment.checkout_session_id))
        except PaymentGatewayError as error:
            raise PaymentProviderUnavailable(details={"provider_error": error.code}) from error
        if status == "expired":
            expired += Payment.objects.filter(pk=payment.pk, status__in=OPEN_PAYMENT_STATUSES).update(
                status=PaymentStatus.CANCELED, updated_at=timezone.now()
            )
    return expired


def checkout_start(*, link: PaymentLink) -> str:
    """Where to send the patient to pay through ``link``: its open Checkout Session, or a new one.

    A new session is attempt ``n`` of the order with the idempotency key
    ``medorder-link-<link id>-attempt-<n>``, so a double click gets one session. It carries
    only the order's and invoice's ids and one line "Order <reference>" for the total, and
    expires with the link (within Stripe's 30 minutes to 24 hours). Raises PaymentLinkUnusable
    (revoked, expired or the order no longer awaits payment) and PaymentProviderUnavailable.
    """
    order = Order.objects.get(pk=link.order_id)
    if not link.is_usable(timezone.now()) or order.status != OrderStatus.AWAITING_PAYMENT:
        raise PaymentLinkUnusable()
    reusable = (
        Payment.objects.filter(
            link=link,
            status__in=OPEN_PAYMENT_STATUSES,
            checkout_expires_at__gt=timezone.now() + _SESSION_REUSE_MARGIN,
        )
        .order_by("-attempt")
        .first()
    )
    if reusable is not None:
        return reusable.checkout_url
    invoice_issue(order_id=order.pk)
    attempt = payment_attempt_next(order=order)
    return_url = payment_link_url(link)
    try:
        provider = gateway()
        session = provider.checkout_session_create(
            amount_cents=order.total_cents,
            currency=settings.PAYMENT_CURRENCY,
            reference=order.reference,
            metadata=payment_metadata(order),
            success_url=f"{return_url}?checkout=done",
            cancel_url=f"{return_url}?checkout=cancelled",
            expires_at=checkout_expiry(link.expires_at),
            idempotency_key=f"medorder-link-{link.pk}-attempt-{attempt}",
        )
    except PaymentGatewayError as error:
        raise PaymentProviderUnavailable(details={"provider_error": error.code}) from error
    with transaction.atomic():
        locked = order_lock(pk=order.pk, actor=None)
        payment, _created = Payment.objects.get_or_create(
            order=locked,
            attempt=attempt,
            defaults={
                "territory_id": locked.territory_id,
                "provider": provider.provider,
                "link": link,
                "checkout_session_id": session.checkout_session_id,
                "checkout_url": session.url,
                "checkout_expires_at": session.expires_at,
                "payment_intent_id": session.payment_intent_id,
                "amount_cents": locked.total_cents,
                "currency": settings.PAYMENT_CURRENCY,
            },
        )
        current = PaymentLink.objects.get(pk=link.pk)
        if not current.is_usable(timezone.now()) or locked.status != OrderStatus.AWAITING_PAYMENT:
            # Revoked (or paid) while the session was being made: have it expired, refuse it.
            outbox_publish(topic="payment_link.revoked", aggregate=current, payload={"order_id": str(locked.pk)})
            unusable = True
        else:
            unusable = False
    if unusable:
        raise PaymentLinkUnusable()
    return payment.checkout_url


def payment_link_notify(*, link_id: Any) -> str:
    """Send the patient their link once, by SMS, or by email when no phone is on file; returns how.

    The message names the practice, the order's reference and the link — no health information.
    ``skipped`` when the link is no longer usable or was already sent; ``no contact`` when the
    patient has neither phone nor email (staff read the link from the admin). A delivery error
    propagates, with nothing marked, so the agent retries.
    """
    link = PaymentLink.objects.select_related("order__patient", "territory").filter(pk=link_id).first()
    if link is None or link.notified_at is not None or not link.is_usable(timezone.now()):
        return "skipped"
    if link.order.status != OrderStatus.AWAITING_PAYMENT:
        return "skipped"
    patient = link.order.patient
    body = (
        f"{link.territory.name}: your order {link.order.reference} is ready for payment. "
        f"Pay securely at {payment_link_url(link)} — the link works until "
        f"{timezone.localtime(link.expires_at):%b %-d, %Y}."
    )
    if patient.phone:
        sms_send(to=patient.phone, body=body)
        channel = "sms"
    elif patient.email:
        EmailMessage(subject=f"Payment for order {link.order.reference}", body=body, to=[patient.email]).send()
        channel = "email"
    else:
        return "no contact"
    PaymentLink.objects.filter(pk=link.pk, notified_at__isnull=True).update(notified_at=timezone.now())
    return channel
