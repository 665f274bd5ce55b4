"""Medication safety against the real rule file: free text recognised through the one medication
names table, each row's severity used, contraindications in force from approval, and insulin
treatment for the glucose-supply usual maximums (LCD L33822)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from compliance.engine import FINDING_TITLES, evaluate, insulin_treated, supply_status, usual_maximums
from compliance.inputs import ComplianceInput, Delivery, ItemFacts, PatientFacts
from compliance.medications import MedicationTable, medication_table, normalise
from compliance.rulebook import RuleFileError, load_rule_sets
from tests.compliance.builders import PROVIDER, D, ffs_order, line

SILDENAFIL = "577033"  # sildenafil 20 MG Oral Tablet
TADALAFIL = "403957"  # tadalafil 5 MG Oral Tablet
LIRAGLUTIDE = "897122"  # liraglutide 6 MG/ML, 3 ML pen injector
TIRZEPATIDE = "2601743"  # a ZEPBOUND clinical drug (openFDA NDC 0002-2457)
FINASTERIDE = "200172"  # finasteride 1 MG Oral Tablet


def med(rxnorm: str) -> ItemFacts:
    return ItemFacts(key="0", sku=f"RX-{rxnorm}", description="Medication", quantity=1, rxnorm_code=rxnorm)


ORDER_DATE = D(2026, 11, 2)


def cash_order(rxnorm: str, *, on: dt.date = ORDER_DATE, **patient: Any) -> ComplianceInput:
    """A complete, signed cash order for one medication, for a patient with ``patient`` facts."""
    return ComplianceInput(
        order_date=on,
        requested_date=on,
        payer_type="cash",
        patient=PatientFacts(known=True, has_name=True, in_territory=True, state="MN", **patient),
        provider=PROVIDER,
        items=(med(rxnorm),),
        signed_on=on,
    )


def codes(result: Any) -> list[tuple[str, str]]:
    return [(f.code, str(f.severity)) for f in result.findings]


def finding(result: Any, code: str) -> Any:
    return next(f for f in result.findings if f.code == code)


# --- free text recognised -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recorded",
    ["Nitroglycerin, 0.4 mg SL PRN", "Imdur(60mg)", "Nitrostat.", "NTG", "ISMN", "isosorbide dinitrate 10mg TID"],
)
def test_every_way_of_writing_a_nitrate_holds_a_pde5_inhibitor(recorded: str) -> None:
    result = evaluate(cash_order(SILDENAFIL, medications=(recorded,)))
    assert (str(result.disposition), codes(result)) == ("hold", [("MEDICATION_INTERACTION", "hold")])
    assert f'(recorded as "{recorded}")' in finding(result, "MEDICATION_INTERACTION").message
    assert finding(result, "MEDICATION_INTERACTION").source["id"] == "viagra-label"


def test_a_brand_name_allergy_with_punctuation_is_caught_for_the_generic() -> None:
    result = evaluate(cash_order(SILDENAFIL, allergies=("Viagra.",)))
    assert codes(result) == [("MEDICATION_ALLERGY", "needs_review")]
    assert finding(result, "MEDICATION_ALLERGY").message == (
        'RX-577033: the patient has a recorded allergy to sildenafil (recorded as "Viagra.").'
    )
    # An allergy to another PDE5 inhibitor is not an allergy to sildenafil.
    assert codes(evaluate(cash_order(SILDENAFIL, allergies=("Cialis",)))) == []


def test_the_table_maps_names_to_ingredients_rxcuis_and_classes() -> None:
    # Built here, not taken from the loaded rule set (where it is kept once built): this reads the file's table.
    table = MedicationTable(load_rule_sets()["medication_safety"].tables["medication_names"])
    assert normalise("Nitroglycerin, 0.4 mg SL PRN") == ("nitroglycerin",)
    assert normalise("Imdur(60mg)") == ("imdur",)
    assert normalise("GLP-1 agonist weekly") == ("glp1", "agonist")
    viagra = table.recognise("Viagra.")
    assert [(e.id, e.rxcui, e.classes) for e in viagra.entries] == [("sildenafil", "136411", ("pde5_inhibitor",))]
    # A combination brand names each of its ingredients; the longest name wins over a shorter one.
    assert [e.id for e in table.recognise("Soliqua 100/33 20 units daily").entries] == [
        "lixisenatide",
        "insulin_glargine",
    ]
    assert [e.id for e in table.recognise("insulin glargine 10 u qhs").entries] == ["insulin_glargine"]
    sulfa = table.recognise("sulfa")
    assert (sulfa.text, sulfa.entries, sulfa.recognised) == ("sulfa", (), False)


def test_entries_the_table_does_not_recognise_are_listed_when_a_medication_is_ordered() -> None:
    result = evaluate(cash_order(TADALAFIL, medications=("Lisinopril 10 mg", "NTG"), allergies=("sulfa",)))
    assert codes(result) == [("MEDICATION_INTERACTION", "hold"), ("MEDICATION_ENTRIES_UNRECOGNISED", "info")]
    unrecognised = finding(result, "MEDICATION_ENTRIES_UNRECOGNISED")
    assert unrecognised.message == (
        "The medication safety table does not recognise these recorded medications or allergies, so they were"
        ' not checked: "sulfa", "Lisinopril 10 mg".'
    )
    assert FINDING_TITLES["MEDICATION_ENTRIES_UNRECOGNISED"]
    # No medication ordered: nothing to check the entries against, so nothing is listed.
    supplies = dataclasses.replace(
        cash_order(TADALAFIL, medications=("Lisinopril 10 mg",)),
        items=(ItemFacts(key="0", sku="SKU-A7032", hcpcs="A7032", description="Cushion", quantity=2),),
    )
    assert codes(evaluate(supplies)) == []


# --- contraindications hold from approval -----------------------------------------------------------


@pytest.mark.parametrize(
    "condition", ["medullary_thyroid_carcinoma", "family_history_medullary_thyroid_carcinoma", "men2"]
)
def test_a_glp1_agonist_is_held_for_mtc_or_men2_on_2026_05_01(condition: str) -> None:
    # The WEGOVY revision cited is 06/2026; the contraindication holds from approval.
    for rxnorm in (LIRAGLUTIDE, TIRZEPATIDE):
        result = evaluate(cash_order(rxnorm, on=D(2026, 5, 1), conditions=(condition,)))
        assert codes(result) == [("MEDICATION_CONTRAINDICATION", "hold")], (rxnorm, condition)


def test_the_glp1_contraindication_starts_on_the_first_approval_of_the_class() -> None:
    # VICTOZA (liraglutide) approved 2010-01-25: the day before, no row is in force.
    assert codes(evaluate(cash_order(LIRAGLUTIDE, on=D(2010, 1, 25), conditions=("men2",)))) == [
        ("MEDICATION_CONTRAINDICATION", "hold")
    ]
    assert codes(evaluate(cash_order(LIRAGLUTIDE, on=D(2010, 1, 24), conditions=("men2",)))) == []


def test_sildenafil_with_isosorbide_is_held_in_2023_and_from_viagras_approval() -> None:
    isosorbide = ("Isosorbide mononitrate 30 mg ER",)
    held = evaluate(cash_order(SILDENAFIL, on=D(2023, 3, 15), medications=isosorbide))
    assert codes(held) == [("MEDICATION_INTERACTION", "hold")]
    assert [(f.rule, f.item) for f in held.findings] == [("medication_safety", "0")]
    # VIAGRA NDA 20-895 approved 1998-03-27.
    assert codes(evaluate(cash_order(SILDENAFIL, on=D(1998, 3, 27), medications=isosorbide))) == [
        ("MEDICATION_INTERACTION", "hold")
    ]
    assert codes(evaluate(cash_order(SILDENAFIL, on=D(1998, 3, 26), medications=isosorbide))) == []


# --- new rows: duplicate therapy and hypoglycaemia ---------------------------------------------------


def test_two_glp1_receptor_agonists_need_review_as_duplicate_therapy() -> None:
    result = evaluate(cash_order(LIRAGLUTIDE, medications=("Ozempic 1 mg weekly",)))
    assert (str(result.disposition), codes(result)) == (
        "needs_review",
        [("MEDICATION_DUPLICATE_THERAPY", "needs_review")],
    )
    assert finding(result, "MEDICATION_DUPLICATE_THERAPY").source["id"] == "wegovy-label"
    # The same ingredient under another brand is duplicate therapy too (WEGOVY label: "other
    # semaglutide-containing products"); a class word names a GLP-1 as well.
    assert codes(evaluate(cash_order(LIRAGLUTIDE, medications=("Victoza 1.8mg",)))) == [
        ("MEDICATION_DUPLICATE_THERAPY", "needs_review")
    ]
    assert codes(evaluate(cash_order(TIRZEPATIDE, medications=("GLP-1 agonist",)))) == [
        ("MEDICATION_DUPLICATE_THERAPY", "needs_review")
    ]


def test_two_pde5_inhibitors_need_review_as_duplicate_therapy() -> None:
    result = evaluate(cash_order(SILDENAFIL, medications=("Cialis 5mg daily",)))
    assert (str(result.disposition), codes(result)) == (
        "needs_review",
        [("MEDICATION_DUPLICATE_THERAPY", "needs_review")],
    )
    assert codes(evaluate(cash_order(TADALAFIL, medications=("Revatio 20 mg TID",)))) == [
        ("MEDICATION_DUPLICATE_THERAPY", "needs_review")
    ]


@pytest.mark.parametrize("recorded", ["Lantus 20 units qhs", "insulin", "Glipizide 5 mg PO daily", "Amaryl 2mg"])
def test_a_glp1_agonist_with_insulin_or_a_sulfonylurea_needs_review(recorded: str) -> None:
    result = evaluate(cash_order(LIRAGLUTIDE, medications=(recorded,)))
    assert (str(result.disposition), codes(result)) == ("needs_review", [("MEDICATION_INTERACTION", "needs_review")])
    assert "hypoglycemia" in finding(result, "MEDICATION_INTERACTION").message


def test_a_combination_of_insulin_and_a_glp1_is_both_a_duplicate_and_an_interaction() -> None:
    result = evaluate(cash_order(LIRAGLUTIDE, medications=("Xultophy 100/3.6",)))
    assert codes(result) == [
        ("MEDICATION_DUPLICATE_THERAPY", "needs_review"),
        ("MEDICATION_INTERACTION", "needs_review"),
    ]


# --- the patient's administrative sex ----------------------------------------------------------------


def test_finasteride_for_a_female_patient_needs_review() -> None:
    result = evaluate(cash_order(FINASTERIDE, sex="female"))
    assert (str(result.disposition), codes(result)) == (
        "needs_review",
        [("MEDICATION_NOT_FOR_PATIENT_SEX", "needs_review")],
    )
    assert finding(result, "MEDICATION_NOT_FOR_PATIENT_SEX").source["id"] == "propecia-label"
    for sex in ("male", "unknown", None):
        assert codes(evaluate(cash_order(FINASTERIDE, sex=sex))) == [], sex
    # A recorded pregnancy (or its possibility) is the label's contraindication: held.
    assert codes(evaluate(cash_order(FINASTERIDE, sex="female", conditions=("pregnancy_possible",)))) == [
        ("MEDICATION_CONTRAINDICATION", "hold"),
        ("MEDICATION_NOT_FOR_PATIENT_SEX", "needs_review"),
    ]


def test_the_table_is_indexed_once_per_loaded_rule_set_and_anew_for_a_changed_file(
    tmp_path: Path, settings: Any
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), rules)
    loaded = load_rule_sets(rules)["medication_safety"]
    assert medication_table(loaded) is medication_table(loaded)
    assert not medication_table(loaded).recognise("Kamagra").recognised

    path = rules / "medication_safety.toml"
    path.write_text(path.read_text().replace('"viagra", "revatio"', '"viagra", "kamagra", "revatio"', 1))
    changed = load_rule_sets(rules)["medication_safety"]
    assert changed is not loaded
    assert [e.id for e in medication_table(changed).recognise("Kamagra").entries] == ["sildenafil"]
    assert not medication_table(loaded).recognise("Kamagra").recognised
    assert changed == dataclasses.replace(changed)  # what is derived is not part of the rule set's value


# --- the rule file is checked ---------------------------------------------------------------------------


def test_a_row_with_an_unknown_severity_or_a_name_entry_with_an_unknown_class_is_refused(
    tmp_path: Path, settings: Any
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), rules)
    path = rules / "medication_safety.toml"
    original = path.read_text()
    path.write_text(original.replace('severity = "major"', 'severity = "moderate"', 1))
    with pytest.raises(RuleFileError, match="severity must be one of contraindicated, major"):
        load_rule_sets(rules)
    path.write_text(original.replace('classes = ["nitrate"]', 'classes = ["nitrates"]', 1))
    with pytest.raises(RuleFileError, match="unknown drug classes nitrates"):
        load_rule_sets(rules)


# --- insulin treatment (LCD L33822) ------------------------------------------------------------------


def strips(quantity: int, **changes: Any) -> ComplianceInput:
    """An insurance (Medicare FFS) order for A4253 test strips (per 50), signed 2026-11-02."""
    return ffs_order(line("A4253", quantity), order_date=D(2026, 11, 2), requested_date=D(2026, 11, 9), **changes)


@pytest.mark.parametrize(
    ("diagnoses", "medications"),
    [
        (("E10.9",), ()),
        (("E10.65",), ()),
        (("E11.9",), ("Lantus 20 units qhs",)),
        (("E11.9",), ("Humalog sliding scale",)),
    ],
)
def test_type_1_diabetes_or_an_insulin_on_the_medication_list_is_insulin_treatment(
    diagnoses: tuple[str, ...], medications: tuple[str, ...]
) -> None:
    # A4253: 2 units per 3 months without insulin, 6 with insulin.
    patient = PatientFacts(known=True, has_name=True, has_mbi=True, in_territory=True, medications=medications)
    assert codes(evaluate(strips(3, diagnosis_codes=diagnoses, patient=patient))) == []
    assert insulin_treated(load_rule_sets(), diagnoses, medications) is True


def test_type_2_diabetes_without_insulin_keeps_the_lower_maximum() -> None:
    patient = PatientFacts(known=True, has_name=True, has_mbi=True, in_territory=True, medications=("Glipizide 5mg",))
    assert codes(evaluate(strips(3, diagnosis_codes=("E11.9",), patient=patient))) == [
        ("QUANTITY_LIMIT_EXCEEDED", "hold")
    ]
    assert insulin_treated(load_rule_sets(), ("E11.9",), ("Glipizide 5mg",)) is False


def test_the_usual_maximums_and_supply_status_read_insulin_treatment_the_same_way() -> None:
    on = D(2026, 11, 2)
    assert usual_maximums(on=on, diagnosis_codes=("E11.9",))["A4253"] == (2, 3)
    assert usual_maximums(on=on, diagnosis_codes=("E10.9",))["A4253"] == (6, 3)
    assert usual_maximums(on=on, diagnosis_codes=("E11.9",), medications=("Tresiba",))["A4253"] == (6, 3)
    history = [Delivery(hcpcs="A4253", quantity=2, delivered_on=D(2026, 10, 1))]
    # Two boxes are the whole 3-month supply without insulin, a third of it with insulin.
    without = supply_status(history, on=on, diagnosis_codes=("E11.9",))[0]
    treated = supply_status(history, on=on, diagnosis_codes=("E11.9",), medications=("NPH insulin",))[0]
    assert (without.supply_ends, treated.supply_ends) == (D(2027, 1, 1), D(2026, 11, 1))
