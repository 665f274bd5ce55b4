"""The deterministic engine against the real rule files, rule by rule, with real codes and dates.

Every case starts from a complete, signed insurance order that is ``clear`` and changes one fact.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from compliance.engine import Severity, add_months, evaluate
from compliance.inputs import (
    AttachedArtifact,
    ComplianceInput,
    Delivery,
    ItemFacts,
    PatientFacts,
    PayerRuleFacts,
    PriorAuthorizationFacts,
    ProviderFacts,
)
from compliance.rulebook import RuleFileError, load_rule_sets
from tests.compliance.builders import VALID_NPI, D, ffs_order, line


def facts(*items: ItemFacts, **changes: Any) -> ComplianceInput:
    """A signed, complete insurance order dated 2026-11-02 for one patient in territory 'T'."""
    changes = {"order_date": D(2026, 11, 2), "requested_date": D(2026, 11, 9), **changes}
    return ffs_order(*(items or (item("A7032", 2),)), **changes)


item = line


def codes(result: Any) -> list[tuple[str, str]]:
    return [(f.code, str(f.severity)) for f in result.findings]


def finding(result: Any, code: str) -> Any:
    return next(f for f in result.findings if f.code == code)


def test_a_complete_signed_order_is_clear_and_names_the_rule_versions() -> None:
    result = evaluate(facts())
    assert (str(result.disposition), result.findings, result.required_artifacts) == ("clear", (), [])
    assert set(result.rule_versions) == {
        "standard_written_order",
        "f2f_wopd",
        "prior_authorization",
        "quantity_limits",
        "refills",
        "medication_safety",
    }


# --- 1. standard written order ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "message", "field"),
    [
        (
            {"patient": PatientFacts()},
            "SWO_MISSING_BENEFICIARY",
            "The written order lacks the beneficiary name or Medicare Beneficiary Identifier.",
            "patient_id",
        ),
        ({"order_date": None}, "SWO_MISSING_ORDER_DATE", "The written order lacks the order date.", "order_date"),
        (
            {"items": (ItemFacts(key="0", quantity=1),)},
            "SWO_MISSING_ITEM_DESCRIPTION",
            "The written order lacks the general description of the item.",
            "items",
        ),
        (
            {"items": (ItemFacts(key="0", sku="X", description="Walker"),)},
            "SWO_MISSING_QUANTITY",
            "The written order lacks the quantity to be dispensed.",
            "items",
        ),
        (
            {"provider": ProviderFacts()},
            "SWO_MISSING_PRACTITIONER",
            "The written order lacks the treating practitioner name or NPI.",
            "provider_id",
        ),
        (
            {"signed_on": None},
            "SWO_MISSING_SIGNATURE",
            "The written order lacks the treating practitioner's signature.",
            "signature",
        ),
    ],
)
def test_each_missing_standard_written_order_element_is_a_hold_naming_it(
    changes: dict[str, Any], code: str, message: str, field: str
) -> None:
    result = evaluate(facts(**changes))
    assert str(result.disposition) == "hold"
    found = finding(result, code)
    assert (found.severity, found.message, found.rule) == (Severity.HOLD, message, "standard_written_order")
    assert found.field == field
    assert found.source is not None
    assert found.source["url"].startswith("https://")


def test_the_signature_can_come_from_a_signed_order_document() -> None:
    unsigned = facts(signed_on=None)
    assert finding(evaluate(unsigned), "SWO_MISSING_SIGNATURE").required_artifacts == ("SWO",)
    signed_document = dataclasses.replace(unsigned, artifacts=(AttachedArtifact("SWO", D(2026, 11, 2)),))
    assert codes(evaluate(signed_document)) == []


# --- 2. face-to-face encounter and written order prior to delivery --------------------------------

PMD = "K0823"  # a power wheelchair base on the Required F2F/WOPD list since 2022-04-13


def pmd_order(order_date: D, **changes: Any) -> ComplianceInput:
    # Prior authorization is on file so that only the F2F/WOPD rule speaks.
    pa = PriorAuthorizationFacts(hcpcs=PMD, affirmed=True, decision_date=order_date)
    changes.setdefault("signed_on", order_date)
    return facts(item(PMD), order_date=order_date, requested_date=order_date, prior_authorizations=(pa,), **changes)


def test_an_item_is_not_on_the_f2f_list_before_the_list_took_effect() -> None:
    result = evaluate(pmd_order(D(2022, 4, 12), signed_on=None, artifacts=(AttachedArtifact("SWO", D(2022, 4, 12)),)))
    assert [c for c, _ in codes(result) if c.startswith(("F2F", "WOPD"))] == []


def test_a_listed_item_needs_a_face_to_face_encounter_within_six_months() -> None:
    order_date = D(2022, 10, 20)
    result = evaluate(pmd_order(order_date))
    assert codes(result) == [("F2F_ENCOUNTER_REQUIRED", "hold")]
    assert finding(result, "F2F_ENCOUNTER_REQUIRED").required_artifacts == ("F2F_NOTE",)

    too_old = evaluate(pmd_order(order_date, f2f_date=D(2022, 4, 19)))
    assert codes(too_old) == [("F2F_ENCOUNTER_OUT_OF_WINDOW", "hold")]
    assert finding(too_old, "F2F_ENCOUNTER_OUT_OF_WINDOW").message == (
        "K0823 needs a face-to-face encounter between 2022-04-20 and 2022-10-20; the one on file is dated 2022-04-19."
    )

    undocumented = evaluate(pmd_order(order_date, f2f_date=D(2022, 4, 20)))
    assert codes(undocumented) == [("F2F_NOTE_REQUIRED", "hold")]

    documented = pmd_order(
        order_date, f2f_date=D(2022, 4, 20), artifacts=(AttachedArtifact("F2F_NOTE", D(2022, 4, 20)),)
    )
    assert codes(evaluate(documented)) == []


def test_a_listed_item_needs_a_written_order_dated_on_or_before_delivery() -> None:
    order_date = D(2023, 3, 1)
    note = AttachedArtifact("F2F_NOTE", D(2023, 2, 1))
    unsigned = pmd_order(order_date, signed_on=None, artifacts=(note, AttachedArtifact("SWO", D(2023, 3, 5))))
    # The signed order arrived after delivery (2023-03-01): it satisfies the SWO but not the WOPD timing.
    assert codes(evaluate(unsigned)) == [("WOPD_REQUIRED", "hold")]
    in_time = pmd_order(order_date, signed_on=None, artifacts=(note, AttachedArtifact("WOPD", D(2023, 2, 28))))
    assert codes(evaluate(in_time)) == []


def test_a_code_removed_from_the_f2f_list_stops_needing_it_the_day_after_its_last_day() -> None:
    # L1833 was listed from 2022-04-13 and removed effective 2024-08-12 (89 FR 41324).
    def l1833(day: D) -> list[str]:
        pa = PriorAuthorizationFacts(hcpcs="L1833", affirmed=True, decision_date=day)
        result = evaluate(
            facts(item("L1833"), order_date=day, requested_date=day, signed_on=day, prior_authorizations=(pa,))
        )
        return [code for code, _ in codes(result)]

    assert l1833(D(2024, 8, 11)) == ["F2F_ENCOUNTER_REQUIRED"]
    assert l1833(D(2024, 8, 12)) == []


def test_an_unlisted_code_needs_neither() -> None:
    assert codes(evaluate(facts(item("A7032"), f2f_date=None))) == []


# --- 3. prior authorization -----------------------------------------------------------------------


def pa_order(hcpcs: str, delivery: D, *, state: str = "MN", decisions: tuple[Any, ...] = ()) -> ComplianceInput:
    return facts(
        item(hcpcs),
        order_date=delivery,
        requested_date=delivery,
        f2f_date=delivery,
        artifacts=(AttachedArtifact("F2F_NOTE", delivery),),
        patient=PatientFacts(known=True, has_name=True, in_territory=True, state=state),
        prior_authorizations=decisions,
    )


def pa_codes(result: Any) -> list[tuple[str, str]]:
    return [(code, severity) for code, severity in codes(result) if code.startswith("PRIOR_AUTH")]


def test_a_listed_item_without_an_affirmed_decision_is_a_hold() -> None:
    result = evaluate(pa_order("K0856", D(2025, 3, 3)))
    assert pa_codes(result) == [("PRIOR_AUTH_REQUIRED", "hold")]
    assert finding(result, "PRIOR_AUTH_REQUIRED").message == (
        "K0856 is on the CMS Required Prior Authorization List (Power Mobility Devices (power wheelchairs and"
        " power operated vehicles)); no affirmed prior authorization is on file."
    )
    assert finding(result, "PRIOR_AUTH_REQUIRED").required_artifacts == ("PRIOR_AUTH",)


def test_the_pmd_pilot_applied_only_in_its_states_before_going_national() -> None:
    # K0856: IL, MO, NY, WV from 2017-03-20; nationwide from 2017-07-17 (81 FR 93636).
    assert pa_codes(evaluate(pa_order("K0856", D(2017, 5, 1), state="NY"))) == [("PRIOR_AUTH_REQUIRED", "hold")]
    assert pa_codes(evaluate(pa_order("K0856", D(2017, 5, 1), state="MN"))) == []
    assert pa_codes(evaluate(pa_order("K0856", D(2017, 7, 17), state="MN"))) == [("PRIOR_AUTH_REQUIRED", "hold")]


def test_a_suspended_code_is_noted_but_not_held() -> None:
    # E0748 (osteogenesis stimulator) required in CA from 2024-08-12, suspended from 2024-08-28.
    assert pa_codes(evaluate(pa_order("E0748", D(2024, 8, 27), state="CA"))) == [("PRIOR_AUTH_REQUIRED", "hold")]
    suspended = evaluate(pa_order("E0748", D(2024, 8, 28), state="CA"))
    assert pa_codes(suspended) == [("PRIOR_AUTH_SUSPENDED", "info")]
    assert str(suspended.disposition) == "clear"


def test_a_suspended_code_before_a_required_one_is_noted_and_the_other_still_held_each_citing_its_source() -> None:
    # E0748 suspended in CA from 2024-08-28 (CMS's timeline page); K0856 required since the PMD
    # program resumed on 2020-08-03 (CGS, 2020-07-28).
    day = D(2024, 8, 28)
    both = facts(
        item("E0748", key="0"),
        item("K0856", key="1"),
        order_date=day,
        requested_date=day,
        f2f_date=day,
        artifacts=(AttachedArtifact("F2F_NOTE", day),),
        patient=PatientFacts(known=True, has_name=True, in_territory=True, state="CA"),
    )

    found = [f.as_dict() for f in evaluate(both).findings if f.rule == "prior_authorization"]

    assert found == [
        {
            "code": "PRIOR_AUTH_SUSPENDED",
            "severity": "info",
            "message": (
                "Prior authorization for E0748 (Osteogenesis Stimulators (noninvasive)) is suspended on 2024-08-28."
            ),
            "rule": "prior_authorization",
            "source": {
                "id": "CMS_PA_PAGE",
                "title": (
                    "CMS: Prior Authorization Process for Certain Durable Medical Equipment, Prosthetics, Orthotics,"
                    " and Supplies (DMEPOS) Items - Timeline & Updates (incl. suspension of osteogenesis stimulator"
                    " PA effective 08/28/2024; resumption of PA 08/03/2020)"
                ),
                "url": (
                    "https://www.cms.gov/Research-Statistics-Data-and-Systems/Monitoring-Programs/Medicare-FFS-"
                    "Compliance-Programs/DMEPOS/Prior-Authorization-Process-for-Certain-Durable-Medical-Equipment-"
                    "Prosthetic-Orthotics-Supplies-Items"
                ),
            },
            "required_artifacts": [],
            "field": None,
            "item": "0",
        },
        {
            "code": "PRIOR_AUTH_REQUIRED",
            "severity": "hold",
            "message": (
                "K0856 is on the CMS Required Prior Authorization List (Power Mobility Devices (power wheelchairs"
                " and power operated vehicles)); no affirmed prior authorization is on file."
            ),
            "rule": "prior_authorization",
            "source": {
                "id": "CGS_RESUME_2020",
                "title": (
                    "CGS JB DME: Required Prior Authorization for Certain DMEPOS Items to Resume (July 28, 2020) -"
                    " PMD and PRSS PA resumes 2020-08-03; LLP PA begins 2020-09-01 in CA, MI, PA, TX"
                ),
                "url": "https://cgsmedicare.com/jb/pubs/news/2020/07/cope18204.html",
            },
            "required_artifacts": ["PRIOR_AUTH"],
            "field": None,
            "item": "1",
        },
    ]


def orthosis_in_california(delivery: D) -> ComplianceInput:
    """L0648 for a CA beneficiary during the orthoses phase one (CA, FL, IL, NY from 2022-04-13, 87 FR
    2051), with a decision affirmed 2022-04-15: the program's 60 days run through 2022-06-13."""
    decision = PriorAuthorizationFacts(hcpcs="L0648", affirmed=True, decision_date=D(2022, 4, 15))
    return pa_order("L0648", delivery, state="CA", decisions=(decision,))


