"""How many SQL queries a request ran, in response headers the load driver reads (bench settings only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse

QUERIES_HEADER = "X-Bench-Queries"
DATABASE_MS_HEADER = "X-Bench-DB-ms"


class QueryCountMiddleware:
    """Counts every query the request runs on the default database (middleware, session and
    authentication included) and their time, with DEBUG off: ``X-Bench-Queries`` and
    ``X-Bench-DB-ms``. Put it first so it sees the whole request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tally = _Tally()
        with connection.execute_wrapper(tally):
            response = self.get_response(request)
        response[QUERIES_HEADER] = str(tally.count)
        response[DATABASE_MS_HEADER] = f"{tally.seconds * 1000:.2f}"
        return response


class _Tally:
    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
