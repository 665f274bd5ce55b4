"""The order's timeline: appending ``OrderEvent`` rows and the ids-only payload of its outbox events."""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from .models import ActorKind, EventKind, Order, OrderEvent


def actor_kind_of(actor: Any, actor_kind: ActorKind | None) -> ActorKind:
    if actor_kind is not None:
        return actor_kind
    return ActorKind.SYSTEM if actor is None else ActorKind.STAFF


def new_event(
    *,
    order: Order,
    sequence: int,
    kind: EventKind,
    actor: Any,
    actor_kind: ActorKind,
    from_status: str = "",
    to_status: str = "",
    transition: str = "",
    reason: str = "",
    payload: dict[str, Any] | None = None,
) -> OrderEvent:
    """An unsaved timeline entry at ``sequence``: for writing a new order's first entries in one
    INSERT (``OrderEvent.objects.bulk_create``), where the numbers are known without asking."""
    return OrderEvent(
        order=order,
        territory_id=order.territory_id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        transition=transition,
        actor=actor,
        actor_kind=actor_kind,
        reason=reason or None,
        payload=payload or None,
        sequence=sequence,
    )


def record_event(
    *,
    order: Order,
    kind: EventKind,
    actor: Any,
    actor_kind: ActorKind,
    from_status: str = "",
    to_status: str = "",
    transition: str = "",
    reason: str = "",
    payload: dict[str, Any] | None = None,
) -> OrderEvent:
    """Append to the order's timeline. Call with the order locked (sequence numbers are per order)."""
    last = order.events.aggregate(last=Max("sequence"))["last"] or 0
    event = new_event(
        order=order,
        sequence=last + 1,
        kind=kind,
        actor=actor,
        actor_kind=actor_kind,
        from_status=from_status,
        to_status=to_status,
        transition=transition,
        reason=reason,
        payload=payload,
    )
    event.save()
    return event


def event_payload(order: Order, event: OrderEvent) -> dict[str, str | int | bool | None]:
    return {
        "order_id": str(order.pk),
        "territory_id": str(order.territory_id),
        "event_id": str(event.pk),
        "from_status": event.from_status or None,
        "to_status": event.to_status or None,
    }