def test_a_state_phase_in_decision_is_valid_for_its_programs_days_in_that_state() -> None:
    assert pa_codes(evaluate(orthosis_in_california(D(2022, 6, 13)))) == []
    expired = evaluate(orthosis_in_california(D(2022, 6, 14)))
    assert pa_codes(expired) == [("PRIOR_AUTH_EXPIRED", "hold")]
    assert finding(expired, "PRIOR_AUTH_EXPIRED").message == (
        "L0648 is on the CMS Required Prior Authorization List (Orthoses (lumbar-sacral, knee and ankle-foot"
        " orthoses)); the affirmed decision on file expired on 2022-06-13, before delivery on 2022-06-14."
    )


def test_a_decisions_validity_is_read_from_the_rule_sets_given(tmp_path: Path, settings: Any) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), rules)
    pa = rules / "prior_authorization.toml"
    text = pa.read_text()
    orthoses = text.index('id = "ORTHOSES"')
    days = text.index("decision_valid_days = 60", orthoses)
    pa.write_text(text[:days] + "decision_valid_days = 90" + text[days + len("decision_valid_days = 60") :])

    ninety_days = load_rule_sets(rules)

    assert pa_codes(evaluate(orthosis_in_california(D(2022, 6, 14)), rule_sets=ninety_days)) == []
    later = evaluate(orthosis_in_california(D(2022, 7, 14)), rule_sets=ninety_days)
    assert pa_codes(later) == [("PRIOR_AUTH_EXPIRED", "hold")]


