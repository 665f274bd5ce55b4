"""No PHI to Stripe: every request of the whole flow — PaymentIntent, Checkout Session, expiry on
re-issue, refund on cancel — is inspected for the fixture patient's PHI and the order's clinical
details. Metadata carries only the opaque order and invoice ids."""

from __future__ import annotations

import json
import re
from typing import Any

from orders import services as order_services
from payments import links
from payments.models import Invoice
from tests.conftest import World

from .conftest import FakeStripe, awaiting_payment, deliver, stripe_event


def test_nothing_sent_to_stripe_names_the_patient_or_what_was_ordered(
    north: World, api: Any, client: Any, stripe_server: FakeStripe, django_capture_on_commit_callbacks: Any
) -> None:
    patient, product = north.patient, north.product
    order = awaiting_payment(north)

    # Every kind of request the system makes to Stripe
    assert api(north.ops).post("/payments/create-intent", {"order_id": str(order.pk)}, format="json").status_code == 200
    first = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(links.payment_link_url(first).removeprefix("http://localhost:8000"))
    with django_capture_on_commit_callbacks(execute=True):
        second = links.payment_link_issue(order_id=order.pk, actor=north.ops)
    client.post(links.payment_link_url(second).removeprefix("http://localhost:8000"))
    session = stripe_server.complete("cs_test_3", "pi_paid")
    deliver(client, stripe_event("evt_paid", "checkout.session.completed", session))
    with django_capture_on_commit_callbacks(execute=True):
        order_services.order_cancel(order_id=order.pk, actor=north.ops, reason="Patient moved away")
    assert [(r["method"], r["path"]) for r in stripe_server.requests] == [
        ("POST", "/v1/payment_intents"),
        ("POST", "/v1/checkout/sessions"),
        ("POST", "/v1/checkout/sessions/cs_test_2/expire"),
        ("POST", "/v1/checkout/sessions"),
        ("POST", "/v1/refunds"),  # the cancelled order's payment is refunded
    ]
    withdrawn = links.payment_link_for_token(links.payment_link_token(second))
    assert withdrawn is not None
    assert withdrawn.revoke_reason == "Order cancelled"

    address, dob, phone = patient.address, patient.date_of_birth, patient.phone
    assert address is not None
    assert dob is not None
    assert phone is not None
    phi = [
        patient.first_name,
        patient.last_name,
        dob.isoformat(),
        dob.strftime("%m/%d/%Y"),
        dob.strftime("%Y%m%d"),
        patient.mbi,
        phone,
        re.sub(r"\D", "", phone),
        patient.email,
        address["line1"],
        address["city"],
        address["postal_code"],
        product.name,
        product.sku,
        product.hcpcs_code,
        "G47.33",
        "G4733",
        "Fixture order note",
        "Patient moved away",
    ]
    sent = json.dumps([{"path": r["path"], "form": r["form"]} for r in stripe_server.requests]).lower()
    assert [value for value in phi if value.lower() in sent] == []

    # Metadata names only the order and its invoice; descriptions are generic
    invoice = Invoice.objects.get(order=order)
    for request in stripe_server.requests:
        for key, value in request["form"].items():
            if "metadata" in key:
                assert (key.rsplit("[", 1)[1].rstrip("]"), value) in {
                    ("order_id", str(order.pk)),
                    ("invoice_id", str(invoice.pk)),
                }
            if key.endswith(("description", "[name]")):
                assert value == f"Order {order.reference}"
