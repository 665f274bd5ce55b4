"""Pharmacy base URLs: https:// to public addresses only, checked when saved and before every call
(issue 15, item 20). The tests' local pharmacy (pytest-httpserver on http://localhost) is allowed
by name in the test settings (``PHARMACY_ALLOWED_LOCAL_HOSTS``), and only there."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from django.test import override_settings
from django.urls import reverse
from pytest_httpserver import HTTPServer

from catalog.models import Product
from core.exceptions import ValidationFailed
from pharmacy import services
from pharmacy.destinations import (
    DOES_NOT_RESOLVE,
    HTTPS_ONLY,
    NO_CREDENTIALS,
    NOT_PUBLIC,
    address_is_public,
    destination_problem,
)
from pharmacy.models import Pharmacy, PharmacyLog, Prescription
from tests.admin.conftest import signed_in
from tests.conftest import World

from .conftest import FakePharmacy, pay, prescribe

REFUSED = [
    pytest.param("http://lakeside.example/api", HTTPS_ONLY, id="http"),
    pytest.param("ftp://lakeside.example/api", HTTPS_ONLY, id="ftp"),
    pytest.param("https://169.254.169.254/latest/meta-data", NOT_PUBLIC, id="link-local-metadata"),
    pytest.param("https://10.0.0.5/fhir", NOT_PUBLIC, id="private-10"),
    pytest.param("https://192.168.1.20/fhir", NOT_PUBLIC, id="private-192-168"),
    pytest.param("https://127.0.0.1:8443/fhir", NOT_PUBLIC, id="loopback"),
    pytest.param("https://[::1]/fhir", NOT_PUBLIC, id="loopback-v6"),
    pytest.param("https://[::ffff:169.254.169.254]/fhir", NOT_PUBLIC, id="v4-mapped-link-local"),
    pytest.param("https://[fe80::1]/fhir", NOT_PUBLIC, id="link-local-v6"),
    pytest.param("https://224.0.0.251/fhir", NOT_PUBLIC, id="multicast"),
    pytest.param("https://240.0.0.1/fhir", NOT_PUBLIC, id="reserved"),
    pytest.param("https://100.64.0.1/fhir", NOT_PUBLIC, id="shared-address-space"),
    pytest.param("https://user:secret@lakeside.example/api", NO_CREDENTIALS, id="credentials-in-url"),
]


def api_body(north: World, base_url: str) -> dict[str, Any]:
    return {
        "name": "Lakeside Pharmacy",
        "connector": "vendor-json",
        "base_url": base_url,
        "credentials": {"api_key": "k-1234"},
        "mapping": {"path": "/rx", "fields": {"rx_id": "prescription.identifier"}},
        "territory_ids": [str(north.territory.pk)],
    }


@pytest.mark.parametrize(("base_url", "problem"), REFUSED)
def test_the_api_refuses_a_base_url_that_is_not_https_to_a_public_address(
    north: World, api: Any, base_url: str, problem: str
) -> None:
    response = api(north.admin).post("/api/v1/pharmacies", api_body(north, base_url), format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "The request has invalid fields.",
            "details": {"base_url": [problem]},
        },
    }
    assert Pharmacy.objects.count() == 0


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("https://lakeside.example/api", id="name-not-resolving-yet"),
        pytest.param("https://8.8.8.8/fhir", id="public-address"),
        pytest.param("http://localhost:8099/fhir", id="allowed-local-test-host"),
    ],
)
def test_the_api_accepts_https_to_public_addresses_and_the_allowed_local_host(
    north: World, api: Any, base_url: str
) -> None:
    response = api(north.admin).post("/api/v1/pharmacies", api_body(north, base_url), format="json")

    assert response.status_code == 201, response.content
    assert Pharmacy.objects.get().base_url == base_url


def test_the_local_host_is_refused_where_the_setting_does_not_name_it(north: World, api: Any) -> None:
    with override_settings(PHARMACY_ALLOWED_LOCAL_HOSTS=[]):
        http = api(north.admin).post("/api/v1/pharmacies", api_body(north, "http://localhost:8099/fhir"), format="json")
        https = api(north.admin).post(
            "/api/v1/pharmacies", api_body(north, "https://localhost:8099/fhir"), format="json"
        )

    assert http.json()["error"]["details"] == {"base_url": [HTTPS_ONLY]}
    assert https.json()["error"]["details"] == {"base_url": [NOT_PUBLIC]}
    assert Pharmacy.objects.count() == 0


@pytest.mark.parametrize(("base_url", "problem"), REFUSED[:4])
def test_the_admin_refuses_such_a_base_url_on_the_form(north: World, base_url: str, problem: str) -> None:
    admin = signed_in(north.admin)
    form = {
        "name": "Harbor Pharmacy",
        "connector": "fhir-r4",
        "base_url": base_url,
        "mapping": "{}",
        "active": "on",
        "territories": [str(north.territory.pk)],
        "credentials_json": "",
    }

    response = admin.post(reverse("admin:pharmacy_pharmacy_add"), form)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"base_url": [problem]}
    assert Pharmacy.objects.count() == 0


def test_a_base_url_change_is_checked_by_the_service(north: World, pharmacy: Pharmacy) -> None:
    before = pharmacy.base_url

    with pytest.raises(ValidationFailed) as refused:
        services.pharmacy_update(
            actor=north.admin,
            pharmacy=pharmacy,
            fields={"base_url": "https://169.254.169.254/latest"},
            credentials=None,
            territory_ids=[north.territory.pk],
        )

    assert refused.value.details == {"base_url": [NOT_PUBLIC]}
    assert Pharmacy.objects.get(pk=pharmacy.pk).base_url == before


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        pytest.param("https://127.0.0.1:{port}/fhir", NOT_PUBLIC, id="address-no-longer-public"),
        pytest.param("http://localhost:{port}/fhir", HTTPS_ONLY, id="local-host-no-longer-allowed"),
    ],
)
def test_every_call_checks_the_destination_again(
    north: World,
    sildenafil: Product,
    httpserver: HTTPServer,
    pharmacy_server: FakePharmacy,
    stored: str,
    problem: str,
) -> None:
    """A destination that passed when saved (or whose name now resolves elsewhere) is refused at the call:
    nothing reaches the server, and the log names the refusal."""
    pharmacy = Pharmacy(name="Rebound Pharmacy", connector="fhir-r4", base_url=stored.format(port=httpserver.port))
    pharmacy.credentials = {"bearer_token": "t"}
    pharmacy.save()
    pharmacy.territories.add(north.territory)
    order = pay(north, prescribe(north, sildenafil))
    services.prescriptions_create(order_id=order.pk)
    prescription = Prescription.objects.get(order=order)

    with override_settings(PHARMACY_ALLOWED_LOCAL_HOSTS=[]):
        exchange = services.prescription_send(prescription_id=prescription.pk)

    assert exchange is not None
    assert (exchange.outcome, exchange.status, exchange.response_body) == (
        "network_error",
        None,
        f"DestinationRefused: {problem}",
    )
    assert pharmacy_server.requests == []
    assert PharmacyLog.objects.get().outcome == "network_error"
    assert Prescription.objects.get(pk=prescription.pk).status == "pending"


def test_a_call_to_a_name_that_does_not_resolve_is_not_made() -> None:
    assert destination_problem("https://lakeside.example/api", unresolved_allowed=False) == DOES_NOT_RESOLVE
    assert destination_problem("https://lakeside.example/api", unresolved_allowed=True) is None


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("2002:a9fe:a9fe::1", False),  # 6to4 around 169.254.169.254
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 around 169.254.169.254
        ("ff02::1", False),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
    ],
)
def test_address_is_public(address: str, public: bool) -> None:
    assert address_is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.1"])
def test_numeric_spellings_of_loopback_are_resolved_and_refused(host: str) -> None:
    for unresolved_allowed in (True, False):
        assert destination_problem(f"https://{host}/fhir", unresolved_allowed=unresolved_allowed) == NOT_PUBLIC
