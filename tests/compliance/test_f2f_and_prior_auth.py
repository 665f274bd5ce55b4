"""Face-to-face/WOPD and prior authorization against the real rule files: list membership on the date
of service, the codes added on 2024-08-12, each program's decision validity counted from the
decision day as day 1, prior-authorization documents that clear only the codes they name, and the
Medicare fee-for-service programs applying to Medicare FFS coverage only."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from compliance.engine import MEDICARE_FFS, evaluate
from compliance.inputs import (
    AttachedArtifact,
    ComplianceInput,
    ItemFacts,
    PayerRuleFacts,
    PriorAuthorizationFacts,
)
from patients.models import PayerKind
from tests.compliance.builders import D, ffs_order, line

item = line


def order(*items: ItemFacts, order_date: D, **changes: Any) -> ComplianceInput:
    """A complete Medicare FFS order signed on its order date, delivered on its order date unless
    ``requested_date`` or ``delivered_on`` say otherwise."""
    return ffs_order(*items, order_date=order_date, **changes)


def codes(facts: ComplianceInput, *prefixes: str) -> list[tuple[str, str]]:
    found = [(f.code, str(f.severity)) for f in evaluate(facts).findings]
    return [(code, severity) for code, severity in found if not prefixes or code.startswith(prefixes)]


def only(facts: ComplianceInput, code: str) -> Any:
    (found,) = [f for f in evaluate(facts).findings if f.code == code]
    return found


# --- face-to-face / WOPD list membership on the date of service -----------------------------------


def test_l1833_ordered_before_its_removal_and_delivered_after_needs_no_f2f_or_wopd() -> None:
    # L1833 left the list on 2024-08-12 (89 FR 41324); the DME MACs apply that to dates of service.
    delivered_after = order(item("L1833"), order_date=D(2024, 8, 1), requested_date=D(2024, 8, 20))
    assert codes(delivered_after) == []
    # Delivered on its last listed day it still needs both (and, then, prior authorization too).
    delivered_before = order(item("L1833"), order_date=D(2024, 8, 1), requested_date=D(2024, 8, 11))
    assert codes(delivered_before, "F2F", "WOPD") == [("F2F_ENCOUNTER_REQUIRED", "hold")]


def test_the_delivery_record_decides_over_the_requested_date() -> None:
    # Requested for 2024-08-09 but delivered on 2024-08-20: the delivery is the date of service.
    late = order(item("L1833"), order_date=D(2024, 8, 1), requested_date=D(2024, 8, 9), delivered_on=D(2024, 8, 20))
    assert codes(late) == []
    # Requested for 2024-08-20 but delivered early, on 2024-08-11: still listed that day.
    early = order(item("L1833"), order_date=D(2024, 8, 1), requested_date=D(2024, 8, 20), delivered_on=D(2024, 8, 11))
    assert codes(early, "F2F") == [("F2F_ENCOUNTER_REQUIRED", "hold")]


@pytest.mark.parametrize("hcpcs", ["L0635", "L0636", "L0638", "L0639", "L0640", "L0651", "L1845", "L1852"])
def test_the_orthoses_added_on_2024_08_12_need_f2f_for_dates_of_service_from_that_day(hcpcs: str) -> None:
    # Noridian JD: added to the F2F/WOPD Required List for dates of service on or after 2024-08-12.
    ordered = D(2024, 8, 1)
    assert codes(order(item(hcpcs), order_date=ordered, requested_date=D(2024, 8, 11)), "F2F", "WOPD") == []
    on_the_day = order(item(hcpcs), order_date=ordered, requested_date=D(2024, 8, 12))
    assert codes(on_the_day, "F2F", "WOPD") == [("F2F_ENCOUNTER_REQUIRED", "hold")]
    found = only(on_the_day, "F2F_ENCOUNTER_REQUIRED")
    assert found.source["id"] == "NORIDIAN_JD_ORTHOTICS_2024"
    assert found.source["url"] == "https://med.noridianmedicare.com/web/jddme/dmepos/orthotics"


def test_the_f2f_window_still_counts_back_six_months_from_the_order_date() -> None:
    # Ordered 2024-08-01 for delivery on 2024-09-16: the encounter must fall on 2024-02-01 .. 2024-08-01.
    def l0635(encounter: D) -> ComplianceInput:
        note = AttachedArtifact("F2F_NOTE", encounter)
        return order(
            item("L0635"),
            order_date=D(2024, 8, 1),
            requested_date=D(2024, 9, 16),
            f2f_date=encounter,
            artifacts=(note,),
        )

    assert codes(l0635(D(2024, 2, 1))) == []
    assert codes(l0635(D(2024, 1, 31))) == [("F2F_ENCOUNTER_OUT_OF_WINDOW", "hold")]
    assert only(l0635(D(2024, 1, 31)), "F2F_ENCOUNTER_OUT_OF_WINDOW").message == (
        "L0635 needs a face-to-face encounter between 2024-02-01 and 2024-08-01; the one on file is dated 2024-01-31."
    )


def test_the_written_order_must_come_before_the_actual_delivery() -> None:
    # K0823 (PMD, listed since 2022-04-13), requested for 2023-03-10 but delivered on 2023-03-05.
    pa = PriorAuthorizationFacts(hcpcs="K0823", affirmed=True, decision_date=D(2023, 3, 1))
    note = AttachedArtifact("F2F_NOTE", D(2023, 2, 1))

    def k0823(written: D) -> ComplianceInput:
        return order(
            item("K0823"),
            order_date=D(2023, 3, 1),
            requested_date=D(2023, 3, 10),
            delivered_on=D(2023, 3, 5),
            signed_on=None,
            f2f_date=D(2023, 2, 1),
            prior_authorizations=(pa,),
            artifacts=(note, AttachedArtifact("WOPD", written)),
        )

    assert codes(k0823(D(2023, 3, 5))) == []
    assert codes(k0823(D(2023, 3, 6))) == [("WOPD_REQUIRED", "hold")]
    assert only(k0823(D(2023, 3, 6)), "WOPD_REQUIRED").message == (
        "K0823 needs a written order dated on or before delivery (2023-03-05)."
    )


def test_f2f_and_prior_authorization_use_the_same_date_of_service() -> None:
    # L1845 joined both the F2F/WOPD list and the Required PA list on 2024-08-12.
    before = order(item("L1845"), order_date=D(2024, 8, 1), requested_date=D(2024, 8, 5), delivered_on=D(2024, 8, 11))
    assert codes(before) == []
    after = dataclasses.replace(before, delivered_on=D(2024, 8, 12))
    assert codes(after) == [("F2F_ENCOUNTER_REQUIRED", "hold"), ("PRIOR_AUTH_REQUIRED", "hold")]


# --- a decision's validity, counting the decision day as day 1 ------------------------------------


def pa_order(hcpcs: str, delivery: D, *evidence: Any) -> ComplianceInput:
    """An order delivered on ``delivery`` with ``evidence``: decisions on file or attached documents."""
    return order(
        item(hcpcs),
        order_date=delivery,
        f2f_date=delivery,
        artifacts=(
            AttachedArtifact("F2F_NOTE", delivery),
            *(e for e in evidence if isinstance(e, AttachedArtifact)),
        ),
        prior_authorizations=tuple(e for e in evidence if isinstance(e, PriorAuthorizationFacts)),
    )


@pytest.mark.parametrize(
    ("program", "hcpcs", "decided", "last_valid_day"),
    [
        # CGS JC orthoses: affirmed April 30, valid until June 28 (60 days).
        ("ORTHOSES", "L1832", D(2025, 4, 30), D(2025, 6, 28)),
        ("LLP", "L5856", D(2025, 1, 1), D(2025, 4, 30)),  # 120 days
        ("PCD", "E0651", D(2026, 4, 30), D(2026, 6, 28)),  # 60 days
        ("PMD", "K0856", D(2025, 1, 10), D(2025, 7, 9)),  # 6 months
        ("PMD", "K0856", D(2025, 8, 31), D(2026, 2, 28)),  # 6 months, into a month without a 31st
        ("PRSS", "E0193", D(2025, 3, 15), D(2025, 4, 14)),  # 1 month
        ("PRSS", "E0193", D(2025, 1, 31), D(2025, 2, 28)),  # 1 month, into February
    ],
)
def test_an_affirmed_decision_is_valid_through_its_last_day_and_expired_the_day_after(
    program: str, hcpcs: str, decided: D, last_valid_day: D
) -> None:
    on_file = PriorAuthorizationFacts(hcpcs=hcpcs, affirmed=True, decision_date=decided)
    letter = AttachedArtifact("PRIOR_AUTH", decided, (hcpcs,))
    for evidence in (on_file, letter):
        assert codes(pa_order(hcpcs, last_valid_day, evidence), "PRIOR_AUTH") == [], (program, evidence)
        first_invalid_day = last_valid_day + dt.timedelta(days=1)
        expired = pa_order(hcpcs, first_invalid_day, evidence)
        assert codes(expired, "PRIOR_AUTH") == [("PRIOR_AUTH_EXPIRED", "hold")], (program, evidence)
        assert f"expired on {last_valid_day.isoformat()}, before delivery on {first_invalid_day.isoformat()}" in (
            only(expired, "PRIOR_AUTH_EXPIRED").message
        )


def test_an_expiry_stated_on_the_decision_is_used_as_written() -> None:
    stated = PriorAuthorizationFacts(
        hcpcs="L1832", affirmed=True, decision_date=D(2025, 4, 30), expires_on=D(2025, 7, 15)
    )
    assert codes(pa_order("L1832", D(2025, 7, 15), stated), "PRIOR_AUTH") == []
    assert codes(pa_order("L1832", D(2025, 7, 16), stated), "PRIOR_AUTH") == [("PRIOR_AUTH_EXPIRED", "hold")]


# --- a prior-authorization document clears the codes it names -------------------------------------

PUMPS = (item("E0651", key="0"), item("E0652", key="1"))  # on the Required PA list from 2026-04-13


def pumps(*artifacts: AttachedArtifact, payer_kind: str = "medicare_ffs", **changes: Any) -> ComplianceInput:
    return order(*PUMPS, order_date=D(2026, 11, 2), artifacts=artifacts, payer_kind=payer_kind, **changes)


def test_a_prior_authorization_document_naming_e0651_does_not_clear_e0652() -> None:
    letter = AttachedArtifact("PRIOR_AUTH", D(2026, 11, 1), ("E0651",))
    result = evaluate(pumps(letter))
    assert [(f.code, str(f.severity), f.item) for f in result.findings] == [("PRIOR_AUTH_REQUIRED", "hold", "1")]
    assert result.findings[0].message.startswith("E0652 is on the CMS Required Prior Authorization List")

    both = AttachedArtifact("PRIOR_AUTH", D(2026, 11, 1), ("E0651", "E0652"))
    assert codes(pumps(both)) == []
    two_letters = (letter, AttachedArtifact("PRIOR_AUTH", D(2026, 11, 1), ("E0652",)))
    assert codes(pumps(*two_letters)) == []


def test_a_prior_authorization_document_naming_no_code_clears_nothing() -> None:
    assert codes(pumps(AttachedArtifact("PRIOR_AUTH", D(2026, 11, 1)))) == [
        ("PRIOR_AUTH_REQUIRED", "hold"),
        ("PRIOR_AUTH_REQUIRED", "hold"),
    ]


def test_a_payers_prior_authorization_is_cleared_by_the_document_for_its_code_only() -> None:
    rules = tuple(
        PayerRuleFacts(hcpcs=code, payer="Acme Advantage", requires_prior_auth=True) for code in ("E0651", "E0652")
    )
    letter = AttachedArtifact("PRIOR_AUTH", D(2026, 11, 1), ("E0652",))
    result = evaluate(pumps(letter, payer_kind="medicare_advantage", payer_rules=rules))
    assert [(f.code, str(f.severity), f.item) for f in result.findings] == [("PAYER_PRIOR_AUTH_REQUIRED", "hold", "0")]


# --- the Medicare FFS programs apply to Medicare FFS coverage only --------------------------------


def test_the_engine_names_the_medicare_ffs_payer_kind_as_the_model_does() -> None:
    assert PayerKind.MEDICARE_FFS.value == MEDICARE_FFS


OTHER_KINDS = [kind.value for kind in PayerKind if kind != PayerKind.MEDICARE_FFS]


@pytest.mark.parametrize("payer_kind", OTHER_KINDS)
def test_other_payers_get_no_ffs_prior_authorization_f2f_or_usual_maximum(payer_kind: str) -> None:
    assert codes(pumps(payer_kind=payer_kind)) == []  # no PRIOR_AUTH_REQUIRED for E0651/E0652
    power_wheelchair = order(item("K0823"), order_date=D(2026, 11, 2), payer_kind=payer_kind, signed_on=None)
    assert codes(power_wheelchair) == [("SWO_MISSING_SIGNATURE", "hold")]  # no F2F/WOPD, no PA
    masks = order(item("A7032", 7), order_date=D(2026, 11, 2), payer_kind=payer_kind)
    assert codes(masks) == []  # 7 cushions: above the FFS three-month quantity of 2 per month


@pytest.mark.parametrize("payer_kind", OTHER_KINDS)
def test_other_payers_get_their_own_payer_rules(payer_kind: str) -> None:
    rule = PayerRuleFacts(hcpcs="E0651", payer="Acme Health", requires_prior_auth=True)
    result = evaluate(order(item("E0651"), order_date=D(2026, 11, 2), payer_kind=payer_kind, payer_rules=(rule,)))
    assert [(f.code, str(f.severity)) for f in result.findings] == [("PAYER_PRIOR_AUTH_REQUIRED", "hold")]
    assert result.findings[0].message == (
        "E0651 is on Acme Health's prior authorization list; no affirmed prior authorization is on file."
    )


def test_medicare_ffs_gets_the_ffs_programs() -> None:
    assert codes(order(item("E0651"), order_date=D(2026, 11, 2))) == [("PRIOR_AUTH_REQUIRED", "hold")]
    assert codes(order(item("A7032", 7), order_date=D(2026, 11, 2))) == [("QUANTITY_LIMIT_EXCEEDED", "hold")]


def test_an_insurance_order_without_coverage_on_file_holds_for_it() -> None:
    missing = order(item("E0651"), order_date=D(2026, 11, 2), payer_kind=None)
    result = evaluate(missing)
    assert [(f.code, str(f.severity), f.field) for f in result.findings] == [("COVERAGE_MISSING", "hold", "payer_type")]
    assert (result.findings[0].rule, result.findings[0].source, result.findings[0].item) == ("coverage", None, None)
    assert result.findings[0].message == (
        "The order is billed to insurance but the patient has no insurance coverage, with its kind of payer, on"
        " file for the order date: add it to the patient's record, then check again."
    )
    cash = dataclasses.replace(missing, payer_type="cash")
    assert codes(cash) == []
