"""The compliance engine at its edges: who and what a written order must name, the same-day
boundaries of every date rule (an encounter on the order date, a written order or a refill
confirmation dated on the delivery date, a delivery on the date of service itself), supply
history of other HCPCS codes, lines without a quantity, and prior-authorization decisions dated
around the delivery. Real codes and dates; each case states both sides of its boundary."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from compliance.engine import evaluate
from compliance.inputs import (
    AttachedArtifact,
    ComplianceInput,
    Delivery,
    ItemFacts,
    OpenOrder,
    OpenOrderLine,
    PatientFacts,
    PayerRuleFacts,
    PriorAuthorizationFacts,
    ProviderFacts,
)
from compliance.rulebook import load_rule_sets
from tests.compliance.builders import PATIENT, VALID_NPI, D, ffs_order, line

# PAP interfaces: one allowance of 1 per 3 months, whichever kind (quantity_limits.toml).
INTERFACES = (
    "PAP interface (combination oral/nasal mask, full face mask, or nasal mask or cannula type interface), each"
    " (shared by A7027, A7030, A7034)"
)
ORDERED = D(2026, 11, 2)
DELIVERY = D(2026, 11, 9)


def order(*items: ItemFacts, **changes: Any) -> ComplianceInput:
    """A complete, signed Medicare FFS order of 2026-11-02 for delivery on 2026-11-09."""
    return ffs_order(*(items or (line("A7032", 2),)), **{"order_date": ORDERED, "requested_date": DELIVERY, **changes})


def codes(facts: ComplianceInput) -> list[tuple[str, str]]:
    return [(f.code, str(f.severity)) for f in evaluate(facts).findings]


def message(facts: ComplianceInput, code: str) -> str:
    (found,) = [f.message for f in evaluate(facts).findings if f.code == code]
    return found


def confirmed(day: D) -> tuple[AttachedArtifact, ...]:
    return (AttachedArtifact("PATIENT_REFILL_CONFIRMATION", day),)


# --- 1. the standard written order names a known patient and practitioner -------------------------


def test_an_unknown_patient_fails_the_written_order_check_even_with_a_name_and_mbi() -> None:
    stranger = PatientFacts(known=False, has_name=True, has_mbi=True, in_territory=True, state="MN")
    assert codes(order(patient=stranger)) == [("SWO_MISSING_BENEFICIARY", "hold")]
    # Nor is a patient nobody knows said to be registered outside the territory.
    elsewhere = dataclasses.replace(stranger, in_territory=False)
    assert codes(order(patient=elsewhere)) == [("SWO_MISSING_BENEFICIARY", "hold")]


@pytest.mark.parametrize(
    ("has_name", "has_mbi", "expected"),
    [
        (True, False, []),
        (False, True, []),
        (False, False, [("SWO_MISSING_BENEFICIARY", "hold")]),
    ],
)
def test_a_known_patient_is_named_by_name_or_mbi(has_name: bool, has_mbi: bool, expected: list[Any]) -> None:
    patient = dataclasses.replace(PATIENT, has_name=has_name, has_mbi=has_mbi)
    assert codes(order(patient=patient)) == expected


def test_an_unknown_practitioner_fails_the_written_order_check_even_with_a_name_and_npi() -> None:
    stranger = ProviderFacts(known=False, name="Dr. Lindqvist", npi=VALID_NPI, credentialed_in_territory=True)
    assert codes(order(provider=stranger)) == [("SWO_MISSING_PRACTITIONER", "hold")]


@pytest.mark.parametrize(
    ("name", "npi", "expected"),
    [
        # a name alone satisfies the written order; the missing NPI is its own finding
        ("Dr. Lindqvist", None, [("PROVIDER_NPI_INVALID", "hold")]),
        (None, VALID_NPI, []),
        (None, None, [("SWO_MISSING_PRACTITIONER", "hold"), ("PROVIDER_NPI_INVALID", "hold")]),
    ],
)
def test_a_known_practitioner_is_named_by_name_or_npi(name: str | None, npi: str | None, expected: list[Any]) -> None:
    provider = ProviderFacts(known=True, name=name, npi=npi, credentialed_in_territory=True)
    assert codes(order(provider=provider)) == expected


def test_each_line_is_described_by_its_text_or_its_hcpcs_code() -> None:
    described = ItemFacts(key="0", sku="WALKER-1", description="Folding walker", quantity=1)
    coded = ItemFacts(key="1", sku="SKU-A7032", hcpcs="A7032", quantity=2)
    assert codes(order(described, coded)) == []
    bare = ItemFacts(key="2", sku="MISC-1", quantity=1)
    assert codes(order(described, coded, bare)) == [("SWO_MISSING_ITEM_DESCRIPTION", "hold")]


def test_an_order_without_lines_lacks_both_the_description_and_the_quantity() -> None:
    assert codes(order(items=())) == [("SWO_MISSING_ITEM_DESCRIPTION", "hold"), ("SWO_MISSING_QUANTITY", "hold")]


@pytest.mark.parametrize("quantity", [0, None])
def test_every_line_needs_a_quantity_of_at_least_one(quantity: int | None) -> None:
    second = line("A7031", quantity, key="1")  # type: ignore[arg-type]
    assert codes(order(line("A7032", 1), second)) == [("SWO_MISSING_QUANTITY", "hold")]


def test_a_line_without_a_quantity_adds_nothing_to_the_usual_maximum() -> None:
    # One interface per 3 months: a full face mask (A7030) with one unit and a nasal mask (A7034)
    # with no quantity is one unit, not two; the written order lacks the second line's quantity.
    masks = order(line("A7030", 1), line("A7034", None, key="1"))  # type: ignore[arg-type]
    assert codes(masks) == [("SWO_MISSING_QUANTITY", "hold")]
    assert codes(order(line("A7030", 1), line("A7034", 1, key="1"))) == [("QUANTITY_LIMIT_EXCEEDED", "hold")]


def test_a_written_order_before_delivery_signs_the_order() -> None:
    wopd = (AttachedArtifact("WOPD", ORDERED),)
    assert codes(order(signed_on=None, artifacts=wopd)) == []
    assert codes(order(signed_on=None)) == [("SWO_MISSING_SIGNATURE", "hold")]


# --- 2. same-day boundaries of the face-to-face encounter and the written order ------------------

PMD = "K0823"  # a power wheelchair base on the F2F/WOPD list (since 2022-04-13) and the PA list


def wheelchair(order_date: D, **changes: Any) -> ComplianceInput:
    """A K0823 order delivered on ``order_date`` unless ``delivered_on`` says otherwise, with its
    prior authorization on file so that only the F2F/WOPD rule speaks."""
    pa = PriorAuthorizationFacts(hcpcs=PMD, affirmed=True, decision_date=order_date)
    return ffs_order(line(PMD), order_date=order_date, prior_authorizations=(pa,), **changes)


def test_a_face_to_face_encounter_on_the_order_date_satisfies_the_rule() -> None:
    def met_on(encounter: D) -> ComplianceInput:
        return wheelchair(D(2022, 10, 20), f2f_date=encounter, artifacts=(AttachedArtifact("F2F_NOTE", encounter),))

    assert codes(met_on(D(2022, 10, 20))) == []
    assert codes(met_on(D(2022, 10, 21))) == [("F2F_ENCOUNTER_OUT_OF_WINDOW", "hold")]
    assert message(met_on(D(2022, 10, 21)), "F2F_ENCOUNTER_OUT_OF_WINDOW") == (
        "K0823 needs a face-to-face encounter between 2022-04-20 and 2022-10-20; the one on file is dated 2022-10-21."
    )


FR_87_2051 = {
    "id": "87FR2051",
    "title": (
        "Medicare Program; Updates to Lists Related to Durable Medical Equipment, Prosthetics, Orthotics, and"
        " Supplies (DMEPOS) Conditions of Payment (87 FR 2051; CMS-6081-N; FR Doc. 2022-00572)"
    ),
    "url": "https://www.federalregister.gov/d/2022-00572",
}


def test_the_face_to_face_findings_cite_the_federal_register_list_and_name_the_encounter_field() -> None:
    def f2f(facts: ComplianceInput) -> list[dict[str, Any]]:
        return [f.as_dict() for f in evaluate(facts).findings if f.code.startswith("F2F_")]

    missing = wheelchair(D(2022, 10, 20))
    too_old = wheelchair(
        D(2022, 10, 20), f2f_date=D(2022, 4, 19), artifacts=(AttachedArtifact("F2F_NOTE", D(2022, 4, 19)),)
    )

    common = {
        "severity": "hold",
        "rule": "f2f_wopd",
        "source": FR_87_2051,
        "required_artifacts": ["F2F_NOTE"],
        "field": "f2f_date",
        "item": None,
    }
    assert f2f(missing) == [
        {
            "code": "F2F_ENCOUNTER_REQUIRED",
            "message": "K0823 needs a face-to-face encounter within the 6 months before the order.",
            **common,
        }
    ]
    assert f2f(too_old) == [
        {
            "code": "F2F_ENCOUNTER_OUT_OF_WINDOW",
            "message": (
                "K0823 needs a face-to-face encounter between 2022-04-20 and 2022-10-20; the one on file is dated"
                " 2022-04-19."
            ),
            **common,
        }
    ]


def test_the_note_and_written_order_findings_name_what_is_missing_whole() -> None:
    encounter = D(2022, 9, 1)
    no_note_unsigned = wheelchair(D(2022, 10, 20), f2f_date=encounter, signed_on=None)

    found = [f.as_dict() for f in evaluate(no_note_unsigned).findings if f.rule == "f2f_wopd"]

    assert found == [
        {
            "code": "F2F_NOTE_REQUIRED",
            "severity": "hold",
            "message": "K0823 needs the face-to-face encounter note on file.",
            "rule": "f2f_wopd",
            "source": FR_87_2051,
            "required_artifacts": ["F2F_NOTE"],
            "field": "attachments",
            "item": None,
        },
        {
            "code": "WOPD_REQUIRED",
            "severity": "hold",
            "message": "K0823 needs a written order dated on or before delivery (2022-10-20).",
            "rule": "f2f_wopd",
            "source": FR_87_2051,
            "required_artifacts": ["WOPD"],
            "field": "signature",
            "item": None,
        },
    ]


def test_the_encounter_window_is_read_from_the_rule_file(tmp_path: Path, settings: Any) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), rules)
    f2f = rules / "f2f_wopd.toml"
    f2f.write_text(f2f.read_text().replace("f2f_window_months = 6", "f2f_window_months = 3"))
    three_months = load_rule_sets(rules)

    def met_on(encounter: D) -> ComplianceInput:
        return wheelchair(D(2022, 10, 20), f2f_date=encounter, artifacts=(AttachedArtifact("F2F_NOTE", encounter),))

    assert evaluate(met_on(D(2022, 7, 20)), rule_sets=three_months).findings == ()
    (late,) = evaluate(met_on(D(2022, 7, 19)), rule_sets=three_months).findings
    assert (late.code, late.message) == (
        "F2F_ENCOUNTER_OUT_OF_WINDOW",
        "K0823 needs a face-to-face encounter between 2022-07-20 and 2022-10-20; the one on file is dated 2022-07-19.",
    )
    (none,) = evaluate(wheelchair(D(2022, 10, 20)), rule_sets=three_months).findings
    assert none.message == "K0823 needs a face-to-face encounter within the 3 months before the order."


def test_one_finding_names_every_listed_code_of_the_order() -> None:
    # L1832 and L3960 (knee and shoulder orthoses) are on the F2F/WOPD list from 2022-04-13, and on
    # no prior-authorization program in MN in 2022.
    two = ffs_order(line("L3960", key="1"), line("L1832"), order_date=D(2022, 10, 20))
    assert message(two, "F2F_ENCOUNTER_REQUIRED") == (
        "L1832, L3960 need a face-to-face encounter within the 6 months before the order."
    )


def test_without_an_encounter_date_the_latest_encounter_note_is_the_encounter() -> None:
    notes = (AttachedArtifact("F2F_NOTE", D(2022, 1, 5)), AttachedArtifact("F2F_NOTE", D(2022, 9, 1)))
    assert codes(wheelchair(D(2022, 10, 20), artifacts=notes)) == []
    assert codes(wheelchair(D(2022, 10, 20), artifacts=notes[:1])) == [("F2F_ENCOUNTER_OUT_OF_WINDOW", "hold")]


def delivered_wheelchair(*, signed_on: D | None, written: AttachedArtifact | None = None) -> ComplianceInput:
    """Ordered 2023-03-01, delivered 2023-03-05; encounter 2023-02-01 with its note."""
    note = AttachedArtifact("F2F_NOTE", D(2023, 2, 1))
    return wheelchair(
        D(2023, 3, 1),
        delivered_on=D(2023, 3, 5),
        signed_on=signed_on,
        f2f_date=D(2023, 2, 1),
        artifacts=(note, *((written,) if written else ())),
    )


def test_an_order_signed_on_the_delivery_date_is_a_written_order_before_delivery() -> None:
    assert codes(delivered_wheelchair(signed_on=D(2023, 3, 5))) == []
    assert codes(delivered_wheelchair(signed_on=D(2023, 3, 6))) == [("WOPD_REQUIRED", "hold")]


def test_a_standard_written_order_dated_on_the_delivery_date_is_in_time() -> None:
    assert codes(delivered_wheelchair(signed_on=None, written=AttachedArtifact("SWO", D(2023, 3, 5)))) == []
    late = delivered_wheelchair(signed_on=None, written=AttachedArtifact("SWO", D(2023, 3, 6)))
    assert codes(late) == [("WOPD_REQUIRED", "hold")]


def test_a_written_order_without_a_date_signs_the_order_but_cannot_show_it_came_before_delivery() -> None:
    undated = delivered_wheelchair(signed_on=None, written=AttachedArtifact("WOPD", None))
    assert codes(undated) == [("WOPD_REQUIRED", "hold")]
    assert message(undated, "WOPD_REQUIRED") == "K0823 needs a written order dated on or before delivery (2023-03-05)."


# --- 3. refills: the confirmation and the history ---------------------------------------------------


def strips(delivery: D, *artifacts: AttachedArtifact) -> ComplianceInput:
    """A4253 (per 50 strips, 2 per 3 months without insulin): one box delivered on 2026-06-01 lasts
    until 2026-07-16, so a refill may come from 2026-07-06 and be confirmed from 2026-06-16."""
    history = (Delivery("A4253", 1, D(2026, 6, 1)),)
    return ffs_order(line("A4253"), order_date=delivery, supply_history=history, artifacts=artifacts)


def test_a_refill_confirmation_dated_on_the_delivery_date_is_in_time() -> None:
    assert codes(strips(D(2026, 7, 10), *confirmed(D(2026, 7, 10)))) == []
    after_delivery = strips(D(2026, 7, 10), *confirmed(D(2026, 7, 11)))
    assert codes(after_delivery) == [("REFILL_CONFIRMATION_REQUIRED", "hold")]
    assert message(after_delivery, "REFILL_CONFIRMATION_REQUIRED") == (
        "A4253 is a refill: the patient must confirm the need on or after 2026-06-16 and before delivery on 2026-07-10."
    )


def test_a_delivery_on_the_date_of_service_itself_counts_against_the_usual_maximum() -> None:
    # A full face mask was delivered on 2026-11-09; a second one for the same day is two at a time.
    same_day = order(line("A7030"), supply_history=(Delivery("A7030", 1, DELIVERY),))
    assert codes(same_day) == [
        ("QUANTITY_LIMIT_EXCEEDED", "hold"),
        ("REFILL_TOO_EARLY", "hold"),
        ("REFILL_CONFIRMATION_REQUIRED", "hold"),
    ]
    assert message(same_day, "QUANTITY_LIMIT_EXCEEDED") == (
        f"A7030: 1 ordered and 1 delivered for delivery on 2026-11-09 exceed the usual maximum of 1 per 3 months for"
        f" {INTERFACES}: at most 1 may be dispensed at a time."
    )
    assert message(same_day, "REFILL_TOO_EARLY") == (
        "A7030: the supply delivered on 2026-11-09 lasts until 2027-02-09; a refill may be delivered from"
        " 2027-01-30, not on 2026-11-09."
    )


def test_a_delivery_after_the_date_of_service_is_not_in_its_history() -> None:
    later = order(line("A7030"), supply_history=(Delivery("A7030", 1, D(2026, 11, 10)),))
    assert codes(later) == []


def test_deliveries_of_other_hcpcs_codes_do_not_count_against_an_allowance_or_make_a_refill() -> None:
    # Cushions, a cushion pair, tubing and filters delivered the week before: none is an interface.
    others = (
        Delivery("A7031", 1, D(2026, 11, 2)),
        Delivery("A7032", 2, D(2026, 11, 2)),
        Delivery("A4604", 1, D(2026, 11, 2)),
        Delivery("A7038", 6, D(2026, 11, 9)),
    )
    assert codes(order(line("A7030"), supply_history=others)) == []
    # ...while an interface of another kind is the same allowance (and so a refill).
    pooled = order(line("A7030"), supply_history=(Delivery("A7034", 1, D(2026, 11, 2)),))
    assert codes(pooled) == [
        ("QUANTITY_LIMIT_EXCEEDED", "hold"),
        ("REFILL_TOO_EARLY", "hold"),
        ("REFILL_CONFIRMATION_REQUIRED", "hold"),
    ]


def dressing(quantity: int = 30, **changes: Any) -> ItemFacts:
    # A6212 foam dressing with adhesive border (16 sq in or less), flagged recurring; one lasts 2 days.
    return line("A6212", quantity, **{"recurring": True, "days_of_supply": 2, **changes})


def test_a_recurring_supply_of_another_code_does_not_make_a_refill() -> None:
    # A6213 is the larger foam dressing: a first A6212 delivery is not its refill.
    other_size = (Delivery("A6213", 30, D(2026, 10, 25), recurring=True, days_of_supply=2),)
    assert codes(order(dressing(), supply_history=other_size)) == []
    same_code = (Delivery("A6212", 30, D(2026, 10, 25), recurring=True, days_of_supply=2),)
    assert codes(order(dressing(), supply_history=same_code)) == [
        ("REFILL_TOO_EARLY", "hold"),
        ("REFILL_CONFIRMATION_REQUIRED", "hold"),
    ]


def test_a_recurring_supply_is_a_refill_whatever_else_was_delivered_before_it() -> None:
    # The history lists deliveries of other codes too, in any order.
    history = (
        Delivery("A7030", 1, D(2026, 10, 20)),
        Delivery("A6213", 30, D(2026, 10, 24), recurring=True, days_of_supply=2),
        Delivery("A6212", 30, D(2026, 10, 25), recurring=True, days_of_supply=2),
    )
    assert message(order(dressing(), supply_history=history), "REFILL_TOO_EARLY") == (
        "A6212: the supply delivered on 2026-10-25 lasts until 2026-12-24; a refill may be delivered from"
        " 2026-12-14, not on 2026-11-09."
    )


def test_a_recurring_supply_delivered_on_the_date_of_service_itself_is_in_its_history() -> None:
    same_day = order(dressing(), supply_history=(Delivery("A6212", 30, DELIVERY, recurring=True, days_of_supply=2),))
    assert message(same_day, "REFILL_TOO_EARLY") == (
        "A6212: the supply delivered on 2026-11-09 lasts until 2027-01-08; a refill may be delivered from"
        " 2026-12-29, not on 2026-11-09."
    )
    day_after = (Delivery("A6212", 30, D(2026, 11, 10), recurring=True, days_of_supply=2),)
    assert codes(order(dressing(), supply_history=day_after)) == []


def test_an_open_order_of_another_code_does_not_count_against_an_allowance() -> None:
    cushions = OpenOrder("ABC-DEF", "Pending", DELIVERY, (OpenOrderLine(2, "SKU-A7032", "A7032"),))
    assert codes(order(line("A7030"), open_orders=(cushions,))) == []
    mask = OpenOrder("ABC-DEF", "Pending", DELIVERY, (OpenOrderLine(1, "F30", "A7034"),))
    assert codes(order(line("A7030"), open_orders=(mask,))) == [("QUANTITY_LIMIT_EXCEEDED", "hold")]


# --- 4. prior authorization around the delivery date -------------------------------------------------

POWER_WHEELCHAIR = "K0856"  # PMD program: an affirmed decision is valid 6 months (decision day = day 1)


def pmd(delivery: D, *evidence: Any, **changes: Any) -> ComplianceInput:
    """A K0856 order delivered on ``delivery`` with its F2F and written order on file, and
    ``evidence``: decisions on file or attached prior-authorization documents."""
    return ffs_order(
        line(POWER_WHEELCHAIR),
        order_date=delivery,
        f2f_date=delivery,
        artifacts=(
            AttachedArtifact("F2F_NOTE", delivery),
            *(e for e in evidence if isinstance(e, AttachedArtifact)),
        ),
        prior_authorizations=tuple(e for e in evidence if isinstance(e, PriorAuthorizationFacts)),
        **changes,
    )


def affirmed(day: D, hcpcs: str = POWER_WHEELCHAIR, **changes: Any) -> PriorAuthorizationFacts:
    return PriorAuthorizationFacts(hcpcs=hcpcs, affirmed=True, decision_date=day, **changes)


def test_a_decision_affirmed_on_the_delivery_date_covers_it_and_one_affirmed_after_does_not() -> None:
    assert codes(pmd(D(2025, 3, 3), affirmed(D(2025, 3, 3)))) == []
    assert codes(pmd(D(2025, 3, 3), affirmed(D(2025, 3, 4)))) == [("PRIOR_AUTH_REQUIRED", "hold")]


def test_a_decision_letter_dated_on_the_delivery_date_covers_it_and_one_dated_after_does_not() -> None:
    assert codes(pmd(D(2025, 3, 3), AttachedArtifact("PRIOR_AUTH", D(2025, 3, 3), (POWER_WHEELCHAIR,)))) == []
    late = AttachedArtifact("PRIOR_AUTH", D(2025, 3, 4), (POWER_WHEELCHAIR,))
    assert codes(pmd(D(2025, 3, 3), late)) == [("PRIOR_AUTH_REQUIRED", "hold")]


def test_a_decision_for_another_code_neither_covers_nor_refuses_the_item() -> None:
    other = affirmed(D(2025, 3, 1), hcpcs="K0823")
    refused_other = PriorAuthorizationFacts(hcpcs="K0823", affirmed=False, decision_date=D(2025, 3, 1))
    assert codes(pmd(D(2025, 3, 3), other, refused_other)) == [("PRIOR_AUTH_REQUIRED", "hold")]


def test_the_latest_expired_decision_is_named_and_expiry_is_reported_before_a_refusal() -> None:
    # Affirmed 2025-01-10 (valid to 2025-07-09) and 2025-01-20 (to 2025-07-19); refused 2025-02-01.
    refused = PriorAuthorizationFacts(hcpcs=POWER_WHEELCHAIR, affirmed=False, decision_date=D(2025, 2, 1))
    expired = pmd(D(2025, 8, 1), affirmed(D(2025, 1, 10)), affirmed(D(2025, 1, 20)), refused)
    assert codes(expired) == [("PRIOR_AUTH_EXPIRED", "hold")]
    assert message(expired, "PRIOR_AUTH_EXPIRED") == (
        "K0856 is on the CMS Required Prior Authorization List (Power Mobility Devices (power wheelchairs and"
        " power operated vehicles)); the affirmed decision on file expired on 2025-07-19, before delivery on"
        " 2025-08-01."
    )
    # A refusal after an affirmed decision that still covers the delivery does not undo it.
    assert codes(pmd(D(2025, 7, 19), affirmed(D(2025, 1, 20)), refused)) == []


def test_a_payers_prior_authorization_lasts_until_the_end_its_decision_states() -> None:
    # Payer rules have no program validity: a decision without an end covers every later delivery.
    rule = PayerRuleFacts(hcpcs="E0651", payer="Acme Advantage", requires_prior_auth=True)

    def pump(delivery: D, decision: PriorAuthorizationFacts) -> ComplianceInput:
        return ffs_order(
            line("E0651"),
            order_date=delivery,
            payer_kind="medicare_advantage",
            payer_rules=(rule,),
            prior_authorizations=(decision,),
        )

    assert codes(pump(D(2029, 1, 2), affirmed(D(2026, 4, 20), hcpcs="E0651"))) == []
    ends = affirmed(D(2026, 4, 20), hcpcs="E0651", expires_on=D(2026, 12, 31))
    assert codes(pump(D(2026, 12, 31), ends)) == []
    assert codes(pump(D(2027, 1, 1), ends)) == [("PAYER_PRIOR_AUTH_EXPIRED", "hold")]
    assert message(pump(D(2027, 1, 1), ends), "PAYER_PRIOR_AUTH_EXPIRED") == (
        "E0651 is on Acme Advantage's prior authorization list; the affirmed decision on file expired on"
        " 2026-12-31, before delivery on 2027-01-01."
    )
    refused = PriorAuthorizationFacts(hcpcs="E0651", affirmed=False, decision_date=D(2026, 4, 20))
    assert codes(pump(D(2026, 5, 1), refused)) == [("PAYER_PRIOR_AUTH_NON_AFFIRMED", "hold")]
