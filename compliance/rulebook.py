"""Loading and validating the rule files in ``compliance/rules/`` (see its README.md for their format).

``load_rule_sets()`` returns every rule set, parsed and checked. Parsed files are kept per process
keyed by their path, size and modification time, so an edited file is read again on next use and
nothing shared between processes is assumed.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings

from core.identifiers import is_valid_hcpcs
from patients.models import AdministrativeSex, HistoryCondition

# The rule sets the engine needs; a missing file is an error, not an empty table.
REQUIRED_RULE_SETS = (
    "standard_written_order",
    "f2f_wopd",
    "prior_authorization",
    "quantity_limits",
    "refills",
    "medication_safety",
)
# Row tables by rule set (most files call theirs "rows").
_ROW_TABLE = {"quantity_limits": "limits"}
# The elements of a standard written order the engine checks (standard_written_order.toml ``element``).
SWO_ELEMENTS = ("beneficiary", "order_date", "item_description", "quantity", "practitioner", "signature")
# Whom a usual maximum applies to (quantity_limits.toml ``when``).
USUAL_MAXIMUM_PATIENTS = ("any", "insulin_treated", "not_insulin_treated")
# The months settings each rule set must state: how much supply may be dispensed at a time, and the
# window before the order in which the face-to-face encounter must fall.
_MONTHS_SETTINGS = {"quantity_limits": ("dispense_at_most_months",), "f2f_wopd": ("f2f_window_months",)}
# Rule sets in which one HCPCS code may be in force in one row only on any day (per state set).
_ONE_ROW_PER_CODE = ("f2f_wopd", "prior_authorization", "quantity_limits")


class RuleFileError(ValueError):
    """A rule file is missing, unreadable or inconsistent; the message names the file and row."""


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    url: str

    def cite(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "url": self.url}


@dataclass(frozen=True)
class Row:
    """One rule row: its fields, its dates and its source."""

    rule_set: str
    index: int
    fields: Mapping[str, Any]
    effective_from: dt.date
    effective_to: dt.date | None
    source: Source

    def in_force(self, on: dt.date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.fields.get("codes", ()))


Derived = TypeVar("Derived")


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    title: str
    settings: Mapping[str, Any]
    sources: Mapping[str, Source]
    rows: tuple[Row, ...]
    tables: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)

    def rows_in_force(self, on: dt.date) -> list[Row]:
        return [row for row in self.rows if row.in_force(on)]

    def derived(self, name: str, build: Callable[[RuleSet], Derived]) -> Derived:
        """``build(self)``, computed once per rule set and kept with it under ``name``.

        A loaded rule set never changes (and ``load_rule_sets`` loads a new one when its file
        does), so whatever is derived from it (an index of one of its tables, say) is built once,
        not on every check. Not a field: equality and ``repr`` ignore it.
        """
        memo: dict[str, Any] = self.__dict__.setdefault("_derived", {})
        if name not in memo:
            memo[name] = build(self)
        return memo[name]


def rules_dir() -> Path:
    return Path(settings.COMPLIANCE_RULES_DIR)


def load_rule_sets(directory: Path | None = None) -> dict[str, RuleSet]:
    """Every rule set of ``directory`` (default: settings.COMPLIANCE_RULES_DIR), validated.

    Raises RuleFileError naming the file and row of the first problem found.
    """
    directory = directory or rules_dir()
    stamps = []
    for name in REQUIRED_RULE_SETS:
        path = directory / f"{name}.toml"
        try:
            stat = path.stat()
        except OSError as error:
            raise RuleFileError(f"{path.name}: missing ({error.strerror})") from error
        stamps.append((name, str(path), stat.st_size, stat.st_mtime_ns))
    return _load(tuple(stamps))


def rule_versions(rule_sets: Mapping[str, RuleSet]) -> dict[str, str]:
    return {name: rule_set.version for name, rule_set in sorted(rule_sets.items())}


@functools.lru_cache(maxsize=8)
def _load(stamps: tuple[tuple[str, str, int, int], ...]) -> dict[str, RuleSet]:
    return {name: _parse(name, Path(path)) for name, path, _size, _mtime in stamps}


def _parse(name: str, path: Path) -> RuleSet:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise RuleFileError(f"{path.name}: cannot be read: {error}") from error
    if data.get("rule_set") != name:
        raise RuleFileError(f"{path.name}: rule_set must be {name!r}")
    for key in ("version", "title"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise RuleFileError(f"{path.name}: {key} is required")
    sources = {}
    for entry in data.get("sources", []):
        if not all(isinstance(entry.get(key), str) and entry[key] for key in ("id", "title", "url")):
            raise RuleFileError(f"{path.name}: every source needs id, title and url")
        if entry["id"] in sources:
            raise RuleFileError(f"{path.name}: source {entry['id']!r} is listed twice")
        sources[entry["id"]] = Source(entry["id"], entry["title"], entry["url"])
    table = _ROW_TABLE.get(name, "rows")
    rows = tuple(_parse_row(name, path, index, raw, sources) for index, raw in enumerate(data.get(table, []), start=1))
    if not rows:
        raise RuleFileError(f"{path.name}: no [[{table}]] rows")
    if name in _ONE_ROW_PER_CODE:
        _check_no_overlap(path, rows)
    if name == "medication_safety":
        _check_medication_references(path, data, rows)
    if name == "prior_authorization":
        _check_programs(path, data, rows)
    for setting in _MONTHS_SETTINGS.get(name, ()):
        _check_months(path, data, setting)
    if name == "quantity_limits":
        _check_usual_maximum_patients(path, data, rows)
    if name == "standard_written_order":
        for row in rows:
            if row.get("element") not in SWO_ELEMENTS:
                raise RuleFileError(f"{path.name} row {row.index}: element must be one of {', '.join(SWO_ELEMENTS)}")
            if not isinstance(row.get("artifacts"), list):
                raise RuleFileError(f"{path.name} row {row.index}: artifacts must list what supplies the element")

    def is_table(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)

    scalar_settings = {key: value for key, value in data.items() if not is_table(value)}
    other_tables = {
        key: tuple(value) for key, value in data.items() if is_table(value) and key not in ("sources", table)
    }
    return RuleSet(
        name=name,
        version=data["version"],
        title=data["title"],
        settings=scalar_settings,
        sources=sources,
        rows=rows,
        tables=other_tables,
    )


def _parse_row(name: str, path: Path, index: int, raw: dict[str, Any], sources: Mapping[str, Source]) -> Row:
    where = f"{path.name} row {index}"
    start, end = raw.get("effective_from"), raw.get("effective_to")
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise RuleFileError(f"{where}: effective_from must be a date")
    if end is not None and (not isinstance(end, dt.date) or isinstance(end, dt.datetime) or end < start):
        raise RuleFileError(f"{where}: effective_to must be a date on or after effective_from")
    source = sources.get(raw.get("source", ""))
    if source is None:
        raise RuleFileError(f"{where}: source {raw.get('source')!r} is not among the file's sources")
    bad_codes = [code for code in raw.get("codes", []) if not isinstance(code, str) or not is_valid_hcpcs(code)]
    if bad_codes:
        raise RuleFileError(f"{where}: not HCPCS Level II codes: {', '.join(map(str, bad_codes))}")
    return Row(rule_set=name, index=index, fields=raw, effective_from=start, effective_to=end, source=source)


# Row kinds of the medication safety file and the fields each needs; severities and what they mean
# are documented in the file (the engine maps them to hold / needs review).
MEDICATION_ROW_KINDS = ("interaction", "duplicate_therapy", "contraindication", "sex")
MEDICATION_SEVERITIES = ("contraindicated", "major")


def _check_medication_references(path: Path, data: dict[str, Any], rows: Iterable[Row]) -> None:
    """Conditions are the patient intake's vocabulary; every condition and drug class has an id
    and a label (the findings quote it); rows name known kinds, classes, conditions, sexes and
    severities; every medication name entry has names and known classes, and a catalog RxNorm code
    belongs to one ingredient only."""
    conditions = _labelled(path, data, "conditions", "label")
    unknown = conditions - set(HistoryCondition.values)
    if unknown:
        raise RuleFileError(f"{path.name}: conditions not in the patient intake's list: {', '.join(sorted(unknown))}")
    classes = _labelled(path, data, "drug_classes", "label")
    for row in rows:
        where = f"{path.name} row {row.index}"
        kind = row.get("kind")
        if kind not in MEDICATION_ROW_KINDS:
            raise RuleFileError(f"{where}: kind must be one of {', '.join(MEDICATION_ROW_KINDS)}")
        if row.get("severity") not in MEDICATION_SEVERITIES:
            raise RuleFileError(f"{where}: severity must be one of {', '.join(MEDICATION_SEVERITIES)}")
        if row.get("drug_class") not in classes:
            raise RuleFileError(f"{where}: unknown drug class {row.get('drug_class')!r}")
        if kind == "interaction" and row.get("with_class") not in classes:
            raise RuleFileError(f"{where}: unknown drug class {row.get('with_class')!r}")
        if kind == "contraindication" and row.get("condition") not in conditions:
            raise RuleFileError(f"{where}: unknown condition {row.get('condition')!r}")
        if kind == "sex" and row.get("sex") not in AdministrativeSex.values:
            raise RuleFileError(f"{where}: sex must be one of {', '.join(AdministrativeSex.values)}")
    _check_medication_names(path, data.get("medication_names", []), classes)


def _labelled(path: Path, data: dict[str, Any], table: str, label: str) -> set[str]:
    """The ids of ``table``'s entries, each of which must have an id and a ``label`` (non-empty text)."""
    ids: set[str] = set()
    for index, entry in enumerate(data.get(table, []), start=1):
        if not all(isinstance(entry.get(key), str) and entry[key] for key in ("id", label)):
            raise RuleFileError(f"{path.name} {table} entry {index}: id and {label} are required")
        ids.add(entry["id"])
    return ids