def test_a_removed_code_needs_no_prior_authorization_after_removal() -> None:
    # L1833 left the Required Prior Authorization List effective 2024-08-12.
    assert pa_codes(evaluate(pa_order("L1833", D(2024, 8, 11)))) == [("PRIOR_AUTH_REQUIRED", "hold")]
    assert pa_codes(evaluate(pa_order("L1833", D(2024, 8, 12)))) == []


def test_an_affirmed_decision_is_valid_for_its_programs_period() -> None:
    # Power mobility devices: an affirmed decision is valid for 6 months, the decision day being day 1
    # (every program's last and first-invalid days: test_f2f_and_prior_auth.py).
    decided = PriorAuthorizationFacts(hcpcs="K0856", affirmed=True, decision_date=D(2025, 1, 10))
    assert pa_codes(evaluate(pa_order("K0856", D(2025, 7, 9), decisions=(decided,)))) == []
    expired = evaluate(pa_order("K0856", D(2025, 7, 10), decisions=(decided,)))
    assert pa_codes(expired) == [("PRIOR_AUTH_EXPIRED", "hold")]
    # Lower limb prostheses: 120 days.
    llp = PriorAuthorizationFacts(hcpcs="L5856", affirmed=True, decision_date=D(2025, 1, 1))
    assert pa_codes(evaluate(pa_order("L5856", D(2025, 4, 30), decisions=(llp,)))) == []
    assert pa_codes(evaluate(pa_order("L5856", D(2025, 5, 1), decisions=(llp,)))) == [("PRIOR_AUTH_EXPIRED", "hold")]


