"""Payment links in the back office: the address to read to the patient, re-issue and revoke buttons
that go through the services, scoped to the user's territories."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from payments import links
from payments.models import PaymentLink
from tests.admin.conftest import signed_in
from tests.conftest import World

from .conftest import FakeStripe, awaiting_payment


def test_ops_read_the_address_and_re_issue_the_link(
    north: World, client: Any, stripe_server: FakeStripe, django_capture_on_commit_callbacks: Any
) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=None)
    client.post(links.payment_link_url(link).removeprefix("http://localhost:8000"))
    ops = signed_in(north.ops)
    change = reverse("admin:payments_paymentlink_change", args=(link.pk,))
    reissue = reverse("admin:payments_paymentlink_reissue", args=(link.pk,))

    page = ops.get(change).content.decode()
    assert links.payment_link_url(link) in page
    assert reissue in page
    assert "Re-issue" in ops.get(reissue).content.decode()  # a confirmation first
    assert PaymentLink.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = ops.post(reissue)

    new = PaymentLink.objects.get(revoked_at__isnull=True)
    assert response["Location"] == reverse("admin:payments_paymentlink_change", args=(new.pk,))
    assert (new.created_by, PaymentLink.objects.get(pk=link.pk).revoke_reason) == (north.ops, "Re-issued")
    assert stripe_server.sessions["cs_test_1"]["status"] == "expired"
    old_page = ops.get(change).content.decode()
    assert links.payment_link_url(link) not in old_page
    assert "No longer usable." in old_page


def test_revoking_asks_for_a_reason_and_other_territories_see_nothing(north: World, south: World) -> None:
    order = awaiting_payment(north)
    link = links.payment_link_issue(order_id=order.pk, actor=None)
    revoke = reverse("admin:payments_paymentlink_revoke", args=(link.pk,))

    outsider = signed_in(south.ops)
    assert outsider.get(reverse("admin:payments_paymentlink_change", args=(link.pk,))).status_code == 404
    assert outsider.post(revoke, {"reason": "Not mine"}).status_code == 404

    ops = signed_in(north.ops)
    assert ops.post(revoke, {"reason": ""}).status_code == 200
    assert PaymentLink.objects.get(pk=link.pk).revoked_at is None

    assert ops.post(revoke, {"reason": "Patient asked to pay by phone"}).status_code == 302
    link = PaymentLink.objects.get(pk=link.pk)
    assert (link.revoked_by, link.revoke_reason) == (north.ops, "Patient asked to pay by phone")
    assert (
        reverse("admin:payments_paymentlink_revoke", args=(link.pk,))
        not in ops.get(reverse("admin:payments_paymentlink_change", args=(link.pk,))).content.decode()
    )
