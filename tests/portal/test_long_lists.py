"""The portal's lists stay bounded however many orders there are: tabs and holds are read a page at a
time with links to the next and previous pages (by key), counts stop at "100+", and each page view
is one access record naming the orders it showed.

Long histories are written at once (``bulk_create``): the rows lists read, without what a real
order carries besides (their timeline and checks are not what these pages show).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.models import AccessRecord
from orders.models import OrderStatus
from orders.selectors import HOLDS_PAGE_SIZE, PORTAL_PAGE_SIZE, TAB_COUNT_LIMIT
from tests.admin.conftest import signed_in
from tests.conftest import World
from tests.factories import orders_in_bulk


def _tabs(response: Any) -> dict[str, str]:
    return {key: str(count) for key, _label, count in response.context["tabs"]}


def _link(href: str) -> str:
    """A page link as the template writes it (``?...``), to request from /portal/."""
    assert href.startswith("?")
    return f"/portal/{href}"


def test_a_tab_shows_a_page_at_a_time_with_older_and_newer_links(north: World, south: World) -> None:
    # Given 27 delivered orders of the doctor
    delivered = orders_in_bulk(north, PORTAL_PAGE_SIZE + 2, status=OrderStatus.COMPLETED)
    client = signed_in(north.doctor)

    # When the doctor opens the Shipped tab, then the older orders
    first = client.get("/portal/", {"tab": "shipped"})
    older = client.get(_link(first.context["older"]))
    newer = client.get(_link(older.context["newer"]))

    # Then the newest 25 come first, the other 2 on the next page, and back again
    assert [o.pk for o in first.context["orders"]] == [o.pk for o in reversed(delivered)][:PORTAL_PAGE_SIZE]
    assert [o.pk for o in older.context["orders"]] == [delivered[1].pk, delivered[0].pk]
    assert [o.pk for o in newer.context["orders"]] == [o.pk for o in first.context["orders"]]
    assert (first.context["newer"], older.context["older"], newer.context["newer"]) == (None, None, None)
    assert parse_qs(urlsplit(first.context["older"]).query)["tab"] == ["shipped"]
    assert _tabs(first) == {"pending": "0", "preparing": "0", "shipped": "27"}
    body = first.content.decode()
    assert ">Older orders</a>" in body
    assert ">Newer orders</a>" not in body
    # Each page view is one access record naming the orders it showed, in order
    record = AccessRecord.objects.filter(user=north.doctor).order_by("at", "pk").first()
    assert record is not None
    assert record.shown_ids == [str(o.pk) for o in first.context["orders"]]


def test_tab_counts_stop_at_their_limit(north: World) -> None:
    orders_in_bulk(north, TAB_COUNT_LIMIT + 1, status=OrderStatus.COMPLETED)
    orders_in_bulk(north, TAB_COUNT_LIMIT, status=OrderStatus.IN_PROGRESS, creator=north.doctor)

    page = signed_in(north.doctor).get("/portal/", {"tab": "shipped"})

    assert _tabs(page) == {"pending": "0", "preparing": "100", "shipped": "100+"}
    assert '<span class="count">100+</span>' in page.content.decode()


def test_a_mangled_cursor_shows_the_first_page(north: World) -> None:
    orders_in_bulk(north, 3, status=OrderStatus.COMPLETED)

    page = signed_in(north.doctor).get("/portal/", {"tab": "shipped", "cursor": "not-a-cursor", "holds": "WzAsIngiXQ"})

    assert page.status_code == 200
    assert len(page.context["orders"]) == 3


def test_holds_show_the_longest_waiting_with_a_link_to_the_next(north: World) -> None:
    # Given 52 held orders of the doctor (and one in review, which waits for a reviewer, not for them)
    held = orders_in_bulk(north, HOLDS_PAGE_SIZE + 2, status=OrderStatus.ON_HOLD, disposition="hold")
    orders_in_bulk(north, 1, status=OrderStatus.PENDING_VERIFICATION, disposition="needs_review")
    client = signed_in(north.doctor)

    # When the doctor opens the portal, then the next holds
    first = client.get("/portal/")
    rest = client.get(_link(first.context["more_holds"]))

    # Then the 50 waiting longest come first, the 2 others next, with a way back
    assert [h.order.pk for h in first.context["holds"]] == [o.pk for o in held[:HOLDS_PAGE_SIZE]]
    assert [h.order.pk for h in rest.context["holds"]] == [o.pk for o in held[HOLDS_PAGE_SIZE:]]
    assert (rest.context["more_holds"], first.context["earlier_holds"]) == (None, None)
    assert client.get(_link(rest.context["earlier_holds"])).context["holds"] == first.context["holds"]
    body = first.content.decode()
    assert f'Needs your action <span class="count">{HOLDS_PAGE_SIZE}+</span>' in body
    assert ">More needing action</a>" in body
    # one access record for the page: the holds shown, then the tab's orders
    record = AccessRecord.objects.filter(user=north.doctor).order_by("at", "pk").first()
    assert record is not None
    shown = [h.order for h in first.context["holds"]] + list(first.context["orders"])
    assert record.shown_ids == list(dict.fromkeys(str(o.pk) for o in shown))
    assert AccessRecord.objects.filter(user=north.doctor).count() == 3


def test_the_review_queue_pages_by_key_and_counts_to_its_limit(north: World) -> None:
    waiting = orders_in_bulk(north, 52, status=OrderStatus.ON_HOLD, disposition="hold")
    client = signed_in(north.ops)

    first = client.get("/portal/review/")
    second = client.get(f"/portal/review/{first.context['next']}")

    assert [row.order.pk for row in first.context["rows"]] == [o.pk for o in waiting[:50]]
    assert [row.order.pk for row in second.context["rows"]] == [o.pk for o in waiting[50:]]
    assert (str(first.context["count"]), first.context["previous"], second.context["next"]) == ("52", None, None)
    assert ">Next page</a>" in first.content.decode()
    assert ">Previous page</a>" in second.content.decode()
    # the permissions behind each row's offer are asked once for the page: ops may approve only
    # once a hold is resolved, an admin may override it
    assert {(row.offer.approve, row.offer.override) for row in first.context["rows"]} == {(False, False)}
    by_admin = signed_in(north.admin).get("/portal/review/")
    assert {(row.offer.approve, row.offer.override) for row in by_admin.context["rows"]} == {(False, True)}

    orders_in_bulk(north, TAB_COUNT_LIMIT, status=OrderStatus.ON_HOLD, disposition="hold")
    assert str(client.get("/portal/review/").context["count"]) == "100+"
