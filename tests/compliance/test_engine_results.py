"""What the engine hands back: the disposition and required artifacts of a set of findings, finding
titles, calendar months, the medication safety findings' exact words, the duplicate-order finding,
and a prior authorization for a beneficiary whose state is not recorded."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from compliance.engine import (
    ComplianceResult,
    Disposition,
    Finding,
    Severity,
    add_months,
    disposition_of,
    evaluate,
    finding_title,
    prior_authorization_valid_until,
)
from compliance.inputs import ComplianceInput, ItemFacts, OpenOrder, OpenOrderLine, PatientFacts
from compliance.rulebook import load_rule_sets
from tests.compliance.builders import PROVIDER, D


def found(code: str, severity: Severity, *artifacts: str) -> Finding:
    return Finding(code=code, severity=severity, message="", rule="r", required_artifacts=artifacts)


HOLD = found("F2F_ENCOUNTER_REQUIRED", Severity.HOLD, "F2F_NOTE")
REVIEW = found("QUANTITY_LIMIT_EXCEEDED", Severity.NEEDS_REVIEW, "MEDICAL_NECESSITY")
INFO = found("PRIOR_AUTH_SUSPENDED", Severity.INFO, "PRIOR_AUTH")


@pytest.mark.parametrize(
    ("findings", "disposition"),
    [
        ((), Disposition.CLEAR),
        ((INFO,), Disposition.CLEAR),
        ((INFO, REVIEW), Disposition.NEEDS_REVIEW),
        ((REVIEW, HOLD, INFO), Disposition.HOLD),
    ],
)
def test_any_hold_holds_else_any_review_needs_review_and_information_never_counts(
    findings: tuple[Finding, ...], disposition: Disposition
) -> None:
    assert disposition_of(findings) is disposition


def test_required_artifacts_are_those_of_hold_and_review_findings_each_once_sorted() -> None:
    second_hold = found("WOPD_REQUIRED", Severity.HOLD, "WOPD", "F2F_NOTE")
    result = ComplianceResult(disposition=Disposition.HOLD, findings=(REVIEW, INFO, HOLD, second_hold))
    assert result.required_artifacts == ["F2F_NOTE", "MEDICAL_NECESSITY", "WOPD"]
    assert result.as_dict() == {
        "disposition": "hold",
        "findings": [finding.as_dict() for finding in result.findings],
        "required_artifacts": ["F2F_NOTE", "MEDICAL_NECESSITY", "WOPD"],
        "rule_versions": {},
    }
    assert INFO.as_dict() == {
        "code": "PRIOR_AUTH_SUSPENDED",
        "severity": "info",
        "message": "",
        "rule": "r",
        "source": None,
        "required_artifacts": ["PRIOR_AUTH"],
        "field": None,
        "item": None,
    }


def test_a_finding_code_reads_as_its_title_or_as_its_words() -> None:
    assert finding_title("QUANTITY_LIMIT_EXCEEDED") == "More than the usual maximum quantity"
    assert finding_title("SWO_MISSING_PRACTITIONER") == "The written order lacks the practitioner"
    assert finding_title("PAYER_REFERRAL_REQUIRED") == "Payer referral required"


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2026, 12, 15), 1, D(2027, 1, 15)),  # into the next year
        (D(2026, 1, 15), -1, D(2025, 12, 15)),  # back into the last year
        (D(2026, 3, 31), -1, D(2026, 2, 28)),  # clamped to February's last day
        (D(2024, 2, 29), 12, D(2025, 2, 28)),  # a leap day a year later
        (D(2024, 2, 29), 48, D(2028, 2, 29)),
        (D(2026, 5, 31), 0, D(2026, 5, 31)),
    ],
)
def test_add_months_moves_by_calendar_months(day: D, months: int, expected: D) -> None:
    assert add_months(day, months) == expected


# --- medication safety findings, word for word -------------------------------------------------------

SILDENAFIL = "577033"  # sildenafil 20 MG Oral Tablet
LIRAGLUTIDE = "897122"  # liraglutide 6 MG/ML, 3 ML pen injector
FINASTERIDE = "200172"  # finasteride 1 MG Oral Tablet


def cash_order(rxnorm: str, **patient: Any) -> ComplianceInput:
    """A complete, signed cash order of 2026-11-02 for one medication."""
    item = ItemFacts(key="0", sku=f"RX-{rxnorm}", description="Medication", quantity=1, rxnorm_code=rxnorm)
    return ComplianceInput(
        order_date=D(2026, 11, 2),
        requested_date=None,
        payer_type="cash",
        patient=PatientFacts(known=True, has_name=True, in_territory=True, state="MN", **patient),
        provider=PROVIDER,
        items=(item,),
        signed_on=D(2026, 11, 2),
    )


def safety_file() -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The medication safety rows by id, and the labels of its drug classes and conditions."""
    rule_set = load_rule_sets()["medication_safety"]
    labels = {entry["id"]: entry["label"] for entry in rule_set.tables["drug_classes"]}
    conditions = {entry["id"]: entry["label"] for entry in rule_set.tables["conditions"]}
    return {row["id"]: row for row in rule_set.rows}, labels, conditions


