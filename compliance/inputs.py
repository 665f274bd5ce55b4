"""What the compliance engine evaluates: plain, immutable facts about one order or draft.

``orders`` builds a ``ComplianceInput`` from an order (or a draft that was never saved) and hands
it to ``compliance.engine.evaluate``; the engine never reads the database, so the same input
always gives the same result under the same rule files. Dates are ``datetime.date``; codes are
upper-case and normalised (ICD-10-CM with its dot).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class ArtifactType(StrEnum):
    """Documents that resolve findings; attachments carry one of these types."""

    SWO = "SWO"  # a signed standard written order
    WOPD = "WOPD"  # a written order communicated before delivery
    F2F_NOTE = "F2F_NOTE"  # documentation of the face-to-face encounter
    PRIOR_AUTH = "PRIOR_AUTH"  # an affirmed prior authorization decision
    CMN = "CMN"  # certificate of medical necessity
    MEDICAL_NECESSITY = "MEDICAL_NECESSITY"  # documentation supporting a quantity above the usual maximum
    PATIENT_REFILL_CONFIRMATION = "PATIENT_REFILL_CONFIRMATION"  # the patient confirmed the refill is needed


@dataclass(frozen=True)
class ItemFacts:
    """One line. ``key`` places findings beside the line (its position in the order, from 0).

    ``recurring``: the catalog supplies it on a recurring basis, so a repeat delivery is a refill
    (refill rules); ``days_of_supply``: for such a supply without a usual-maximum row, the days one
    unit lasts (None: not known).
    """

    key: str
    sku: str | None = None
    hcpcs: str | None = None
    description: str | None = None
    quantity: int | None = None
    rxnorm_code: str | None = None
    dropship_allowed: bool = False
    stock_short: bool = False
    stock_available: int | None = None
    expected_restock: dt.date | None = None
    recurring: bool = False
    days_of_supply: int | None = None


@dataclass(frozen=True)
class AttachedArtifact:
    """A document attached to the order or draft.

    ``hcpcs_codes``: the items a prior authorization decision (``PRIOR_AUTH``) is for. A decision is
    per HCPCS code (each with its own unique tracking number), so it clears only the codes it names;
    other artifact types name none.
    """

    artifact_type: str
    document_date: dt.date | None = None
    hcpcs_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PriorAuthorizationFacts:
    """A prior authorization decision on file for the patient."""

    hcpcs: str
    affirmed: bool
    decision_date: dt.date
    expires_on: dt.date | None = None


@dataclass(frozen=True)
class Delivery:
    """An earlier delivery to the patient (their supply history). ``recurring`` and
    ``days_of_supply`` as the delivered product's (``ItemFacts``)."""

    hcpcs: str
    quantity: int
    delivered_on: dt.date
    recurring: bool = False
    days_of_supply: int | None = None


@dataclass(frozen=True)
class OpenOrderLine:
    """One line of an open order: what it will deliver."""

    quantity: int
    sku: str | None = None
    hcpcs: str | None = None


@dataclass(frozen=True)
class OpenOrder:
    """An earlier order for the same patient that is not yet delivered, cancelled or rejected
    (status ``pending_verification`` up to ``shipped``): items on their way.

    ``stage`` is its display stage (Pending, Preparing, Shipped); ``expected_on`` the day it is
    expected to be delivered (its requested delivery date, else its order date).
    """

    reference: str
    stage: str
    expected_on: dt.date
    lines: tuple[OpenOrderLine, ...]


@dataclass(frozen=True)
class PayerRuleFacts:
    """A payer/plan and HCPCS rule in force on the order date (from the admin-edited table)."""

    hcpcs: str
    payer: str
    requires_prior_auth: bool = False
    requires_cmn: bool = False
    not_covered: bool = False
    coverage_tiers: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class PatientFacts:
    known: bool = False
    has_name: bool = False
    has_mbi: bool = False
    in_territory: bool = False
    state: str | None = None
    sex: str | None = None  # administrative sex: female, male, other, unknown (None: not recorded)
    allergies: tuple[str, ...] = ()
    medications: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderFacts:
    known: bool = False
    name: str | None = None
    npi: str | None = None
    credentialed_in_territory: bool = False


@dataclass(frozen=True)
class ComplianceInput:
    order_date: dt.date | None
    requested_date: dt.date | None
    payer_type: str | None
    patient: PatientFacts
    provider: ProviderFacts
    items: tuple[ItemFacts, ...]
    coverage_tier: str | None = None
    # The kind of payer of the insurance coverage in force (patients.PayerKind: medicare_ffs,
    # medicare_advantage, medicaid, va, ihs, commercial); None when no coverage is on file.
    payer_kind: str | None = None
    diagnosis_codes: tuple[str, ...] = ()
    f2f_date: dt.date | None = None
    signed_on: dt.date | None = None
    artifacts: tuple[AttachedArtifact, ...] = ()
    prior_authorizations: tuple[PriorAuthorizationFacts, ...] = ()
    supply_history: tuple[Delivery, ...] = ()
    open_orders: tuple[OpenOrder, ...] = ()
    payer_rules: tuple[PayerRuleFacts, ...] = field(default=())
    # The day the order was delivered, once it has been (its delivery record); None before delivery.
    # With ``requested_date`` and ``order_date`` it gives the date of service (engine: date_of_service).
    delivered_on: dt.date | None = None

    def as_record(self) -> dict[str, Any]:
        """The input as JSON-ready data, for the ComplianceSnapshot."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
