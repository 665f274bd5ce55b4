"""Concurrent transitions on the same order: two connections, one wins, one gets the conflict.

Each racer runs in its own thread with its own PostgreSQL connection. The service locks the
order row (``SELECT … FOR UPDATE``), so the loser waits for the winner's commit, then re-reads
the new status and is refused with InvalidStatusTransition. Without the service's lock,
django-fsm's ConcurrentTransitionMixin refuses the stale save instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django_fsm import ConcurrentTransition

from core.models import OutboxEvent
from orders.exceptions import InvalidStatusTransition
from orders.models import Order, OrderEvent
from orders.selectors import order_compliance_result
from orders.services import ItemRequest, order_lock, order_transition
from tests.conftest import World
from tests.factories import ProductFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BARRIER_TIMEOUT = 10


def _race(*workers: Callable[[], Any]) -> list[Any]:
    """Run each worker in its own thread and connection, released together; return results or exceptions."""
    barrier = threading.Barrier(len(workers), timeout=BARRIER_TIMEOUT)
    results: list[Any] = [None] * len(workers)

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except Exception as exc:  # the outcome under test, reported to the main thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a racer did not finish"
    return results


def _transition(order_id: Any, actor: Any, name: str) -> Callable[[], str]:
    def work() -> str:
        return order_transition(order_id=order_id, actor=actor, transition=name, reason="race").status

    return work


@pytest.mark.parametrize("attempt", range(3))
def test_two_verifications_of_one_order_one_wins(north: World, attempt: int) -> None:
    # Given a pending order
    order = north.order()

    # When ops and admin verify it at the same moment, each on their own connection
    results = _race(_transition(order.pk, north.ops, "verify"), _transition(order.pk, north.admin, "verify"))

    # Then exactly one succeeds and the other is refused after seeing the new status
    winners = [r for r in results if r == "verified"]
    losers = [r for r in results if isinstance(r, InvalidStatusTransition)]
    assert (len(winners), len(losers)) == (1, 1), results
    assert losers[0].details == {
        "order_id": str(order.pk),
        "current_status": "verified",
        "requested_status": "verified",
    }
    assert Order.objects.get(pk=order.pk).status == "verified"
    # Created, checked at submission, checked again by the winner's verification, verified.
    assert list(OrderEvent.objects.filter(order_id=order.pk).order_by("sequence").values_list("sequence", "kind")) == [
        (1, "created"),
        (2, "compliance"),
        (3, "compliance"),
        (4, "transition"),
    ]
    assert OrderEvent.objects.filter(order_id=order.pk, transition="verify").count() == 1
    assert sorted(OutboxEvent.objects.filter(aggregate_id=str(order.pk)).values_list("topic", flat=True)) == [
        "order.approved",
        "order.created",
        "order.verified",
    ]


@pytest.mark.parametrize("attempt", range(3))
def test_verify_racing_reject_one_wins(north: World, attempt: int) -> None:
    # Given a pending order
    order = north.order()

    # When one reviewer verifies while another rejects
    verify, reject = _race(_transition(order.pk, north.ops, "verify"), _transition(order.pk, north.admin, "reject"))

    # Then one of them wins, and the other is told the order is no longer pending
    if verify == "verified":
        winner, loser, final = "verify", reject, "verified"
    else:
        winner, loser, final = "reject", verify, "rejected"
        assert reject == "rejected", (verify, reject)
    assert isinstance(loser, InvalidStatusTransition), (verify, reject)
    assert loser.details["current_status"] == final
    assert Order.objects.get(pk=order.pk).status == final
    transitions = list(
        OrderEvent.objects.filter(order_id=order.pk, kind="transition").values_list("transition", flat=True)
    )
    assert transitions == [winner]
    assert OutboxEvent.objects.filter(aggregate_id=str(order.pk)).count() == (3 if winner == "verify" else 2)


def test_stale_instance_save_is_refused_by_optimistic_locking(north: World) -> None:
    """Without the service's row lock, the second writer of a stale instance gets ConcurrentTransition."""
    # Given the same order loaded twice
    order = north.order()
    first = Order.objects.get(pk=order.pk)
    second = Order.objects.get(pk=order.pk)

    # When the first is verified and saved
    with transaction.atomic():
        first.verify()
        first.save()

    # Then saving the stale second one after rejecting it is refused, and the first result stays
    second.reject()
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        second.save()
    assert Order.objects.get(pk=order.pk).status == "verified"
    assert Order.history.filter(id=order.pk).count() == 2


