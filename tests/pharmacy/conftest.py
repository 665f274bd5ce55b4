"""A cash-pay medication in stock, and an order for it with its prescription details."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import Product, TherapyType
from catalog.services import lot_receive
from orders.models import Order
from orders.services import ItemRequest
from tests.conftest import World
from tests.factories import ProductFactory, WarehouseFactory


@pytest.fixture
def sildenafil(north: World) -> Product:
    """RxCUI 577033, sildenafil 20 MG Oral Tablet."""
    product = ProductFactory.create(
        sku="RX-SILDENAFIL-20MG",
        name="Sildenafil 20 mg tablet",
        hcpcs_code="",
        therapy_type=TherapyType.ED,
        rxnorm_code="577033",
        strength="20 mg",
        dose_form="Oral Tablet",
        unit="bottle of 30",
        price_cents=2400,
    )
    lot_receive(
        actor=None, product=product, warehouse=WarehouseFactory.create(code="wh-rx"), lot_number="RX-1", quantity=50
    )
    return product


def prescribe(world: World, product: Product, **overrides: Any) -> Order:
    """The doctor's signed cash-pay order for ``product`` with a sig, a daily timing and two refills."""
    item = ItemRequest(
        sku=product.sku,
        quantity=1,
        dosage_text="Take 1 tablet by mouth once daily",
        dose_frequency=1,
        dose_period=1,
        dose_period_unit="d",
        refills=2,
    )
    fields: dict[str, Any] = {"payer_type": "cash", "items": [item], "diagnosis_codes": ["N52.9"], **overrides}
    return world.order(**fields)
