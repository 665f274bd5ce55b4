"""The patients page (prefix search, recent patients), the patient card's orders with Reorder, and
the order page's timeline and tracking in words and links. (The browser journey is in tests/e2e.)"""

from __future__ import annotations

from typing import Any

import pytest

from core.models import AccessRecord
from core.tracking import tracking_url
from orders import fulfillment
from orders import services as order_services
from orders.drafts import draft_prescriptions_missing, draft_start
from orders.models import FulfillmentTask, Order, OrderDraft
from patients.models import Coverage, PayerKind
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import PatientFactory, ProductFactory

pytestmark = pytest.mark.django_db


def test_a_patient_is_found_by_the_start_of_a_name_and_recent_patients_are_listed(north: World) -> None:
    # Given three patients, two of them with the doctor's orders or drafts
    marchetti = PatientFactory.create(
        provider=north.provider, territory=north.territory, first_name="Ada", last_name="Marchetti"
    )
    drafted = PatientFactory.create(
        provider=north.provider, territory=north.territory, first_name="Ina", last_name="Rook"
    )
    PatientFactory.create(provider=north.provider, territory=north.territory, first_name="Never", last_name="Ordered")
    north.order(patient_id=marchetti.pk)
    draft_start(actor=north.doctor, patient_id=drafted.pk)
    client = signed_in(north.doctor)

    # When the doctor opens the patients page, then searches "March"
    page = client.get("/portal/patients/")
    search = client.post("/portal/patients/", {"q": "March"})

    # Then the recent patients are the draft's, then the order's; the search finds Marchetti
    assert [p.pk for p in page.context["recent"]] == [drafted.pk, marchetti.pk]
    assert "Your recent patients" in page.content.decode()
    assert AccessRecord.objects.filter(object_id=str(drafted.pk), channel="portal").count() == 2
    assert [p.pk for p in search.context["found"]] == [marchetti.pk]
    assert "Ada Marchetti" in search.content.decode()
    # the query never travels in a URL
    assert client.get("/portal/patients/?q=March").context["found"] == []


def test_recent_patients_are_only_those_the_user_may_read(north: World) -> None:
    north.order()
    page = signed_in(north.distributor).get("/portal/patients/")
    assert page.context["recent"] == []


def test_the_card_lists_the_patients_orders_with_stages_and_what_is_on_its_way(north: World) -> None:
    # Given three orders for the patient: one cancelled, one preparing, one pending (a duplicate)
    cancelled = north.order()
    order_services.order_transition(order_id=cancelled.pk, actor=north.ops, transition="cancel", reason="Wrong size")
    preparing = north.order()
    order_services.order_verify(order_id=preparing.pk, actor=north.ops)
    order_services.order_transition(order_id=preparing.pk, actor=north.ops, transition="start_fulfillment")
    pending = north.order(items=[order_services.ItemRequest(sku=north.product.sku, quantity=1)], actor=north.ops)

    page = signed_in(north.doctor).get(f"/portal/patients/{north.patient.pk}/")

    card = page.context["card"]
    assert [(o.pk, o.stage) for o in card.orders] == [
        (pending.pk, "Pending"),
        (preparing.pk, "Preparing"),
        (cancelled.pk, None),
    ]
    assert [(w.order.reference, w.notice, w.items) for w in card.on_its_way] == [
        (
            pending.reference,
            f"An order for this item is already on its way: {pending.reference}, Pending.",
            [north.product.name],
        ),
        (
            preparing.reference,
            f"An order for this item is already on its way: {preparing.reference}, Preparing.",
            [north.product.name],
        ),
    ]
    body = page.content.decode()
    assert "Nothing delivered yet" in body  # supply status: nothing delivered, but three orders listed
    for order in (pending, preparing, cancelled):
        assert f'href="/portal/orders/{order.pk}/"' in body
        assert f'action="/portal/orders/{order.pk}/reorder"' in body
    assert f"An order for this item is already on its way: {preparing.reference}, Preparing." in body


def test_reorder_creates_a_prefilled_draft_and_lands_on_the_wizard(north: World) -> None:
    order = north.order(
        items=[order_services.ItemRequest(sku=north.product.sku, quantity=1)],
        diagnosis_codes=["G47.33", "E66.01"],
        delivery_mode="ship_to_practice",
        delivery_window="morning",
        delivery_address={"line1": "9 Elm St", "line2": "", "city": "Fargo", "state": "ND", "postal_code": "58102"},
    )
    client = signed_in(north.doctor)

    assert client.get(f"/portal/orders/{order.pk}/reorder").status_code == 302  # a GET creates nothing
    assert not OrderDraft.objects.exists()
    response = client.post(f"/portal/orders/{order.pk}/reorder")

    draft = OrderDraft.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/portal/drafts/{draft.pk}/patient/"
    assert (draft.patient_id, draft.created_by_id, draft.order_id) == (north.patient.pk, north.doctor.pk, None)
    assert draft.answers == {
        "provider_id": str(north.provider.pk),
        "payer_type": "insurance",
        "diagnosis_codes": ["G47.33", "E66.01"],
        "skus": [north.product.sku],
        "quantities": {north.product.sku: 1},
        "prescriptions": {},
        "delivery": {
            "mode": "ship_to_practice",
            "window": "morning",
            "requested_date": None,
            "address": {"line1": "9 Elm St", "line2": "", "city": "Fargo", "state": "ND", "postal_code": "58102"},
        },
        "reorder_of": order.reference,
    }
    step = client.get(response["Location"])
    assert f"A new order copied from {order.reference}" in step.content.decode()
    # the open original shows on the wizard, and the checks flag the copy as its duplicate
    assert f"An order for this item is already on its way: {order.reference}, Pending." in step.content.decode()
    assert "DUPLICATE_ORDER" in [f.code for f in step.context["checks"].findings]


