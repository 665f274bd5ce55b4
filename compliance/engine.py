"""The deterministic compliance engine: one input, the rule files, one result.

``evaluate(facts)`` runs every check against the rules in force on the order date (the date of
service where a rule speaks of delivery) and returns the findings and the disposition: any ``hold``
finding makes the order ``hold``; else any ``needs_review`` finding makes it ``needs_review``;
else it is ``clear``. ``info`` findings explain a decision (an item routed to dropship, a
suspended requirement) and never change the disposition. The engine reads no database and sends
nothing; it is safe to call for a draft on every keystroke.

The Medicare fee-for-service DMEPOS rules (face-to-face and WOPD, prior authorization, quantity
limits, refills) apply to insurance orders whose coverage is Medicare FFS (``payer_kind``
``medicare_ffs``); every insurance order gets its payer's rules (``payer_rules``), and one with no
coverage on file is ``COVERAGE_MISSING`` (hold). The standard written order, territory,
inventory, medication safety and duplicate-order checks apply to every order.

Items not yet delivered count: the patient's open orders (``ComplianceInput.open_orders``, status
``pending_verification`` up to ``shipped``) count against a usual maximum like deliveries do, and an
identical open order (``same_items``) is a ``DUPLICATE_ORDER`` finding that needs review.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.identifiers import is_valid_npi

from .inputs import ArtifactType, ComplianceInput, Delivery, ItemFacts, OpenOrder, OpenOrderLine
from .rulebook import Row, RuleSet, Source, load_rule_sets, rule_versions

# patients.PayerKind.MEDICARE_FFS: the payer kind the Medicare fee-for-service programs apply to
# (the engine reads no models, so the value is repeated here and pinned by a test).
MEDICARE_FFS = "medicare_ffs"


class Severity(StrEnum):
    HOLD = "hold"
    NEEDS_REVIEW = "needs_review"
    INFO = "info"


class Disposition(StrEnum):
    CLEAR = "clear"
    HOLD = "hold"
    NEEDS_REVIEW = "needs_review"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    rule: str
    source: Mapping[str, str] | None = None
    required_artifacts: tuple[str, ...] = ()
    field: str | None = None  # the order field it concerns, for inline display
    item: str | None = None  # the line's key when it concerns one line

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "rule": self.rule,
            "source": dict(self.source) if self.source else None,
            "required_artifacts": list(self.required_artifacts),
            "field": self.field,
            "item": self.item,
        }


@dataclass(frozen=True)
class ComplianceResult:
    disposition: Disposition
    findings: tuple[Finding, ...]
    rule_versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def required_artifacts(self) -> list[str]:
        """Every artifact that would resolve a hold or review finding, each once, sorted."""
        return sorted(
            {artifact for f in self.findings if f.severity != Severity.INFO for artifact in f.required_artifacts}
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "disposition": str(self.disposition),
            "findings": [finding.as_dict() for finding in self.findings],
            "required_artifacts": self.required_artifacts,
            "rule_versions": dict(self.rule_versions),
        }


def evaluate(facts: ComplianceInput, *, rule_sets: Mapping[str, RuleSet] | None = None) -> ComplianceResult:
    """Evaluate ``facts`` against the rule files (default: the configured folder)."""
    rule_sets = rule_sets if rule_sets is not None else load_rule_sets()
    check = _Checker(facts, rule_sets)
    findings = check.run()
    return ComplianceResult(
        disposition=disposition_of(findings), findings=findings, rule_versions=rule_versions(rule_sets)
    )


def disposition_of(findings: Iterable[Finding]) -> Disposition:
    severities = {finding.severity for finding in findings}
    if Severity.HOLD in severities:
        return Disposition.HOLD
    if Severity.NEEDS_REVIEW in severities:
        return Disposition.NEEDS_REVIEW
    return Disposition.CLEAR


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by ``months`` calendar months, clamped to the end of a shorter month."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _fmt(day: dt.date) -> str:
    return day.isoformat()


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Checker:
    def __init__(self, facts: ComplianceInput, rule_sets: Mapping[str, RuleSet]) -> None:
        self.facts = facts
        self.rules = rule_sets
        self.today = dt.date.today()
        self.order_date = facts.order_date or self.today
        # The date of service, the one date every rule that speaks of delivery uses (list membership
        # of the F2F/WOPD and prior-authorization lists, the WOPD deadline, a decision's validity,
        # usual maximums and refills): the delivery date once the order has been delivered, else the
        # requested delivery date, else the order date. The DME MACs apply list changes to dates of
        # service on or after their effective date (Noridian JD, "Updates to Prior Authorization and
        # F2F/WOPD Required Lists - Effective August 12, 2024"; see f2f_wopd.toml).
        self.date_of_service = facts.delivered_on or facts.requested_date or self.order_date
        self.delivery_date = self.date_of_service  # the same date, under the name the supply checks use
        self.findings: list[Finding] = []
        self.artifact_dates: dict[str, list[dt.date | None]] = {}
        for artifact in facts.artifacts:
            self.artifact_dates.setdefault(artifact.artifact_type, []).append(artifact.document_date)
        self.insurance = facts.payer_type == "insurance"
        self.medicare_ffs = self.insurance and facts.payer_kind == MEDICARE_FFS

    def run(self) -> tuple[Finding, ...]:
        self.standard_written_order()
        self.territory_and_credentials()
        if self.insurance:
            self.coverage()
            if self.medicare_ffs:
                self.face_to_face_and_wopd()
                self.prior_authorization()
                self.quantity_limits_and_refills()
            self.payer_rules()
        self.inventory()
        self.medication_safety()
        self.duplicate_orders()
        return tuple(self.findings)

    # --- helpers -------------------------------------------------------------------------------
    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        rule: str,
        source: Source | Mapping[str, str] | None = None,
        artifacts: Iterable[str] = (),
        field: str | None = None,
        item: ItemFacts | None = None,
    ) -> None:
        cited = source.cite() if isinstance(source, Source) else source
        self.findings.append(
            Finding(
                code=code,
                severity=severity,
                message=message,
                rule=rule,
                source=cited,
                required_artifacts=tuple(artifacts),
                field=field,
                item=item.key if item is not None else None,
            )
        )

    def has_artifact(self, *types: str) -> bool:
        return any(self.artifact_dates.get(t) for t in types)

    def artifact_dated(self, *types: str, on_or_before: dt.date) -> bool:
        return any(d is not None and d <= on_or_before for t in types for d in self.artifact_dates.get(t, []))

    def coded_items(self) -> list[ItemFacts]:
        return [item for item in self.facts.items if item.hcpcs]

    # --- 1. standard written order -------------------------------------------------------------
    def standard_written_order(self) -> None:
        facts = self.facts
        present = {
            "beneficiary": facts.patient.known and (facts.patient.has_name or facts.patient.has_mbi),
            "order_date": facts.order_date is not None,
            "item_description": bool(facts.items) and all(i.description or i.hcpcs for i in facts.items),
            "quantity": bool(facts.items) and all((i.quantity or 0) >= 1 for i in facts.items),
            "practitioner": facts.provider.known and bool(facts.provider.name or facts.provider.npi),
            "signature": facts.signed_on is not None or self.has_artifact(ArtifactType.SWO, ArtifactType.WOPD),
        }
        fields = {
            "beneficiary": "patient_id",
            "order_date": "order_date",
            "item_description": "items",
            "quantity": "items",
            "practitioner": "provider_id",
            "signature": "signature",
        }
        for row in self.rules["standard_written_order"].rows_in_force(self.order_date):
            element = row["element"]
            if not present.get(element, True):
                self.add(
                    f"SWO_MISSING_{element.upper()}",
                    Severity.HOLD,
                    f"The written order lacks the {row['label']}.",
                    rule="standard_written_order",
                    source=row.source,
                    artifacts=row.get("artifacts", ()),
                    field=fields.get(element),
                )

    # --- 8. territory and credentials ----------------------------------------------------------
    def territory_and_credentials(self) -> None:
        provider, patient = self.facts.provider, self.facts.patient
        rule = "territory"
        if provider.known:
            if not provider.npi or not is_valid_npi(provider.npi):
                self.add(
                    "PROVIDER_NPI_INVALID",
                    Severity.HOLD,
                    "The ordering provider has no valid NPI on file.",
                    rule=rule,
                    field="provider_id",
                )
            if not provider.credentialed_in_territory:
                self.add(
                    "PROVIDER_NOT_CREDENTIALED",
                    Severity.HOLD,
                    "The ordering provider has no active credential in the order's territory on the order date.",
                    rule=rule,
                    field="provider_id",
                )
        if patient.known and not patient.in_territory:
            self.add(
                "PATIENT_OUTSIDE_TERRITORY",
                Severity.HOLD,
                "The patient is not registered in the order's territory.",
                rule=rule,
                field="patient_id",
            )

    # --- coverage -------------------------------------------------------------------------------
    def coverage(self) -> None:
        """An insurance order needs coverage on file: nobody could bill it otherwise, and which
        payer's rules apply depends on it."""
        if self.facts.payer_kind is None:
            self.add(
                "COVERAGE_MISSING",
                Severity.HOLD,
                "The order is billed to insurance but the patient has no insurance coverage, with its kind of"
                " payer, on file for the order date: add it to the patient's record, then check again.",
                rule="coverage",
                field="payer_type",
            )

    # --- 2. face-to-face encounter and written order prior to delivery ------------------------
    def face_to_face_and_wopd(self) -> None:
        rule_set = self.rules["f2f_wopd"]
        listed: dict[str, Row] = {}
        # Membership is decided on the date of service; the encounter window counts back from the
        # order date (42 CFR 410.38(d): six months before the order).
        for row in rule_set.rows_in_force(self.date_of_service):
            for code in row.codes:
                listed[code] = row
        items = [item for item in self.coded_items() if item.hcpcs in listed]
        if not items:
            return
        codes = ", ".join(sorted({item.hcpcs or "" for item in items}))
        source = listed[items[0].hcpcs or ""].source
        window_months = int(rule_set.settings.get("f2f_window_months", 6))
        window_start = add_months(self.order_date, -window_months)
        note_dates = [d for d in self.artifact_dates.get(ArtifactType.F2F_NOTE, []) if d is not None]
        encounter = self.facts.f2f_date or (max(note_dates) if note_dates else None)
        rule = "f2f_wopd"
        if encounter is None:
            self.add(
                "F2F_ENCOUNTER_REQUIRED",
                Severity.HOLD,
                f"{codes} need a face-to-face encounter within the {window_months} months before the order.",
                rule=rule,
                source=source,
                artifacts=[ArtifactType.F2F_NOTE],
                field="f2f_date",
            )
        elif not (window_start <= encounter <= self.order_date):
            self.add(
                "F2F_ENCOUNTER_OUT_OF_WINDOW",
                Severity.HOLD,
                f"{codes} need a face-to-face encounter between {_fmt(window_start)} and {_fmt(self.order_date)};"
                f" the one on file is dated {_fmt(encounter)}.",
                rule=rule,
                source=source,
                artifacts=[ArtifactType.F2F_NOTE],
                field="f2f_date",
            )
        elif not self.has_artifact(ArtifactType.F2F_NOTE):
            self.add(
                "F2F_NOTE_REQUIRED",
                Severity.HOLD,
                f"{codes} need the face-to-face encounter note on file.",
                rule=rule,
                source=source,
                artifacts=[ArtifactType.F2F_NOTE],
                field="attachments",
            )
        signed_in_time = self.facts.signed_on is not None and self.facts.signed_on <= self.date_of_service
        if not signed_in_time and not self.artifact_dated(
            ArtifactType.WOPD, ArtifactType.SWO, on_or_before=self.date_of_service
        ):
            self.add(
                "WOPD_REQUIRED",
                Severity.HOLD,
                f"{codes} need a written order dated on or before delivery ({_fmt(self.date_of_service)}).",
                rule=rule,
                source=source,
                artifacts=[ArtifactType.WOPD],
                field="signature",
            )

    # --- 3. prior authorization ----------------------------------------------------------------
    def prior_authorization(self) -> None:
        rule_set = self.rules["prior_authorization"]
        programs = {program["id"]: program for program in rule_set.tables.get("programs", ())}
        state = (self.facts.patient.state or "").upper()
        rows_by_code: dict[str, Row] = {}
        for row in rule_set.rows_in_force(self.date_of_service):
            states = row.get("states")
            if states and state not in states:
                continue
            for code in row.codes:
                rows_by_code[code] = row
        for item in self.coded_items():
            listed = rows_by_code.get(item.hcpcs or "")
            if listed is None:
                continue
            row = listed
            program = programs.get(row["program"], {})
            name = program.get("name", row["program"])
            if row.get("status") == "suspended":
                self.add(
                    "PRIOR_AUTH_SUSPENDED",
                    Severity.INFO,
                    f"Prior authorization for {item.hcpcs} ({name}) is suspended on {_fmt(self.date_of_service)}.",
                    rule="prior_authorization",
                    source=row.source,
                    item=item,
                )
                continue
            self._require_prior_auth(
                item,
                rule="prior_authorization",
                source=row.source,
                label=f"the CMS Required Prior Authorization List ({name})",
                validity=program,
                code_prefix="PRIOR_AUTH",
            )

    def _require_prior_auth(
        self,
        item: ItemFacts,
        *,
        rule: str,
        source: Source | Mapping[str, str] | None,
        label: str,
        validity: Mapping[str, Any],
        code_prefix: str,
    ) -> None:
        """Hold unless an affirmed decision for the item covers the date of service.

        A decision is per HCPCS code: a decision on file counts for its own code, and an attached
        ``PRIOR_AUTH`` document only for the codes it names (one naming E0651 does not clear E0652).
        """
        delivery = self.date_of_service
        decisions = [pa for pa in self.facts.prior_authorizations if pa.hcpcs == item.hcpcs]
        attached = [
            artifact.document_date
            for artifact in self.facts.artifacts
            if artifact.artifact_type == ArtifactType.PRIOR_AUTH
            and artifact.document_date is not None
            and item.hcpcs in artifact.hcpcs_codes
        ]
        valid_until: list[dt.date] = []
        for pa in decisions:
            if pa.affirmed and pa.decision_date <= delivery:
                valid_until.append(pa.expires_on or _valid_until(pa.decision_date, validity))
        valid_until += [_valid_until(day, validity) for day in attached if day <= delivery]
        if any(until >= delivery for until in valid_until):
            return
        if valid_until:
            code, message = (
                f"{code_prefix}_EXPIRED",
                f"{item.hcpcs} is on {label}; the affirmed decision on file expired on {_fmt(max(valid_until))},"
                f" before delivery on {_fmt(delivery)}.",
            )
        elif any(not pa.affirmed for pa in decisions):
            code, message = (
                f"{code_prefix}_NON_AFFIRMED",
                f"{item.hcpcs} is on {label}; the decision on file is non-affirmed.",
            )
        else:
            code, message = (
                f"{code_prefix}_REQUIRED",
                f"{item.hcpcs} is on {label}; no affirmed prior authorization is on file.",
            )
        self.add(code, Severity.HOLD, message, rule=rule, source=source, artifacts=[ArtifactType.PRIOR_AUTH], item=item)

    # --- 4 and 5. quantity limits and refills --------------------------------------------------
    def quantity_limits_and_refills(self) -> None:
        pools: dict[int, tuple[Row, list[ItemFacts]]] = {}
        for row in quantity_limit_rows(self.rules["quantity_limits"], self.facts.diagnosis_codes, self.delivery_date):
            for item in self.coded_items():
                if item.hcpcs in row.codes:
                    pools.setdefault(row.index, (row, []))[1].append(item)
        for row, items in pools.values():
            self._quantity_limit(row, items)
            self._refill(row, items)

    def _quantity_limit(self, row: Row, items: list[ItemFacts]) -> None:
        period = int(row["period_months"])
        allowed = int(row["quantity"])
        window_start = add_months(self.delivery_date, -period)
        delivered = sum(
            d.quantity
            for d in self.facts.supply_history
            if d.hcpcs in row.codes and window_start < d.delivered_on <= self.delivery_date
        )
        # Open orders will deliver within the same rolling window as this one when their expected
        # day is less than a period away on either side (a window ending on the later of the two
        # days holds both); see OPEN_ORDERS_SOURCE.
        window_end = add_months(self.delivery_date, period)
        on_open_orders = [
            (order, line)
            for order in self.facts.open_orders
            if window_start < order.expected_on < window_end
            for line in order.lines
            if line.hcpcs in row.codes
        ]
        pending = sum(line.quantity for _order, line in on_open_orders)
        ordered = sum(item.quantity or 0 for item in items)
        if delivered + pending + ordered <= allowed:
            return
        codes = ", ".join(sorted({item.hcpcs or "" for item in items}))
        pooled = f" (shared by {', '.join(row.codes)})" if len(row.codes) > 1 else ""
        if pending:
            references = ", ".join(sorted({order.reference for order, _line in on_open_orders}))
            counted = f"{ordered} ordered, {delivered} delivered and {pending} on open orders ({references})"
        else:
            counted = f"{ordered} ordered and {delivered} delivered"
        message = (
            f"{codes}: {counted} in the {_plural(period, 'month')} to"
            f" {_fmt(self.delivery_date)} exceed the usual maximum of {allowed} per {_plural(period, 'month')}"
            f" for {row['description']}{pooled}."
        )
        if self.has_artifact(ArtifactType.MEDICAL_NECESSITY):
            severity, message = Severity.NEEDS_REVIEW, message + " Medical-necessity documentation is attached."
        else:
            severity = Severity.HOLD
        self.add(
            "QUANTITY_LIMIT_EXCEEDED",
            severity,
            message,
            rule="quantity_limits",
            source=row.source,
            artifacts=[ArtifactType.MEDICAL_NECESSITY],
            field="quantity",
            item=items[0],
        )

    def _refill(self, limit: Row, items: list[ItemFacts]) -> None:
        history = [
            d for d in self.facts.supply_history if d.hcpcs in limit.codes and d.delivered_on <= self.delivery_date
        ]
        if not history:
            return  # a first delivery, not a refill
        refill_rows = self.rules["refills"].rows_in_force(self.delivery_date)
        if not refill_rows:
            return
        refill = refill_rows[0]
        last_day, supply_end, earliest = _supply_window(limit, refill, history)
        codes = ", ".join(sorted({item.hcpcs or "" for item in items}))
        if self.delivery_date < earliest:
            self.add(
                "REFILL_TOO_EARLY",
                Severity.HOLD,
                f"{codes}: the supply delivered on {_fmt(last_day)} lasts until {_fmt(supply_end)}; a refill may be"
                f" delivered from {_fmt(earliest)}, not on {_fmt(self.delivery_date)}.",
                rule="refills",
                source=refill.source,
                field="requested_date",
                item=items[0],
            )
        # Before 2024 the contact window counted back from delivery; since CMS-1780-F it counts back
        # from the expected end of the current supply (the row's contact_anchor says which).
        anchor = supply_end if refill.get("contact_anchor") == "expected_end_of_supply" else self.delivery_date
        window_start = anchor - dt.timedelta(days=int(refill["contact_no_sooner_than_days"]))
        confirmations = self.artifact_dates.get(ArtifactType.PATIENT_REFILL_CONFIRMATION, [])
        if not any(d is not None and window_start <= d <= self.delivery_date for d in confirmations):
            self.add(
                "REFILL_CONFIRMATION_REQUIRED",
                Severity.HOLD,
                f"{codes} is a refill: the patient must confirm the need on or after {_fmt(window_start)} and"
                f" before delivery on {_fmt(self.delivery_date)}.",
                rule="refills",
                source=refill.source,
                artifacts=[ArtifactType.PATIENT_REFILL_CONFIRMATION],
                item=items[0],
            )

    # --- 7. payer and plan rules ----------------------------------------------------------------
    def payer_rules(self) -> None:
        tier = (self.facts.coverage_tier or "").strip().lower()
        for item in self.coded_items():
            for payer_rule in (r for r in self.facts.payer_rules if r.hcpcs == item.hcpcs):
                source = {
                    "id": "payer_rule",
                    "title": payer_rule.source or f"{payer_rule.payer} coverage rules",
                    "url": "",
                }
                if payer_rule.not_covered:
                    self.add(
                        "PAYER_NOT_COVERED",
                        Severity.NEEDS_REVIEW,
                        f"{item.hcpcs} is not covered by {payer_rule.payer}.",
                        rule="payer_rules",
                        source=source,
                        item=item,
                    )
                tiers = [t.strip().lower() for t in payer_rule.coverage_tiers if t.strip()]
                if tiers and tier not in tiers:
                    self.add(
                        "COVERAGE_TIER_EXCLUDED",
                        Severity.NEEDS_REVIEW,
                        f"{item.hcpcs} is covered by {payer_rule.payer} for the {', '.join(tiers)} tier(s) only;"
                        f" the patient's tier is {tier or 'not recorded'}.",
                        rule="payer_rules",
                        source=source,
                        item=item,
                    )
                if payer_rule.requires_prior_auth:
                    self._require_prior_auth(
                        item,
                        rule="payer_rules",
                        source=source,
                        label=f"{payer_rule.payer}'s prior authorization list",
                        validity={},
                        code_prefix="PAYER_PRIOR_AUTH",
                    )
                if payer_rule.requires_cmn and not self.has_artifact(ArtifactType.CMN):
                    self.add(
                        "CMN_REQUIRED",
                        Severity.HOLD,
                        f"{payer_rule.payer} requires a certificate of medical necessity for {item.hcpcs}.",
                        rule="payer_rules",
                        source=source,
                        artifacts=[ArtifactType.CMN],
                        item=item,
                    )

    # --- 9. inventory flags ---------------------------------------------------------------------
    def inventory(self) -> None:
        for item in self.facts.items:
            if not item.stock_short:
                continue
            available = item.stock_available or 0
            if item.dropship_allowed:
                self.add(
                    "INVENTORY_DROPSHIP",
                    Severity.INFO,
                    f"{item.sku}: {available} available in the warehouse for {item.quantity};"
                    " the vendor will dropship it.",
                    rule="inventory",
                    item=item,
                )
                continue
            restock = (
                f" Expected restock on {_fmt(item.expected_restock)} (open purchase order)."
                if item.expected_restock
                else " No purchase order is open."
            )
            self.add(
                "INVENTORY_SHORTFALL",
                Severity.HOLD,
                f"{item.sku}: {available} available for {item.quantity} ordered, and it cannot be dropshipped."
                + restock,
                rule="inventory",
                field="quantity",
                item=item,
            )

    # --- 10. medication safety ------------------------------------------------------------------
    def medication_safety(self) -> None:
        rule_set = self.rules["medication_safety"]
        ingredients = rule_set.tables.get("ingredients", ())
        classes = {entry["id"]: entry for entry in rule_set.tables.get("drug_classes", ())}
        conditions = {entry["id"]: entry for entry in rule_set.tables.get("conditions", ())}
        source_of_table = next(iter(rule_set.sources.values()), None)
        patient = self.facts.patient
        allergies = [_normalise(a) for a in patient.allergies]
        medications = [_normalise(m) for m in patient.medications]
        rows = rule_set.rows_in_force(self.order_date)
        for item in self.facts.items:
            if not item.rxnorm_code:
                continue
            ingredient = next((i for i in ingredients if item.rxnorm_code in i.get("rxnorm_products", ())), None)
            if ingredient is None:
                self.add(
                    "MEDICATION_NOT_IN_SAFETY_TABLE",
                    Severity.NEEDS_REVIEW,
                    f"{item.sku}: RxNorm {item.rxnorm_code} is not in the medication safety table; a provider must"
                    " review contraindications and interactions.",
                    rule="medication_safety",
                    source=source_of_table,
                    item=item,
                )
                continue
            names = [_normalise(n) for n in ingredient.get("names", ())]
            if any(_mentions(allergy, names) for allergy in allergies):
                self.add(
                    "MEDICATION_ALLERGY",
                    Severity.NEEDS_REVIEW,
                    f"{item.sku}: the patient has a recorded allergy to {ingredient['id']}.",
                    rule="medication_safety",
                    source=source_of_table,
                    item=item,
                )
            for row in rows:
                if row["drug_class"] != ingredient.get("drug_class"):
                    continue
                if row["kind"] == "interaction":
                    other = classes.get(row.get("with_class", ""), {})
                    other_names = [_normalise(n) for n in other.get("names", ())]
                    if any(_mentions(medication, other_names) for medication in medications):
                        self.add(
                            "MEDICATION_INTERACTION",
                            Severity.NEEDS_REVIEW,
                            f"{item.sku} with {other.get('label', row.get('with_class'))}: {row['message']}",
                            rule="medication_safety",
                            source=row.source,
                            item=item,
                        )
                elif row["kind"] == "contraindication" and row.get("condition") in patient.conditions:
                    condition = conditions.get(row["condition"], {})
                    self.add(
                        "MEDICATION_CONTRAINDICATION",
                        Severity.NEEDS_REVIEW,
                        f"{item.sku} and {condition.get('label', row['condition'])}: {row['message']}",
                        rule="medication_safety",
                        source=row.source,
                        item=item,
                    )

    # --- 11. open orders: duplicates ------------------------------------------------------------
    def duplicate_orders(self) -> None:
        """An identical open order for the patient needs a person to decide (``same_items``)."""
        for order in self.facts.open_orders:
            if not same_items(self.facts.items, order.lines):
                continue
            self.add(
                "DUPLICATE_ORDER",
                Severity.NEEDS_REVIEW,
                already_on_its_way(order, items=len(self.facts.items)),
                rule="open_orders",
                source=OPEN_ORDERS_SOURCE,
                field="items",
            )