def _check_usual_maximum_patients(path: Path, data: dict[str, Any], rows: Iterable[Row]) -> None:
    """Whom each usual maximum applies to is stated (``when``), and so are the diagnoses that make a
    patient insulin-treated (codes, and code prefixes such as E10): the engine reads them as written."""
    for setting in ("insulin_treated_diagnoses", "insulin_treated_diagnosis_prefixes"):
        codes = data.get(setting)
        if not isinstance(codes, list) or not all(isinstance(code, str) and code for code in codes):
            raise RuleFileError(f"{path.name}: {setting} must be a list of ICD-10-CM codes")
    for row in rows:
        if row.get("when") not in USUAL_MAXIMUM_PATIENTS:
            raise RuleFileError(f"{path.name} row {row.index}: when must be one of {', '.join(USUAL_MAXIMUM_PATIENTS)}")


def _check_months(path: Path, data: dict[str, Any], setting: str) -> None:
    """A months setting the engine reads (it has no default) is stated, a whole number of at least 1."""
    months = data.get(setting)
    if type(months) is not int or months < 1:
        raise RuleFileError(f"{path.name}: {setting} must be a whole number of months, at least 1")


def _check_programs(path: Path, data: dict[str, Any], rows: Iterable[Row]) -> None:
    """Every program has an id and a name (the findings quote it), and every row names one."""
    programs = _labelled(path, data, "programs", "name")
    for row in rows:
        if row.get("program") not in programs:
            raise RuleFileError(f"{path.name} row {row.index}: unknown program {row.get('program')!r}")


