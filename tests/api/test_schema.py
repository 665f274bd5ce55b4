"""The OpenAPI schema at /api/schema/ is complete and valid; Swagger UI at /api/docs/ shows it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

# Every path the issue names, with its methods.
REQUIRED_OPERATIONS = {
    "/api/v1/auth/token": {"post"},
    "/api/v1/patients": {"get", "post"},
    "/api/v1/providers": {"get"},
    "/api/v1/orders": {"post"},
    "/api/v1/orders/{order_id}": {"get"},
    "/api/v1/orders/territory/{territory_id}": {"get"},
    "/api/v1/orders/{order_id}/status": {"put"},
    "/api/v1/orders/{order_id}/verify": {"put"},
    "/api/v1/orders/{order_id}/complete": {"put"},
    "/api/v1/orders/{order_id}/cancel": {"put"},
    "/api/orders/{order_id}/timeline": {"get"},
    "/api/orders/{order_id}/events": {"post"},
    "/api/v1/catalog/products": {"get", "post"},
    "/api/v1/catalog/products/grouped": {"get"},
    "/api/v1/catalog/products/{sku}": {"get", "put"},
    "/api/v1/catalog/lots": {"post"},
    "/api/v1/orders/{order_id}/fulfillment": {"get"},
    "/api/v1/fulfillment-tasks/{task_id}/start": {"post"},
    "/api/v1/fulfillment-tasks/{task_id}/ship": {"post"},
    "/api/v1/fulfillment-tasks/{task_id}/done": {"post"},
    "/api/v1/work-orders": {"get"},
    "/api/v1/purchasing/reorders": {"get"},
    "/api/agents/status": {"get"},
    "/api/portal/orders": {"get", "post"},
    "/api/portal/orders/{order_id}/approve": {"post"},
    "/api/portal/orders/{order_id}/attachments": {"post"},
    "/api/portal/compliance/check": {"post"},
    "/api/portal/orders/{order_id}/payment-link": {"post"},
    "/api/portal/orders/{order_id}/refills": {"post"},
    "/api/v1/orders/{order_id}/fhir": {"get"},
    "/api/v1/pharmacies": {"post"},
    "/api/v1/pharmacies/{pharmacy_id}/callback": {"post"},
    "/payments/create-intent": {"post"},
    "/payments/webhook": {"post"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def schema_json(client: APIClient) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return dict(json.loads(response.content))


def operations(schema: dict[str, Any]) -> dict[str, set[str]]:
    return {path: {m for m in item if m in HTTP_METHODS} for path, item in schema["paths"].items()}


def test_the_generator_validates_the_schema_without_a_warning(tmp_path: Path, capsys: Any) -> None:
    GENERATOR_STATS.reset()
    target = tmp_path / "schema.yaml"
    out = io.StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stdout=out)

    captured = capsys.readouterr()
    assert "Warning" not in captured.err
    assert "Error" not in captured.err
    assert target.read_text().startswith("openapi: 3.0")


@pytest.mark.parametrize("authenticated", [False, True])
def test_schema_is_served_to_anyone_as_valid_openapi_3(north: Any, api: Any, authenticated: bool) -> None:
    client = api(north.doctor) if authenticated else APIClient()

    schema = schema_json(client)

    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert operations(schema) == REQUIRED_OPERATIONS


def test_schema_describes_bearer_auth_the_territory_header_and_the_order_fields(db: Any) -> None:
    schema = schema_json(APIClient())
    paths, components = schema["paths"], schema["components"]

    assert components["securitySchemes"]["jwtAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    # No global security and none on the token endpoint: it is the one call made without a token.
    assert "security" not in schema
    assert "security" not in paths["/api/v1/auth/token"]["post"]
    assert {"jwtAuth": []} in paths["/api/v1/orders"]["post"]["security"]
    for path, method in [("/api/v1/orders", "post"), ("/api/v1/patients", "get"), ("/api/v1/providers", "get")]:
        headers = [p["name"] for p in paths[path][method]["parameters"] if p["in"] == "header"]
        assert headers == ["Territory-Id"], path
    territory_list = {p["name"]: p for p in paths["/api/v1/orders/territory/{territory_id}"]["get"]["parameters"]}
    assert set(territory_list) == {"territory_id", "status", "cursor", "page_size"}
    assert "search" in {p["name"] for p in paths["/api/v1/patients"]["get"]["parameters"]}

    order = components["schemas"]["Order"]["properties"]
    for field in ["id", "status", "stage", "ai_disposition", "items", "payer_type", "territory_id"]:
        assert field in order, field
    assert {"created_at", "updated_at"} <= set(order)
    create = components["schemas"]["OrderCreateRequest"]["properties"]
    assert {"patient_id", "provider_id", "service_type", "diagnosis_codes", "notes", "insurance"} <= set(create)
    assert {"items", "delivery_mode", "priority", "payer_type"} <= set(create)
    assert set(components["schemas"]["OrderStatusUpdateRequest"]["properties"]) == {
        "status",
        "notes",
        "verification_data",
    }
    assert components["schemas"]["OrderCancelRequest"]["required"] == ["reason"]
    assert set(components["schemas"]["PatientCreateRequest"]["properties"]) == {
        "first_name",
        "last_name",
        "date_of_birth",
        "sex",
        "mbi",
        "phone",
        "email",
        "address",
        "provider_id",
        "allergies",
        "medications",
        "conditions",
    }
    assert {"id", "name", "npi", "territory_id"} <= set(components["schemas"]["Provider"]["properties"])


def test_schema_documents_the_error_envelope_on_every_operation(db: Any) -> None:
    schema = schema_json(APIClient())
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}

    assert schema["components"]["schemas"]["ErrorEnvelope"]["required"] == ["error", "status"]
    assert set(schema["components"]["schemas"]["ErrorDetail"]["properties"]) == {"code", "message", "details"}
    write = {"400", "401", "413", "415"}
    expected_errors = {
        ("/api/v1/auth/token", "post"): {*write, "429"},
        ("/api/v1/orders", "post"): {*write, "403", "422"},
        ("/api/v1/orders/{order_id}", "get"): {"400", "401", "403", "404"},
        ("/api/v1/orders/{order_id}/status", "put"): {*write, "403", "404", "409"},
        ("/api/v1/orders/{order_id}/cancel", "put"): {*write, "403", "404", "409"},
        ("/api/v1/orders/territory/{territory_id}", "get"): {"400", "401", "403", "404"},
        ("/api/orders/{order_id}/timeline", "get"): {"400", "401", "403", "404"},
        ("/api/orders/{order_id}/events", "post"): {*write, "403", "404", "409"},
        ("/api/v1/patients", "post"): {*write, "403", "422"},
        # issue 15, item 19: what these operations answer and the schema did not say
        ("/api/v1/fulfillment-tasks/{task_id}/start", "post"): {*write, "403", "404", "409"},
        ("/api/v1/fulfillment-tasks/{task_id}/ship", "post"): {*write, "403", "404", "409"},
        ("/api/v1/fulfillment-tasks/{task_id}/done", "post"): {*write, "403", "404", "409"},
        ("/api/portal/orders/{order_id}/approve", "post"): {*write, "403", "404", "409"},
        ("/payments/create-intent", "post"): {*write, "403", "404", "409", "422"},
        ("/payments/webhook", "post"): write,
    }
    for (path, method), codes in expected_errors.items():
        responses = schema["paths"][path][method]["responses"]
        assert {code for code in responses if code >= "400"} == codes, (path, method)
        for code in codes:
            assert responses[code]["content"]["application/json"]["schema"] == envelope
    conflict = schema["paths"]["/api/v1/orders/{order_id}/status"]["put"]["responses"]["409"]["description"]
    assert "INVALID_STATUS_TRANSITION" in conflict


def test_schema_documents_the_product_medication_and_refill_fields(db: Any) -> None:
    components = schema_json(APIClient())["components"]["schemas"]
    write, shown = components["ProductWriteRequest"]["properties"], components["Product"]["properties"]
    dispensing_unit = [{"$ref": "#/components/schemas/DispensingUnitEnum"}, {"$ref": "#/components/schemas/BlankEnum"}]

    assert components["DispensingUnitEnum"]["enum"] == ["tablet", "capsule", "mL", "pen"]
    # Optional when written, with the model's defaults (PUT replaces all, so an omitted one is cleared).
    assert {name: write[name].get("default") for name in ("rxnorm_name", "dispensing_unit", "recurring")} == {
        "rxnorm_name": "",
        "dispensing_unit": "",
        "recurring": False,
    }
    assert write["rxnorm_name"]["maxLength"] == 255
    assert write["dispensing_unit"]["oneOf"] == dispensing_unit
    assert {
        name: (write[name]["type"], write[name]["minimum"], write[name]["maximum"], write[name]["nullable"])
        for name in ("dispensing_units_per_unit", "days_of_supply")
    } == {
        "dispensing_units_per_unit": ("integer", 1, 2_147_483_647, True),
        "days_of_supply": ("integer", 1, 32_767, True),
    }
    assert {"rxnorm_name", "dispensing_unit", "dispensing_units_per_unit", "recurring", "days_of_supply"}.isdisjoint(
        components["ProductWriteRequest"]["required"]
    )
    # Always shown
    assert shown["rxnorm_name"] == {"type": "string"}
    assert shown["dispensing_unit"] == {"oneOf": dispensing_unit}
    assert shown["dispensing_units_per_unit"] == {"type": "integer", "nullable": True}
    assert shown["recurring"] == {"type": "boolean"}
    assert shown["days_of_supply"] == {"type": "integer", "nullable": True}
    assert {"rxnorm_name", "dispensing_unit", "dispensing_units_per_unit", "recurring", "days_of_supply"} <= set(
        components["Product"]["required"]
    )


def test_swagger_ui_is_served(db: Any) -> None:
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "swagger-ui" in page
    # Its start-up script is a file of its own (no inline script under the content security policy),
    # and that script loads the schema.
    assert '<script src="/api/docs/?script="></script>' in page
    assert "<script>" not in page
    assert "<style>" not in page
    script = APIClient().get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert 'url: "/api/schema/"' in script.content.decode()