# Why open orders count and duplicates are reviewed: suppliers must not dispense more than the
# beneficiary's expected utilization, nor more than a one- or three-month quantity at a time, so
# units already on their way are part of what the patient will have (Joint DME MAC publication,
# 2024-01-04; the same text in Medicare Program Integrity Manual, Pub. 100-08, ch. 5, 5.2.6).
OPEN_ORDERS_SOURCE = {
    "id": "DMEMAC-2024-01-RECURRING",
    "title": "Items Provided on a Recurring Basis and Request for Refill Requirements - Annual Reminder"
    " (Joint DME MAC Publication, 2024-01-04)",
    "url": "https://cgsmedicare.com/jb/pubs/news/2024/01/cope148844.html",
}


# Each finding code in words, for readers who see the code but not the message (the message can
# hold PHI: allergies, dates of service) and for reasons recorded with codes (``hold_reason``).
FINDING_TITLES: dict[str, str] = {
    "SWO_MISSING_BENEFICIARY": "The written order lacks the patient",
    "SWO_MISSING_ORDER_DATE": "The written order lacks its date",
    "SWO_MISSING_ITEM_DESCRIPTION": "The written order lacks a description of the items",
    "SWO_MISSING_QUANTITY": "The written order lacks a quantity",
    "SWO_MISSING_PRACTITIONER": "The written order lacks the practitioner",
    "SWO_MISSING_SIGNATURE": "The written order is not signed",
    "PROVIDER_NPI_INVALID": "The ordering provider has no valid NPI",
    "PROVIDER_NOT_CREDENTIALED": "The ordering provider is not credentialed in the territory",
    "PATIENT_OUTSIDE_TERRITORY": "The patient is not registered in the order's territory",
    "F2F_ENCOUNTER_REQUIRED": "A face-to-face encounter is needed",
    "F2F_ENCOUNTER_OUT_OF_WINDOW": "The face-to-face encounter is outside its window",
    "F2F_NOTE_REQUIRED": "The face-to-face encounter note is needed",
    "WOPD_REQUIRED": "A written order before delivery is needed",
    "PRIOR_AUTH_SUSPENDED": "Prior authorization is suspended for an item",
    "PRIOR_AUTH_REQUIRED": "A prior authorization is needed",
    "PRIOR_AUTH_EXPIRED": "The prior authorization on file has expired",
    "PRIOR_AUTH_NON_AFFIRMED": "The prior authorization on file was not affirmed",
    "PAYER_PRIOR_AUTH_REQUIRED": "The payer needs a prior authorization",
    "PAYER_PRIOR_AUTH_EXPIRED": "The payer's prior authorization has expired",
    "PAYER_PRIOR_AUTH_NON_AFFIRMED": "The payer's prior authorization was not affirmed",
    "QUANTITY_LIMIT_EXCEEDED": "More than the usual maximum quantity",
    "REFILL_TOO_EARLY": "Too early for a refill",
    "REFILL_CONFIRMATION_REQUIRED": "The patient must confirm the refill",
    "PAYER_NOT_COVERED": "An item is not covered by the payer",
    "COVERAGE_TIER_EXCLUDED": "An item is not covered for the patient's tier",
    "CMN_REQUIRED": "A certificate of medical necessity is needed",
    "INVENTORY_DROPSHIP": "An item will be dropshipped by the vendor",
    "INVENTORY_SHORTFALL": "Not enough stock",
    "MEDICATION_NOT_IN_SAFETY_TABLE": "A medication needs a provider's safety review",
    "MEDICATION_ALLERGY": "The patient has a recorded allergy to a medication",
    "MEDICATION_INTERACTION": "A medication interacts with one the patient takes",
    "MEDICATION_CONTRAINDICATION": "A medication is contraindicated for the patient",
    "DUPLICATE_ORDER": "An identical order is already on its way",
    "COVERAGE_MISSING": "The patient has no insurance coverage on file",
}


