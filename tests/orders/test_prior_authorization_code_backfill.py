"""Migration orders 0014: a prior-authorization document attached before documents named their codes
gets the code of its order when the order has exactly one distinct HCPCS code, so it clears that
item's hold again; every other document is left as it was."""

from __future__ import annotations

import importlib

from django.apps import apps as django_apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog.services import lot_receive
from compliance.engine import evaluate
from orders import services
from orders.compliance_checks import facts_for_order
from orders.models import Attachment, Order
from tests.conftest import World
from tests.factories import ProductFactory, WarehouseFactory
from tests.orders.reviews import PDF

backfill = importlib.import_module("orders.migrations.0014_name_the_code_of_prior_authorizations_on_single_code_orders")


def compressors(*codes_and_skus: tuple[str, str]) -> None:
    warehouse = WarehouseFactory.create()
    for code, sku in codes_and_skus:
        product = ProductFactory.create(sku=sku, name=f"Compressor {sku}", hcpcs_code=code)
        lot_receive(actor=None, product=product, warehouse=warehouse, lot_number=f"LOT-{sku}", quantity=5)


def order_of(world: World, *skus: str) -> Order:
    # each order for its own patient: the same patient's second open order would be a duplicate
    patient = world.other_patient()
    return world.order(patient_id=patient.pk, items=[services.ItemRequest(sku=sku, quantity=1) for sku in skus])


def attached_before_0013(
    world: World, order: Order, code: str, *, artifact_type: str = "PRIOR_AUTH", stored: tuple[str, ...] = ()
) -> Attachment:
    """A document as stored before 0013: attached (a prior authorization for ``code``), then left
    naming ``stored`` (none, as 0013 left them)."""
    attachment = services.order_attach(
        order_id=order.pk,
        actor=world.ops,
        artifact_type=artifact_type,
        file=SimpleUploadedFile("doc.pdf", PDF, content_type="application/pdf"),
        document_date=timezone.localdate(),
        hcpcs_codes=[code] if artifact_type == "PRIOR_AUTH" else [],
    )
    Attachment.objects.filter(pk=attachment.pk).update(hcpcs_codes=list(stored))
    return attachment


def prior_auth_findings(order: Order) -> list[tuple[str, str | None]]:
    return [(f.code, f.item) for f in evaluate(facts_for_order(order)).findings if f.code.startswith("PRIOR_AUTH")]


def test_only_documents_of_orders_with_one_distinct_code_are_named(north: World) -> None:
    # E0651 and E0652 pneumatic compressors: on the Required PA list since 2026-04-13 (CMS-6097-N)
    compressors(("E0651", "PCD-A"), ("E0651", "PCD-A2"), ("E0652", "PCD-B"))
    one_code = order_of(north, "PCD-A")
    same_code_twice = order_of(north, "PCD-A", "PCD-A2")  # two products, one code
    two_codes = order_of(north, "PCD-A", "PCD-B")
    named = order_of(north, "PCD-B")
    unnamed_one = attached_before_0013(north, one_code, "E0651")
    unnamed_twice = attached_before_0013(north, same_code_twice, "E0651")
    unnamed_two = attached_before_0013(north, two_codes, "E0651")
    already_named = attached_before_0013(north, named, "E0652", stored=("E0652",))
    not_a_prior_auth = attached_before_0013(north, one_code, "E0651", artifact_type="WOPD")
    assert prior_auth_findings(one_code) == [("PRIOR_AUTH_REQUIRED", "0")]  # the unnamed document clears nothing

    backfill.name_the_code_of_prior_authorizations_on_single_code_orders(django_apps, None)

    codes = dict(Attachment.objects.values_list("pk", "hcpcs_codes"))
    assert codes == {
        unnamed_one.pk: ["E0651"],
        unnamed_twice.pk: ["E0651"],
        unnamed_two.pk: [],  # which item it is for cannot be told: left for a person
        already_named.pk: ["E0652"],
        not_a_prior_auth.pk: [],
    }
    # The named document clears the hold on the next check; the ambiguous one still does not
    assert prior_auth_findings(one_code) == []
    assert prior_auth_findings(same_code_twice) == []
    assert prior_auth_findings(two_codes) == [("PRIOR_AUTH_REQUIRED", "0"), ("PRIOR_AUTH_REQUIRED", "1")]

    # A second run changes nothing
    backfill.name_the_code_of_prior_authorizations_on_single_code_orders(django_apps, None)
    assert dict(Attachment.objects.values_list("pk", "hcpcs_codes")) == codes