def test_a_non_affirmed_decision_is_a_hold() -> None:
    refused = PriorAuthorizationFacts(hcpcs="E0193", affirmed=False, decision_date=D(2025, 2, 1))
    assert pa_codes(evaluate(pa_order("E0193", D(2025, 2, 3), decisions=(refused,)))) == [
        ("PRIOR_AUTH_NON_AFFIRMED", "hold")
    ]


# --- 4. quantity limits ---------------------------------------------------------------------------


def test_pap_supplies_at_the_limit_pass_and_over_it_hold() -> None:
    # A7032 (nasal mask cushion): 2 per month, so at most a three-month quantity of 6 at a time.
    # (Before the supply timeline a rolling 1-month window held 3.)
    assert codes(evaluate(facts(item("A7032", 6)))) == []
    over = evaluate(facts(item("A7032", 7)))
    assert codes(over) == [("QUANTITY_LIMIT_EXCEEDED", "hold")]
    assert finding(over, "QUANTITY_LIMIT_EXCEEDED").message == (
        "A7032: 7 ordered for delivery on 2026-11-09 exceed the usual maximum of 2 per 1 month for Cushion for use"
        " on nasal mask interface, replacement only, each: at most 6 may be dispensed at a time."
    )


def test_a_mask_refill_may_come_ten_days_before_the_allowance_renews() -> None:
    # A7030 (full face mask): 1 per 3 months; one was delivered on 2026-08-09, so it lasts until
    # 2026-11-09 and a refill may come from 2026-10-30 (10 days before). The rolling window held the
    # mask until 2026-11-09 although the refill rule allowed it from 2026-10-30.
    history = (Delivery(hcpcs="A7030", quantity=1, delivered_on=D(2026, 8, 9)),)
    confirmed = (AttachedArtifact("PATIENT_REFILL_CONFIRMATION", D(2026, 10, 20)),)
    early = facts(item("A7030"), requested_date=D(2026, 10, 29), supply_history=history, artifacts=confirmed)
    assert codes(evaluate(early)) == [("QUANTITY_LIMIT_EXCEEDED", "hold"), ("REFILL_TOO_EARLY", "hold")]
    assert finding(evaluate(early), "QUANTITY_LIMIT_EXCEEDED").message == (
        "A7030: 1 ordered for delivery on 2026-10-29 exceed the usual maximum of 1 per 3 months for PAP interface"
        " (combination oral/nasal mask, full face mask, or nasal mask or cannula type interface), each (shared by"
        " A7027, A7030, A7034): the supply delivered lasts until 2026-11-09, so more may be delivered from"
        " 2026-10-30."
    )
    on_time = dataclasses.replace(early, requested_date=D(2026, 10, 30))
    assert codes(evaluate(on_time)) == []


def test_medical_necessity_documentation_turns_the_hold_into_a_review() -> None:
    documented = facts(item("A7032", 7), artifacts=(AttachedArtifact("MEDICAL_NECESSITY", D(2026, 11, 1)),))
    result = evaluate(documented)
    assert (str(result.disposition), codes(result)) == ("needs_review", [("QUANTITY_LIMIT_EXCEEDED", "needs_review")])


