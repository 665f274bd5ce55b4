"""No log line, error message or exception ever contains PHI.

A fixture patient goes through the API — registered, searched, ordered for, read, moved through
the lifecycle, with invalid input and requests for things that do not exist — while every log
record (DEBUG and up, SQL statements with their parameters included) and everything written to
stdout/stderr is captured; none of the patient's values may appear in any of it.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from core.identifiers import is_valid_mbi
from core.logging import StripQueryStringFilter
from core.request_id import RequestIdFilter
from patients.models import Patient
from tests.factories import CoverageFactory

PATIENT = {
    "first_name": "Marisol",
    "last_name": "Vandermeulen",
    "date_of_birth": "1944-02-29",
    "mbi": "5KV3PT8WQ61",
    "phone": "773-555-0142",
    "email": "marisol.vandermeulen@example.com",
}
ADDRESS = {"line1": "88 Juniper Hollow Rd", "line2": "Apt 3", "city": "Oak Lawn", "state": "IL", "postal_code": "60453"}
ORDER_PHI = {
    "notes": "Deliver before noon, daughter Ines signs",
    "service_type": "Home oxygen concentrator",
    "diagnosis_code": "J44.9",
    "policy_number": "ZX-55810-MV",
    "hold_reason": "Awaiting oximetry for Marisol",
    "verification": "Confirmed with Medicare by phone",
    "timeline_note": "Spoke with Ines about the delivery window",
}
INVALID_INPUT = {"bad_mbi": "9ZZ9ZZ9ZZ99", "bad_icd10": "XQ-77.1234Z"}

PHI_VALUES = [
    *PATIENT.values(),
    "Marisol Vandermeulen",
    "02/29/1944",
    ADDRESS["line1"],
    ADDRESS["line2"],
    ADDRESS["city"],
    *ORDER_PHI.values(),
    *INVALID_INPUT.values(),
]


def _leaks(text: str) -> list[str]:
    folded = text.casefold()
    return [value for value in PHI_VALUES if value.casefold() in folded]


@dataclass
class CapturedLogs:
    records: pytest.LogCaptureFixture
    console: io.StringIO  # what the configured stream handlers wrote, formatted and filtered

    @property
    def text(self) -> str:
        return self.records.text + self.console.getvalue()


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[CapturedLogs]:
    """Every log record at DEBUG and up, SQL statements with their parameters included.

    Loggers that do not propagate (``django.request``, ``django.server``) get the capture handler
    too, and the stream handlers configured by ``settings.LOGGING`` write into ``console``.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")  # Django's default config holds "django" at INFO
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers[1:]:
        caplog.set_level(logging.DEBUG, logger=logger.name)
        logger.addHandler(caplog.handler)
    console = io.StringIO()
    streams = {
        handler: handler.setStream(console)
        for handler in {h for logger in loggers for h in logger.handlers if type(h) is logging.StreamHandler}
    }
    force_debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True  # log every SQL statement with its parameters
    try:
        yield CapturedLogs(records=caplog, console=console)
    finally:
        connection.force_debug_cursor = force_debug_cursor
        for handler, stream in streams.items():
            handler.setStream(stream)
        for logger in loggers[1:]:
            logger.removeHandler(caplog.handler)


