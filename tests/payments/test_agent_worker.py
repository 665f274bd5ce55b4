"""The payments agent on a real Celery worker and Redis: a verified cash-pay order is invoiced, waits
for payment and its patient gets a link, with nothing run in the test's own thread."""

from __future__ import annotations

from typing import Any

import pytest

from orders import services as order_services
from orders.models import Order
from payments import links
from payments.models import Invoice, PaymentLink
from tests.conftest import World
from tests.core.conftest import live_worker, wait_until  # noqa: F401 - the worker fixture

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("live_worker")
def test_a_real_worker_takes_a_verified_cash_order_to_a_paid_order(north: World, client: Any) -> None:
    order = north.order(payer_type="cash")
    order_services.order_verify(order_id=order.pk, actor=north.ops)

    assert wait_until(lambda: PaymentLink.objects.filter(order=order, notified_at__isnull=False).exists(), timeout=20)
    assert Order.objects.get(pk=order.pk).status == "awaiting_payment"
    assert Invoice.objects.get(order=order).status == "open"

    link = PaymentLink.objects.get(order=order)
    checkout = client.post(links.payment_link_url(link).removeprefix("http://localhost:8000"))
    client.post(checkout["Location"].removeprefix("http://localhost:8000"), {"outcome": "succeed"})

    assert Order.objects.get(pk=order.pk).status == "paid"
    assert wait_until(lambda: Invoice.objects.get(order=order).status == "paid")
