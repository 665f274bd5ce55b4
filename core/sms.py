"""Pluggable SMS sending: ``sms_send(to=..., body=...)`` hands the message to ``settings.SMS_BACKEND``.

Backends are classes with a ``send(*, to, body)`` method, named by dotted path in
``settings.SMS_BACKEND``:

- ``core.sms.ConsoleSMSBackend`` (the embedded default) writes the body to stdout, its link tokens
  masked (stdout ends up in the logs, and a token is the key to a patient's link);
- ``core.sms.HTTPSMSBackend`` POSTs ``{"to": ..., "body": ...}`` as JSON to ``settings.SMS_HTTP_URL``
  with ``Authorization: Bearer <settings.SMS_HTTP_TOKEN>``, for a provider or a relay speaking that.

Callers never put PHI in a message; backends still write and log nothing beyond what they must
send, and errors name the HTTP status only, never the number or the body.
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol, TextIO

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from core.exceptions import DomainError
from core.logging import link_tokens_masked

DEFAULT_SMS_BACKEND = "core.sms.ConsoleSMSBackend"


class SMSDeliveryFailed(DomainError):
    """The SMS provider refused the message or could not be reached.

    ``status`` is the HTTP status the provider answered with, or ``None`` when no answer came.
    """

    code = "SMS_DELIVERY_FAILED"
    http_status = 502
    default_message = "The SMS provider did not accept the message."

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message, details={"status": status})


class SMSBackend(Protocol):
    def send(self, *, to: str, body: str) -> None: ...


class ConsoleSMSBackend:
    """Writes each message's body (and nothing else, not even the number) to ``stream``, stdout by default.

    Link tokens in the body are masked (``link_tokens_masked``): the console is a log, not a phone.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, *, to: str, body: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"[sms] {link_tokens_masked(body)}\n")
        stream.flush()


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other non-2xx: following it would turn the POST into a GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class HTTPSMSBackend:
    """POSTs the message as JSON to ``settings.SMS_HTTP_URL`` with the bearer ``settings.SMS_HTTP_TOKEN``.

    Any 2xx answer is success. Raises SMSDeliveryFailed on another status, a network error or a
    timeout (``settings.SMS_HTTP_TIMEOUT_SECONDS``), and ImproperlyConfigured without an http(s) URL.
    """

    def __init__(self) -> None:
        self.url: str = getattr(settings, "SMS_HTTP_URL", "")
        self.token: str = getattr(settings, "SMS_HTTP_TOKEN", "")
        self.timeout: float = getattr(settings, "SMS_HTTP_TIMEOUT_SECONDS", 10.0)
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ImproperlyConfigured("SMS_HTTP_URL must be an http:// or https:// URL for HTTPSMSBackend.")

    def send(self, *, to: str, body: str) -> None:
        request = urllib.request.Request(  # noqa: S310 -- the scheme is checked to be http(s) in __init__
            self.url,
            data=json.dumps({"to": to, "body": body}).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.token}",
            },
        )
        opener = urllib.request.build_opener(_RefuseRedirects)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            # Raised for every non-2xx answer; keep only its status (the body may echo the message).
            error.close()
            raise SMSDeliveryFailed(f"The SMS provider answered HTTP {error.code}.", status=error.code) from None
        except (OSError, http.client.HTTPException) as error:  # refused, timed out, broken answer
            raise SMSDeliveryFailed(f"The SMS provider could not be reached ({type(error).__name__}).") from None
        if not 200 <= status < 300:
            raise SMSDeliveryFailed(f"The SMS provider answered HTTP {status}.", status=status)


def sms_backend() -> SMSBackend:
    """A new instance of the backend ``settings.SMS_BACKEND`` names (``core.sms.ConsoleSMSBackend`` by default)."""
    backend_class = import_string(getattr(settings, "SMS_BACKEND", DEFAULT_SMS_BACKEND))
    backend: SMSBackend = backend_class()
    return backend


def sms_send(*, to: str, body: str) -> None:
    """Send ``body`` to the phone number ``to`` through the configured backend.

    ``body`` must carry no PHI. Raises whatever the backend raises (SMSDeliveryFailed for the
    HTTP backend); nothing is retried here — callers decide.
    """
    sms_backend().send(to=to, body=body)
