"""Orders in the states a reviewer decides on, made through the real services (shared by the tests
of approving, reviewing, overriding and the portal and admin pages that offer them)."""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile

from orders import services
from orders.models import Order, OrderStatus
from tests.conftest import World

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def medical_necessity(name: str = "necessity.pdf") -> services.DocumentUpload:
    return services.DocumentUpload(
        artifact_type="MEDICAL_NECESSITY", file=ContentFile(PDF, name=name), content_type="application/pdf"
    )


def needs_review_order(world: World, **overrides: Any) -> Order:
    """A signed insurance order of 7 nasal cushions (A7032: a usual maximum of 2 a month, LCD L33718,
    so at most 6 at a time) with medical-necessity documentation attached: ``needs_review``."""
    fields: dict[str, Any] = {
        "items": [services.ItemRequest(sku=world.product.sku, quantity=7)],
        "documents": [medical_necessity()],
    }
    order = world.order(**{**fields, **overrides})
    order.refresh_from_db()
    assert (order.status, order.ai_disposition) == (OrderStatus.PENDING_VERIFICATION, "needs_review")
    return order


def held_for_quantity(world: World) -> Order:
    """The same order without the documentation: held (QUANTITY_LIMIT_EXCEEDED)."""
    order = world.order(items=[services.ItemRequest(sku=world.product.sku, quantity=7)])
    order.refresh_from_db()
    assert (order.status, order.ai_disposition) == (OrderStatus.ON_HOLD, "hold")
    return order
