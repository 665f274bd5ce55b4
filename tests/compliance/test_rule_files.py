"""The rule book refuses a broken rule file with a message naming the file and row, and the medication
names table reads free text the same way everywhere (``normalise``, ``MedicationTable.recognise``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from compliance.medications import MedicationTable, medication_table, normalise
from compliance.rulebook import RuleFileError, load_rule_sets

# --- the rule book ----------------------------------------------------------------------------------


@pytest.fixture
def rules(tmp_path: Path, settings: Any) -> Path:
    """A copy of the rule files to break."""
    copy = tmp_path / "rules"
    shutil.copytree(Path(settings.COMPLIANCE_RULES_DIR), copy)
    return copy


def refusal(rules: Path, file: str, old: str, new: str, *, count: int = 1) -> str:
    """The message of the RuleFileError that loading gives once ``old`` is ``new`` in ``file``."""
    path = rules / file
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    return str(raised.value)


SWO = "standard_written_order.toml"
SWO_FIRST_URL = (
    'url = "https://www.ecfr.gov/current/title-42/chapter-IV/subchapter-B/part-410/subpart-B/section-410.38"'
)


def test_a_missing_rule_file_is_refused(rules: Path) -> None:
    (rules / "refills.toml").unlink()
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    assert str(raised.value) == "refills.toml: missing (No such file or directory)"


def test_a_file_that_is_not_toml_is_refused(rules: Path) -> None:
    message = refusal(rules, SWO, 'version = "2020-01-01.1"', "version = ")
    assert message.startswith("standard_written_order.toml: cannot be read: ")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'rule_set = "standard_written_order"',
            'rule_set = "written_order"',
            "standard_written_order.toml: rule_set must be 'standard_written_order'",
        ),
        ('version = "2020-01-01.1"', 'version = ""', "standard_written_order.toml: version is required"),
        (
            'title = "Standard written order elements (42 CFR 410.38(d)(1))"',
            "title = 1",
            "standard_written_order.toml: title is required",
        ),
        (SWO_FIRST_URL, 'url = ""', "standard_written_order.toml: every source needs id, title and url"),
        (
            'id = "84FR60648"',
            'id = "42CFR410.38"',
            "standard_written_order.toml: source '42CFR410.38' is listed twice",
        ),
        (
            "effective_from = 2020-01-01",
            'effective_from = "2020-01-01"',
            "standard_written_order.toml row 1: effective_from must be a date",
        ),
        (
            "effective_from = 2020-01-01",
            "effective_from = 2020-01-01T08:00:00",
            "standard_written_order.toml row 1: effective_from must be a date",
        ),
        (
            "effective_from = 2020-01-01",
            "effective_from = 2020-01-01\neffective_to = 2019-12-31",
            "standard_written_order.toml row 1: effective_to must be a date on or after effective_from",
        ),
        (
            "effective_from = 2020-01-01",
            "effective_from = 2020-01-01\neffective_to = 2020-12-31T00:00:00",
            "standard_written_order.toml row 1: effective_to must be a date on or after effective_from",
        ),
    ],
)
def test_a_rule_file_with_a_bad_header_source_or_date_is_refused(rules: Path, old: str, new: str, message: str) -> None:
    assert refusal(rules, SWO, old, new) == message


def test_a_rule_file_without_rows_is_refused_naming_its_row_table(rules: Path) -> None:
    assert refusal(rules, SWO, "[[rows]]", "[[elements]]", count=-1) == "standard_written_order.toml: no [[rows]] rows"


def test_the_quantity_limits_rows_are_its_limits_table(rules: Path) -> None:
    assert refusal(rules, "quantity_limits.toml", "[[limits]]", "[[rows]]", count=-1) == (
        "quantity_limits.toml: no [[limits]] rows"
    )


@pytest.mark.parametrize(
    "new",
    [
        "",
        "dispense_at_most_months = 0",
        'dispense_at_most_months = "3"',
        "dispense_at_most_months = 1.5",
        "dispense_at_most_months = true",
    ],
)
def test_the_months_dispensed_at_a_time_must_be_stated_as_a_whole_number(rules: Path, new: str) -> None:
    message = refusal(rules, "quantity_limits.toml", "dispense_at_most_months = 3", new)
    assert message == "quantity_limits.toml: dispense_at_most_months must be a whole number of months, at least 1"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'insulin_treated_diagnoses = ["Z79.4"]',
            "",
            "quantity_limits.toml: insulin_treated_diagnoses must be a list of ICD-10-CM codes",
        ),
        (
            'insulin_treated_diagnosis_prefixes = ["E10"]',
            'insulin_treated_diagnosis_prefixes = "E10"',
            "quantity_limits.toml: insulin_treated_diagnosis_prefixes must be a list of ICD-10-CM codes",
        ),
        (
            'insulin_treated_diagnoses = ["Z79.4"]',
            'insulin_treated_diagnoses = ["Z79.4", ""]',
            "quantity_limits.toml: insulin_treated_diagnoses must be a list of ICD-10-CM codes",
        ),
    ],
)
def test_the_insulin_treatment_diagnoses_must_be_listed(rules: Path, old: str, new: str, message: str) -> None:
    assert refusal(rules, "quantity_limits.toml", old, new) == message


@pytest.mark.parametrize("new", ['element = "witness"', ""])
def test_a_written_order_element_the_engine_does_not_check_is_refused(rules: Path, new: str) -> None:
    message = refusal(rules, SWO, 'element = "beneficiary"', new)
    assert message == (
        "standard_written_order.toml row 1: element must be one of beneficiary, order_date, item_description,"
        " quantity, practitioner, signature"
    )


def test_a_written_order_element_must_say_what_supplies_it(rules: Path) -> None:
    text = (rules / SWO).read_text()
    first = text.index('element = "beneficiary"')
    artifacts = text.index("artifacts = ", first)
    line_end = text.index("\n", artifacts)
    (rules / SWO).write_text(text[:artifacts] + text[line_end + 1 :])
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    assert str(raised.value) == "standard_written_order.toml row 1: artifacts must list what supplies the element"


@pytest.mark.parametrize("new", ["", 'when = "sometimes"'])
def test_every_usual_maximum_says_whom_it_applies_to(rules: Path, new: str) -> None:
    message = refusal(rules, "quantity_limits.toml", 'when = "any"', new)
    assert message == "quantity_limits.toml row 1: when must be one of any, insulin_treated, not_insulin_treated"


@pytest.mark.parametrize("new", ["", "f2f_window_months = 0", "f2f_window_months = 6.0"])
def test_the_face_to_face_window_must_be_stated_as_a_whole_number_of_months(rules: Path, new: str) -> None:
    message = refusal(rules, "f2f_wopd.toml", "f2f_window_months = 6", new)
    assert message == "f2f_wopd.toml: f2f_window_months must be a whole number of months, at least 1"


def test_a_row_valid_for_one_day_is_accepted(rules: Path) -> None:
    path = rules / SWO
    path.write_text(
        path.read_text().replace(
            "effective_from = 2020-01-01", "effective_from = 2020-01-01\neffective_to = 2020-01-01", 1
        )
    )
    first = load_rule_sets(rules)["standard_written_order"].rows[0]
    assert (first.effective_from, first.effective_to) == (dt.date(2020, 1, 1), dt.date(2020, 1, 1))


def test_a_code_that_is_not_hcpcs_level_ii_is_refused(rules: Path) -> None:
    message = refusal(rules, "f2f_wopd.toml", 'codes = ["L0648", "L0650",', 'codes = ["L0648", "L065",')
    assert message == "f2f_wopd.toml row 2: not HCPCS Level II codes: L065"


def test_two_rows_in_force_for_one_code_on_one_day_are_refused(rules: Path) -> None:
    # L1833 has its own row from 2022-04-13 to 2024-08-11; listing it in row 2 too (from 2022-04-13) overlaps.
    message = refusal(rules, "f2f_wopd.toml", 'codes = ["L0648", "L0650",', 'codes = ["L1833", "L0648", "L0650",')
    assert message == "f2f_wopd.toml: rows 2 and 3 are both in force for L1833 on one day"


def appended(rules: Path, file: str, row: str) -> Path:
    path = rules / file
    path.write_text(path.read_text() + "\n[[rows]]\n" + row)
    return path


def test_a_row_may_start_the_day_after_another_for_the_same_code_ends(rules: Path) -> None:
    # L1833's row ends on 2024-08-11.
    path = appended(rules, "f2f_wopd.toml", 'codes = ["L1833"]\neffective_from = 2024-08-12\nsource = "89FR41324"\n')
    assert len(load_rule_sets(rules)["f2f_wopd"].rows) == 7
    path.write_text(path.read_text().replace("effective_from = 2024-08-12", "effective_from = 2024-08-11"))
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    assert str(raised.value) == "f2f_wopd.toml: rows 3 and 7 are both in force for L1833 on one day"


def test_rows_for_one_code_in_different_states_may_overlap_but_not_for_the_same_states(rules: Path) -> None:
    # Row 1: K0856 required in IL, MO, NY and WV from 2017-03-20 to 2017-07-16 (the PMD pilot).
    row = 'program = "PMD"\ncodes = ["K0856"]\nstatus = "required"\neffective_from = 2017-05-01\nsource = "81FR93636"\n'
    path = appended(rules, "prior_authorization.toml", row + 'states = ["CA"]\n')
    assert len(load_rule_sets(rules)["prior_authorization"].rows) == 23
    path.write_text(path.read_text().replace('states = ["CA"]', 'states = ["WV", "NY", "MO", "IL"]'))
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    assert str(raised.value) == "prior_authorization.toml: rows 1 and 23 are both in force for K0856 on one day"


def test_an_edited_rule_file_is_read_again(rules: Path) -> None:
    assert load_rule_sets(rules)["standard_written_order"].version == "2020-01-01.1"
    path = rules / SWO
    path.write_text(path.read_text().replace('version = "2020-01-01.1"', 'version = "2020-01-01.2"'))
    assert load_rule_sets(rules)["standard_written_order"].version == "2020-01-01.2"


def test_a_loaded_rule_set_keeps_its_name_title_sources_settings_and_tables(rules: Path) -> None:
    # Loaded from a copy: a process keeps what it has parsed, and this test is about the parsing.
    rule_sets = load_rule_sets(rules)
    f2f = rule_sets["f2f_wopd"]
    with (Path(settings.COMPLIANCE_RULES_DIR) / "f2f_wopd.toml").open("rb") as handle:
        written = tomllib.load(handle)
    assert (f2f.name, f2f.title) == ("f2f_wopd", written["title"])
    assert f2f.settings == {
        "rule_set": "f2f_wopd",
        "version": written["version"],
        "title": written["title"],
        "f2f_window_months": 6,
    }
    assert f2f.tables == {}
    assert [source.cite() for source in f2f.sources.values()] == [
        {"id": entry["id"], "title": entry["title"], "url": entry["url"]} for entry in written["sources"]
    ]
    first = f2f.rows[0]
    assert (first.rule_set, first.index, first.source.id) == ("f2f_wopd", 1, "87FR2051")
    assert (first.get("states"), first.get("states", "nationwide")) == (None, "nationwide")
    assert set(rule_sets["medication_safety"].tables) == {"drug_classes", "medication_names", "conditions"}


def test_a_file_without_sources_is_refused_at_its_first_row(rules: Path) -> None:
    message = refusal(rules, SWO, "[[sources]]", "[[retired_sources]]", count=-1)
    assert message == "standard_written_order.toml row 1: source '42CFR410.38' is not among the file's sources"


def test_every_bad_code_of_a_row_is_named(rules: Path) -> None:
    message = refusal(rules, "f2f_wopd.toml", 'codes = ["L0648", "L0650",', 'codes = ["L064", "L0650", "K08",')
    assert message == "f2f_wopd.toml row 2: not HCPCS Level II codes: L064, K08"


def test_a_row_ending_on_the_day_another_for_the_same_code_starts_overlaps_it(rules: Path) -> None:
    # L1833's row 3 starts on 2022-04-13; a later row ending that very day shares it.
    row = 'codes = ["L1833"]\neffective_from = 2020-01-01\neffective_to = 2022-04-13\nsource = "87FR2051"\n'
    path = appended(rules, "f2f_wopd.toml", row)
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    assert str(raised.value) == "f2f_wopd.toml: rows 3 and 7 are both in force for L1833 on one day"
    path.write_text(path.read_text().replace("effective_to = 2022-04-13", "effective_to = 2022-04-12"))
    assert len(load_rule_sets(rules)["f2f_wopd"].rows) == 7


def test_usual_maximums_for_one_code_overlap_only_for_the_same_patients(rules: Path) -> None:
    path = rules / "quantity_limits.toml"
    limit = '\n[[limits]]\nid = "{id}"\ncodes = ["E1399"]\nquantity = 1\nperiod_months = 1\nwhen = "{when}"\n'
    limit += 'effective_from = 2024-01-01\nsource = "L33822"\n'
    original = path.read_text()
    path.write_text(
        original + limit.format(id="a", when="insulin_treated") + limit.format(id="b", when="not_insulin_treated")
    )
    rows = load_rule_sets(rules)["quantity_limits"].rows
    assert [row.get("when") for row in rows[-2:]] == ["insulin_treated", "not_insulin_treated"]
    path.write_text(
        original + limit.format(id="a", when="insulin_treated") + limit.format(id="b", when="insulin_treated")
    )
    with pytest.raises(RuleFileError) as raised:
        load_rule_sets(rules)
    assert (
        str(raised.value)
        == f"quantity_limits.toml: rows {len(rows) - 1} and {len(rows)} are both in force for E1399 on one day"
    )


MEDICATIONS = "medication_safety.toml"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'id = "medullary_thyroid_carcinoma"\nlabel',
            'id = "thyroid_cancer"\nlabel',
            "medication_safety.toml: conditions not in the patient intake's list: thyroid_cancer",
        ),
        (
            'kind = "sex"',
            'kind = "gender"',
            "medication_safety.toml row 15: kind must be one of interaction, duplicate_therapy, contraindication, sex",
        ),
        (
            'drug_class = "five_alpha_reductase_inhibitor"\nsex',
            'drug_class = "antiandrogen"\nsex',
            "medication_safety.toml row 15: unknown drug class 'antiandrogen'",
        ),
        (
            'with_class = "nitrate"',
            'with_class = "nitrates"',
            "medication_safety.toml row 1: unknown drug class 'nitrates'",
        ),
        ('condition = "men2"', 'condition = "men3"', "medication_safety.toml row 8: unknown condition 'men3'"),
        (
            'sex = "female"',
            'sex = "woman"',
            "medication_safety.toml row 15: sex must be one of female, male, other, unknown",
        ),
        (
            'id = "tadalafil"\nlabel',
            'id = "sildenafil"\nlabel',
            "medication_safety.toml medication_names entry 2: id must be a unique slug",
        ),
        (
            'names = ["tadalafil", "cialis", "adcirca", "alyq", "tadliq"]',
            "names = []",
            "medication_safety.toml medication_names entry 2 (tadalafil): names must be a non-empty list of names",
        ),
        (
            'names = ["tadalafil", "cialis", "adcirca", "alyq", "tadliq"]',
            'names = ["tadalafil", " "]',
            "medication_safety.toml medication_names entry 2 (tadalafil): names must be a non-empty list of names",
        ),
        (
            'id = "tadalafil"\nlabel',
            'id = ""\nlabel',
            "medication_safety.toml medication_names entry 2: id must be a unique slug",
        ),
        (
            'classes = ["pde5_inhibitor"]\nnames = ["tadalafil"',
            'classes = ["pde5", "pde_5"]\nnames = ["tadalafil"',
            "medication_safety.toml medication_names entry 2 (tadalafil): unknown drug classes pde5, pde_5",
        ),
        (
            'rxcui = "358263"',
            'rxcui = "RX358263"',
            "medication_safety.toml medication_names entry 2 (tadalafil): rxcui must be digits",
        ),
        (
            'rxnorm_products = ["402019",',
            'rxnorm_products = ["577033",',
            "medication_safety.toml medication_names entry 2 (tadalafil): RxNorm 577033 is already listed for"
            " sildenafil",
        ),
    ],
)
def test_a_medication_safety_file_naming_unknown_things_is_refused(
    rules: Path, old: str, new: str, message: str
) -> None:
    assert refusal(rules, MEDICATIONS, old, new) == message


def test_a_medication_file_without_conditions_or_classes_is_refused_at_the_rows_naming_them(rules: Path) -> None:
    message = refusal(rules, MEDICATIONS, "[[conditions]]", "[[retired_conditions]]", count=-1)
    assert message == "medication_safety.toml row 6: unknown condition 'medullary_thyroid_carcinoma'"


def test_every_condition_the_intake_does_not_know_is_named(rules: Path) -> None:
    path = rules / MEDICATIONS
    text = path.read_text().replace('id = "pheochromocytoma"', 'id = "adrenal_tumour"', 1)
    path.write_text(text)
    message = refusal(rules, MEDICATIONS, 'id = "men2"\nlabel', 'id = "men_two"\nlabel')
    assert message == "medication_safety.toml: conditions not in the patient intake's list: adrenal_tumour, men_two"


def test_a_medication_file_without_classes_is_refused(rules: Path) -> None:
    message = refusal(rules, MEDICATIONS, "[[drug_classes]]", "[[retired_classes]]", count=-1)
    assert message.startswith("medication_safety.toml ")
    assert "unknown drug class" in message


def test_a_medication_file_without_a_names_table_or_an_entry_without_classes_loads(rules: Path) -> None:
    path = rules / MEDICATIONS
    text = path.read_text()
    path.write_text(text.replace('classes = ["pde5_inhibitor"]\nnames = ["tadalafil"', 'names = ["tadalafil"', 1))
    tadalafil = medication_table(load_rule_sets(rules)["medication_safety"]).recognise("cialis").entries
    assert [(entry.id, entry.classes) for entry in tadalafil] == [("tadalafil", ())]
    path.write_text(text.replace("[[medication_names]]", "[[retired_names]]"))
    assert "medication_names" not in load_rule_sets(rules)["medication_safety"].tables


# --- reading recorded medications ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Metoprolol ER 25 mg PO BID", ("metoprolol",)),  # form, dose, route and frequency dropped
        ("ASPIRIN;81", ("aspirin",)),
        ("Lidocaine 5% patch", ("lidocaine",)),
        ("Humalog 10u3x daily", ("humalog",)),  # "10u3x": every number split from its unit
        ("PDE-5 inhibitor", ("pde5", "inhibitor")),
        ("glp 1 RA", ("glp1", "ra")),
        ("", ()),
    ],
)
def test_recorded_text_is_reduced_to_the_words_that_may_name_a_drug(text: str, words: tuple[str, ...]) -> None:
    assert normalise(text) == words


@pytest.fixture
def table() -> MedicationTable:
    return medication_table(load_rule_sets()["medication_safety"])


def ingredients(table: MedicationTable, text: str) -> list[str]:
    return [entry.id for entry in table.recognise(text).entries]


def test_names_are_recognised_in_the_order_they_appear_each_ingredient_once(table: MedicationTable) -> None:
    assert ingredients(table, "NTG, Viagra") == ["nitroglycerin", "sildenafil"]
    assert ingredients(table, "Viagra and sildenafil citrate") == ["sildenafil"]
    assert ingredients(table, "Lantus with insulin") == ["insulin_glargine", "insulin_unspecified"]


def test_a_name_matches_only_as_whole_words(table: MedicationTable) -> None:
    assert ingredients(table, "Viagrax") == []
    assert ingredients(table, "nonsildenafil") == []


def test_the_longest_name_wins_and_its_words_are_not_read_again() -> None:
    # A table of two entries whose names overlap: "insulin glargine" is read once, as one name,
    # and its second word is not read again as the other entry's name.
    table = MedicationTable(
        [
            {"id": "insulin_glargine", "classes": ["insulin"], "names": ["insulin glargine"]},
            {"id": "glargine_only", "names": ["glargine"]},
            {"id": "insulin_unspecified", "classes": ["insulin"], "names": ["insulin"]},
        ]
    )
    assert ingredients(table, "insulin glargine 10 units") == ["insulin_glargine"]
    assert ingredients(table, "glargine, insulin") == ["glargine_only", "insulin_unspecified"]


def test_an_entry_without_a_label_or_rxcui_is_labelled_by_its_id() -> None:
    # (a name of noise words alone names nothing)
    table = MedicationTable(
        [{"id": "minoxidil", "rxcui": "", "names": ["loniten", "10 mg tab"], "rxnorm_products": ["197987"]}]
    )
    entry = table.product("197987")
    assert entry is not None
    assert (entry.label, entry.rxcui, entry.classes) == ("minoxidil", None, ())
    assert table.product("197986") is None
    assert table.names() == {("loniten",): [entry]}


def test_an_entry_keeps_its_label() -> None:
    table = MedicationTable([{"id": "isosorbide_mononitrate", "label": "isosorbide mononitrate", "names": ["ismn"]}])
    assert [entry.label for entry in table.recognise("ISMN 30 mg").entries] == ["isosorbide mononitrate"]


def test_a_name_after_an_unrecognised_word_is_read(table: MedicationTable) -> None:
    assert ingredients(table, "aspirin imdur") == ["isosorbide_mononitrate"]
    assert ingredients(table, "aspirin lisinopril NTG") == ["nitroglycerin"]


def test_an_empty_table_or_a_rule_set_without_one_recognises_nothing() -> None:
    assert MedicationTable([]).recognise("Imdur 60 mg").entries == ()
    without = dataclasses.replace(load_rule_sets()["medication_safety"], tables={})
    assert medication_table(without).recognise("Imdur 60 mg").entries == ()


def test_blank_entries_are_not_read_and_a_class_is_found_in_any_entry(table: MedicationTable) -> None:
    assert [entry.text for entry in table.recognise_all(["", "   ", "NTG"])] == ["NTG"]
    assert table.recognise_all(None) == []
    assert table.names_class(["Lisinopril 10 mg", "Lantus 20 units"], "insulin") is True
    assert table.names_class(["Lisinopril 10 mg"], "insulin") is False
    assert table.recognise("Cialis").classes == frozenset({"pde5_inhibitor"})


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        # The findings quote a drug class's and a condition's label, and a program's name.
        (
            MEDICATIONS,
            'label = "Nitrates and nitrites',
            'title = "Nitrates and nitrites',
            "medication_safety.toml drug_classes entry 5: id and label are required",
        ),
        (
            MEDICATIONS,
            'label = "Multiple endocrine neoplasia',
            'label = ""\nnote = "Multiple endocrine neoplasia',
            "medication_safety.toml conditions entry 3: id and label are required",
        ),
        (
            "prior_authorization.toml",
            'name = "Lower Limb Prostheses"',
            'title = "Lower Limb Prostheses"',
            "prior_authorization.toml programs entry 3: id and name are required",
        ),
        (
            "prior_authorization.toml",
            'program = "LLP"',
            'program = "LOWER_LIMB"',
            "prior_authorization.toml row 12: unknown program 'LOWER_LIMB'",
        ),
    ],
)
def test_a_label_or_program_that_a_finding_quotes_must_be_in_the_file(
    rules: Path, file: str, old: str, new: str, message: str
) -> None:
    assert refusal(rules, file, old, new) == message
