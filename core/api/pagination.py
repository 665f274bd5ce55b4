"""The API's list pagination.

Lists that grow (orders, patients, providers, the review queue) page by key (``KeysetPagination``):
``?cursor=`` from the ``next`` and ``previous`` links, ``?page_size=`` (at most 100), and a count
bounded at ``COUNT_LIMIT``. The catalog, whose size does not grow with the business, keeps page
numbers (``StandardPagination``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import BasePagination, PageNumberPagination, _positive_int
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from core.exceptions import ValidationFailed
from core.keyset import BoundedCount, Cursor, InvalidCursor, KeysetPage, MergedListing, bounded_count, keyset_page

# Lists count their rows up to this many; beyond it ``count`` says COUNT_LIMIT and ``count_capped`` is true.
COUNT_LIMIT = 1000


class StandardPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (at most 100); answers ``{count, next, previous, results}``."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


class KeysetPagination(BasePagination):
    """Pages by key: ``{count, count_capped, next, previous, results}``.

    ``next`` and ``previous`` are links carrying an opaque ``cursor`` (null at either end of the
    list); ``count`` is exact up to ``COUNT_LIMIT`` rows, and beyond that says ``COUNT_LIMIT`` with
    ``count_capped`` true. Every page, however deep, costs the same: one bounded count and one
    index range read. The queryset must be explicitly ordered with a unique last field (see
    ``core.keyset``). A malformed cursor, or ``page`` (the page numbers of old), is a 400
    VALIDATION_ERROR naming the parameter.
    """

    page_size = 25
    max_page_size = 100
    page_size_query_param = "page_size"
    cursor_query_param = "cursor"
    count_limit = COUNT_LIMIT

    request: Request
    page: KeysetPage
    count: BoundedCount

    def get_page_size(self, request: Request) -> int:
        """``page_size`` when it is a positive integer (at most ``max_page_size``), else the default."""
        try:
            return _positive_int(
                request.query_params[self.page_size_query_param], strict=True, cutoff=self.max_page_size
            )
        except (KeyError, ValueError):
            return self.page_size

    def cursor(self, request: Request) -> Cursor | None:
        if "page" in request.query_params:
            raise ValidationFailed(details={"page": ["This list pages by cursor: follow its next and previous links."]})
        token = request.query_params.get(self.cursor_query_param)
        if token is None:
            return None
        try:
            return Cursor.decode(token)
        except InvalidCursor:
            raise ValidationFailed(details={"cursor": ["Invalid cursor: use the next or previous link."]}) from None

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any] | MergedListing, request: Request, view: Any = None
    ) -> list[Any]:
        """The page of ``queryset`` (or of a listing read in arms) the request's cursor points to."""
        if not isinstance(queryset, QuerySet | MergedListing):
            raise TypeError("Pages by key are read from a queryset or a MergedListing, not a list.")
        self.request = request
        cursor = self.cursor(request)
        size = self.get_page_size(request)
        try:
            if isinstance(queryset, MergedListing):
                self.count = queryset.count(limit=self.count_limit)
                self.page = queryset.page(size=size, cursor=cursor)
            else:
                self.count = bounded_count(queryset, limit=self.count_limit)
                self.page = keyset_page(queryset, size=size, cursor=cursor)
        except InvalidCursor:
            raise ValidationFailed(details={"cursor": ["Invalid cursor: use the next or previous link."]}) from None
        return self.page.rows

    def _link(self, cursor: Cursor | None) -> str | None:
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, cursor.encode())

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.count.value,
                "count_capped": not self.count.exact,
                "next": self._link(self.page.next),
                "previous": self._link(self.page.previous),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "count_capped", "next", "previous", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "example": 123,
                    "description": f"The number of rows, counted up to {COUNT_LIMIT} (see count_capped).",
                },
                "count_capped": {
                    "type": "boolean",
                    "example": False,
                    "description": f"True when there are more than {COUNT_LIMIT} rows: count then says {COUNT_LIMIT}.",
                },
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": "http://api.example.org/accounts/?cursor=WzAsIjIwMjQtMDEtMDEiXQ",
                    "description": "The next page (null on the last).",
                },
                "previous": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": None,
                    "description": "The previous page (null on the first).",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Where the page starts: the cursor of a next or previous link (opaque).",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {self.page_size}, at most {self.max_page_size}).",
                "schema": {"type": "integer"},
            },
        ]
