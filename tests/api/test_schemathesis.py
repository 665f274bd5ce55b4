"""The API answers only what its OpenAPI schema documents, and never a 5xx (issue 15, item 19).

schemathesis reads the schema the API serves (``/api/schema/``), generates requests for every
operation from it — valid ones and invalid ones (``GenerationMode.NEGATIVE``: wrong types,
missing fields, odd path values) — and sends them to Django's WSGI application in-process,
authenticated as a doctor and as ops staff. Each response must be no server error
(``not_a_server_error``) and carry a status code the schema documents for the operation
(``status_code_conformance``). Every operation runs twice: with random path values (mostly
"not found") and with the ids of real objects of the caller's territory, so the handlers get past
the lookups. Examples are bounded and derandomized: the run is the same every time and stays
well under a minute.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from orders import services as order_services
from orders.models import FulfillmentTask
from tests.conftest import World

EXAMPLES_PER_OPERATION = 6
# Path values that have broken handlers before (a NUL reached PostgreSQL; CR/LF reached a header):
# every operation with a path parameter gets each of them, besides what schemathesis generates.
HOSTILE_PATH_VALUES = ["\x00", "a\r\nb", "\x1b[0m", "%", "..", "' OR 1=1 --", "x" * 300, "\U0001f4a5"]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, status_code_conformance]


@dataclass(frozen=True)
class Caller:
    role: str
    authorization: str
    real_path_values: dict[str, str]


@contextlib.contextmanager
def connection_kept_open() -> Iterator[None]:
    """Django's WSGI application called in-process stays inside the test's database transaction.

    Django closes a connection that is inside a transaction when a request ends; as
    ``django.test.Client`` does around each of its requests, that is switched off for the block.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def caller(world: World, role: str) -> Caller:
    user = {"doctor": world.doctor, "ops": world.ops}[role]
    response = APIClient().post(
        "/api/v1/auth/token", {"username": user.username, "password": "test-password"}, format="json"
    )
    assert response.status_code == 200, response.content
    order = world.order()
    # A second order in fulfillment, so the task endpoints meet a real task
    preparing = world.order(patient_id=world.other_patient().pk)  # not a second order for the same items
    order_services.order_verify(order_id=preparing.pk, actor=world.ops)
    order_services.order_transition(order_id=preparing.pk, actor=world.ops, transition="start_fulfillment")
    task = FulfillmentTask.objects.filter(order=preparing).first()
    assert task is not None
    return Caller(
        role=role,
        authorization=f"Bearer {response.json()['token']}",
        real_path_values={
            "order_id": str(order.pk),
            "territory_id": world.territory.code,
            "sku": world.product.sku,
            "task_id": str(task.pk),
        },
    )


def exercise(
    strategy: Any, *, label: str, who: Caller, failures: list[str], examples: int = EXAMPLES_PER_OPERATION
) -> None:
    """Send ``examples`` generated requests as ``who``; record each failed check in ``failures``."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        response = case.call(headers={"Authorization": who.authorization})
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as failure:  # one failed check, or several
            failures.append(f"{label}: {failure}")

    with contextlib.suppress(Unsatisfiable):  # nothing to generate in this mode (no parameter to make invalid)
        send()


def failures_of(schema: Any, who: Caller) -> list[str]:
    """Every operation, in each generation mode, with random then real path values, then with each
    hostile path value: the failures found."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = re.findall(r"{(\w+)}", operation.path)
        real = {name: who.real_path_values[name] for name in names if name in who.real_path_values}
        for path_values in ({}, real) if real else ({},):
            for mode in MODES:
                label = f"{who.role}: {operation.label} [{mode.value}{', real ids' if path_values else ''}]"
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_values or None)
                exercise(strategy, label=label, who=who, failures=failures)
        for value in HOSTILE_PATH_VALUES if names else ():
            strategy = operation.as_strategy(path_parameters=dict.fromkeys(names, value))
            label = f"{who.role}: {operation.label} [path values {value[:20]!r}]"
            exercise(strategy, label=label, who=who, failures=failures, examples=1)
    return failures


@pytest.mark.parametrize("role", ["doctor", "ops"])
def test_every_response_is_documented_and_none_is_a_server_error(north: World, south: World, role: str) -> None:
    # Given a caller of the north territory (south exists, so territory isolation is exercised)
    who = caller(north, role)

    with connection_kept_open():
        # When schemathesis sends what the schema allows, and what it does not
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())
        failures = failures_of(schema, who)

    # Then every answer is documented and no answer is a 5xx
    assert failures == [], "\n\n".join(failures)
