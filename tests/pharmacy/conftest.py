"""A cash-pay medication in stock, an order for it with its prescription details, and a local FHIR pharmacy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from catalog.models import Product, TherapyType
from catalog.services import lot_receive
from orders import services as order_services
from orders.models import Order
from orders.services import ItemRequest
from pharmacy.models import Pharmacy
from tests.conftest import World
from tests.factories import ProductFactory, WarehouseFactory


@pytest.fixture
def sildenafil(north: World) -> Product:
    """RxCUI 577033, sildenafil 20 MG Oral Tablet, sold by the bottle of 30 tablets."""
    product = ProductFactory.create(
        sku="RX-SILDENAFIL-20MG",
        name="Sildenafil 20 mg tablet",
        hcpcs_code="",
        therapy_type=TherapyType.ED,
        rxnorm_code="577033",
        rxnorm_name="sildenafil 20 MG Oral Tablet",
        strength="20 mg",
        dose_form="Oral Tablet",
        unit="bottle of 30",
        dispensing_unit="tablet",
        dispensing_units_per_unit=30,
        price_cents=2400,
    )
    lot_receive(
        actor=None, product=product, warehouse=WarehouseFactory.create(code="wh-rx"), lot_number="RX-1", quantity=50
    )
    return product


def prescribe(world: World, product: Product, *, days_supply: int | None = None, **overrides: Any) -> Order:
    """The doctor's signed cash-pay order for ``product`` with a sig, a daily timing and two refills."""
    item = ItemRequest(
        sku=product.sku,
        quantity=1,
        dosage_text="Take 1 tablet by mouth once daily",
        dose_frequency=1,
        dose_period=1,
        dose_period_unit="d",
        refills=2,
        days_supply=days_supply,
    )
    fields: dict[str, Any] = {"payer_type": "cash", "items": [item], "diagnosis_codes": ["N52.9"], **overrides}
    return world.order(**fields)


def pay(world: World, order: Order) -> Order:
    """Verify a cash-pay order and record its payment (ops verify, the admin marks it paid)."""
    order_services.order_verify(order_id=order.pk, actor=world.ops)
    order_services.order_transition(order_id=order.pk, actor=world.ops, transition="request_payment")
    return order_services.order_transition(order_id=order.pk, actor=world.admin, transition="mark_paid")


TOKEN = "tok-pharmacy-secret-9f2c"


class FakePharmacy:
    """A FHIR server's MedicationRequest endpoint with conditional create (If-None-Exist on identifier).

    ``script`` lists what to do for the next requests: an HTTP status to answer with (500 still
    stores the prescription, as a server that failed after committing would), or "slow" to
    answer only after the client has timed out.
    """

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.script: list[int | str] = []

    def handle(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        self.requests.append({"headers": dict(request.headers), "body": body})
        step = self.script.pop(0) if self.script else 201
        if step == "slow":
            time.sleep(1.0)
            step = 201
        if isinstance(step, int) and 400 <= step < 500:
            outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}
            return Response(json.dumps(outcome), status=step, content_type="application/fhir+json")
        condition = request.headers.get("If-None-Exist", "")
        existing = self.stored.get(condition)
        if existing is None:
            existing = {**json.loads(body), "id": str(len(self.stored) + 1)}
            self.stored[condition] = existing
            status = step
        else:
            status = 200 if step == 201 else step
        location = f"MedicationRequest/{existing['id']}/_history/1"
        return Response(
            json.dumps(existing), status=status, headers={"Location": location}, content_type="application/fhir+json"
        )


@pytest.fixture
def pharmacy_server(httpserver: HTTPServer) -> Iterator[FakePharmacy]:
    fake = FakePharmacy()
    httpserver.expect_request("/fhir/MedicationRequest", method="POST").respond_with_handler(fake.handle)
    with override_settings(PHARMACY_TIMEOUT_SECONDS=0.4, PHARMACY_MAX_RETRIES=2):
        yield fake


@pytest.fixture
def pharmacy(north: World, httpserver: HTTPServer) -> Pharmacy:
    pharmacy = Pharmacy(name="Northside Compounding", connector="fhir-r4", base_url=httpserver.url_for("/fhir"))
    pharmacy.credentials = {"bearer_token": TOKEN}
    pharmacy.save()
    pharmacy.territories.add(north.territory)
    return pharmacy
