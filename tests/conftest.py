"""Shared fixtures: two territories with a doctor, ops staff and admin each, and API clients."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import pytest
from django.apps import apps as django_apps
from rest_framework.test import APIClient

from accounts.models import User
from catalog.models import Product
from catalog.services import lot_receive
from orders import services as order_services
from orders.models import Order
from patients.models import Patient, Provider
from territories.models import Territory

from .factories import PatientFactory, ProductFactory, ProviderFactory, TerritoryFactory, UserFactory, WarehouseFactory


@dataclass
class World:
    """One territory's people and things."""

    territory: Territory
    doctor: User
    ops: User
    admin: User
    distributor: User
    provider: Provider
    patient: Patient
    product: Product

    def order(self, *, actor: Any = None, payer_type: str = "insurance", **overrides: Any) -> Order:
        """An order created through the real service (timeline entry, outbox row and compliance check).

        The doctor's own orders are signed, so with stock on hand they come out ``clear``.
        """
        fields: dict[str, Any] = {
            "actor": actor or self.doctor,
            "sign": (actor or self.doctor) == self.doctor,
            "patient_id": self.patient.pk,
            "provider_id": self.provider.pk,
            "items": [order_services.ItemRequest(sku=self.product.sku, quantity=2)],
            "payer_type": payer_type,
            "diagnosis_codes": ["G47.33"],
            "notes": "Fixture order note",
        }
        fields.update(overrides)
        return order_services.order_create(**fields)

    def other_patient(self) -> Patient:
        """Another patient of the territory's provider: for a further order that is not meant as a
        second, identical order for ``patient`` (which the checks flag as a duplicate while the first is open)."""
        return PatientFactory.create(provider=self.provider, territory=self.territory)


def make_world(code: str) -> World:
    """A territory with its people, a credentialed provider, a patient and a product in stock."""
    territory = TerritoryFactory.create(code=code, name=code.title())
    provider = ProviderFactory.create(territory=territory, name=f"Dr. {code.title()}")
    doctor = UserFactory.create(username=f"dr.{code}", territory=territory, role="doctor")
    provider.user = doctor
    provider.save(update_fields=["user"])
    product = ProductFactory.create(sku=f"CPAP-MASK-{code.upper()}", hcpcs_code="A7032", price_cents=12500)
    lot_receive(
        actor=None,
        product=product,
        warehouse=WarehouseFactory.create(code=f"wh-{code}"),
        lot_number=f"WORLD-{code.upper()}",
        quantity=500,
    )
    return World(
        territory=territory,
        doctor=doctor,
        ops=UserFactory.create(username=f"ops.{code}", territory=territory, role="ops_staff"),
        admin=UserFactory.create(username=f"admin.{code}", territory=territory, role="admin"),
        distributor=UserFactory.create(username=f"md.{code}", territory=territory, role="master_distributor"),
        provider=provider,
        patient=PatientFactory.create(
            provider=provider,
            territory=territory,
            first_name="Zelda",
            last_name=f"Quartermaine{code.title()}",
            date_of_birth=dt.date(1948, 7, 9),
        ),
        product=product,
    )


@pytest.fixture
def north(db: Any) -> World:
    return make_world("north")


@pytest.fixture
def south(db: Any) -> World:
    return make_world("south")


def api_client_for(user: User | None) -> APIClient:
    """A DRF test client authenticated with a real bearer token from POST /api/v1/auth/token."""
    client = APIClient()
    if user is not None:
        response = client.post(
            "/api/v1/auth/token", {"username": user.username, "password": "test-password"}, format="json"
        )
        assert response.status_code == 200, response.content
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return client


@pytest.fixture
def beat_schedule(db: Any) -> None:
    """The default beat schedule, as its migrations write it (agents/migrations): a transactional
    test's flush removes the rows the migrations wrote when the database was made."""
    import_module("agents.migrations.0002_default_schedules").create_defaults(django_apps, None)
    import_module("agents.migrations.0003_work_orders_schedule").create(django_apps, None)
    import_module("agents.migrations.0005_staff_alerts_schedule").create(django_apps, None)
    import_module("agents.migrations.0006_messages_schedule").create(django_apps, None)


@pytest.fixture
def api() -> Any:
    return api_client_for
