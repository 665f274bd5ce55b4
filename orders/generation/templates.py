"""Compliance outcomes of the baskets, computed once by the real engine and reused per order.

Evaluating every generated order would cost more than writing it; the outcome depends on the
basket, the payer and whether the practitioner signed, so each combination is evaluated once with
``compliance.engine.evaluate`` (facts built as ``orders.compliance_checks`` builds them: a known,
credentialed provider, a patient in the territory, the products' own facts, no supply history) and
its snapshot input, result and timeline payload are reused, dated per order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from catalog.models import Product
from compliance.engine import ComplianceResult, Disposition, evaluate
from compliance.inputs import ComplianceInput, ItemFacts, PatientFacts, ProviderFacts
from patients.models import PayerType

from ..compliance_checks import hold_reason
from . import content


@dataclass(frozen=True)
class Outcome:
    """The engine's answer for one basket, payer profile and signature."""

    basket: content.Basket
    profile: content.PayerProfile
    signed: bool
    disposition: str
    inputs: dict[str, Any]  # ComplianceInput.as_record() of the template facts
    result: dict[str, Any]  # ComplianceResult.as_dict()
    rule_versions: dict[str, str]
    findings: list[dict[str, Any]]  # as the timeline's compliance event payload lists them
    codes: list[str]  # finding codes a person must resolve (not info)
    hold_reason: str


def _facts(
    basket: content.Basket, profile: content.PayerProfile, products: dict[str, Product], signed: bool
) -> ComplianceInput:
    today = timezone.localdate()
    items = []
    for index, line in enumerate(basket.lines):
        product = products[line.sku]
        vendor = product.vendor
        items.append(
            ItemFacts(
                key=str(index),
                sku=product.sku,
                hcpcs=product.hcpcs_code or None,
                description=product.name,
                quantity=line.quantity,
                rxnorm_code=product.rxnorm_code or None,
                dropship_allowed=product.dropship_fulfillment and vendor is not None and vendor.active,
                recurring=product.recurring,
                days_of_supply=product.days_of_supply,
            )
        )
    insured = profile.payer_type == PayerType.INSURANCE
    return ComplianceInput(
        order_date=today,
        requested_date=None,
        payer_type=profile.payer_type,
        coverage_tier="standard" if insured else None,
        payer_kind=profile.payer_kind or None if insured else None,
        patient=PatientFacts(
            known=True,
            has_name=True,
            has_mbi=profile.key == "medicare",
            in_territory=True,
            state="MN",
            # The medications for erectile dysfunction are labelled for men.
            sex="male" if basket.service_type == "Erectile dysfunction" else "female",
        ),
        provider=ProviderFacts(known=True, name="Dr. Generated", npi="1000000004", credentialed_in_territory=True),
        items=tuple(items),
        diagnosis_codes=basket.diagnosis_codes,
        signed_on=today if signed else None,
    )


def _outcome(
    basket: content.Basket, profile: content.PayerProfile, products: dict[str, Product], signed: bool
) -> Outcome:
    facts = _facts(basket, profile, products, signed)
    result: ComplianceResult = evaluate(facts)
    return Outcome(
        basket=basket,
        profile=profile,
        signed=signed,
        disposition=str(result.disposition),
        inputs=facts.as_record(),
        result=result.as_dict(),
        rule_versions=dict(result.rule_versions),
        findings=[
            {"code": f.code, "severity": str(f.severity), "message": f.message, "item": f.item} for f in result.findings
        ],
        codes=sorted({f.code for f in result.findings if f.severity != "info"}),
        hold_reason=hold_reason(result),
    )


@dataclass
class Outcomes:
    """Outcomes by payer profile: ``held`` (unsigned orders the checks hold) and ``passing`` (signed
    orders that are clear or need review, which a reviewer may verify)."""

    held: dict[str, list[Outcome]]
    passing: dict[str, list[Outcome]]


def outcomes_build(products: dict[str, Product]) -> Outcomes:
    held: dict[str, list[Outcome]] = {}
    passing: dict[str, list[Outcome]] = {}
    for profile in content.PAYER_PROFILES:
        kind = "cash" if profile.payer_type == PayerType.CASH else "insurance"
        for basket in content.BASKETS:
            if basket.payer != kind:
                continue
            signed = _outcome(basket, profile, products, signed=True)
            if signed.disposition != Disposition.HOLD:
                passing.setdefault(profile.key, []).append(signed)
            unsigned = _outcome(basket, profile, products, signed=False)
            if unsigned.disposition == Disposition.HOLD:
                held.setdefault(profile.key, []).append(unsigned)
    return Outcomes(held=held, passing=passing)


def dated_inputs(outcome: Outcome, *, order_date: dt.date, requested_date: dt.date | None) -> dict[str, Any]:
    """The outcome's snapshot input as of one order's dates."""
    inputs = dict(outcome.inputs)
    inputs["order_date"] = order_date.isoformat()
    inputs["requested_date"] = requested_date.isoformat() if requested_date else None
    if inputs.get("signed_on"):
        inputs["signed_on"] = order_date.isoformat()
    return inputs