def test_the_api_never_logs_or_echoes_phi(
    north: Any, south: Any, api: Any, captured_logs: CapturedLogs, capfd: pytest.CaptureFixture[str]
) -> None:
    assert is_valid_mbi(PATIENT["mbi"])
    assert not is_valid_mbi(INVALID_INPUT["bad_mbi"])
    doctor, ops, other_doctor, anonymous = api(north.doctor), api(north.ops), api(south.doctor), api(None)
    error_bodies: list[str] = []
    capfd.readouterr()

    def expect(response: Any, status: int) -> Any:
        assert response.status_code == status, response.content
        if status >= 400:
            error_bodies.append(response.content.decode())
        return response.json()

    # Given a patient registered through the API
    patient = expect(
        doctor.post(
            "/api/v1/patients",
            {**PATIENT, "address": ADDRESS, "provider_id": str(north.provider.pk)},
            format="json",
        ),
        201,
    )
    assert patient["first_name"] == "Marisol"
    # with Medicare coverage on file (staff record it in the back office)
    CoverageFactory.create(patient=Patient.objects.get(pk=patient["id"]), member_id=PATIENT["mbi"])

    # When the doctor searches by name and date of birth; others search too
    for query in ("Marisol Vandermeulen", "Vandermeulen, Marisol", "1944-02-29", "Marisol 02/29/1944"):
        found = expect(doctor.get("/api/v1/patients", {"search": query}), 200)
        assert [p["id"] for p in found["results"]] == [patient["id"]], query
    assert expect(other_doctor.get("/api/v1/patients", {"search": "Marisol Vandermeulen"}), 200)["results"] == []
    expect(anonymous.get("/api/v1/patients", {"search": "Marisol Vandermeulen"}), 401)

    # And an order is placed, read, held, verified and annotated
    order = expect(
        doctor.post(
            "/api/v1/orders",
            {
                "patient_id": patient["id"],
                "provider_id": str(north.provider.pk),
                "items": [{"sku": north.product.sku, "quantity": 1}],
                "payer_type": "insurance",
                "diagnosis_codes": [ORDER_PHI["diagnosis_code"]],
                "notes": ORDER_PHI["notes"],
                "service_type": ORDER_PHI["service_type"],
                "insurance": {"carrier": "Medicare", "policy_number": ORDER_PHI["policy_number"]},
                "sign": True,
            },
            format="json",
        ),
        201,
    )
    assert order["status"] == "pending_verification"
    order_url = f"/api/v1/orders/{order['id']}"
    assert expect(doctor.get(order_url), 200)["notes"] == ORDER_PHI["notes"]
    held = {"status": "on_hold", "notes": ORDER_PHI["hold_reason"]}
    assert expect(ops.put(f"{order_url}/status", held, format="json"), 200)["status"] == "on_hold"
    verification = {"verified_by": "ops", "coverage_details": ORDER_PHI["verification"]}
    verify_body = {"notes": ORDER_PHI["hold_reason"], "verification_data": verification}
    assert expect(ops.put(f"{order_url}/verify", verify_body, format="json"), 200)["status"] == "verified"
    expect(doctor.post(f"/api/orders/{order['id']}/events", {"note": ORDER_PHI["timeline_note"]}, format="json"), 201)
    timeline = expect(doctor.get(f"/api/orders/{order['id']}/timeline"), 200)
    # created, compliance check, hold, compliance check before verifying, verify, note
    assert len(timeline) == 6

    # And requests fail: invalid MBI, invalid ICD-10 code, a future birth date, a forbidden
    # transition, a missing reason, an unknown order, another territory's order
    invalid_patients = [
        {**PATIENT, "mbi": INVALID_INPUT["bad_mbi"]},
        {**PATIENT, "date_of_birth": (dt.date.today() + dt.timedelta(days=30)).isoformat()},
        {**PATIENT, "email": "Marisol Vandermeulen"},
    ]
    for body in invalid_patients:
        response = doctor.post("/api/v1/patients", {**body, "provider_id": str(north.provider.pk)}, format="json")
        assert expect(response, 400)["error"]["code"] == "VALIDATION_ERROR"
    bad_order = {
        "patient_id": patient["id"],
        "provider_id": str(north.provider.pk),
        "items": [{"sku": north.product.sku, "quantity": 1}],
        "payer_type": "insurance",
        "diagnosis_codes": [INVALID_INPUT["bad_icd10"]],
        "notes": ORDER_PHI["notes"],
    }
    assert expect(doctor.post("/api/v1/orders", bad_order, format="json"), 400)["error"]["code"] == "VALIDATION_ERROR"
    completed = {"status": "completed", "notes": ORDER_PHI["hold_reason"]}
    conflict = expect(ops.put(f"{order_url}/status", completed, format="json"), 409)
    assert conflict["error"]["code"] == "INVALID_STATUS_TRANSITION"
    expect(doctor.put(f"{order_url}/cancel", {"reason": ""}, format="json"), 400)
    assert expect(doctor.get(f"/api/v1/orders/{uuid.uuid4()}"), 404)["error"]["code"] == "ORDER_NOT_FOUND"
    assert expect(other_doctor.get(order_url), 404)["error"]["code"] == "ORDER_NOT_FOUND"
    expect(other_doctor.put(f"{order_url}/status", held, format="json"), 404)

    # Then no PHI appears in any log record, any output, or any error response
    out, err = capfd.readouterr()
    # (the capture works: SQL is logged with its parameters, and the console handler's lines reach stderr)
    assert "phi1:k1:" in captured_logs.records.text
    assert "WARNING django.request Bad Request: /api/v1/patients\n" in captured_logs.console.getvalue()
    assert _leaks(captured_logs.text) == []
    assert _leaks(out + err) == []
    assert [_leaks(body) for body in error_bodies] == [[]] * len(error_bodies)


