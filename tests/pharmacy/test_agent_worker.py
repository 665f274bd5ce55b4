"""The pharmacy agent on a real Celery worker and Redis: a paid order's prescription reaches the pharmacy
through a server error, retried by the worker with backoff, and exactly one prescription exists there."""

from __future__ import annotations

import pytest

from catalog.models import Product
from pharmacy.models import PharmacyLog, Prescription
from tests.conftest import World
from tests.core.conftest import live_worker, wait_until  # noqa: F401 - the worker fixture

from .conftest import FakePharmacy, pay, prescribe

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("live_worker", "pharmacy")
def test_a_real_worker_retries_the_pharmacy_until_it_accepts(
    north: World, sildenafil: Product, pharmacy_server: FakePharmacy
) -> None:
    pharmacy_server.script = [500]

    order = pay(north, prescribe(north, sildenafil))

    assert wait_until(lambda: Prescription.objects.filter(order=order, status="sent").exists(), timeout=30)
    assert len(pharmacy_server.stored) == 1
    assert list(PharmacyLog.objects.order_by("created_at").values_list("outcome", "response_status")) == [
        ("server_error", 500),
        ("accepted", 200),
    ]
