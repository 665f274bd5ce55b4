"""Pharmacy connectors: how one prescription travels to one kind of pharmacy API.

A connector is one class with ``send(pharmacy, prescription, resource) -> Exchange`` and one
entry in ``REGISTRY`` (keyed by ``Pharmacy.connector``). It never raises for an HTTP answer: the
Exchange says what happened (accepted, rejected 4xx, server error 5xx, network error or timeout)
and carries the bodies for the PharmacyLog. Secrets go in headers only and are never logged.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from fhir.resources.R4B.medicationrequest import MedicationRequest

from .destinations import destination_problem
from .fhir import FHIRInvalid, identifier_system, medication_dispense_validate, prescription_transaction, to_json
from .models import LogOutcome, Pharmacy, Prescription


@dataclass(frozen=True)
class DispenseUpdate:
    """A pharmacy's news about one prescription, whichever connector it came through."""

    identifier: str
    status: str
    tracking_number: str = ""
    carrier: str = ""
    reason: str = ""


def dispense_update(dispense: Any, *, identifier: str | None = None) -> DispenseUpdate | None:
    """A validated FHIR MedicationDispense as a DispenseUpdate for ``identifier`` — or, without one,
    for the prescription it names by our identifier in ``authorizingPrescription`` (None if none)."""
    if identifier is None:
        ours = [
            ref.identifier.value
            for ref in dispense.authorizingPrescription or []
            if ref.identifier is not None and ref.identifier.system == identifier_system()
        ]
        if not ours:
            return None
        identifier = str(ours[0])
    reason = dispense.statusReasonCodeableConcept.text if dispense.statusReasonCodeableConcept else ""
    return DispenseUpdate(identifier=identifier, status=dispense.status, reason=reason or "")


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str
    request_body: str
    status: int | None
    response_body: str
    duration_ms: int
    outcome: str
    pharmacy_reference: str = ""

    @property
    def retryable(self) -> bool:
        return self.outcome in (LogOutcome.SERVER_ERROR, LogOutcome.NETWORK_ERROR)


def loggable_url(url: str) -> str:
    """The URL without its query string or any user:password part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))[:500]


def auth_headers(pharmacy: Pharmacy) -> dict[str, str]:
    credentials = pharmacy.credentials
    if credentials.get("bearer_token"):
        return {"Authorization": f"Bearer {credentials['bearer_token']}"}
    if credentials.get("api_key"):
        return {str(credentials.get("api_key_header") or "X-Api-Key"): str(credentials["api_key"])}
    return {}


def _refusal(url: str) -> str | None:
    """Why ``url`` must not be called now (checked before every call: the name may resolve elsewhere
    than when the pharmacy was saved); the Exchange then records a network error naming it."""
    problem = destination_problem(url, unresolved_allowed=False)
    return None if problem is None else f"DestinationRefused: {problem}"


def _post(url: str, *, body: str, headers: dict[str, str]) -> tuple[int | None, str, dict[str, str], int]:
    refused = _refusal(url)
    if refused is not None:
        return None, refused, {}, 0
    started = time.monotonic()
    try:
        response = requests.post(
            url, data=body.encode(), headers=headers, timeout=settings.PHARMACY_TIMEOUT_SECONDS, allow_redirects=False
        )
    except requests.RequestException as error:
        return None, type(error).__name__, {}, int((time.monotonic() - started) * 1000)
    elapsed = int((time.monotonic() - started) * 1000)
    return response.status_code, response.text[:100_000], dict(response.headers), elapsed


def _get(url: str, *, params: dict[str, str], headers: dict[str, str]) -> tuple[int | None, str, int]:
    refused = _refusal(url)
    if refused is not None:
        return None, refused, 0
    started = time.monotonic()
    try:
        response = requests.get(
            url, params=params, headers=headers, timeout=settings.PHARMACY_TIMEOUT_SECONDS, allow_redirects=False
        )
    except requests.RequestException as error:
        return None, type(error).__name__, int((time.monotonic() - started) * 1000)
    return response.status_code, response.text[:100_000], int((time.monotonic() - started) * 1000)


def _outcome(status: int | None) -> str:
    if status is None:
        return LogOutcome.NETWORK_ERROR
    if 200 <= status < 300:
        return LogOutcome.ACCEPTED
    if status >= 500 or status in (408, 429):
        return LogOutcome.SERVER_ERROR
    return LogOutcome.REJECTED


class Connector(Protocol):
    def send(self, pharmacy: Pharmacy, prescription: Prescription, resource: MedicationRequest) -> Exchange: ...

    def poll(self, pharmacy: Pharmacy, prescription: Prescription) -> tuple[Exchange, DispenseUpdate | None]: ...


class FHIRR4Connector:
    """Send the prescription to a FHIR R4 server, conditional on its order-scoped identifier.

    By default ``POST [base]/MedicationRequest`` with ``If-None-Exist: identifier=<system>|<value>``:
    the server answers with the prescription it already has instead of creating another, so a
    retry is harmless. With ``mapping = {"mode": "transaction"}`` it posts a transaction Bundle
    to ``[base]`` instead — Patient, Practitioner and MedicationRequest, each a conditional
    create — for pharmacies that need the patient's demographics with the prescription.
    """

    def send(self, pharmacy: Pharmacy, prescription: Prescription, resource: MedicationRequest) -> Exchange:
        base = pharmacy.base_url.rstrip("/")
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **auth_headers(pharmacy)}
        if (pharmacy.mapping or {}).get("mode") == "transaction":
            url = base
            body = to_json(prescription_transaction(prescription.item, resource, identifier=prescription.identifier))
        else:
            url = f"{base}/MedicationRequest"
            body = to_json(resource)
            headers["If-None-Exist"] = f"identifier={identifier_system()}|{prescription.identifier}"
        status, text, response_headers, elapsed = _post(url, body=body, headers=headers)
        reference = ""
        if status is not None and 200 <= status < 300:
            location = response_headers.get("Location") or response_headers.get("Content-Location") or ""
            if url == base:
                location = _transaction_location(text)
            parts = location.split("/_history")[0].rstrip("/").split("/")
            reference = "/".join(parts[-2:]) if len(parts) >= 2 else ""
        return Exchange("POST", loggable_url(url), body, status, text, elapsed, _outcome(status), reference)

    def poll(self, pharmacy: Pharmacy, prescription: Prescription) -> tuple[Exchange, DispenseUpdate | None]:
        """Search ``MedicationDispense?prescription.identifier=<system>|<value>``; the newest dispense wins."""
        url = f"{pharmacy.base_url.rstrip('/')}/MedicationDispense"
        query = f"{identifier_system()}|{prescription.identifier}"
        params = {"prescription.identifier": query, "_sort": "-_lastUpdated"}
        headers = {"Accept": "application/fhir+json", **auth_headers(pharmacy)}
        status, text, elapsed = _get(url, params=params, headers=headers)
        exchange = Exchange("GET", loggable_url(url), query, status, text, elapsed, _outcome(status))
        if exchange.outcome != LogOutcome.ACCEPTED:
            return exchange, None
        try:
            entries = json.loads(text).get("entry") or []
            dispense: Any = medication_dispense_validate(entries[0]["resource"]) if entries else None
        except (ValueError, AttributeError, KeyError, TypeError, FHIRInvalid):
            return dataclasses.replace(exchange, outcome=LogOutcome.REJECTED), None
        if dispense is None:
            return exchange, None
        return exchange, dispense_update(dispense, identifier=prescription.identifier)


def _transaction_location(text: str) -> str:
    """The MedicationRequest's location in a transaction-response Bundle (its entry is the last)."""
    try:
        entries = json.loads(text).get("entry") or []
        return str(entries[-1]["response"]["location"])
    except (ValueError, AttributeError, KeyError, IndexError, TypeError):
        return ""


