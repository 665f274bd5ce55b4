"""POST /api/v1/auth/token, bearer authentication and the Territory-Id header."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from territories.services import membership_revoke
from tests.api import assert_error, member_of

TOKEN_URL = "/api/v1/auth/token"
BAD_CREDENTIALS = "Unknown user name or wrong password."
NO_CREDENTIALS = "Authentication credentials were not provided."
BAD_TOKEN = "The token is invalid or expired."


def provider_row(world: Any) -> dict[str, Any]:
    provider = world.provider
    return {
        "id": str(provider.pk),
        "name": provider.name,
        "npi": provider.npi,
        "territory_id": str(world.territory.pk),
        "credentials": provider.credentials,
    }


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_correct_credentials_give_an_expiring_bearer_token(north: Any) -> None:
    before = timezone.now()

    response = APIClient().post(TOKEN_URL, {"username": "dr.north", "password": "test-password"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
    assert set(body) == {"token", "access_token", "token_type", "expires_in", "expires_at"}
    assert body["token_type"] == "Bearer"
    assert body["access_token"] == body["token"]
    assert body["expires_in"] == int(lifetime.total_seconds())
    expires_at = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert before + lifetime - dt.timedelta(seconds=1) <= expires_at <= timezone.now() + lifetime
    decoded = AccessToken(body["token"])
    assert decoded["user_id"] == str(north.doctor.pk)
    assert int(decoded["exp"]) == int(expires_at.timestamp())

    listed = bearer(body["token"]).get("/api/v1/providers")
    assert listed.status_code == 200
    assert listed.json()["results"] == [provider_row(north)]


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"username": "dr.north", "password": "wrong-password"}, id="wrong-password"),
        pytest.param({"username": "dr.nobody", "password": "test-password"}, id="unknown-user"),
        pytest.param({"username": "DR.NORTH ", "password": "test-password"}, id="other-spelling"),
        pytest.param({"username": "dr.north", "password": "test-password "}, id="password-with-space"),
    ],
)
def test_bad_credentials_are_refused_without_saying_which_part(north: Any, credentials: dict[str, str]) -> None:
    response = APIClient().post(TOKEN_URL, credentials, format="json")

    assert_error(response, 401, "AUTHENTICATION_FAILED", BAD_CREDENTIALS)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_inactive_user_gets_no_token(north: Any) -> None:
    north.doctor.is_active = False
    north.doctor.save(update_fields=["is_active"])

    response = APIClient().post(TOKEN_URL, {"username": "dr.north", "password": "test-password"}, format="json")

    assert_error(response, 401, "AUTHENTICATION_FAILED", BAD_CREDENTIALS)


def test_token_request_missing_fields_is_a_validation_error(db: Any) -> None:
    response = APIClient().post(TOKEN_URL, {}, format="json")

    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        "The request has invalid fields.",
        {"username": ["This field is required."], "password": ["This field is required."]},
    )


def test_a_request_without_a_token_is_refused(north: Any) -> None:
    response = APIClient().get("/api/v1/providers")

    assert_error(response, 401, "AUTHENTICATION_FAILED", NO_CREDENTIALS)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_another_authorization_scheme_counts_as_no_token(north: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic ZHIubm9ydGg6dGVzdC1wYXNzd29yZA==")

    assert_error(client.get("/api/v1/providers"), 401, "AUTHENTICATION_FAILED", NO_CREDENTIALS)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("eyJhbGciOiJIUzI1NiJ9.e30.", id="unsigned"),
        pytest.param("a.b.c", id="three-garbage-parts"),
    ],
)
def test_a_garbage_token_is_refused(north: Any, token: str) -> None:
    assert_error(bearer(token).get("/api/v1/providers"), 401, "AUTHENTICATION_FAILED", BAD_TOKEN)


def test_an_expired_token_is_refused(north: Any) -> None:
    token = AccessToken.for_user(north.doctor)
    token.set_exp(lifetime=-dt.timedelta(seconds=1))

    response = bearer(str(token)).get("/api/v1/providers")

    assert_error(response, 401, "AUTHENTICATION_FAILED", BAD_TOKEN)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_token_signed_with_another_key_is_refused(north: Any) -> None:
    token = AccessToken.for_user(north.doctor)
    forged = token.token_backend.__class__(algorithm="HS256", signing_key="not-our-key-" * 4).encode(token.payload)

    assert_error(bearer(forged).get("/api/v1/providers"), 401, "AUTHENTICATION_FAILED", BAD_TOKEN)


def test_a_token_stops_working_when_its_user_is_deactivated(north: Any, api: Any) -> None:
    client = api(north.doctor)
    north.doctor.is_active = False
    north.doctor.save(update_fields=["is_active"])

    assert_error(client.get("/api/v1/providers"), 401, "AUTHENTICATION_FAILED", "User is inactive")


def test_an_empty_bearer_header_is_refused_with_a_plain_message(north: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer")

    assert_error(
        client.get("/api/v1/providers"),
        401,
        "AUTHENTICATION_FAILED",
        "Authorization header must contain two space-delimited values",
    )


@pytest.mark.parametrize("key", ["code", "uuid"])
def test_territory_id_header_picks_a_territory_by_code_or_uuid(north: Any, api: Any, key: str) -> None:
    header = north.territory.code if key == "code" else str(north.territory.pk)

    response = api(north.doctor).get("/api/v1/providers", HTTP_TERRITORY_ID=header)

    assert response.status_code == 200, response.content
    assert response.json()["results"] == [provider_row(north)]


@pytest.mark.parametrize("key", ["code", "uuid"])
def test_territory_id_header_naming_a_territory_the_user_is_not_in(north: Any, south: Any, api: Any, key: str) -> None:
    header = south.territory.code if key == "code" else str(south.territory.pk)

    response = api(north.doctor).get("/api/v1/providers", HTTP_TERRITORY_ID=header)

    assert_error(response, 403, "TERRITORY_MISMATCH", "You do not work in that territory.", {"territory_id": header})


def test_territory_id_header_naming_no_territory_reads_like_one_the_user_is_not_in(north: Any, api: Any) -> None:
    response = api(north.doctor).get("/api/v1/providers", HTTP_TERRITORY_ID="atlantis")

    assert_error(
        response, 403, "TERRITORY_MISMATCH", "You do not work in that territory.", {"territory_id": "atlantis"}
    )


def test_a_user_of_two_territories_picks_one_with_the_header(north: Any, south: Any, api: Any) -> None:
    client = api(member_of(north, south))

    both = client.get("/api/v1/providers")
    only_south = client.get("/api/v1/providers", HTTP_TERRITORY_ID="south")
    only_north = client.get("/api/v1/providers", HTTP_TERRITORY_ID=str(north.territory.pk))

    assert both.status_code == only_south.status_code == only_north.status_code == 200
    assert both.json()["results"] == [provider_row(north), provider_row(south)]
    assert only_south.json()["results"] == [provider_row(south)]
    assert only_north.json()["results"] == [provider_row(north)]


def test_a_user_who_left_a_territory_cannot_pick_it(north: Any, south: Any, api: Any) -> None:
    user = member_of(north, south)
    membership_revoke(user=user, territory=south.territory)
    client = api(user)  # the token held before is revoked with the membership (test_token_revocation)

    response = client.get("/api/v1/providers", HTTP_TERRITORY_ID="south")

    assert_error(response, 403, "TERRITORY_MISMATCH", details={"territory_id": "south"})
    assert client.get("/api/v1/providers").json()["results"] == [provider_row(north)]
