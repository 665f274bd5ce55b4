"""Single sign-on through OpenID Connect (mozilla-django-oidc) against a local issuer: a real HTTP
server with token, JWKS and userinfo endpoints and an RS256-signed ID token. Roles and territories
come from the claims; claims that grant no clear access sign nobody in and change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.test import Client, override_settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from accounts.models import User
from patients.models import Provider
from territories.models import TerritoryMembership
from tests.conftest import World
from tests.factories import ProviderFactory


class Issuer:
    """The identity provider: signs one ID token per sign-in and answers userinfo with ``claims``."""

    def __init__(self, server: HTTPServer) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.claims: dict[str, Any] = {}
        self.nonce = ""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        server.expect_request("/jwks").respond_with_json({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})
        server.expect_request("/token", method="POST").respond_with_handler(self.token)
        server.expect_request("/userinfo").respond_with_handler(self.userinfo)
        self.server = server

    def userinfo(self, request: Request) -> Response:
        return Response(json.dumps(self.claims), content_type="application/json")

    def token(self, request: Request) -> Response:
        id_token = jwt.encode(
            {"iss": self.server.url_for("/"), "sub": "sso-1", "aud": "medorder", "nonce": self.nonce},
            self.key,
            algorithm="RS256",
            headers={"kid": "k1"},
        )
        body = {"access_token": "access-1", "id_token": id_token, "token_type": "Bearer"}
        return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def issuer(httpserver: HTTPServer) -> Iterator[Issuer]:
    fake = Issuer(httpserver)
    with override_settings(
        OIDC_OP_ISSUER=httpserver.url_for("/"),
        OIDC_RP_CLIENT_ID="medorder",
        OIDC_RP_CLIENT_SECRET="client-secret",
        OIDC_OP_AUTHORIZATION_ENDPOINT=httpserver.url_for("/authorize"),
        OIDC_OP_TOKEN_ENDPOINT=httpserver.url_for("/token"),
        OIDC_OP_USER_ENDPOINT=httpserver.url_for("/userinfo"),
        OIDC_OP_JWKS_ENDPOINT=httpserver.url_for("/jwks"),
        AUTHENTICATION_BACKENDS=[*settings.AUTHENTICATION_BACKENDS, "patients.oidc.PractitionerOIDCBackend"],
    ):
        yield fake


def sso_sign_in(client: Client, issuer: Issuer) -> Any:
    """The browser's round trip: our redirect to the issuer, then the issuer's redirect back with a code."""
    start = client.get("/accounts/oidc/authenticate/")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start["Location"]).query)
    assert start["Location"].startswith(issuer.server.url_for("/authorize"))
    issuer.nonce = query["nonce"][0]
    return client.get("/accounts/oidc/callback/", {"code": "code-1", "state": query["state"][0]})


def test_the_sign_in_page_offers_sso_when_an_issuer_is_configured(db: Any, issuer: Issuer) -> None:
    page = Client().get("/accounts/login/")
    assert b'href="/accounts/oidc/authenticate/"' in page.content


def test_sso_creates_the_user_with_the_role_and_territories_of_the_claims(
    north: World, south: World, issuer: Issuer
) -> None:
    issuer.claims = {
        "sub": "sso-1",
        "email": "pat.ops@clinic.example",
        "given_name": "Pat",
        "family_name": "Ops",
        "roles": ["ops_staff", "unrelated-group"],
        "territories": ["north", "south", "nowhere"],
    }
    client = Client()

    response = sso_sign_in(client, issuer)

    assert (response.status_code, response["Location"]) == (302, "/portal/")
    user = User.objects.get(email="pat.ops@clinic.example")
    assert (user.first_name, user.last_name, user.is_staff) == ("Pat", "Ops", True)
    assert sorted(TerritoryMembership.objects.filter(user=user).values_list("territory__code", "role")) == [
        ("north", "ops_staff"),
        ("south", "ops_staff"),
    ]
    assert client.get("/portal/").status_code == 200

    # The next sign-in follows the issuer: one territory fewer, and the role changed
    issuer.claims = {**issuer.claims, "roles": ["doctor"], "territories": ["north"]}
    assert sso_sign_in(Client(), issuer)["Location"] == "/portal/"
    assert list(TerritoryMembership.objects.filter(user=user).values_list("territory__code", "role")) == [
        ("north", "doctor")
    ]


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": ["ops_staff", "doctor"], "territories": ["north"]},  # two roles: ambiguous
        {"roles": ["superhero"], "territories": ["north"]},  # no role of ours
        {"roles": ["doctor"], "territories": ["nowhere"]},  # no known territory
        {"roles": ["doctor"], "territories": ["north"], "email": ""},  # no email
    ],
)
def test_claims_without_clear_access_sign_nobody_in(north: World, issuer: Issuer, claims: dict[str, Any]) -> None:
    issuer.claims = {"sub": "sso-1", "email": "someone@clinic.example", **claims}
    users = User.objects.count()
    client = Client()

    response = sso_sign_in(client, issuer)

    assert (response.status_code, response["Location"]) == (302, "/accounts/login/?sso=failed")
    assert User.objects.count() == users
    assert "_auth_user_id" not in client.session
    assert b"Single sign-on did not give you access" in client.get("/accounts/login/?sso=failed").content


def test_a_doctors_npi_claim_links_their_provider_record(north: World, south: World, issuer: Issuer) -> None:
    own = ProviderFactory.create(territory=north.territory, name="Dr. Sso")
    issuer.claims = {
        "sub": "sso-1",
        "email": "dr.sso@clinic.example",
        "roles": ["doctor"],
        "territories": ["north"],
        "npi": own.npi,
    }

    assert sso_sign_in(Client(), issuer)["Location"] == "/portal/"

    user = User.objects.get(email="dr.sso@clinic.example")
    own.refresh_from_db()
    assert own.user == user
    assert sso_sign_in(Client(), issuer)["Location"] == "/portal/"  # again: nothing changes
    assert list(Provider.objects.filter(user=user)) == [own]


@pytest.mark.parametrize("case", ["other_territory", "linked_to_someone_else", "not_a_doctor", "not_an_npi"])
def test_an_npi_claim_links_nothing_it_may_not(north: World, south: World, issuer: Issuer, case: str) -> None:
    npi = {
        "other_territory": south.provider.npi,  # south's provider, already linked: also refused
        "linked_to_someone_else": north.provider.npi,
        "not_a_doctor": ProviderFactory.create(territory=north.territory).npi,
        "not_an_npi": "1234567890",
    }[case]
    if case == "other_territory":
        Provider.objects.filter(pk=south.provider.pk).update(user=None)
    links = dict(Provider.objects.values_list("pk", "user_id"))
    issuer.claims = {
        "sub": "sso-1",
        "email": "someone@clinic.example",
        "roles": ["ops_staff" if case == "not_a_doctor" else "doctor"],
        "territories": ["north"],
        "npi": npi,
    }

    assert sso_sign_in(Client(), issuer)["Location"] == "/portal/"  # signed in, but not linked

    assert dict(Provider.objects.values_list("pk", "user_id")) == links