def test_a_phi_decryption_failure_is_reported_without_phi(
    north: Any, api: Any, captured_logs: CapturedLogs, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a patient whose last name column holds their sealed first name (a damaged row)
    client = api(north.ops)
    patient = client.post(
        "/api/v1/patients", {**PATIENT, "address": ADDRESS, "provider_id": str(north.provider.pk)}, format="json"
    ).json()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE patients_patient SET last_name = first_name")
    capfd.readouterr()

    # When the patient is listed
    response = client.get("/api/v1/patients", {"search": "1944-02-29"})

    # Then the request fails with the generic envelope, and the logged error carries no PHI
    assert response.status_code == 500
    assert response.json() == {
        "status": "error",
        "error": {"code": "INTERNAL_ERROR", "message": "An unexpected error occurred.", "details": {}},
    }
    assert patient["first_name"] == "Marisol"
    assert "PHIDecryptionError" in captured_logs.text
    out, err = capfd.readouterr()
    assert _leaks(captured_logs.text) == []
    assert _leaks(out + err) == []


def test_strip_query_string_filter_removes_query_strings_from_server_lines() -> None:
    # Given a django.server-style record of a search request
    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        __file__,
        1,
        '"%s" %s %s',
        ("GET /api/v1/patients?search=Smith HTTP/1.1", 200, 12),
        None,
    )

    # When the filter sees it
    kept = StripQueryStringFilter().filter(record)

    # Then the line is kept, without the query string
    assert kept is True
    assert record.getMessage() == '"GET /api/v1/patients?… HTTP/1.1" 200 12'


def test_strip_query_string_filter_cleans_the_message_itself() -> None:
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Not Found: /x?name=Smith&dob=1950-01-01", None, None
    )

    assert StripQueryStringFilter().filter(record) is True
    assert record.getMessage() == "Not Found: /x?…"


def test_the_configured_server_log_handler_strips_query_strings() -> None:
    # Given the django.server logger as configured by settings.LOGGING, writing to a buffer
    logger = logging.getLogger("django.server")
    (handler,) = [h for h in logger.handlers if type(h) is logging.StreamHandler]
    assert [type(f) for f in handler.filters] == [RequestIdFilter, StripQueryStringFilter]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        # When a search request is logged
        logger.info('"%s" %s %s', "GET /api/v1/patients?search=Vandermeulen HTTP/1.1", "200", "512")
    finally:
        handler.setStream(previous)

    # Then the written line has no query string
    line = buffer.getvalue()
    assert line.endswith('INFO django.server "GET /api/v1/patients?… HTTP/1.1" 200 512\n')
    assert "Vandermeulen" not in line


# --- Query strings are stripped whole (issue 15, item 15) ------------------------------------------

NAMES_IN_QUERIES = ("O'Brien", "Brien", "Zelda", "1948-07-09")


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        pytest.param(
            '"%s" %s %s',
            ("GET /api/v1/patients?search=O'Brien&dob=1948-07-09 HTTP/1.1", 200, 12),
            '"GET /api/v1/patients?… HTTP/1.1" 200 12',
            id="runserver-apostrophe",
        ),
        pytest.param(
            '"%s" %s %s',
            ('GET /portal/patients?q="Zelda O\'Brien" HTTP/1.1', 200, 12),
            '"GET /portal/patients?… HTTP/1.1" 200 12',
            id="runserver-quotes",
        ),
        pytest.param(
            "code %d, message %s",
            (400, 'Bad request syntax ("GET /x?q=Zelda O\'Brien HTTP/1.1")'),
            'code 400, message Bad request syntax ("GET /x?… HTTP/1.1")',
            id="runserver-bad-request-syntax",
        ),
        pytest.param(
            '"%s" %s %s',
            ("GET /x?q=O'Brien HTTP/1.1 Zelda HTTP/1.1", 400, 0),
            '"GET /x?… HTTP/1.1" 400 0',
            id="fake-http-version-inside-the-query",
        ),
        pytest.param(
            "Not Found: %s",
            ("/x?name=O'Brien&dob=1948-07-09",),
            "Not Found: /x?…",
            id="django-request",
        ),
        pytest.param(
            '%(h)s "%(r)s" %(s)s "%(f)s" "%(a)s"',
            {
                "h": "10.0.0.1",
                "r": "GET /portal/patients?q=O'Brien HTTP/1.1",
                "s": "200",
                "f": "https://portal.example.org/portal/patients?q=Zelda%20O'Brien",
                "a": "Mozilla/5.0",
            },
            '10.0.0.1 "GET /portal/patients?… HTTP/1.1" 200 "https://portal.example.org/portal/patients?…',
            id="gunicorn-access-atoms-with-referer",
        ),
        pytest.param("Is this right? %s", ("yes",), "Is this right? yes", id="prose-question-untouched"),
    ],
)
def test_strip_query_string_filter_strips_whole_query_strings(msg: str, args: Any, expected: str) -> None:
    record = logging.LogRecord("django.server", logging.INFO, __file__, 1, msg, args, None)

    assert StripQueryStringFilter().filter(record) is True
    assert record.getMessage() == expected
    assert [name for name in NAMES_IN_QUERIES if name in record.getMessage()] == []
    # a second handler's pass changes nothing
    assert StripQueryStringFilter().filter(record) is True
    assert record.getMessage() == expected