def finding_title(code: str) -> str:
    """A finding code in words ("QUANTITY_LIMIT_EXCEEDED" → "More than the usual maximum quantity");
    a code without a title is spelled out from its parts."""
    return FINDING_TITLES.get(code) or code.replace("_", " ").capitalize()


def already_on_its_way(order: OpenOrder, *, items: int = 1) -> str:
    """The words the checks, the wizard and the patient card use for an open order:
    "An order for this item is already on its way: 2K7-XQ4, Preparing." """
    what = "this item" if items == 1 else "these items"
    return f"An order for {what} is already on its way: {order.reference}, {order.stage}."


def same_items(items: Sequence[ItemFacts], lines: Sequence[OpenOrderLine]) -> bool:
    """Whether an order's lines are identical to an open order's: the same set of SKUs (or of HCPCS
    codes, for a line named only by its code), whatever the quantities.

    Every line of the order must match a line of the open order and every line of the open order
    a line of the order; a line matches by SKU, or by HCPCS code when the order's line has no SKU.
    Lines with neither never match, so an empty order is never a duplicate.
    """

    def matches(item: ItemFacts, line: OpenOrderLine) -> bool:
        if item.sku:
            return item.sku == line.sku
        return bool(item.hcpcs) and item.hcpcs == line.hcpcs

    if not items or not lines:
        return False
    return all(any(matches(item, line) for line in lines) for item in items) and all(
        any(matches(item, line) for item in items) for line in lines
    )


