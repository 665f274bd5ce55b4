"""Catalog pages: lots are shown with their ledger and are never edited in the admin."""

from __future__ import annotations

import datetime as dt
from typing import Any

from catalog.models import Lot, Warehouse
from catalog.services import lot_adjust, lot_receive
from tests.factories import ProductFactory

from .conftest import signed_in


def test_a_lot_page_shows_its_ledger_and_cannot_be_edited(superuser: Any) -> None:
    product = ProductFactory.create(sku="STRIPS-50", is_perishable=True)
    warehouse = Warehouse.objects.create(code="main", name="Main warehouse")
    lot = lot_receive(
        actor=superuser,
        product=product,
        warehouse=warehouse,
        lot_number="LOT-7731",
        quantity=12,
        expiration_date=dt.date(2027, 3, 1),
    )
    lot_adjust(actor=superuser, lot_id=lot.pk, delta=-2, reason="Crushed carton")
    client = signed_in(superuser)

    listing = client.get("/admin/catalog/lot/")
    page = client.get(f"/admin/catalog/lot/{lot.pk}/change/")
    edit = client.post(f"/admin/catalog/lot/{lot.pk}/change/", {"quantity_on_hand": 500})

    assert listing.status_code == 200
    assert "LOT-7731" in listing.content.decode()
    assert page.status_code == 200
    assert "Crushed carton" in page.content.decode()
    assert edit.status_code == 403
    lot = Lot.objects.get(pk=lot.pk)
    assert (lot.quantity_on_hand, lot.quantity_reserved) == (10, 0)
    assert client.get("/admin/catalog/lot/add/").status_code == 403