def test_diabetic_test_strips_follow_insulin_use() -> None:
    # A4253 (per 50 strips): 2 units per 3 months without insulin, 6 with insulin (Z79.4).
    three_boxes = item("A4253", 3)
    assert codes(evaluate(facts(three_boxes, diagnosis_codes=("E11.9",)))) == [("QUANTITY_LIMIT_EXCEEDED", "hold")]
    assert codes(evaluate(facts(three_boxes, diagnosis_codes=("E11.9", "Z79.4")))) == []
    assert codes(evaluate(facts(item("A4253", 7), diagnosis_codes=("Z79.4",)))) == [("QUANTITY_LIMIT_EXCEEDED", "hold")]


def test_heated_and_plain_tubing_share_one_allowance() -> None:
    # Noridian JD "Tips for Billing PAP/RAD Accessories" (2024-04-03): A7037 and A4604 are the same
    # function. Heated tubing delivered on 2026-10-01 lasts until 2027-01-01, so plain tubing
    # delivered on 2026-11-09 is over the shared allowance, and a refill.
    history = (Delivery(hcpcs="A4604", quantity=1, delivered_on=D(2026, 10, 1)),)
    result = evaluate(facts(item("A7037"), supply_history=history))
    assert codes(result) == [
        ("QUANTITY_LIMIT_EXCEEDED", "hold"),
        ("REFILL_TOO_EARLY", "hold"),
        ("REFILL_CONFIRMATION_REQUIRED", "hold"),
    ]
    assert "(shared by A4604, A7037)" in finding(result, "QUANTITY_LIMIT_EXCEEDED").message
    assert finding(result, "REFILL_TOO_EARLY").message == (
        "A7037: the supply delivered on 2026-10-01 lasts until 2027-01-01; a refill may be delivered from"
        " 2026-12-22, not on 2026-11-09."
    )


# --- 5. refills -----------------------------------------------------------------------------------


FIRST_BOX = D(2026, 6, 1)


def strips(delivery: D, *artifacts: AttachedArtifact, delivered: D = FIRST_BOX) -> ComplianceInput:
    # One box of 50 strips lasts half of the 3-month allowance of two boxes (non-insulin).
    history = (Delivery(hcpcs="A4253", quantity=1, delivered_on=delivered),)
    return facts(
        item("A4253"), order_date=delivery, requested_date=delivery, supply_history=history, artifacts=artifacts
    )


def test_a_refill_delivered_too_early_is_a_hold_naming_the_first_allowed_day() -> None:
    # Delivered 2026-06-01: half of 3 months is one month and half of July (15 of 31 days), so it
    # lasts until 2026-07-16; a refill may be delivered from 2026-07-06 (the usual maximum agrees).
    confirmation = AttachedArtifact("PATIENT_REFILL_CONFIRMATION", D(2026, 7, 1))
    early = evaluate(strips(D(2026, 7, 5), confirmation))
    assert codes(early) == [("QUANTITY_LIMIT_EXCEEDED", "hold"), ("REFILL_TOO_EARLY", "hold")]
    assert finding(early, "REFILL_TOO_EARLY").message == (
        "A4253: the supply delivered on 2026-06-01 lasts until 2026-07-16; a refill may be delivered from"
        " 2026-07-06, not on 2026-07-05."
    )
    assert codes(evaluate(strips(D(2026, 7, 6), confirmation))) == []


def test_a_refills_findings_name_the_refill_rule_its_source_the_date_and_the_line() -> None:
    refill_source = load_rule_sets()["refills"].sources["DMEMAC-refill-2024"].cite()
    early = evaluate(strips(D(2026, 7, 5)))
    assert [f.as_dict() for f in early.findings if f.rule == "refills"] == [
        {
            "code": "REFILL_TOO_EARLY",
            "severity": "hold",
            "message": "A4253: the supply delivered on 2026-06-01 lasts until 2026-07-16; a refill may be delivered"
            " from 2026-07-06, not on 2026-07-05.",
            "rule": "refills",
            "source": refill_source,
            "required_artifacts": [],
            "field": "requested_date",
            "item": "0",
        },
        {
            "code": "REFILL_CONFIRMATION_REQUIRED",
            "severity": "hold",
            "message": "A4253 is a refill: the patient must confirm the need on or after 2026-06-16 and before"
            " delivery on 2026-07-05.",
            "rule": "refills",
            "source": refill_source,
            "required_artifacts": ["PATIENT_REFILL_CONFIRMATION"],
            "field": None,
            "item": "0",
        },
    ]


