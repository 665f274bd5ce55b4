"""Control characters in a path or query string are a 400, never a 500 (issue 15, item 17).

One middleware (``core.middleware.RejectControlCharactersMiddleware``) answers before any view,
session or database query sees the request: the API with the error envelope, pages with the
plain 400 page (and, for htmx, no redirect header echoing the path).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from orders import drafts
from orders.models import OrderDraft
from pharmacy.models import Pharmacy
from tests.api import assert_error, snapshot

CONTROL = ["%00", "%0D%0A", "%7F", "a%1Bb"]
PATH_ERROR = {"path": ["Control characters are not allowed."]}
QUERY_ERROR = {"query": ["Control characters are not allowed."]}


@pytest.mark.parametrize("control", CONTROL)
@pytest.mark.parametrize(
    "template",
    [
        "/api/v1/catalog/products/{c}",
        "/api/v1/orders/{c}",
        "/api/v1/orders/{c}/fulfillment",
        "/api/v1/orders/territory/{c}",
        "/api/v1/orders/territory/north{c}",
        "/api/orders/{c}/timeline",
        "/api/v1/orders/{c}/fhir",
    ],
)
def test_a_control_character_in_an_api_path_is_a_400_in_the_envelope(
    north: Any, api: Any, template: str, control: str
) -> None:
    response = api(north.ops).get(template.format(c=control))

    assert_error(response, 400, "VALIDATION_ERROR", "The request has invalid fields.", PATH_ERROR)


@pytest.mark.parametrize("control", CONTROL)
@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/patients", "search"),
        ("/api/v1/catalog/products", "search"),
        ("/api/v1/orders/territory/north", "status"),
        ("/api/v1/orders/territory/north", "cursor"),
        ("/api/v1/providers", "x{c}y"),
    ],
)
def test_a_control_character_in_a_query_parameter_is_a_400_in_the_envelope(
    north: Any, api: Any, path: str, parameter: str, control: str
) -> None:
    name = parameter.format(c=control)
    value = "Zelda" if "{c}" in parameter else f"Zel{control}da"

    response = api(north.ops).get(f"{path}?{name}={value}")

    assert_error(response, 400, "VALIDATION_ERROR", "The request has invalid fields.", QUERY_ERROR)


@pytest.mark.parametrize("method", ["post", "put"])
def test_writes_with_a_control_character_in_the_path_change_nothing(north: Any, api: Any, method: str) -> None:
    order = north.order()
    before = snapshot()
    client = api(north.ops)
    path = f"/api/v1/orders/{order.pk}%00/status" if method == "put" else f"/api/orders/{order.pk}%0D%0A/events"

    response = getattr(client, method)(path, {"status": "on_hold", "notes": "x", "note": "x"}, format="json")

    assert_error(response, 400, "VALIDATION_ERROR", "The request has invalid fields.", PATH_ERROR)
    assert snapshot() == before


def test_an_anonymous_request_with_a_nul_in_the_path_is_a_400(db: Any) -> None:
    response = Client().get("/api/v1/catalog/products/%00")

    assert_error(response, 400, "VALIDATION_ERROR", "The request has invalid fields.", PATH_ERROR)


@pytest.mark.parametrize("signed_in", [False, True])
@pytest.mark.parametrize("control", ["%0D%0A", "%0D%0ASet-Cookie:%20x=1", "%00"])
def test_an_htmx_request_with_control_characters_under_drafts_is_a_plain_400(
    north: Any, signed_in: bool, control: str
) -> None:
    draft = drafts.draft_start(actor=north.doctor, patient_id=north.patient.pk)
    client = Client()
    if signed_in:
        client.force_login(north.doctor)
    saved = OrderDraft.objects.values_list("answers", "step", "updated_at").get(pk=draft.pk)

    for path in (f"/portal/drafts/{draft.pk}/patient{control}/", f"/portal/drafts/{control}/patient/"):
        for method in ("get", "post"):
            response = getattr(client, method)(path, HTTP_HX_REQUEST="true")

            assert response.status_code == 400, (path, method, response.status_code)
            assert response["Content-Type"].startswith("text/html")
            assert "HX-Redirect" not in response
            assert "Set-Cookie" not in response
    assert OrderDraft.objects.values_list("answers", "step", "updated_at").get(pk=draft.pk) == saved


def test_pages_answer_a_control_character_in_the_query_with_a_plain_400(north: Any) -> None:
    client = Client()
    client.force_login(north.doctor)

    response = client.get("/portal/patients?q=O%27Brien%00")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_ordinary_text_still_passes(north: Any, api: Any) -> None:
    """Apostrophes, spaces, accents and emoji are text, not control characters."""
    response = api(north.ops).get("/api/v1/patients?search=O%27Brien%20Jos%C3%A9%20%F0%9F%92%A5")

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_nul_the_serializers_let_through_is_a_400_and_nothing_is_saved(north: Any, api: Any) -> None:
    """A NUL inside a JSON object field (a pharmacy's mapping) reaches PostgreSQL, which refuses it: a 400."""
    body = {
        "name": "Lakeside Pharmacy",
        "connector": "vendor-json",
        "base_url": "https://8.8.8.8/api",
        "credentials": {"api_key": "k-1234"},
        "mapping": {"path": "/rx\u0000", "fields": {"rx\u0000id": "prescription.identifier"}},
        "territory_ids": [str(north.territory.pk)],
    }

    response = api(north.admin).post("/api/v1/pharmacies", body, format="json")

    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        "The request holds a value that cannot be stored (e.g. a NUL character).",
    )
    assert Pharmacy.objects.count() == 0


def test_a_query_string_with_too_many_parameters_is_a_400_in_the_envelope(north: Any, api: Any) -> None:
    query = "&".join(f"p{i}=1" for i in range(1001))

    response = api(north.ops).get(f"/api/v1/providers?{query}")

    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        "The request has invalid fields.",
        {"query": ["The query string has too many parameters."]},
    )