def test_an_interaction_and_a_duplicate_therapy_each_name_only_the_entries_of_their_class() -> None:
    rows, labels, _ = safety_file()
    result = evaluate(cash_order(SILDENAFIL, medications=("NTG", "Cialis 5mg", "Lisinopril 10 mg")))
    assert [(f.code, str(f.severity), f.message, f.item) for f in result.findings] == [
        (
            "MEDICATION_INTERACTION",
            "hold",
            f'RX-577033 with {labels["nitrate"]} (recorded as "NTG"): {rows["pde5_with_nitrates"]["message"]}',
            "0",
        ),
        (
            "MEDICATION_DUPLICATE_THERAPY",
            "needs_review",
            f'RX-577033 with {labels["pde5_inhibitor"]} (recorded as "Cialis 5mg"):'
            f" {rows['pde5_duplicate_therapy']['message']}",
            "0",
        ),
        (
            "MEDICATION_ENTRIES_UNRECOGNISED",
            "info",
            "The medication safety table does not recognise these recorded medications or allergies, so they were"
            ' not checked: "Lisinopril 10 mg".',
            None,
        ),
    ]


def test_a_contraindication_names_the_condition_and_a_sex_row_the_patients_sex() -> None:
    rows, _, conditions = safety_file()
    men2 = evaluate(cash_order(LIRAGLUTIDE, conditions=("men2",)))
    assert [(f.code, f.message) for f in men2.findings] == [
        ("MEDICATION_CONTRAINDICATION", f"RX-897122 and {conditions['men2']}: {rows['glp1_men2']['message']}")
    ]
    female = evaluate(cash_order(FINASTERIDE, sex="female"))
    sex_row = next(row for row in rows.values() if row["kind"] == "sex")
    assert [(f.code, f.message) for f in female.findings] == [
        (
            "MEDICATION_NOT_FOR_PATIENT_SEX",
            f"RX-200172 for a patient whose administrative sex is female: {sex_row['message']}",
        )
    ]


# --- duplicates ------------------------------------------------------------------------------------


def test_a_duplicate_of_several_items_speaks_of_these_items() -> None:
    lines = (
        ItemFacts(key="0", sku="F20", hcpcs="A7030", description="Mask", quantity=1),
        ItemFacts(key="1", sku="TUBE", hcpcs="A7037", description="Tubing", quantity=1),
    )
    on_its_way = OpenOrder("2K7-XQ4", "Preparing", D(2026, 11, 5), (OpenOrderLine(1, "TUBE"), OpenOrderLine(1, "F20")))
    facts = dataclasses.replace(cash_order(SILDENAFIL), items=lines, open_orders=(on_its_way,))
    assert [(f.code, str(f.severity), f.field, f.message) for f in evaluate(facts).findings] == [
        (
            "DUPLICATE_ORDER",
            "needs_review",
            "items",
            "An order for these items is already on its way: 2K7-XQ4, Preparing.",
        )
    ]


# --- prior authorization where the beneficiary's state is not recorded --------------------------------


def test_a_state_limited_listing_does_not_apply_when_the_state_is_not_recorded() -> None:
    # The PMD pilot (IL, MO, NY, WV) from 2017-03-20: a decision of 2017-04-01 is valid 6 months in NY.
    assert prior_authorization_valid_until("K0856", D(2017, 4, 1), None, on=D(2017, 5, 1), state="NY") == D(2017, 9, 30)
    assert prior_authorization_valid_until("K0856", D(2017, 4, 1), None, on=D(2017, 5, 1), state=None) is None