def test_a_refill_of_codes_sharing_an_allowance_names_each_code_once() -> None:
    # Heated (A4604) and plain (A7037) tubing share one allowance: ordered together after a delivery
    # of A4604, the refill findings name both codes, sorted, each once.
    history = (Delivery(hcpcs="A4604", quantity=1, delivered_on=D(2026, 10, 1)),)
    result = evaluate(facts(item("A7037"), item("A4604", key="1"), item("A4604", key="2"), supply_history=history))
    assert finding(result, "REFILL_TOO_EARLY").message == (
        "A4604, A7037: the supply delivered on 2026-10-01 lasts until 2027-01-01; a refill may be delivered from"
        " 2026-12-22, not on 2026-11-09."
    )


def test_a_refill_needs_the_patients_confirmation_within_the_window() -> None:
    # Since 2024 the contact may be no sooner than 30 days before the supply's expected end (2026-07-16).
    assert codes(evaluate(strips(D(2026, 7, 10)))) == [("REFILL_CONFIRMATION_REQUIRED", "hold")]
    too_soon = AttachedArtifact("PATIENT_REFILL_CONFIRMATION", D(2026, 6, 15))
    assert codes(evaluate(strips(D(2026, 7, 10), too_soon))) == [("REFILL_CONFIRMATION_REQUIRED", "hold")]
    in_window = AttachedArtifact("PATIENT_REFILL_CONFIRMATION", D(2026, 6, 16))
    assert codes(evaluate(strips(D(2026, 7, 10), in_window))) == []


# --- 7. payer rules, 8. territory, 9. inventory ----------------------------------------------------


def test_payer_rules_require_artifacts_and_flag_excluded_tiers() -> None:
    rule = PayerRuleFacts(
        hcpcs="A7032", payer="Acme Health Gold", requires_prior_auth=True, requires_cmn=True, coverage_tiers=("gold",)
    )
    result = evaluate(facts(payer_rules=(rule,), coverage_tier="silver"))
    assert codes(result) == [
        ("COVERAGE_TIER_EXCLUDED", "needs_review"),
        ("PAYER_PRIOR_AUTH_REQUIRED", "hold"),
        ("CMN_REQUIRED", "hold"),
    ]
    assert result.required_artifacts == ["CMN", "PRIOR_AUTH"]
    resolved = facts(
        payer_rules=(rule,),
        coverage_tier="gold",
        artifacts=(AttachedArtifact("CMN", D(2026, 11, 1)), AttachedArtifact("PRIOR_AUTH", D(2026, 11, 1), ("A7032",))),
    )
    assert codes(evaluate(resolved)) == []
    not_covered = PayerRuleFacts(hcpcs="A7032", payer="Acme Health", not_covered=True)
    assert codes(evaluate(facts(payer_rules=(not_covered,)))) == [("PAYER_NOT_COVERED", "needs_review")]


def test_payer_findings_name_the_payer_the_tier_and_cite_the_payers_table_whole() -> None:
    excluded = PayerRuleFacts(
        hcpcs="A7032", payer="Acme Health Gold", coverage_tiers=(" Gold ", "Platinum"), source="Acme 2026 schedule"
    )
    not_covered = PayerRuleFacts(hcpcs="A7032", payer="Acme Health")

    def payer(facts_: ComplianceInput) -> list[dict[str, Any]]:
        return [f.as_dict() for f in evaluate(facts_).findings if f.rule == "payer_rules"]

    no_tier = payer(facts(payer_rules=(excluded,)))
    refused = payer(facts(payer_rules=(dataclasses.replace(not_covered, not_covered=True),)))

    assert no_tier == [
        {
            "code": "COVERAGE_TIER_EXCLUDED",
            "severity": "needs_review",
            "message": (
                "A7032 is covered by Acme Health Gold for the gold, platinum tier(s) only; the patient's tier is not"
                " recorded."
            ),
            "rule": "payer_rules",
            "source": {"id": "payer_rule", "title": "Acme 2026 schedule", "url": ""},
            "required_artifacts": [],
            "field": None,
            "item": "0",
        }
    ]
    assert refused == [
        {
            "code": "PAYER_NOT_COVERED",
            "severity": "needs_review",
            "message": "A7032 is not covered by Acme Health.",
            "rule": "payer_rules",
            "source": {"id": "payer_rule", "title": "Acme Health coverage rules", "url": ""},
            "required_artifacts": [],
            "field": None,
            "item": "0",
        }
    ]


def test_a_payers_prior_authorization_and_certificate_findings_whole() -> None:
    rule = PayerRuleFacts(hcpcs="A7032", payer="Acme Health Gold", requires_prior_auth=True, requires_cmn=True)
    cited = {"id": "payer_rule", "title": "Acme Health Gold coverage rules", "url": ""}

    assert [f.as_dict() for f in evaluate(facts(payer_rules=(rule,))).findings] == [
        {
            "code": "PAYER_PRIOR_AUTH_REQUIRED",
            "severity": "hold",
            "message": "A7032 is on Acme Health Gold's prior authorization list; no affirmed prior authorization is on"
            " file.",
            "rule": "payer_rules",
            "source": cited,
            "required_artifacts": ["PRIOR_AUTH"],
            "field": None,
            "item": "0",
        },
        {
            "code": "CMN_REQUIRED",
            "severity": "hold",
            "message": "Acme Health Gold requires a certificate of medical necessity for A7032.",
            "rule": "payer_rules",
            "source": cited,
            "required_artifacts": ["CMN"],
            "field": None,
            "item": "0",
        },
    ]


