"""Pharmacies, prescriptions and the pharmacy log in the back office."""

from __future__ import annotations

from typing import Any

from django.contrib.messages import get_messages
from django.urls import reverse

from catalog.models import Product
from core.models import AccessRecord
from pharmacy import services
from pharmacy.models import Pharmacy, PharmacyLog, Prescription
from tests.admin.conftest import signed_in
from tests.conftest import World

from .conftest import FakePharmacy, pay, prescribe

SECRET = "admin-typed-secret-5521"


def form(north: World, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Harbor Pharmacy",
        "connector": "fhir-r4",
        "base_url": "https://harbor.example/fhir",
        "mapping": "{}",
        "active": "on",
        "territories": [str(north.territory.pk)],
        "credentials_json": f'{{"bearer_token": "{SECRET}"}}',
        **changes,
    }


def test_an_admin_adds_a_pharmacy_and_its_secrets_stay_hidden(north: World, south: World) -> None:
    admin = signed_in(north.admin)

    response = admin.post(reverse("admin:pharmacy_pharmacy_add"), form(north))

    assert response.status_code == 302
    pharmacy = Pharmacy.objects.get()
    assert response["Location"] == reverse("admin:pharmacy_pharmacy_changelist")
    assert pharmacy.credentials == {"bearer_token": SECRET}
    [message] = [str(m) for m in get_messages(response.wsgi_request) if "Callback token" in str(m)]
    token = message.rsplit(": ", 1)[1]
    assert services.pharmacy_for_callback(pharmacy_id=pharmacy.pk, token=token) == pharmacy

    page = admin.get(reverse("admin:pharmacy_pharmacy_change", args=(pharmacy.pk,))).content.decode()
    assert SECRET not in page
    assert "bearer_token: ••••5521" in page

    # A blank credentials field keeps them; the other territory's admin does not see the pharmacy
    admin.post(
        reverse("admin:pharmacy_pharmacy_change", args=(pharmacy.pk,)),
        form(north, name="Harbor Rx", credentials_json=""),
    )
    pharmacy = Pharmacy.objects.get()
    assert (pharmacy.name, pharmacy.credentials) == ("Harbor Rx", {"bearer_token": SECRET})
    assert signed_in(south.admin).get(reverse("admin:pharmacy_pharmacy_change", args=(pharmacy.pk,))).status_code == 302


def test_territories_the_user_does_not_manage_are_refused(north: World, south: World) -> None:
    response = signed_in(north.admin).post(
        reverse("admin:pharmacy_pharmacy_add"), form(north, territories=[str(south.territory.pk)])
    )
    assert response.status_code == 200
    assert Pharmacy.objects.count() == 0
    assert signed_in(north.ops).get(reverse("admin:pharmacy_pharmacy_add")).status_code == 403


def test_ops_resend_a_dead_lettered_prescription_and_read_the_log(
    north: World,
    sildenafil: Product,
    pharmacy: Pharmacy,
    pharmacy_server: FakePharmacy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    order = pay(north, prescribe(north, sildenafil))
    pharmacy_server.script = [503]
    services.prescriptions_submit(order_id=order.pk)
    services.prescriptions_dead_letter(order_id=order.pk)
    prescription = Prescription.objects.get()
    assert prescription.status == "dead_letter"

    ops = signed_in(north.ops)
    with django_capture_on_commit_callbacks(execute=True):
        ops.post(
            reverse("admin:pharmacy_prescription_changelist"),
            {"action": "retry_sending", "_selected_action": [str(prescription.pk)]},
        )

    assert Prescription.objects.get().status == "sent"
    log = PharmacyLog.objects.filter(outcome="accepted").get()
    page = ops.get(reverse("admin:pharmacy_pharmacylog_change", args=(log.pk,)))
    assert page.status_code == 200
    assert "577033" in page.content.decode()  # the request payload, for permitted staff
    assert AccessRecord.objects.filter(object_id=str(log.pk), user=north.ops).count() == 1
    changelist = ops.get(reverse("admin:pharmacy_pharmacylog_changelist")).content.decode()
    assert "577033" not in changelist
