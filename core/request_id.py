"""A request id on every log line of a request, and on every log line of the Celery tasks it causes.

``RequestIdMiddleware`` takes the ``X-Request-ID`` header a load balancer or client sent when it is a
well-formed id (``is_valid_request_id``), otherwise makes a new one; the id is set on the response
and held in a context variable for as long as the request is handled. ``RequestIdFilter`` copies it
onto each log record as ``request_id``. A task published while a request id is current carries it
in its message headers (``before_task_publish``), and the worker makes it current while the task
runs (``task_prerun`` / ``task_postrun``), so the task's log lines carry the same id.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
# The key the id travels under in a Celery message's headers.
TASK_HEADER = "request_id"
# What a log line shows when no request or task is current (start-up, beat, a management command).
NO_REQUEST_ID = "-"
# Letters, digits, "-", "_" and "." only, 8 to 64 of them: a UUID, a hex or base64url token, an
# nginx $request_id or a load balancer's trace id fit; anything else (spaces, quotes, control
# characters, a line long enough to flood a log) is replaced rather than written into every line.
_VALID = re.compile(r"[A-Za-z0-9._-]{8,64}")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def is_valid_request_id(value: str | None) -> bool:
    """True when ``value`` may be used as a request id as it is (see ``_VALID``)."""
    return value is not None and _VALID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh id: 32 hexadecimal characters."""
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request or task being handled in this context, or None outside one."""
    return _current.get()


@contextmanager
def request_id_bound(request_id: str) -> Iterator[str]:
    """Makes ``request_id`` current for the block (and restores the previous one afterwards)."""
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


class RequestIdMiddleware:
    """Gives each request an id (the incoming ``X-Request-ID`` when well formed, else a new one).

    The id is ``request.request_id``, the response's ``X-Request-ID`` and the ``request_id`` of every
    log record written while the request is handled. Put it first, so even a request refused by a
    later middleware has one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(HEADER)
        request_id = incoming if incoming is not None and is_valid_request_id(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        with request_id_bound(request_id):
            response = self.get_response(request)
        response[HEADER] = request_id
        return response


# gunicorn writes its access line after the response has gone, outside the request's context; the
# line's atoms hold the response headers, ours among them (gunicorn.glogging: "{name}o" keys).
_GUNICORN_RESPONSE_HEADER_ATOM = "{x-request-id}o"


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id``: the current request's or task's id, else ``NO_REQUEST_ID``.

    A record that already has one keeps it; one written after the request's context has ended takes
    the id of the request it names (Django's 4xx lines carry the request, gunicorn's access line the
    response's headers). Put it before ``StripQueryStringFilter`` on a logger whose records carry
    arguments (that filter folds them into the message).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) in (None, NO_REQUEST_ID):
            record.request_id = _current.get() or _id_logged_with(record) or NO_REQUEST_ID
        return True


def _id_logged_with(record: logging.LogRecord) -> str | None:
    """The id of the request a record outside the request's context is about: Django logs a 4xx
    answer ("Not Found: ...") after the middleware has returned, with the request attached."""
    candidate = getattr(getattr(record, "request", None), "request_id", None)
    if candidate is None and isinstance(record.args, Mapping):
        candidate = record.args.get(_GUNICORN_RESPONSE_HEADER_ATOM)
    return candidate if isinstance(candidate, str) and is_valid_request_id(candidate) else None


# --- Celery ----------------------------------------------------------------------------------
# A task's own token, so task_postrun restores exactly what task_prerun replaced (a worker runs one
# task after another in the same thread; an eager task runs inside the request that sent it).
_task_tokens: dict[str, Token[str | None]] = {}


@before_task_publish.connect(weak=False)
def _add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = _current.get()
    if headers is not None and request_id is not None:
        headers[TASK_HEADER] = request_id


def _task_request_id(task: Any) -> str | None:
    # Celery puts unknown message headers on the task request (protocol 2), eager calls included.
    value = getattr(task.request, TASK_HEADER, None)
    if value is None:
        value = (getattr(task.request, "headers", None) or {}).get(TASK_HEADER)
    return value if isinstance(value, str) and is_valid_request_id(value) else None


@task_prerun.connect(weak=False)
def _bind_task_request_id(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task is None or task_id is None:
        return
    request_id = _task_request_id(task)
    if request_id is None:
        # Eager tasks run in the publisher's context and keep its id; a worker's task without one
        # (beat, a shell) gets its own, so its lines can still be told apart.
        request_id = _current.get() or new_request_id()
    _task_tokens[task_id] = _current.set(request_id)


@task_postrun.connect(weak=False)
def _unbind_task_request_id(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        _current.reset(token)
