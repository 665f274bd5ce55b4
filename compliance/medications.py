"""Recognising medications and allergies as recorded: free text → RxNorm ingredients and drug classes.

The one table of medication names is ``[[medication_names]]`` in ``rules/medication_safety.toml``:
each entry is an ingredient (its RxNorm ingredient RXCUI where confirmed), the drug classes it
belongs to, and the generic names, brand names and common abbreviations that name it
("nitroglycerin", "Nitrostat", "NTG"). A combination product's brand is listed under each of its
ingredients. The table is part of the medication safety rule set, so its version is recorded with
every compliance snapshot: a decision can be traced to the names it matched.

Free text is normalised before matching (``normalise``): case, punctuation and parentheses,
doses and units ("0.4 mg", "60mg"), and route, form and frequency words ("SL", "PO", "PRN",
"daily", "tab") are dropped, so "Nitroglycerin, 0.4 mg SL PRN", "Imdur(60mg)" and "Nitrostat."
are read as "nitroglycerin", "imdur" and "nitrostat". A name then matches as whole words anywhere
in what remains, longest name first ("insulin glargine" before "insulin").

Why patient records keep the text as recorded and are coded on reading (not stored as codes):
the text is what the patient or the prescriber reported and stays the clinical record; coding it
on every read means an entry the table learns to recognise later ("Dilatrate-SR" added as a
brand) is recognised in every existing record at once, without a data migration and without
stale codes frozen at intake. Everything that reads an entry's meaning (the medication safety
check, the insulin-treatment decision of the usual maximums) calls ``recognise`` through the same
table, so they always agree on what an entry means.

The engine reads no database; this module reads only the rule set it is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .rulebook import RuleSet

# Words that say how, when or in what form a drug is taken, and units of dose: they never name a
# drug, so they are dropped before matching ("nitroglycerin 0.4 mg SL PRN" → "nitroglycerin").
_NOISE_TEXT = """
    mg mcg ug g gm gram grams ml l unit units u iu meq mmol percent hr hrs h
    sl subl sublingual po oral orally by mouth iv im sc subq subcut sq sub q td topical transdermal inh inhaled
    prn as needed when required daily qd qday bid tid qid qod qhs hs qam qpm am pm q weekly monthly once twice
    three times a day days week weeks every night nightly morning evening bedtime before after meals with food
    tab tabs tablet tablets cap caps capsule capsules pill pills er xr sr xl la cr dr ir ec odt
    pen pens injection injections inj injectable vial vials spray sprays patch patches film solution susp
    suspension drops cream gel ointment kit dose doses take takes taking use uses using x for of and or the
"""
_NOISE_WORDS = frozenset(_NOISE_TEXT.split())
# "GLP-1", "GLP 1", "PDE-5": the number is part of a class name, so it is joined before numbers go.
_JOINED_CLASS_NAMES = (
    (re.compile(r"\bglp 1\b"), "glp1"),
    (re.compile(r"\bpde 5\b"), "pde5"),
)
_NUMBER_AND_UNIT = re.compile(r"(\d)([a-z%])|([a-z%])(\d)")
_NOT_A_WORD = re.compile(r"[^a-z0-9%]+")
_NUMBER = re.compile(r"^[0-9%]+$")


def normalise(text: str) -> tuple[str, ...]:
    """The words of ``text`` that may name a drug: lower case, punctuation and parentheses as
    spaces, a number split from its unit ("60mg"), numbers, units and route/form/frequency words
    dropped. ``normalise("Imdur(60mg)") == ("imdur",)``."""
    spaced = _NOT_A_WORD.sub(" ", text.lower())
    for _ in range(2):  # twice: "a1b" overlaps
        spaced = _NUMBER_AND_UNIT.sub(lambda m: " ".join(part for part in m.groups() if part), spaced)
    for pattern, joined in _JOINED_CLASS_NAMES:
        spaced = pattern.sub(joined, spaced)
    return tuple(word for word in spaced.split() if word not in _NOISE_WORDS and not _NUMBER.match(word))


@dataclass(frozen=True)
class MedicationEntry:
    """One ingredient of the table: ``id`` (a slug, e.g. "isosorbide_mononitrate"), its label, its
    RxNorm ingredient RXCUI (None where not confirmed), its drug classes, and the RxNorm clinical
    drug codes (SCD/SBD) of products the clinic dispenses with it."""

    id: str
    label: str
    rxcui: str | None
    classes: tuple[str, ...]
    rxnorm_products: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecognisedEntry:
    """A medication or allergy as recorded, and what the table recognised in it (none: ``()``)."""

    text: str
    entries: tuple[MedicationEntry, ...]

    @property
    def recognised(self) -> bool:
        return bool(self.entries)

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(drug_class for entry in self.entries for drug_class in entry.classes)


class MedicationTable:
    """The ``[[medication_names]]`` table of a medication safety rule set, indexed for matching.

    ``entries`` as the rule book checks them: each has an ``id`` and a non-empty list of ``names``.
    """

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self._by_name: dict[tuple[str, ...], list[MedicationEntry]] = {}
        self._by_product: dict[str, MedicationEntry] = {}
        for raw in entries:
            entry = MedicationEntry(
                id=raw["id"],
                label=raw.get("label", raw["id"]),
                rxcui=raw.get("rxcui") or None,
                classes=tuple(raw.get("classes", ())),
                rxnorm_products=tuple(raw.get("rxnorm_products", ())),
            )
            for name in raw["names"]:
                words = normalise(name)
                if words:
                    self._by_name.setdefault(words, []).append(entry)
            for code in entry.rxnorm_products:
                self._by_product[code] = entry
        self._longest = max((len(words) for words in self._by_name), default=0)

    def names(self) -> dict[tuple[str, ...], list[MedicationEntry]]:
        """Every name (as normalised words) and the entries it names; for checking the file."""
        return dict(self._by_name)

    def product(self, rxnorm_code: str) -> MedicationEntry | None:
        """The ingredient of a catalog product by its RxNorm clinical drug code, or None."""
        return self._by_product.get(rxnorm_code)

    def recognise(self, text: str) -> RecognisedEntry:
        """What ``text`` names: each entry whose name appears in it as whole words, longest first,
        in the order they appear (a name is counted once)."""
        words = normalise(text)
        found: dict[str, MedicationEntry] = {}
        position = 0
        while position < len(words):
            for length in range(min(self._longest, len(words) - position), 0, -1):
                matched = self._by_name.get(words[position : position + length])
                if matched:
                    for entry in matched:
                        found.setdefault(entry.id, entry)
                    position += length
                    break
            else:
                position += 1
        return RecognisedEntry(text=text, entries=tuple(found.values()))

    def recognise_all(self, texts: Sequence[str] | None) -> list[RecognisedEntry]:
        return [self.recognise(text) for text in texts or () if isinstance(text, str) and text.strip()]

    def names_class(self, texts: Sequence[str] | None, drug_class: str) -> bool:
        """Whether any of ``texts`` names a drug of ``drug_class``."""
        return any(drug_class in recognised.classes for recognised in self.recognise_all(texts))


def medication_table(rule_set: RuleSet) -> MedicationTable:
    """The medication names table of the medication safety rule set, indexed once per loaded rule
    set (``RuleSet.derived``): a new version of the file is a new rule set, with its own table."""
    return rule_set.derived(
        "medication_table", lambda loaded: MedicationTable(loaded.tables.get("medication_names", ()))
    )
