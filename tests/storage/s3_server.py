"""A local S3 server for the storage tests: moto in server mode, over real HTTP on 127.0.0.1.

moto (5.2) answers S3's API and enforces object ACLs for anonymous requests, but it does not check
query-string signatures or their expiry: any ``X-Amz-Signature`` is accepted for an existing object.
So the server adds S3's rule for presigned requests in front of moto's application: a request signed
in its query string is refused (403) once ``X-Amz-Date`` + ``X-Amz-Expires`` has passed, or when its
signature is not the SigV4 signature of the request under the test credentials. Requests signed in
the ``Authorization`` header (what boto3 sends for uploads and HEADs) and anonymous ones reach moto as
they are.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Iterable
from threading import Thread
from typing import Any
from urllib.parse import parse_qsl

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

ACCESS_KEY_ID = "AKIAMEDORDERTEST0001"
SECRET_ACCESS_KEY = "medorder-test-secret-access-key-0000000000"
REGION = "us-east-1"

StartResponse = Callable[..., Any]


def presigned_refusal(*, method: str, host: str, raw_path: str, raw_query: str, now: dt.datetime) -> str | None:
    """Why S3 would refuse this query-signed request (its error code), or None when it is valid or not
    signed in its query. SigV4 only (what django-storages is configured to sign with)."""
    pairs = [pair.partition("=") for pair in raw_query.split("&") if pair]
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    if "X-Amz-Signature" not in params:
        return None
    try:
        signed_at = dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        lifetime = int(params["X-Amz-Expires"])
        access_key, _, region, service, _ = params["X-Amz-Credential"].split("/")
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError"
    if now > signed_at + dt.timedelta(seconds=lifetime):
        return "AccessDenied"  # "Request has expired"
    if access_key != ACCESS_KEY_ID:
        return "InvalidAccessKeyId"
    unsigned_query = "&".join(f"{key}={value}" for key, _, value in pairs if key != "X-Amz-Signature")
    request = AWSRequest(method=method, url=f"http://{host}{raw_path}?{unsigned_query}")
    request.context["timestamp"] = params["X-Amz-Date"]
    auth = S3SigV4QueryAuth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), service, region, expires=lifetime)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return "SignatureDoesNotMatch"
    return None


class PresignedRequestCheck:
    """WSGI middleware: S3's presigned-request rule (``presigned_refusal``) in front of moto."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raw_path = environ.get("REQUEST_URI", environ.get("RAW_URI", environ["PATH_INFO"])).partition("?")[0]
        refusal = presigned_refusal(
            method=environ["REQUEST_METHOD"],
            host=environ["HTTP_HOST"],
            raw_path=raw_path,
            raw_query=environ.get("QUERY_STRING", ""),
            now=dt.datetime.now(dt.UTC),
        )
        if refusal is None:
            return self.app(environ, start_response)
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{refusal}</Code></Error>".encode()
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without a log line per request (the presigned addresses need not fill test logs)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class LocalS3Server:
    """moto's S3 application, served on 127.0.0.1 at a free port in a thread, behind ``PresignedRequestCheck``."""

    def __init__(self) -> None:
        app = PresignedRequestCheck(DomainDispatcherApplication(create_backend_app))
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler
        )
        self._thread = Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
