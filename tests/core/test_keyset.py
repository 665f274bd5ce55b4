"""Keyset pages and bounded counts (core.keyset), on rows of a plain model (territories).

Rows share timestamps on purpose, so the primary key must break ties: a page never repeats or
skips a row, forwards or backwards, whatever the page size.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q

from core.keyset import (
    BoundedCount,
    Cursor,
    InvalidCursor,
    bounded_count,
    bounded_count_merged,
    keyset_page,
    keyset_page_merged,
)
from territories.models import Territory

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def rows(db: Any) -> list[Territory]:
    """Nine territories, three to a timestamp, codes a0..a8 in creation order."""
    made = Territory.objects.bulk_create(
        [Territory(id=uuid.uuid4(), code=f"a{index}", name=f"A{index}") for index in range(9)]
    )
    for index, territory in enumerate(made):
        Territory.objects.filter(pk=territory.pk).update(created_at=START + dt.timedelta(minutes=index // 3))
    return list(Territory.objects.filter(code__startswith="a").order_by("-created_at", "-id"))


def _newest_first() -> Any:
    return Territory.objects.filter(code__startswith="a").order_by("-created_at", "-id")


def _walk(size: int) -> list[list[Territory]]:
    pages = []
    page = keyset_page(_newest_first(), size=size)
    pages.append(page.rows)
    while page.next is not None:
        page = keyset_page(_newest_first(), size=size, cursor=Cursor.decode(page.next.encode()))
        pages.append(page.rows)
    return pages


@pytest.mark.parametrize("size", [1, 2, 3, 4, 8, 9, 10])
def test_following_next_lists_every_row_once_in_order(rows: list[Territory], size: int) -> None:
    pages = _walk(size)

    assert [row for page in pages for row in page] == rows
    assert [len(page) for page in pages[:-1]] == [size] * (len(pages) - 1)
    assert len(pages) == -(-len(rows) // size)


def test_previous_goes_back_page_by_page_to_the_first(rows: list[Territory]) -> None:
    first = keyset_page(_newest_first(), size=4)
    second = keyset_page(_newest_first(), size=4, cursor=first.next)
    third = keyset_page(_newest_first(), size=4, cursor=second.next)
    assert (first.previous, third.next, [r.code for r in third.rows]) == (None, None, [rows[8].code])

    back_to_second = keyset_page(_newest_first(), size=4, cursor=third.previous)
    back_to_first = keyset_page(_newest_first(), size=4, cursor=back_to_second.previous)

    assert back_to_second.rows == second.rows == rows[4:8]
    assert back_to_first.rows == first.rows == rows[:4]
    assert back_to_first.previous is None
    assert back_to_first.next == first.next


def test_oldest_first_pages_the_other_way(rows: list[Territory]) -> None:
    oldest_first = Territory.objects.filter(code__startswith="a").order_by("created_at", "id")
    first = keyset_page(oldest_first, size=5)
    second = keyset_page(oldest_first, size=5, cursor=first.next)

    assert first.rows + second.rows == rows[::-1]
    assert second.next is None


def test_the_cursor_carries_positions_not_rows(rows: list[Territory]) -> None:
    page = keyset_page(_newest_first(), size=2)
    assert page.next == Cursor(position=(rows[1].created_at.isoformat(), str(rows[1].pk)))
    # a row added before the position later does not shift the next page (no offsets)
    Territory.objects.create(code="a9", name="A9")
    assert keyset_page(_newest_first(), size=2, cursor=page.next).rows == rows[2:4]


@pytest.mark.parametrize(
    "token",
    ["", "abc", "!!!!", "W10", "e30", "WzAsMV0", "WzIsIngiLCJ5Il0", "WzAsIngiLCJ5Il0", "WzEsIngiXQ", "a" * 600],
)
def test_a_cursor_that_this_listing_did_not_make_is_refused(rows: list[Territory], token: str) -> None:
    # [], {}, [0,1], [2,"x","y"], [0,"x","y"] (no date, no id), [1,"x"] (one value for two keys)
    with pytest.raises(InvalidCursor):
        keyset_page(_newest_first(), size=2, cursor=Cursor.decode(token))


def test_a_listing_needs_a_unique_last_ordering_field(rows: list[Territory]) -> None:
    with pytest.raises(ImproperlyConfigured):
        keyset_page(Territory.objects.order_by("-created_at"), size=2)
    with pytest.raises(ImproperlyConfigured):
        keyset_page(Territory.objects.order_by(), size=2)


def test_bounded_count_says_more_than_its_limit(rows: list[Territory]) -> None:
    listing = _newest_first()

    assert bounded_count(listing, limit=20) == BoundedCount(value=9, exact=True)
    assert bounded_count(listing, limit=9) == BoundedCount(value=9, exact=True)
    assert bounded_count(listing, limit=8) == BoundedCount(value=8, exact=False)
    assert (str(bounded_count(listing, limit=8)), str(bounded_count(listing, limit=9))) == ("8+", "9")
    assert bounded_count(listing.none(), limit=3) == BoundedCount(value=0, exact=True)


def test_merged_arms_page_and_count_their_union_each_row_once(rows: list[Territory]) -> None:
    # Two overlapping arms: a0..a5 and a3..a8 (a3..a5 in both)
    arms = [
        Territory.objects.filter(code__in=[f"a{i}" for i in range(6)]),
        Territory.objects.filter(code__in=[f"a{i}" for i in range(3, 9)]),
    ]
    shape = Territory.objects.order_by("-created_at", "-id")

    first = keyset_page_merged(arms, rows=shape, size=4)
    second = keyset_page_merged(arms, rows=shape, size=4, cursor=first.next)
    third = keyset_page_merged(arms, rows=shape, size=4, cursor=second.next)
    back = keyset_page_merged(arms, rows=shape, size=4, cursor=third.previous)

    assert first.rows + second.rows + third.rows == rows
    assert (third.next, back.rows) == (None, second.rows)
    assert bounded_count_merged(arms, limit=100) == BoundedCount(value=9, exact=True)
    assert bounded_count_merged(arms, limit=5, ordering=("-created_at", "-id")) == BoundedCount(value=5, exact=False)
    assert bounded_count_merged([], limit=5) == BoundedCount(value=0, exact=True)
    assert keyset_page_merged([], rows=shape, size=4).rows == []
    one_arm = keyset_page_merged([Territory.objects.filter(Q(code="a4"))], rows=shape, size=4)
    assert [row.code for row in one_arm.rows] == ["a4"]