def test_a_reorder_of_a_medication_keeps_its_prescription(north: World) -> None:
    # Given a cash order for a medication with its prescription
    pen = ProductFactory.create(
        sku="RX-PEN", name="Semaglutide pen", rxnorm_code="1991302", hcpcs_code="", coverage_tier="cash_pay"
    )
    order = north.order(
        payer_type="cash",
        items=[
            order_services.ItemRequest(
                sku=pen.sku,
                quantity=1,
                dosage_text="Inject 0.25 mg under the skin once weekly",
                dose_frequency=1,
                dose_period=1,
                dose_period_unit="wk",
                refills=2,
                days_supply=28,
            )
        ],
    )

    # When the doctor reorders it
    signed_in(north.doctor).post(f"/portal/orders/{order.pk}/reorder")

    # Then the draft carries the same prescription, so the wizard does not ask for it again
    draft = OrderDraft.objects.get()
    assert draft.answers["payer_type"] == "cash"
    assert draft.answers["prescriptions"] == {
        pen.sku: {
            "dosage_text": "Inject 0.25 mg under the skin once weekly",
            "dose_frequency": 1,
            "dose_period": 1,
            "dose_period_unit": "wk",
            "days_supply": 28,
            "refills": 2,
        }
    }
    assert draft_prescriptions_missing(draft) == []


def test_reorder_of_an_order_the_user_may_not_see_or_order_is_refused(north: World, south: World) -> None:
    foreign = south.order()
    own = north.order()

    assert signed_in(north.doctor).post(f"/portal/orders/{foreign.pk}/reorder").status_code == 404
    assert (
        signed_in(north.doctor).post("/portal/orders/00000000-0000-0000-0000-000000000000/reorder").status_code == 404
    )
    distributor = signed_in(north.distributor).post(f"/portal/orders/{own.pk}/reorder")
    assert distributor.status_code == 404  # no access to the patient's record

    assert not OrderDraft.objects.exists()


def test_the_timeline_says_what_the_checks_found_in_words(north: World) -> None:
    held = north.order(actor=north.ops)  # unsigned: held for the signature

    doctor = signed_in(north.doctor).get(f"/portal/orders/{held.pk}/").content.decode()
    distributor = signed_in(north.distributor).get(f"/portal/orders/{held.pk}/").content.decode()

    assert "by the compliance checks" in doctor
    assert "The written order lacks the treating practitioner&#x27;s signature." in doctor
    assert "Compliance: The written order is not signed" in doctor  # the hold's reason
    assert "The written order is not signed" in distributor  # the finding's words, not its message
    for body in (doctor, distributor):
        assert "SWO_MISSING_SIGNATURE" not in body
        assert "AI (deterministic" not in body


@pytest.mark.parametrize(
    ("carrier", "number", "url"),
    [
        ("UPS", "1Z999AA10123456784", "https://www.ups.com/track?tracknum=1Z999AA10123456784"),
        ("FedEx Ground", "612345678901", "https://www.fedex.com/fedextrack/?trknbr=612345678901"),
        (
            "United States Postal Service",
            "9400100000000000000000",
            "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400100000000000000000",
        ),
        (
            "dhl",
            "1234567890",
            "https://www.dhl.com/us-en/home/tracking/tracking-express.html?submit=1&tracking-id=1234567890",
        ),
        ("UPS", "1Z/../x?y=1", "https://www.ups.com/track?tracknum=1Z%2F..%2Fx%3Fy%3D1"),
        ("Acme Couriers", "AC-1", None),
        ("UPS", "", None),
    ],
)
def test_tracking_urls_of_the_carriers(carrier: str, number: str, url: str | None) -> None:
    assert tracking_url(carrier, number) == url


def test_the_order_page_links_the_tracking_number_to_the_carrier(north: World) -> None:
    order = north.order()
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    fulfillment.pick_pack_ship(task_id=task.pk, actor=north.ops, carrier="UPS", tracking_number="1Z999AA10123456784")

    body = signed_in(north.doctor).get(f"/portal/orders/{order.pk}/").content.decode()

    assert Order.objects.get(pk=order.pk).status == "shipped"
    assert (
        'UPS tracking <a href="https://www.ups.com/track?tracknum=1Z999AA10123456784" rel="noopener noreferrer"'
        ' target="_blank"><strong>1Z999AA10123456784</strong>'
    ) in body


def test_an_unknown_carrier_shows_its_number_as_text(north: World, settings: Any) -> None:
    order = north.order()
    order_services.order_verify(order_id=order.pk, actor=north.ops)
    order_services.order_transition(order_id=order.pk, actor=north.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.get(order=order, kind="pick_pack")
    fulfillment.pick_pack_ship(task_id=task.pk, actor=north.ops, carrier="Acme Couriers", tracking_number="AC-1")

    body = signed_in(north.doctor).get(f"/portal/orders/{order.pk}/").content.decode()

    assert "Acme Couriers tracking <strong>AC-1</strong>" in body


def test_the_card_says_which_kind_of_payer_the_coverage_is(north: World) -> None:
    doctor = signed_in(north.doctor)
    card = doctor.get(f"/portal/patients/{north.patient.pk}/").content.decode()
    assert "<dt>Payer kind</dt><dd>Medicare fee-for-service (Original Medicare)</dd>" in card

    Coverage.objects.filter(patient=north.patient).update(payer_kind=PayerKind.MEDICAID)
    card = doctor.get(f"/portal/patients/{north.patient.pk}/").content.decode()
    assert "<dt>Payer kind</dt><dd>Medicaid</dd>" in card