@pytest.mark.parametrize("logger_name", ["django.server", "django.request", "gunicorn.access", "gunicorn.error"])
def test_request_loggers_clean_records_for_every_handler(logger_name: str) -> None:
    """The request loggers filter too: a handler added to them (a test's, gunicorn's) sees clean lines."""
    logger = logging.getLogger(logger_name)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    console = io.StringIO()
    (configured,) = [h for h in logger.handlers if type(h) is logging.StreamHandler]
    previous = configured.setStream(console)
    try:
        logger.warning('"%s" %s', "GET /api/v1/patients?search=O'Brien HTTP/1.1", 401)
    finally:
        configured.setStream(previous)
        logger.removeHandler(handler)

    assert seen == ['"GET /api/v1/patients?… HTTP/1.1" 401']
    assert console.getvalue().endswith('"GET /api/v1/patients?… HTTP/1.1" 401\n')


def test_runserver_request_lines_never_carry_a_query_string(db: Any) -> None:
    """Raw requests to Django's development server: what it logs holds none of the names searched for."""
    import socket
    import threading

    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    console = io.StringIO()
    loggers = [logging.getLogger("django.server"), logging.getLogger("django.request")]
    handlers = {h for logger in loggers for h in logger.handlers if type(h) is logging.StreamHandler}
    previous = {handler: handler.setStream(console) for handler in handlers}
    thread.start()
    try:
        for request_line in (
            "GET /api/v1/patients?search=O'Brien HTTP/1.1",
            "GET /api/v1/patients?search=Zelda%20O'Brien&dob=1948-07-09 HTTP/1.1",
            "GET /nowhere?q=O'Brien HTTP/1.1",
            "GET /api/v1/patients?search=Zelda O'Brien HTTP/1.1",  # unencoded space: "Bad request syntax"
        ):
            with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as connection:
                connection.sendall(f"{request_line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                while connection.recv(65536):
                    pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        for handler, stream in previous.items():
            handler.setStream(stream)

    written = console.getvalue()
    assert '"GET /api/v1/patients?… HTTP/1.1" 401' in written
    assert '"GET /nowhere?… HTTP/1.1" 404' in written
    assert "Bad request syntax" in written
    assert [name for name in NAMES_IN_QUERIES if name in written] == []


def test_link_tokens_never_reach_the_log_whole(db: Any, captured_logs: CapturedLogs) -> None:
    """Django names the path of a refused or missing page ("Forbidden (…): /pay/<token>", "Not Found:
    /pay/<token>"): what the configured handlers write keeps only the token's last characters."""
    from django.test import Client

    token = "Zm9yZ2VkLXRva2VuLXZhbHVl:1tXyZ:abcdEFGHijklMNOPqrst"

    Client(enforce_csrf_checks=True).post(f"/pay/{token}")  # no CSRF cookie: refused, and logged
    Client().get(f"/p/{token}/orders/")  # no such page
    Client().get(f"/pay/{token}")  # a link that does not open

    written = captured_logs.console.getvalue()
    assert "/pay/****qrst" in written
    assert token not in written
    assert token[:-4] not in written