def _check_medication_names(path: Path, entries: list[dict[str, Any]], classes: set[Any]) -> None:
    ids: set[str] = set()
    products: dict[str, str] = {}
    for index, entry in enumerate(entries, start=1):
        where = f"{path.name} medication_names entry {index}"
        entry_id = entry.get("id")
        if not isinstance(entry_id, str) or not entry_id or entry_id in ids:
            raise RuleFileError(f"{where}: id must be a unique slug")
        ids.add(entry_id)
        names = entry.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise RuleFileError(f"{where} ({entry_id}): names must be a non-empty list of names")
        unknown = set(entry.get("classes", ())) - classes
        if unknown:
            raise RuleFileError(f"{where} ({entry_id}): unknown drug classes {', '.join(sorted(unknown))}")
        rxcui = entry.get("rxcui")
        if rxcui is not None and not (isinstance(rxcui, str) and rxcui.isdigit()):
            raise RuleFileError(f"{where} ({entry_id}): rxcui must be digits")
        for code in entry.get("rxnorm_products", ()):
            if code in products:
                raise RuleFileError(f"{where} ({entry_id}): RxNorm {code} is already listed for {products[code]}")
            products[code] = entry_id


def _check_no_overlap(path: Path, rows: Iterable[Row]) -> None:
    seen: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
    for row in rows:
        states = tuple(sorted(row.get("states") or ()))
        for code in row.codes:
            for other in seen.get((code, states), []):
                if _overlaps(row, other) and row.get("when", "any") == other.get("when", "any"):
                    raise RuleFileError(
                        f"{path.name}: rows {other.index} and {row.index} are both in force for {code} on one day"
                    )
            seen.setdefault((code, states), []).append(row)


def _overlaps(a: Row, b: Row) -> bool:
    a_end = a.effective_to or dt.date.max
    b_end = b.effective_to or dt.date.max
    return a.effective_from <= b_end and b.effective_from <= a_end
