"""The admin's patient search keeps names and dates of birth out of URLs (issue 15, item 15)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import unquote_plus

from core.models import AccessRecord

from ..conftest import World
from .conftest import signed_in

SEARCH = "/admin/patients/patient/search/"
CHANGELIST = "/admin/patients/patient/"
PHI = ("zelda", "quartermainenorth", "1948-07-09", "07/09/1948")
_URL_ATTRIBUTE = re.compile(r"""(?:href|action|src|formaction)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def urls_in(response: Any) -> list[str]:
    """Every URL a page links to, posts to or redirects to, decoded as a browser would send it."""
    urls = [unescape(url) for url in _URL_ATTRIBUTE.findall(response.content.decode())]
    if response.has_header("Location"):
        urls.append(response["Location"])
    return [unquote_plus(unquote_plus(url)).lower() for url in urls]


def assert_no_phi_in(urls: list[str]) -> None:
    leaks = [url for url in urls if any(value in url for value in PHI)]
    assert leaks == []


def test_search_posts_and_shows_results_on_the_page_without_phi_in_any_url(north: World) -> None:
    client = signed_in(north.ops)

    form = client.get(SEARCH)
    by_name = client.post(SEARCH, {"query": "Zelda QuartermaineNorth"})
    by_birth = client.post(SEARCH, {"query": "1948-07-09"})

    assert form.status_code == 200
    assert '<form method="post" action="/admin/patients/patient/search/">' in form.content.decode()
    for response in (by_name, by_birth):
        assert response.status_code == 200
        assert [patient.pk for patient in response.context["results"]] == [north.patient.pk]
        assert "QuartermaineNorth" in response.content.decode()  # shown on the page, to a reader of PHI
        assert_no_phi_in(urls_in(response))
    # Each page of results that named the patient is a recorded read.
    assert AccessRecord.objects.naming(north.patient.pk).filter(channel="admin").count() == 2


def test_the_list_runs_no_url_search_and_drops_it_from_the_address(north: World) -> None:
    client = signed_in(north.ops)

    typed = client.get(CHANGELIST, {"q": "Zelda QuartermaineNorth", "territory__id__exact": str(north.territory.pk)})
    listing = client.get(CHANGELIST)

    assert typed.status_code == 302
    assert typed["Location"] == f"{CHANGELIST}?territory__id__exact={north.territory.pk}"
    assert 'name="q"' not in listing.content.decode()  # no GET search box
    assert '<a href="/admin/patients/patient/search/"' in listing.content.decode()
    assert_no_phi_in(urls_in(typed) + urls_in(listing))


def test_object_pages_never_carry_a_search_in_changelist_filters(north: World) -> None:
    client = signed_in(north.ops)
    change = f"/admin/patients/patient/{north.patient.pk}/change/"
    crafted = f"{change}?_changelist_filters=q%3DZelda%2BQuartermaineNorth%26provider__id__exact%3D1"

    page = client.get(crafted)

    assert page.status_code == 200
    urls = urls_in(page)
    assert any("_changelist_filters" in url and "provider__id__exact=1" in url for url in urls)
    assert_no_phi_in(urls)
