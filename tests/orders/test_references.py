"""Order references: 8 characters of a 32-letter alphabet, and a collision never fails a create.

The collision is real: an order already holds the very reference a seeded generator draws first,
and the create is given that generator through ``order_create``'s ``references`` seam.
"""

from __future__ import annotations

import random
import re

import pytest
from django.db import IntegrityError

from core.models import OutboxEvent
from orders.models import Order, OrderEvent, new_reference, reference_candidates
from orders.services import REFERENCE_ATTEMPTS
from tests.api import snapshot
from tests.conftest import World

pytestmark = pytest.mark.django_db

SEED = 18
REFERENCE = re.compile(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}")


def test_references_are_eight_unambiguous_characters_and_repeatable_from_a_seed() -> None:
    drawn = [new_reference() for _ in range(50)]
    assert all(REFERENCE.fullmatch(reference) for reference in drawn)
    assert len(set(drawn)) == 50
    seeded = reference_candidates(random.Random(SEED))
    assert [next(seeded) for _ in range(3)] == [new_reference(random.Random(SEED)), *_draws_after_the_first(2)]


def _draws_after_the_first(count: int) -> list[str]:
    source = random.Random(SEED)
    new_reference(source)
    return [new_reference(source) for _ in range(count)]


def test_a_create_whose_reference_is_taken_draws_another_and_succeeds(north: World) -> None:
    # Given an order already holding the reference the seeded generator draws first
    taken = new_reference(random.Random(SEED))
    existing = north.order(references=iter([taken]))
    assert existing.reference == taken

    # When another order is created with that generator (for another patient)
    created = north.order(patient_id=north.other_patient().pk, references=reference_candidates(random.Random(SEED)))

    # Then it exists with the generator's second reference, written once, and the first is untouched
    (second,) = _draws_after_the_first(1)
    assert created.reference == second
    assert Order.objects.get(pk=created.pk).reference == second
    assert Order.objects.get(pk=existing.pk).reference == taken
    assert OrderEvent.objects.filter(order=created, kind="created").count() == 1
    assert OutboxEvent.objects.filter(aggregate_id=str(created.pk), topic="order.created").count() == 1
    assert Order.objects.count() == 2


def test_a_create_gives_up_after_so_many_taken_references_and_writes_nothing(north: World) -> None:
    taken = north.order().reference
    patient = north.other_patient()
    before = snapshot()

    with pytest.raises(IntegrityError):
        north.order(patient_id=patient.pk, references=iter([taken] * REFERENCE_ATTEMPTS))

    assert snapshot() == before