def quantity_limit_rows(limits: RuleSet, diagnosis_codes: Iterable[str], on: dt.date) -> list[Row]:
    """The usual-maximum rows in force on ``on`` that apply to the patient: rows for insulin-treated
    patients (an insulin diagnosis on the order) or the others, and rows for everyone."""
    insulin_codes = set(limits.settings.get("insulin_treated_diagnoses", ()))
    applicable = "insulin_treated" if any(code in insulin_codes for code in diagnosis_codes) else "not_insulin_treated"
    return [row for row in limits.rows_in_force(on) if row.get("when", "any") in ("any", applicable)]


def usual_maximums(
    *, on: dt.date, diagnosis_codes: Sequence[str] = (), rule_sets: Mapping[str, RuleSet] | None = None
) -> dict[str, tuple[int, int]]:
    """Per HCPCS code under a usual-maximum rule on ``on``: (quantity, period in months).

    The same rows the quantity-limit check applies to an order with these diagnoses; for hints
    beside a catalog item before it is ordered.
    """
    rule_sets = rule_sets if rule_sets is not None else load_rule_sets()
    maximums: dict[str, tuple[int, int]] = {}
    for row in quantity_limit_rows(rule_sets["quantity_limits"], diagnosis_codes, on):
        for code in row.codes:
            maximums[code] = (int(row["quantity"]), int(row["period_months"]))
    return maximums