def test_provider_credential_npi_and_patient_territory() -> None:
    assert codes(evaluate(facts(provider=ProviderFacts(known=True, name="Dr. A", npi=VALID_NPI)))) == [
        ("PROVIDER_NOT_CREDENTIALED", "hold")
    ]
    bad_npi = ProviderFacts(known=True, name="Dr. A", npi="1245319598", credentialed_in_territory=True)
    assert codes(evaluate(facts(provider=bad_npi))) == [("PROVIDER_NPI_INVALID", "hold")]
    elsewhere = PatientFacts(known=True, has_name=True, in_territory=False)
    assert codes(evaluate(facts(patient=elsewhere))) == [("PATIENT_OUTSIDE_TERRITORY", "hold")]


def test_territory_and_credential_findings_whole() -> None:
    nowhere = ProviderFacts(known=True, name="Dr. A", npi="1245319598")
    elsewhere = PatientFacts(known=True, has_name=True, in_territory=False)

    found = [f.as_dict() for f in evaluate(facts(provider=nowhere, patient=elsewhere)).findings]

    def hold(code: str, message: str, field: str) -> dict[str, Any]:
        return {
            "code": code,
            "severity": "hold",
            "message": message,
            "rule": "territory",
            "source": None,
            "required_artifacts": [],
            "field": field,
            "item": None,
        }

    assert found == [
        hold("PROVIDER_NPI_INVALID", "The ordering provider has no valid NPI on file.", "provider_id"),
        hold(
            "PROVIDER_NOT_CREDENTIALED",
            "The ordering provider has no active credential in the order's territory on the order date.",
            "provider_id",
        ),
        hold("PATIENT_OUTSIDE_TERRITORY", "The patient is not registered in the order's territory.", "patient_id"),
    ]


def test_inventory_flags_route_to_dropship_or_hold_with_the_restock_date() -> None:
    dropship = item("A7032", 2, stock_short=True, stock_available=1, dropship_allowed=True)
    result = evaluate(facts(dropship))
    assert (str(result.disposition), codes(result)) == ("clear", [("INVENTORY_DROPSHIP", "info")])
    restock = item("A7032", 2, stock_short=True, stock_available=1, expected_restock=D(2026, 11, 20))
    held = evaluate(facts(restock))
    assert codes(held) == [("INVENTORY_SHORTFALL", "hold")]
    assert finding(held, "INVENTORY_SHORTFALL").message == (
        "SKU-A7032: 1 available for 2 ordered, and it cannot be dropshipped. "
        "Expected restock on 2026-11-20 (open purchase order)."
    )


def test_every_short_line_is_flagged_whole_each_its_own_way() -> None:
    # A line in stock first, then one the vendor dropships (none left), then one held with no purchase
    # order open: each is looked at, in order.
    lines = (
        item("A7030", 1, key="0"),
        item("A7032", 2, key="1", stock_short=True, stock_available=None, dropship_allowed=True),
        item("A7031", 3, key="2", stock_short=True, stock_available=0),
    )

    found = [f.as_dict() for f in evaluate(facts(*lines)).findings if f.rule == "inventory"]

    assert found == [
        {
            "code": "INVENTORY_DROPSHIP",
            "severity": "info",
            "message": "SKU-A7032: 0 available in the warehouse for 2; the vendor will dropship it.",
            "rule": "inventory",
            "source": None,
            "required_artifacts": [],
            "field": None,
            "item": "1",
        },
        {
            "code": "INVENTORY_SHORTFALL",
            "severity": "hold",
            "message": "SKU-A7031: 0 available for 3 ordered, and it cannot be dropshipped. No purchase order is open.",
            "rule": "inventory",
            "source": None,
            "required_artifacts": [],
            "field": "quantity",
            "item": "2",
        },
    ]


# --- 10. medication safety ----------------------------------------------------------------------


def med(rxnorm: str) -> ItemFacts:
    return ItemFacts(key="0", sku=f"RX-{rxnorm}", description="Medication", quantity=1, rxnorm_code=rxnorm)


def patient(**changes: Any) -> PatientFacts:
    return dataclasses.replace(PatientFacts(known=True, has_name=True, in_territory=True), **changes)


