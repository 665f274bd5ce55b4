"""The pluggable SMS sender: the console default and the HTTP backend against a real local HTTP server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from pytest_httpserver import HTTPServer

from core.sms import ConsoleSMSBackend, HTTPSMSBackend, SMSDeliveryFailed, sms_backend, sms_send

PATH = "/v1/messages"
NUMBER = "+15550100001"
BODY = "3 stock alerts: 2 low stock, 1 expiring lot — see the admin"


def http_backend_settings(httpserver: HTTPServer) -> override_settings:
    return override_settings(
        SMS_BACKEND="core.sms.HTTPSMSBackend",
        SMS_HTTP_URL=httpserver.url_for(PATH),
        SMS_HTTP_TOKEN="gateway-token-123",
        SMS_HTTP_TIMEOUT_SECONDS=5.0,
    )


def test_the_default_backend_is_the_console_one_and_prints_the_body_only(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the embedded default settings
    assert isinstance(sms_backend(), ConsoleSMSBackend)

    # When a message is sent
    sms_send(to=NUMBER, body=BODY)

    # Then stdout shows the body and nothing else, not even the number
    captured = capsys.readouterr()
    assert captured.out == f"[sms] {BODY}\n"
    assert NUMBER not in captured.out + captured.err


def test_the_http_backend_posts_the_exact_json_with_the_bearer_token(httpserver: HTTPServer) -> None:
    # Given a provider that accepts messages
    httpserver.expect_request(PATH, method="POST").respond_with_json({"id": "msg-1"}, status=202)

    # When a message is sent through the HTTP backend
    with http_backend_settings(httpserver):
        assert isinstance(sms_backend(), HTTPSMSBackend)
        sms_send(to=NUMBER, body=BODY)

    # Then the provider received exactly one POST with the JSON body and the bearer token
    httpserver.check_assertions()
    assert len(httpserver.log) == 1
    request, response = httpserver.log[0]
    assert response.status_code == 202
    assert request.get_json() == {"to": NUMBER, "body": BODY}
    assert request.headers["Authorization"] == "Bearer gateway-token-123"
    assert request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [500, 401, 302])
def test_a_non_2xx_answer_raises_the_typed_error_naming_only_the_status(httpserver: HTTPServer, status: int) -> None:
    # Given a provider that fails (or redirects, which would turn the POST into a GET)
    headers = {"Location": httpserver.url_for("/elsewhere")} if status == 302 else None
    httpserver.expect_request(PATH, method="POST").respond_with_data(
        f"rejected {NUMBER}", status=status, headers=headers
    )

    # When a message is sent, Then SMSDeliveryFailed carries the status and neither number nor body
    with http_backend_settings(httpserver), pytest.raises(SMSDeliveryFailed) as raised:
        sms_send(to=NUMBER, body=BODY)
    assert raised.value.status == status
    assert raised.value.code == "SMS_DELIVERY_FAILED"
    assert str(raised.value) == f"The SMS provider answered HTTP {status}."
    assert raised.value.details == {"status": status}
    # The redirect was not followed.
    assert [request.path for request, _ in httpserver.log] == [PATH]


def test_an_unreachable_provider_raises_the_typed_error_without_a_status() -> None:
    # Given a provider URL nothing listens on (port 1 refuses at once)
    with (
        override_settings(SMS_BACKEND="core.sms.HTTPSMSBackend", SMS_HTTP_URL="http://127.0.0.1:1/v1/messages"),
        pytest.raises(SMSDeliveryFailed) as raised,
    ):
        sms_send(to=NUMBER, body=BODY)
    assert raised.value.status is None
    assert str(raised.value) == "The SMS provider could not be reached (URLError)."


@pytest.mark.parametrize("url", ["", "file:///etc/passwd", "ftp://example.org/sms"])
def test_the_http_backend_needs_an_http_url(url: str) -> None:
    with (
        override_settings(SMS_BACKEND="core.sms.HTTPSMSBackend", SMS_HTTP_URL=url),
        pytest.raises(ImproperlyConfigured),
    ):
        sms_send(to=NUMBER, body=BODY)


TOKEN = "0f3c2a9d8b7e4c1fa6d5e4c3b2a19080:R2wp5YiZL1ycXmPm-TbQPOc00F3OljZQZCgL6QROfrk"


def test_the_console_backend_masks_link_tokens_to_their_last_four_characters(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a message carrying a payment link and a patient-page link
    body = (
        f"North: your order 2K7-XQ4 is ready for payment. Pay securely at https://medorder.example/pay/{TOKEN} "
        f"— or track it at https://medorder.example/p/{TOKEN[::-1]}?from=sms."
    )

    # When it goes to the console
    sms_send(to=NUMBER, body=body)

    # Then only the path prefixes and each token's last four characters are written, nothing else changes
    captured = capsys.readouterr()
    assert captured.out == (
        "[sms] North: your order 2K7-XQ4 is ready for payment. Pay securely at https://medorder.example/pay/****Ofrk "
        "— or track it at https://medorder.example/p/****c3f0?from=sms.\n"
    )
    written = captured.out + captured.err + caplog.text
    for secret in (TOKEN, TOKEN[::-1], TOKEN.split(":")[0], TOKEN.split(":")[1], TOKEN[:-4], TOKEN[::-1][:-4]):
        assert secret not in written
