"""Keyset ("cursor") pages and bounded counts: lists whose cost does not grow with the table.

A page continues from the ordering values of the row before it (its *position*) instead of
skipping an offset, so the database starts reading where the page starts (an index range scan)
and page 1,000 costs what page 1 costs. A list is ordered by one or more fields whose last one is
unique (the primary key breaks ties), for example ``("-created_at", "-id")``; an index on the
list's filter columns followed by those fields lets every page be read in order without a sort.

A list that is the union of several filters which one index cannot serve at once (an order's
provider *or* its creator, several statuses under one tab) is read in *arms*: each arm is one
index-friendly queryset, read in order and limited to the page, and the page is the newest (or
oldest) of what the arms found (``keyset_page_merged``).

Counting is bounded the same way: ``bounded_count`` counts at most ``limit`` rows and says whether
there are more ("100+"), instead of an exact COUNT over a territory's whole history.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import reduce
from operator import or_
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connections, models
from django.db.models import Q, QuerySet


class InvalidCursor(ValueError):
    """A cursor that this listing did not make (malformed, or for another ordering)."""


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after (or, ``backwards``, before) the row with these ordering values."""

    position: tuple[str, ...]
    backwards: bool = False

    def encode(self) -> str:
        """An opaque, URL-safe token (it carries ordering values such as dates and ids, never PHI)."""
        raw = json.dumps([int(self.backwards), *self.position], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor a token names; InvalidCursor when it is not one ``encode`` made."""
        if not token or len(token) > 512:
            raise InvalidCursor(token[:20])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            value = json.loads(raw)
        except (binascii.Error, ValueError, UnicodeDecodeError) as error:
            raise InvalidCursor(token[:20]) from error
        if (
            not isinstance(value, list)
            or len(value) < 2
            or value[0] not in (0, 1)
            or not all(isinstance(part, str) for part in value[1:])
        ):
            raise InvalidCursor(token[:20])
        return cls(position=tuple(value[1:]), backwards=bool(value[0]))


@dataclass(frozen=True)
class KeysetPage:
    """One page of rows, in the listing's order, with the cursors of the pages beside it (None at an end)."""

    rows: list[Any]
    next: Cursor | None
    previous: Cursor | None


@dataclass(frozen=True)
class _Key:
    name: str  # as the ordering names it ("created_at", "id", "pk")
    field: models.Field[Any, Any]
    descending: bool


def _keys(queryset: QuerySet[Any]) -> list[_Key]:
    """The listing's ordering as keys; its last field must be unique, so every row has its own position."""
    ordering = [part for part in queryset.query.order_by if isinstance(part, str)]
    if not ordering or len(ordering) != len(queryset.query.order_by):
        raise ImproperlyConfigured("A keyset listing needs an explicit order_by of field names.")
    opts = queryset.model._meta
    keys = []
    for part in ordering:
        name = part.lstrip("-")
        field = opts.pk if name == "pk" else opts.get_field(name)
        keys.append(_Key(name=name, field=field, descending=part.startswith("-")))
    if not (keys[-1].field.primary_key or keys[-1].field.unique):
        raise ImproperlyConfigured("A keyset listing's last ordering field must be unique (add the primary key).")
    return keys


def _position_of(row: Any, keys: Sequence[_Key]) -> tuple[str, ...]:
    return tuple(key.field.value_to_string(row) for key in keys)


def _values(cursor: Cursor, keys: Sequence[_Key]) -> list[Any]:
    if len(cursor.position) != len(keys):
        raise InvalidCursor("position")
    try:
        values = [key.field.to_python(text) for key, text in zip(keys, cursor.position, strict=True)]
    except (ValidationError, ValueError, TypeError) as error:
        raise InvalidCursor("position") from error
    if any(value is None for value in values):
        raise InvalidCursor("position")
    return values


def _beyond(keys: Sequence[_Key], values: Sequence[Any], *, backwards: bool) -> Q:
    """Rows after the position in the listing's order (before it when ``backwards``).

    Besides the exact condition ``(a, b) > (x, y)`` spelled out as ``a > x OR (a = x AND b > y)``,
    the first key's bound (``a >= x``) is repeated on its own: the database can start its index
    scan there, where the OR alone would be checked row by row from the top of the list.
    """
    arms = []
    equal = Q()
    for key, value in zip(keys, values, strict=True):
        toward_smaller = key.descending != backwards
        arms.append(equal & Q(**{f"{key.name}__{'lt' if toward_smaller else 'gt'}": value}))
        equal &= Q(**{key.name: value})
    first = keys[0]
    start = Q(**{f"{first.name}__{'lte' if first.descending != backwards else 'gte'}": values[0]})
    return start & reduce(or_, arms)


def _reversed(keys: Sequence[_Key]) -> list[str]:
    return [("" if key.descending else "-") + key.name for key in keys]


def _page(rows: list[Any], *, size: int, keys: Sequence[_Key], cursor: Cursor | None) -> KeysetPage:
    """The page from the ``size + 1`` rows read in reading order (reversed when going backwards)."""
    more = len(rows) > size
    rows = rows[:size]
    backwards = cursor is not None and cursor.backwards
    if backwards:
        rows.reverse()
    first = Cursor(_position_of(rows[0], keys), backwards=True) if rows else None
    last = Cursor(_position_of(rows[-1], keys)) if rows else None
    if backwards:
        return KeysetPage(rows=rows, next=last, previous=first if more else None)
    return KeysetPage(rows=rows, next=last if more else None, previous=first if cursor is not None else None)


def keyset_page(queryset: QuerySet[Any], *, size: int, cursor: Cursor | None = None) -> KeysetPage:
    """The page of ``queryset`` (explicitly ordered, last field unique) of at most ``size`` rows that
    ``cursor`` points to (the first page without one). One query (plus the queryset's prefetches).

    Raises InvalidCursor when the cursor's position does not fit the ordering.
    """
    keys = _keys(queryset)
    if cursor is not None:
        queryset = queryset.filter(_beyond(keys, _values(cursor, keys), backwards=cursor.backwards))
        if cursor.backwards:
            queryset = queryset.order_by(*_reversed(keys))
    return _page(list(queryset[: size + 1]), size=size, keys=keys, cursor=cursor)


def merged_values(
    arms: Sequence[QuerySet[Any]],
    *,
    ordering: Sequence[str],
    fields: Sequence[str] = ("pk",),
    limit: int,
    beyond: Q | None = None,
) -> list[tuple[Any, ...]]:
    """``fields`` of the first ``limit`` rows of the union of ``arms`` in ``ordering`` (each row once),
    in one query: each arm is read in that ordering up to ``limit`` rows (an index scan that stops
    early when the arm's filter is one an index serves), then the union is cut to ``limit``."""
    if not arms:
        return []
    names = [part.lstrip("-") for part in ordering]
    columns = list(dict.fromkeys([*fields, *names]))
    arms = [arm.filter(beyond or Q()) for arm in arms]
    if len(arms) == 1 or not _limits_in_unions(arms[0]):
        # One arm, or a database that cannot limit the parts of a union (SQLite, the embedded
        # default): the same rows from one query over the arms' conditions joined by OR.
        found = reduce(or_, arms).order_by(*ordering).values_list(*columns)[:limit]
    else:
        limited = [arm.order_by(*ordering).values_list(*columns)[:limit] for arm in arms]
        found = limited[0].union(*limited[1:]).order_by(*ordering)[:limit]
    return [row[: len(fields)] for row in found]


def _limits_in_unions(queryset: QuerySet[Any]) -> bool:
    return bool(connections[queryset.db].features.supports_slicing_ordering_in_compound)


def keyset_page_merged(
    arms: Sequence[QuerySet[Any]], *, rows: QuerySet[Any], size: int, cursor: Cursor | None = None
) -> KeysetPage:
    """A keyset page of the union of ``arms``, in two queries (plus the prefetches of ``rows``).

    ``rows`` gives the ordering (as ``keyset_page`` needs it) and the shape of the rows returned
    (``select_related``, ``prefetch_related``); its filters are not applied: the arms are the
    listing. The first query finds the page's keys (``merged_values``), the second reads those rows
    by primary key: joining the union to the table instead would let the planner read the table in
    order and probe the union, which grows with the table.
    """
    keys = _keys(rows)
    backwards = cursor is not None and cursor.backwards
    ordering = _reversed(keys) if backwards else [("-" if key.descending else "") + key.name for key in keys]
    beyond = _beyond(keys, _values(cursor, keys), backwards=cursor.backwards) if cursor is not None else None
    ids = [pk for (pk,) in merged_values(arms, ordering=ordering, limit=size + 1, beyond=beyond)]
    if not ids:
        return _page([], size=size, keys=keys, cursor=cursor)
    fetch = rows.model._base_manager.filter(pk__in=ids)
    fetch.query.select_related = rows.query.select_related
    fetched = {row.pk: row for row in fetch.prefetch_related(*getattr(rows, "_prefetch_related_lookups", ()))}
    return _page([fetched[pk] for pk in ids if pk in fetched], size=size, keys=keys, cursor=cursor)


@dataclass(frozen=True)
class MergedListing:
    """A listing read in arms: their union, ordered and shaped as ``rows`` says (``keyset_page_merged``).

    What ``KeysetPagination`` pages besides plain querysets, so an API list can be a union too.
    """

    arms: tuple[QuerySet[Any], ...]
    rows: QuerySet[Any]

    def filter(self, *args: Any, **kwargs: Any) -> MergedListing:
        """The listing with every arm filtered."""
        return replace(self, arms=tuple(arm.filter(*args, **kwargs) for arm in self.arms))

    def shaped(self, rows: QuerySet[Any]) -> MergedListing:
        """The listing returning rows shaped (and ordered) as ``rows``."""
        return replace(self, rows=rows)

    def page(self, *, size: int, cursor: Cursor | None = None) -> KeysetPage:
        return keyset_page_merged(self.arms, rows=self.rows, size=size, cursor=cursor)

    def count(self, *, limit: int) -> BoundedCount:
        return bounded_count_merged(self.arms, limit=limit, ordering=self.ordering)

    def values(self, *fields: str, limit: int) -> list[tuple[Any, ...]]:
        """``fields`` of the listing's first ``limit`` rows, in order (one query)."""
        return merged_values(self.arms, ordering=self.ordering, fields=fields, limit=limit)

    @property
    def ordering(self) -> list[str]:
        return [("-" if key.descending else "") + key.name for key in _keys(self.rows)]


@dataclass(frozen=True)
class BoundedCount:
    """How many rows a listing has, counted up to a limit: ``exact`` False means "more than ``value``"."""

    value: int
    exact: bool

    def __str__(self) -> str:
        return str(self.value) if self.exact else f"{self.value}+"


def bounded_count(queryset: QuerySet[Any], *, limit: int) -> BoundedCount:
    """The number of rows of ``queryset``, reading at most ``limit + 1`` of them (one query).

    The rows are counted in the queryset's own order (a listing's), so that the database reads them
    along the listing's index and stops, rather than scanning the table until enough rows match.
    """
    found = queryset.values("pk")[: limit + 1].count()
    return BoundedCount(value=min(found, limit), exact=found <= limit)


def bounded_count_merged(
    arms: Sequence[QuerySet[Any]], *, limit: int, ordering: Sequence[str] = ("pk",)
) -> BoundedCount:
    """``bounded_count`` of the union of ``arms`` (each row once), each arm reading at most ``limit + 1``
    rows in ``ordering`` (give the listing's, whose index each arm reads)."""
    if not arms:
        return BoundedCount(value=0, exact=True)
    if len(arms) == 1 or not _limits_in_unions(arms[0]):
        return bounded_count(reduce(or_, arms).order_by(*ordering), limit=limit)
    limited = [arm.order_by(*ordering).values("pk")[: limit + 1] for arm in arms]
    found = limited[0].union(*limited[1:]).count()
    return BoundedCount(value=min(found, limit), exact=found <= limit)
