"""Sign-in at /accounts/login/: local accounts, lockout after repeated failures (django-axes),
automatic logoff after 15 idle minutes that background refreshes do not postpone."""

from __future__ import annotations

import time
from typing import Any

from axes.models import AccessAttempt
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from accounts.middleware import LAST_ACTIVITY_KEY
from tests.conftest import World


def sign_in(client: Client, username: str, password: str = "test-password") -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_a_doctor_signs_in_and_lands_on_the_portal(north: World) -> None:
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'<label for="id_username">User name</label>' in page.content
    assert b"Sign in with your organisation" not in page.content  # no issuer configured

    response = sign_in(client, "dr.north")

    assert (response.status_code, response["Location"]) == (302, "/portal/")
    assert client.get("/portal/").status_code == 200


def test_the_portal_sends_signed_out_people_to_sign_in(db: Any) -> None:
    client = Client()
    response = client.get("/portal/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/?next=/portal/")
    htmx = client.get("/portal/", HTTP_HX_REQUEST="true")
    assert (htmx.status_code, htmx["HX-Redirect"]) == (204, "/accounts/login/?next=/portal/")


def test_a_signed_out_htmx_request_is_sent_to_sign_in_with_its_path_encoded(db: Any) -> None:
    # A path segment holding "&" and "=" must stay inside the next parameter, not add parameters.
    draft_step = "/portal/drafts/00000000-0000-4000-8000-000000000000/a&next=https:elsewhere.example/"
    htmx = Client().get(draft_step, HTTP_HX_REQUEST="true")
    assert (htmx.status_code, htmx["HX-Redirect"]) == (
        204,
        "/accounts/login/?next=/portal/drafts/00000000-0000-4000-8000-000000000000/a%26next%3Dhttps%3Aelsewhere.example/",
    )


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(north: World) -> None:
    client = Client()
    response = sign_in(client, "dr.north", "not-the-password")
    assert response.status_code == 200
    assert b"Please enter a correct username and password." in response.content
    assert "_auth_user_id" not in client.session


def test_five_failures_lock_the_user_name_even_with_the_right_password(north: World, south: World) -> None:
    client = Client()
    for _ in range(4):
        assert sign_in(client, "dr.north", "guess").status_code == 200
    assert sign_in(client, "dr.north", "guess").status_code == 429  # the fifth failure locks

    locked = sign_in(client, "dr.north")  # the right password, too late

    assert locked.status_code == 429
    assert b"Too many failed sign-ins for this user name. Try again in 30 minutes" in locked.content
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.get(username="dr.north").failures_since_start == 6  # attempts while locked count too
    # Another user name from the same address is not affected (the lock is per user name)
    assert sign_in(Client(), "dr.south").status_code == 302
    # The API's token endpoint honours the same lock
    token = Client().post(
        "/api/v1/auth/token", {"username": "dr.north", "password": "test-password"}, content_type="application/json"
    )
    assert token.status_code == 429
    assert token.json()["error"]["code"] == "ACCOUNT_LOCKED"


def test_a_success_before_the_limit_resets_the_count(north: World) -> None:
    client = Client()
    for _ in range(4):
        sign_in(client, "dr.north", "guess")
    assert sign_in(client, "dr.north").status_code == 302
    assert not AccessAttempt.objects.filter(username="dr.north").exists()


@override_settings(SESSION_IDLE_SECONDS=60)
def test_an_idle_session_ends_and_background_polls_do_not_keep_it_alive(north: World) -> None:
    client = Client()
    sign_in(client, "dr.north")
    assert client.get("/portal/").status_code == 200

    # 50 s later a background poll is served but does not count as activity
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 50
    session.save()
    assert client.get("/portal/", HTTP_X_BACKGROUND_REFRESH="1").status_code == 200
    assert client.session[LAST_ACTIVITY_KEY] <= int(time.time()) - 50

    # 61 s after the last request of the person: signed out, and told why
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 61
    session.save()
    response = client.get("/portal/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/?next=/portal/")
    assert b"You were signed out after 1 minutes without activity." in client.get("/accounts/login/").content
    assert "_auth_user_id" not in client.session


@override_settings(SESSION_IDLE_SECONDS=60, SESSION_ACTIVITY_RESOLUTION_SECONDS=10)
def test_activity_keeps_the_session(north: World) -> None:
    client = Client()
    sign_in(client, "dr.north")
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 59
    session.save()
    assert client.get("/portal/").status_code == 200
    assert client.session[LAST_ACTIVITY_KEY] >= int(time.time()) - 1


@override_settings(SESSION_IDLE_SECONDS=60, SESSION_ACTIVITY_RESOLUTION_SECONDS=10)
def test_activity_is_written_at_most_once_per_resolution(north: World) -> None:
    """A page view within the resolution of the last recorded activity writes no session; one after it does."""
    client = Client()
    sign_in(client, "dr.north")
    session = client.session
    recorded = int(time.time()) - 8
    session[LAST_ACTIVITY_KEY] = recorded
    session.save()
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/portal/").status_code == 200
    assert client.session[LAST_ACTIVITY_KEY] == recorded
    assert not [q for q in queries.captured_queries if "django_session" in q["sql"] and "UPDATE" in q["sql"]]

    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 11
    session.save()
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/portal/").status_code == 200
    assert client.session[LAST_ACTIVITY_KEY] >= int(time.time()) - 1
    assert [q for q in queries.captured_queries if "django_session" in q["sql"] and "UPDATE" in q["sql"]]


def test_signing_out_takes_a_post(north: World) -> None:
    client = Client()
    sign_in(client, "dr.north")
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"
    assert client.get("/portal/").status_code == 302