def _lookup(values: dict[str, Any], path: str) -> Any:
    value: Any = values
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class VendorJSONConnector:
    """POST a vendor's own JSON, built field by field from ``pharmacy.mapping``.

    ``mapping`` is ``{"path": "/orders", "fields": {"their_field": "our.path", ...}}``; our paths
    are the keys of the MedicationRequest's JSON (e.g. ``dispenseRequest.quantity.value``) plus
    ``prescription.identifier``. ``Idempotency-Key`` carries the order-scoped identifier.
    """

    def send(self, pharmacy: Pharmacy, prescription: Prescription, resource: MedicationRequest) -> Exchange:
        mapping = pharmacy.mapping or {}
        url = f"{pharmacy.base_url.rstrip('/')}/{str(mapping.get('path') or 'prescriptions').lstrip('/')}"
        values = {
            **resource.model_dump(mode="json", exclude_none=True),
            "prescription": {"identifier": prescription.identifier},
        }
        payload = {field: _lookup(values, path) for field, path in (mapping.get("fields") or {}).items()}
        body = json.dumps(payload, sort_keys=True)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": prescription.identifier,
            **auth_headers(pharmacy),
        }
        status, text, _headers, elapsed = _post(url, body=body, headers=headers)
        reference = ""
        if status is not None and 200 <= status < 300:
            try:
                reference = str(json.loads(text).get("id") or "")
            except (ValueError, AttributeError):
                reference = ""
        return Exchange("POST", loggable_url(url), body, status, text, elapsed, _outcome(status), reference)

    def poll(self, pharmacy: Pharmacy, prescription: Prescription) -> tuple[Exchange, DispenseUpdate | None]:
        """GET ``[base]/<status_path>/<identifier>`` answering ``{status, tracking_number, carrier, reason}``."""
        mapping = pharmacy.mapping or {}
        path = str(mapping.get("status_path") or mapping.get("path") or "prescriptions").strip("/")
        url = f"{pharmacy.base_url.rstrip('/')}/{path}/{prescription.identifier}"
        status, text, elapsed = _get(url, params={}, headers={"Accept": "application/json", **auth_headers(pharmacy)})
        exchange = Exchange("GET", loggable_url(url), "", status, text, elapsed, _outcome(status))
        if exchange.outcome != LogOutcome.ACCEPTED:
            return exchange, None
        try:
            body = json.loads(text)
            update = DispenseUpdate(
                identifier=prescription.identifier,
                status=str(body["status"]),
                tracking_number=str(body.get("tracking_number") or ""),
                carrier=str(body.get("carrier") or ""),
                reason=str(body.get("reason") or ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return dataclasses.replace(exchange, outcome=LogOutcome.REJECTED), None
        return exchange, update


REGISTRY: dict[str, type[Connector]] = {
    "fhir-r4": FHIRR4Connector,
    "vendor-json": VendorJSONConnector,
}


def connector_for(pharmacy: Pharmacy) -> Connector:
    return REGISTRY[pharmacy.connector]()
