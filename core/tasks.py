"""Outbox delivery tasks: one event after its commit, and the periodic sweep."""

from __future__ import annotations

from celery import shared_task

from . import outbox


@shared_task(acks_late=True, ignore_result=True)
def deliver_outbox_event(event_id: str) -> bool:
    """Deliver one event; a failure is recorded on the event and left to the sweep's backoff."""
    return outbox.outbox_deliver(event_id=event_id)


@shared_task(acks_late=True, ignore_result=True)
def dispatch_outbox() -> int:
    """Beat: deliver every due pending event (those an after-commit enqueue missed or backed off), in
    batches until none is left or the run's time budget is spent (``outbox_deliver_due``)."""
    return outbox.outbox_deliver_due()
