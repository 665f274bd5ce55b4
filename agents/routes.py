"""The route table: which agent tasks receive which outbox topics.

``core.outbox`` delivers each committed event to every task listed for its topic, with
``event_id`` and ``topic`` as keyword arguments; tasks load what they need by id and must be
idempotent (delivery is at least once). The agents that consume order events arrive with their
own issues and add their entries here.
"""

from __future__ import annotations

from core.outbox import subscribe

ROUTES: dict[str, tuple[str, ...]] = {}


def register() -> None:
    """Subscribe every route (called once from ``AgentsConfig.ready``)."""
    for topic, task_names in ROUTES.items():
        for task_name in task_names:
            subscribe(topic, task_name)