def test_stale_instance_across_two_connections_is_refused(north: World) -> None:
    """The same, with each writer on its own connection: whichever saves second is refused."""
    order = north.order()

    def writer(transition: str, loaded: threading.Event, other_loaded: threading.Event) -> Callable[[], str]:
        def work() -> str:
            instance = Order.objects.get(pk=order.pk)
            loaded.set()
            assert other_loaded.wait(BARRIER_TIMEOUT)  # both hold the pending_verification version
            getattr(instance, transition)()
            with transaction.atomic():
                instance.save()
            return instance.status

        return work

    verify_loaded, reject_loaded = threading.Event(), threading.Event()
    results = _race(
        writer("verify", verify_loaded, reject_loaded),
        writer("reject", reject_loaded, verify_loaded),
    )

    stale = [r for r in results if isinstance(r, ConcurrentTransition)]
    saved = [r for r in results if r in {"verified", "rejected"}]
    assert (len(saved), len(stale)) == (1, 1), results
    assert Order.objects.get(pk=order.pk).status == saved[0]


def test_second_writer_waits_for_the_lock_and_sees_the_new_state(north: World) -> None:
    # Given an insurance order
    order = north.order(payer_type="insurance")
    hold_seconds = 0.6
    timings: dict[str, float] = {}

    def slow_verifier() -> str:
        # Takes the row lock, verifies, and keeps the transaction open a while before committing.
        with transaction.atomic():
            order_lock(pk=order.pk, actor=north.ops)
            locked.wait()
            verified = order_transition(order_id=order.pk, actor=north.ops, transition="verify").status
            time.sleep(hold_seconds)
            timings["committed"] = time.monotonic()
        return verified

    def fulfiller() -> str:
        # Starts only once the lock is held; start_fulfillment is legal only after verification.
        locked.wait()
        started = time.monotonic()
        status = order_transition(order_id=order.pk, actor=north.distributor, transition="start_fulfillment").status
        timings["waited"] = time.monotonic() - started
        timings["finished"] = time.monotonic()
        return status

    locked = threading.Barrier(2, timeout=BARRIER_TIMEOUT)

    # When the fulfiller tries while the verifier holds the lock
    verified, started = _race(slow_verifier, fulfiller)

    # Then it waited for the commit, and then acted on the verified order
    assert (verified, started) == ("verified", "in_progress")
    assert timings["waited"] >= hold_seconds * 0.8
    assert timings["finished"] >= timings["committed"]
    assert list(
        OrderEvent.objects.filter(order_id=order.pk).order_by("sequence").values_list("sequence", "to_status")
    ) == [
        (1, "pending_verification"),
        (2, "pending_verification"),  # compliance check at submission
        (3, "pending_verification"),  # compliance check before verification
        (4, "verified"),
        (5, "in_progress"),
        (6, "in_progress"),  # routing
    ]


def test_an_identical_order_submitted_while_the_first_commits_sees_it(north: World) -> None:
    # Given a product with no stock (so no lot lock orders the two submissions) and a first
    # submission whose transaction is still open (its order written, not committed)
    mask = ProductFactory.create(hcpcs_code="A7030")
    items = [ItemRequest(sku=mask.sku, quantity=1)]
    created, results = threading.Event(), {}

    def first() -> None:
        try:
            with transaction.atomic():
                results["first"] = north.order(items=items)
                created.set()
                time.sleep(1.0)  # still uncommitted while the second submission runs
        finally:
            created.set()
            connection.close()

    def second() -> None:
        try:
            created.wait(timeout=BARRIER_TIMEOUT)
            results["second"] = north.order(items=items)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then the second waited for the first and was checked with it counted: flagged as its duplicate
    first_order = Order.objects.get(pk=results["first"].pk)
    second_order = Order.objects.get(pk=results["second"].pk)
    result = order_compliance_result(order=second_order)
    assert result is not None
    assert f"already on its way: {first_order.reference}" in " ".join(f["message"] for f in result["findings"])
    assert "DUPLICATE_ORDER" in [finding["code"] for finding in result["findings"]]
