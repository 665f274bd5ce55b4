"""The agent runtime: ``agent_task`` turns an agent's function into a Celery task that records every
run as an ``AgentRun``, handles an outbox event once, and owns its retry policy.

An agent task takes ids only: ``event_id`` and ``topic`` when the route table (``agents.routes``)
sends it an outbox event, nothing when beat runs it. Every agent task is acknowledged late and
rejected (so delivered again) when the worker running it dies; the run left ``running`` is then
ended ``failed`` with ``WorkerLost`` and the delivery that follows does the work. A delivery of an
event that this task already handled (a run ended ``ok``) does nothing and records
``skipped-duplicate``; deliveries that overlap are made safe by the domain services, which are
idempotent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from django.db import OperationalError

from core.models import OutboxEvent

from . import services
from .models import AgentName, AgentRun, RunOutcome

DEFAULT_MAX_RETRIES = 8


class RetryLater(Exception):
    """Raised by an agent function whose work cannot be done now (a remote service is unavailable):
    the runtime sends the task again with backoff, up to its ``max_retries``. ``code`` says what was
    unavailable (the run records it)."""

    def __init__(self, code: str = "RETRY_LATER") -> None:
        super().__init__(code)
        self.code = code


def retry_delay(retries: int) -> float:
    """Exponential backoff with full jitter: up to 2, 4, 8 ... seconds, capped at ten minutes."""
    return random.uniform(0, min(600.0, 2.0 ** (retries + 1)))  # noqa: S311 - jitter, not security


def error_code(exc: BaseException) -> str:
    """What a run records of an exception: its stable ``code`` when it has one (domain errors), else
    its class name. Never the message, which may quote data."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def event_aggregate_id(event_id: str) -> str | None:
    """The id of the aggregate an outbox event is about (None when the event is gone)."""
    event = OutboxEvent.objects.filter(pk=event_id).only("aggregate_id").first()
    return event.aggregate_id if event is not None else None


def event_payload(event_id: str) -> dict[str, Any] | None:
    """The payload (ids, codes, dates) of an outbox event (None when the event is gone)."""
    event = OutboxEvent.objects.filter(pk=event_id).only("payload").first()
    return dict(event.payload) if event is not None else None


def agent_task(
    agent: AgentName,
    *,
    retry_on: tuple[type[Exception], ...] = (),
    max_retries: int | Callable[[], int] = DEFAULT_MAX_RETRIES,
    on_retries_exhausted: Callable[..., None] | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Make ``function`` (keyword arguments only) a Celery task of ``agent``, named after it
    (``agents.payments.issue_invoice``).

    ``RetryLater``, ``OperationalError`` (the database went away) and the ``retry_on`` errors send
    the task again after ``retry_delay``; after ``max_retries`` retries (an int, or a callable read
    at run time, e.g. from settings) the run ends ``failed`` and the error is raised, unless
    ``on_retries_exhausted`` is given: it is called with the task's arguments (e.g. to hand the work
    to staff) and the task ends there. Any other error ends the run ``failed`` and is raised.
    """
    retryable = (RetryLater, OperationalError, *retry_on)

    def limit() -> int:
        return max_retries() if callable(max_retries) else max_retries

    def decorate(function: Callable[..., Any]) -> Any:
        @shared_task(
            bind=True,
            name=f"{function.__module__}.{function.__name__}",
            acks_late=True,
            reject_on_worker_lost=True,
            ignore_result=True,
            max_retries=None,  # the runtime counts retries against ``limit()``
        )
        def task(self: Task, **kwargs: Any) -> Any:
            try:
                return _run(self, agent, function, kwargs, retryable, limit(), on_retries_exhausted)
            except OperationalError as exc:  # the database went away while the run was being recorded
                if self.request.retries < limit():
                    raise self.retry(countdown=retry_delay(self.request.retries), exc=exc) from exc
                raise

        task.__doc__ = function.__doc__
        return task

    return decorate


def _run(
    task: Task,
    agent: AgentName,
    function: Callable[..., Any],
    kwargs: dict[str, Any],
    retryable: tuple[type[Exception], ...],
    max_retries: int,
    on_retries_exhausted: Callable[..., None] | None,
) -> Any:
    request = task.request
    event_id = kwargs.get("event_id")
    started = {
        "agent": agent,
        "task": task.name,
        "topic": kwargs.get("topic", ""),
        "event_id": event_id,
        "celery_task_id": request.id or "",
        "attempt": request.retries,
    }
    if event_id is not None and services.agent_run_already_done(task=task.name, event_id=event_id):
        services.agent_run_start(**started, outcome=RunOutcome.SKIPPED_DUPLICATE)
        return None
    run = services.agent_run_start(**started)
    try:
        result = function(**kwargs)
    except retryable as exc:
        _end_retryable(task, run, exc, kwargs, max_retries, on_retries_exhausted)
        return None
    except Exception as exc:
        services.agent_run_finish(run=run, outcome=RunOutcome.FAILED, error_code=error_code(exc))
        raise
    services.agent_run_finish(run=run, outcome=RunOutcome.OK)
    return result


def _end_retryable(
    task: Task,
    run: AgentRun,
    exc: Exception,
    kwargs: dict[str, Any],
    max_retries: int,
    on_retries_exhausted: Callable[..., None] | None,
) -> None:
    """Retry ``task`` (raises Celery's ``Retry``), or, with no retries left, end the run failed and
    hand over to ``on_retries_exhausted`` or raise ``exc``."""
    retries = task.request.retries
    code = error_code(exc)
    if retries < max_retries:
        services.agent_run_finish(run=run, outcome=RunOutcome.RETRIED, error_code=code)
        raise task.retry(countdown=retry_delay(retries), exc=exc)
    if on_retries_exhausted is None:
        services.agent_run_finish(run=run, outcome=RunOutcome.FAILED, error_code=code)
        raise exc
    on_retries_exhausted(**kwargs)
    services.agent_run_finish(run=run, outcome=RunOutcome.FAILED, error_code=code)