def _supply_window(limit: Row, refill: Row, history: Sequence[Delivery]) -> tuple[dt.date, dt.date, dt.date]:
    """Last delivery day, the day its supply runs out, and the first day a refill may be delivered.

    The supply lasts the limit's period scaled by the quantity last delivered against the usual
    maximum (a 3-month maximum of 270 strips, 90 delivered: one month); the refill rule says how
    many days before that end a refill may be delivered.
    """
    last_day = max(d.delivered_on for d in history)
    last_quantity = sum(d.quantity for d in history if d.delivered_on == last_day)
    period_days = (add_months(last_day, int(limit["period_months"])) - last_day).days
    supply_end = last_day + dt.timedelta(days=period_days * last_quantity // int(limit["quantity"]))
    return last_day, supply_end, supply_end - dt.timedelta(days=int(refill["deliver_no_sooner_than_days"]))


@dataclass(frozen=True)
class SupplyStatus:
    """What a patient has of one supply: its last delivery and, under a usual-maximum rule, when a
    refill may next be delivered (None for items no quantity rule covers)."""

    hcpcs: str
    last_delivered: dt.date
    quantity: int
    supply_ends: dt.date | None
    next_eligible: dt.date | None


def supply_status(
    history: Sequence[Delivery],
    *,
    on: dt.date,
    diagnosis_codes: Sequence[str] = (),
    rule_sets: Mapping[str, RuleSet] | None = None,
) -> list[SupplyStatus]:
    """Per HCPCS code delivered, the last delivery and the next eligible refill date on ``on``.

    The same quantity-limit and refill rules as the checks of an order (``REFILL_TOO_EARLY``):
    a refill ordered for delivery before ``next_eligible`` holds. Sorted by code.
    """
    rule_sets = rule_sets if rule_sets is not None else load_rule_sets()
    refill_rows = rule_sets["refills"].rows_in_force(on)
    rows = quantity_limit_rows(rule_sets["quantity_limits"], diagnosis_codes, on)
    statuses = []
    for code in sorted({d.hcpcs for d in history if d.delivered_on <= on}):
        mine = [d for d in history if d.hcpcs == code and d.delivered_on <= on]
        last_day = max(d.delivered_on for d in mine)
        quantity = sum(d.quantity for d in mine if d.delivered_on == last_day)
        row = next((r for r in rows if code in r.codes), None)
        if row is None or not refill_rows:
            statuses.append(SupplyStatus(code, last_day, quantity, None, None))
            continue
        pooled = [d for d in history if d.hcpcs in row.codes and d.delivered_on <= on]
        _last, supply_end, earliest = _supply_window(row, refill_rows[0], pooled)
        statuses.append(SupplyStatus(code, last_day, quantity, supply_end, earliest))
    return statuses


def _valid_until(decision_date: dt.date, validity: Mapping[str, Any]) -> dt.date:
    """Last day an affirmed decision covers a delivery, counting the decision day as day 1.

    N days: the decision day and the N - 1 days after it. CGS's worked example for orthoses
    (60 days): a request affirmed on April 30 may be furnished until June 28 (CGS JC DME,
    "Orthoses" prior authorization page, https://cgsmedicare.com/jc/pa/orthoses.html).
    N months, counted the same way: up to the day before the same day of the month N months
    later, or to the end of that month when it has no such day (a decision of January 31 valid
    one month ends on February 28 or 29). The month programs' sources state only "within 6 months
    following the determination" and "one month following the affirmed decision", without a worked
    example; the day-1 count is applied to them too (see prior_authorization.toml, NOT CONFIRMED).
    Without a program validity (a payer's own list) the decision has no stated end.
    """
    if "decision_valid_months" in validity:
        same_day = add_months(decision_date, int(validity["decision_valid_months"]))
        if same_day.day < decision_date.day:  # the month has no such day: add_months clamped it
            return same_day
        return same_day - dt.timedelta(days=1)
    if "decision_valid_days" in validity:
        return decision_date + dt.timedelta(days=int(validity["decision_valid_days"]) - 1)
    return dt.date.max


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").split())


def _mentions(text: str, names: Iterable[str]) -> bool:
    """Whether ``text`` (a medication or allergy as recorded) names any of ``names`` as whole words."""
    padded = f" {text} "
    return any(name and f" {name} " in padded for name in names)
