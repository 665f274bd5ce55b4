"""factory-boy factories for every app's models.

Users get territory roles through the real membership service (``UserFactory(role=..., territory=...)``),
so guardian object permissions are exactly what production grants.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import factory
from factory.django import DjangoModelFactory

from accounts.models import User
from catalog.models import Product, TherapyType, Vendor, Warehouse
from core.identifiers import npi_check_digit
from orders.models import Order, OrderItem
from patients.models import Coverage, Patient, PayerKind, PayerType, Provider, ProviderCredential
from territories.models import Territory
from territories.services import membership_grant, territory_role_group


class TerritoryFactory(DjangoModelFactory[Territory]):
    class Meta:
        model = Territory
        django_get_or_create = ("code",)
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"territory-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())

    @factory.post_generation
    def role_groups(obj: Territory, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            from territories.models import Role

            for role in Role:
                territory_role_group(territory=obj, role=role)


class UserFactory(DjangoModelFactory[User]):
    """A user; pass ``territory`` and ``role`` to make them a member (``role`` defaults to doctor)."""

    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"User{n}")
    password = factory.django.Password("test-password")

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        territory = kwargs.pop("territory", None)
        role = kwargs.pop("role", "doctor")
        user = super()._create(model_class, *args, **kwargs)
        if territory is not None:
            membership_grant(user=user, territory=territory, role=role)
        return user


def _valid_npi(n: int) -> str:
    stem = f"1{n:08d}"[:9]
    return stem + npi_check_digit(stem)


class ProviderFactory(DjangoModelFactory[Provider]):
    """A provider with an active licence in their territory (pass ``credentialed=False`` for none)."""

    class Meta:
        model = Provider
        skip_postgeneration_save = True

    territory = factory.SubFactory(TerritoryFactory)
    name = factory.Sequence(lambda n: f"Dr. Provider {n}")
    npi = factory.Sequence(_valid_npi)
    credentials = "MD"

    @factory.post_generation
    def credentialed(obj: Provider, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted is not False:
            ProviderCredential.objects.create(
                provider=obj,
                territory=obj.territory,
                kind="State medical licence",
                number=f"LIC-{obj.npi}",
                valid_from=dt.date(2020, 1, 1),
            )


class PatientFactory(DjangoModelFactory[Patient]):
    """A patient with insurance coverage in force (orders refuse insurance without it,
    ``COVERAGE_MISSING``); ``insured=False`` makes one without coverage (a cash-pay patient)."""

    class Meta:
        model = Patient
        skip_postgeneration_save = True

    provider = factory.SubFactory(ProviderFactory)
    territory = factory.SelfAttribute("provider.territory")
    first_name = factory.Sequence(lambda n: f"Pat{n}")
    last_name = factory.Sequence(lambda n: f"Ient{n}")
    date_of_birth = dt.date(1950, 3, 14)
    mbi = "1EG4TE5MK73"
    phone = "555-010-0000"
    email = factory.Sequence(lambda n: f"patient{n}@example.org")
    address = factory.LazyFunction(
        lambda: {"line1": "1 Main St", "line2": "", "city": "Springfield", "state": "IL", "postal_code": "62701"}
    )

    @factory.post_generation
    def insured(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        if create and extracted is not False:
            CoverageFactory.create(patient=self)


class CoverageFactory(DjangoModelFactory[Coverage]):
    class Meta:
        model = Coverage

    patient = factory.SubFactory(PatientFactory, insured=False)
    territory = factory.SelfAttribute("patient.territory")
    payer_type = PayerType.INSURANCE
    payer_kind = PayerKind.MEDICARE_FFS
    payer_name = "Medicare Part B"
    plan_name = "Original Medicare"
    member_id = "1EG4TE5MK73"
    coverage_tier = "standard"


class ProductFactory(DjangoModelFactory[Product]):
    class Meta:
        model = Product
        django_get_or_create = ("sku",)

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    hcpcs_code = "A7030"
    therapy_type = TherapyType.CPAP
    price_cents = 12500
    unit = "each"


class OrderFactory(DjangoModelFactory[Order]):
    """An order written directly (no timeline or outbox): use ``orders.services`` to test behaviour."""

    class Meta:
        model = Order

    provider = factory.SubFactory(ProviderFactory)
    territory = factory.SelfAttribute("provider.territory")
    patient = factory.SubFactory(
        PatientFactory, provider=factory.SelfAttribute("..provider"), territory=factory.SelfAttribute("..territory")
    )
    payer_type = PayerType.INSURANCE
    diagnosis_codes = factory.LazyFunction(lambda: ["G47.33"])
    notes = "Fixture order note"


class OrderItemFactory(DjangoModelFactory[OrderItem]):
    class Meta:
        model = OrderItem

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    sku = factory.SelfAttribute("product.sku")
    quantity = 1
    unit_price_cents = factory.SelfAttribute("product.price_cents")


class VendorFactory(DjangoModelFactory[Vendor]):
    class Meta:
        model = Vendor
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"vendor-{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("-", " ").title())


class WarehouseFactory(DjangoModelFactory[Warehouse]):
    class Meta:
        model = Warehouse
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"warehouse-{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("-", " ").title())


_bulk_references = (f"B{n:06d}" for n in itertools.count())


def orders_in_bulk(
    world: Any, count: int, *, status: str, disposition: str = "clear", creator: Any = None
) -> list[Order]:
    """``count`` orders of ``world``'s doctor (as provider) for its patient, written in one INSERT,
    oldest first: for long lists, where only their number, status and order matter."""
    made = Order.objects.bulk_create(
        Order(
            reference=next(_bulk_references),
            territory=world.territory,
            patient=world.patient,
            provider=world.provider,
            created_by=creator,
            status=status,
            ai_disposition=disposition,
            payer_type="insurance",
        )
        for _ in range(count)
    )
    return list(Order.objects.filter(pk__in=[o.pk for o in made]).order_by("created_at", "id"))
