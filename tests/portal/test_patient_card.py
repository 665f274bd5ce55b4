"""The patients page (prefix search, recent patients), the patient card's orders with Reorder, its
prior authorizations valid until the day the compliance check uses, its recorded medications and
allergies with what the medication safety table recognised, and the order page's timeline and
tracking in words and links. (The browser journey is in tests/e2e.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from core.models import AccessRecord
from core.tracking import tracking_url
from orders import fulfillment
from orders import services as order_services
from orders.drafts import draft_prescriptions_missing, draft_start
from orders.models import FulfillmentTask, Order, OrderDraft
from orders.selectors import PatientCard, patient_card
from patients.models import Coverage, PayerKind, PriorAuthorization
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
    assert AccessRecord.objects.naming(drafted.pk).filter(channel="portal").count() == 2
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


# --- prior authorizations: valid until the day the compliance check uses ------------------------

D = dt.date


def decision(world: World, hcpcs: str, decided: D, *, affirmed: bool = True, expires_on: D | None = None) -> None:
    PriorAuthorization.objects.create(
        patient=world.patient,
        territory=world.territory,
        hcpcs_code=hcpcs,
        decision="affirmed" if affirmed else "non_affirmed",
        decision_date=decided,
        expires_on=expires_on,
        tracking_number=f"UTN-{hcpcs}",
    )


def authorization_warnings(card: PatientCard) -> list[str]:
    return [warning for warning in card.warnings if "prior authorization" in warning]


def test_an_orthosis_decision_without_a_stated_end_is_valid_for_the_programs_60_days(north: World) -> None:
    # CGS JC orthoses: affirmed on April 30, L1851 may be furnished until June 28 (day 1 = April 30)
    decision(north, "L1851", D(2024, 4, 30))

    last_valid_day = patient_card(user=north.doctor, pk=north.patient.pk, on=D(2024, 6, 28))
    first_invalid_day = patient_card(user=north.doctor, pk=north.patient.pk, on=D(2024, 6, 29))

    [shown] = last_valid_day.prior_authorizations
    assert (shown.authorization.hcpcs_code, shown.valid_until, shown.by_program) == ("L1851", D(2024, 6, 28), True)
    assert authorization_warnings(last_valid_day) == ["The prior authorization for L1851 expires on Jun 28, 2024."]
    assert authorization_warnings(first_invalid_day) == ["The prior authorization for L1851 expired on Jun 28, 2024."]


def test_a_compressor_decision_warns_from_thirty_days_before_its_last_valid_day(north: World) -> None:
    # E0651 (PCD, on the list from 2026-04-13): 60 days from April 13 end on June 11
    decision(north, "E0651", D(2026, 4, 13))

    before = patient_card(user=north.doctor, pk=north.patient.pk, on=D(2026, 5, 11))
    within = patient_card(user=north.doctor, pk=north.patient.pk, on=D(2026, 5, 12))

    assert before.prior_authorizations[0].valid_until == D(2026, 6, 11)
    assert authorization_warnings(before) == []
    assert authorization_warnings(within) == ["The prior authorization for E0651 expires on Jun 11, 2026."]


def test_a_stated_end_and_a_non_affirmed_decision(north: World) -> None:
    decision(north, "E0652", D(2026, 4, 20), expires_on=D(2026, 8, 1))  # the letter's own end, past 60 days
    decision(north, "L1851", D(2026, 4, 20), affirmed=False)
    decision(north, "A7032", D(2026, 4, 20))  # a cushion: on no program, no stated end

    card = patient_card(user=north.doctor, pk=north.patient.pk, on=D(2026, 7, 15))

    assert [(s.authorization.hcpcs_code, s.valid_until, s.by_program) for s in card.prior_authorizations] == [
        ("L1851", None, False),
        ("E0652", D(2026, 8, 1), False),
        ("A7032", None, False),
    ]
    assert authorization_warnings(card) == [
        "The prior authorization for L1851 was not affirmed.",
        "The prior authorization for E0652 expires on Aug 1, 2026.",
    ]


def test_the_card_page_shows_the_valid_until_day_and_the_warnings(north: World) -> None:
    today = timezone.localdate()
    decision(north, "L1851", today - dt.timedelta(days=59))  # day 60 is today: the last valid day
    decision(north, "E0651", today - dt.timedelta(days=60))  # day 60 was yesterday

    page = signed_in(north.doctor).get(f"/portal/patients/{north.patient.pk}/")

    body = page.content.decode()
    yesterday = today - dt.timedelta(days=1)
    assert authorization_warnings(page.context["card"]) == [
        f"The prior authorization for L1851 expires on {today:%b %-d, %Y}.",
        f"The prior authorization for E0651 expired on {yesterday:%b %-d, %Y}.",
    ]
    assert '<th scope="col">Valid until</th>' in body
    assert f'<td>{today:%b %-d, %Y} <span class="muted">(the program\'s validity)</span></td>' in body
    assert f'<td>{yesterday:%b %-d, %Y} <span class="muted">(the program\'s validity)</span></td>' in body


# --- recorded medications and allergies: what the medication safety table recognised -----------


def test_recorded_medications_and_allergies_show_what_the_safety_table_recognised(north: World) -> None:
    north.patient.medications = ["Imdur(60mg)", "Lisinopril 10 mg daily"]
    north.patient.allergies = ["Viagra."]
    north.patient.save()

    page = signed_in(north.doctor).get(f"/portal/patients/{north.patient.pk}/")

    card = page.context["card"]
    nitrates = "Nitrates and nitrites (nitroglycerin, isosorbide mononitrate/dinitrate, amyl nitrite)"
    pde5 = "PDE5 inhibitors (sildenafil, tadalafil, vardenafil, avanafil)"
    assert [(m.text, [(i.label, i.classes) for i in m.ingredients]) for m in card.medications] == [
        ("Imdur(60mg)", [("isosorbide mononitrate", [nitrates])]),
        ("Lisinopril 10 mg daily", []),
    ]
    assert [(a.text, [(i.label, i.classes) for i in a.ingredients]) for a in card.allergies] == [
        ("Viagra.", [("sildenafil", [pde5])]),
    ]
    body = page.content.decode()
    assert f"<tr><td>Imdur(60mg)</td><td>isosorbide mononitrate</td><td>{nitrates}</td></tr>" in body
    assert (
        '<tr><td>Lisinopril 10 mg daily</td><td colspan="2"><strong>Not recognised</strong>'
        " — not checked by the safety table</td></tr>"
    ) in body
    assert f"<tr><td>Viagra.</td><td>sildenafil</td><td>{pde5}</td></tr>" in body
    assert AccessRecord.objects.naming(north.patient.pk).filter(channel="portal").count() == 1


def test_recorded_medications_are_not_shown_to_a_user_without_phi_access(north: World) -> None:
    north.patient.medications = ["Imdur(60mg)"]
    north.patient.save()

    page = signed_in(north.distributor).get(f"/portal/patients/{north.patient.pk}/")

    assert page.status_code == 404
    assert "Imdur" not in page.content.decode()
    assert not AccessRecord.objects.naming(north.patient.pk).exists()