def test_a_pde5_inhibitor_with_a_nitrate_is_held() -> None:
    # The label contraindicates the combination: the row's severity "contraindicated" holds the order.
    sildenafil = med("577033")  # sildenafil 20 mg oral tablet
    assert codes(evaluate(facts(sildenafil, payer_type="cash", patient=patient()))) == []
    on_nitrates = patient(medications=("Isosorbide mononitrate 30 mg ER",))
    result = evaluate(facts(sildenafil, payer_type="cash", patient=on_nitrates))
    assert (str(result.disposition), codes(result)) == ("hold", [("MEDICATION_INTERACTION", "hold")])
    assert "Nitrates" in finding(result, "MEDICATION_INTERACTION").message


def test_a_glp1_agonist_with_men2_or_a_personal_or_family_history_of_mtc_is_held() -> None:
    liraglutide = med("897122")  # liraglutide 18 mg/3 mL pen
    for condition in ("men2", "family_history_medullary_thyroid_carcinoma", "medullary_thyroid_carcinoma"):
        result = evaluate(facts(liraglutide, payer_type="cash", patient=patient(conditions=(condition,))))
        assert codes(result) == [("MEDICATION_CONTRAINDICATION", "hold")], condition


def test_an_allergy_to_the_ingredient_needs_review_and_an_unknown_medication_too() -> None:
    tadalafil = med("403957")  # tadalafil 5 mg oral tablet
    allergic = evaluate(facts(tadalafil, payer_type="cash", patient=patient(allergies=("Cialis",))))
    assert codes(allergic) == [("MEDICATION_ALLERGY", "needs_review")]
    # An allergy the table does not know is not cleared silently: the reviewer sees it listed.
    unrelated = evaluate(facts(tadalafil, payer_type="cash", patient=patient(allergies=("penicillin",))))
    assert (str(unrelated.disposition), codes(unrelated)) == ("clear", [("MEDICATION_ENTRIES_UNRECOGNISED", "info")])
    assert codes(evaluate(facts(med("999999"), payer_type="cash", patient=patient()))) == [
        ("MEDICATION_NOT_IN_SAFETY_TABLE", "needs_review")
    ]


# --- the rule files themselves ----------------------------------------------------------------------


def test_every_row_cites_a_source_with_a_public_url() -> None:
    for rule_set in load_rule_sets().values():
        for row in rule_set.rows:
            assert row.source.url.startswith("https://"), (rule_set.name, row.index)


def test_a_broken_rule_file_is_refused_naming_the_file_and_row(tmp_path: Path, settings: Any) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), rules)
    path = rules / "refills.toml"
    path.write_text(path.read_text().replace('source = "DMEMAC-refill-2024"', 'source = "NOWHERE"'))
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    assert str(raised.value) == "refills.toml row 2: source 'NOWHERE' is not among the file's sources"


def test_ten_items_are_evaluated_together_each_rule_naming_its_line() -> None:
    # Nine PAP supplies and a power wheelchair base, one of each, delivered 2026-11-09. (How fast
    # this runs is measured by the benchmark harness, not asserted here.)
    lines = tuple(
        item(code, 1, key=str(i))
        for i, code in enumerate(
            ["A7030", "A7031", "A7032", "A7033", "A7034", "A7035", "A7036", "A7037", "A7038", "K0823"]
        )
    )
    result = evaluate(facts(*lines))
    assert str(result.disposition) == "hold"
    assert [(f.code, str(f.severity), f.item, f.field, f.message) for f in result.findings] == [
        (
            "F2F_ENCOUNTER_REQUIRED",
            "hold",
            None,
            "f2f_date",
            "K0823 needs a face-to-face encounter within the 6 months before the order.",
        ),
        (
            "PRIOR_AUTH_REQUIRED",
            "hold",
            "9",
            None,
            "K0823 is on the CMS Required Prior Authorization List (Power Mobility Devices (power wheelchairs and"
            " power operated vehicles)); no affirmed prior authorization is on file.",
        ),
        # A full face mask and a nasal mask share one interface allowance: two at a time is one too many.
        (
            "QUANTITY_LIMIT_EXCEEDED",
            "hold",
            "0",
            "quantity",
            "A7030, A7034: 2 ordered for delivery on 2026-11-09 exceed the usual maximum of 1 per 3 months for PAP"
            " interface (combination oral/nasal mask, full face mask, or nasal mask or cannula type interface), each"
            " (shared by A7027, A7030, A7034): at most 1 may be dispensed at a time.",
        ),
    ]
    assert result.required_artifacts == ["F2F_NOTE", "MEDICAL_NECESSITY", "PRIOR_AUTH"]
    # Without the second mask every PAP line is within its allowance.
    without_nasal_mask = evaluate(facts(*lines[:4], *lines[5:]))
    assert [f.code for f in without_nasal_mask.findings] == ["F2F_ENCOUNTER_REQUIRED", "PRIOR_AUTH_REQUIRED"]


def test_add_months_clamps_to_the_end_of_shorter_months() -> None:
    assert (add_months(D(2026, 8, 31), -6), add_months(D(2024, 1, 31), 1)) == (D(2026, 2, 28), D(2024, 2, 29))
