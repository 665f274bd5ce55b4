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

Usual maximums and refill rules are counted on one supply timeline (``supply_timeline``; the notes
above it): "N per M months" is an allowance of time, deliveries are laid end to end, a delivery
holds at most a three-month quantity (at least one unit) and may come no sooner than the refill
rule's days before the supply on hand runs out. Refill rules apply to every recurring supply: codes
under a usual maximum, and catalog products flagged ``recurring`` (their supply lasting
``days_of_supply`` per unit). ``supply_status`` gives the first day an order passes both.

Items not yet delivered count: the patient's open orders (``ComplianceInput.open_orders``, status
``pending_verification`` up to ``shipped``) count against a usual maximum on their expected day,
and an identical open order (``same_items``) is a ``DUPLICATE_ORDER`` finding that needs review.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any

from core.identifiers import is_valid_npi

from .inputs import ArtifactType, ComplianceInput, Delivery, ItemFacts, OpenOrder, OpenOrderLine
from .medications import RecognisedEntry, medication_table
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
            if not present[element]:
                self.add(
                    f"SWO_MISSING_{element.upper()}",
                    Severity.HOLD,
                    f"The written order lacks the {row['label']}.",
                    rule="standard_written_order",
                    source=row.source,
                    artifacts=row["artifacts"],
                    field=fields[element],
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
        listed_codes = sorted(listed.keys() & {item.hcpcs for item in items})
        codes = ", ".join(listed_codes)
        need = "needs" if len(listed_codes) == 1 else "need"
        source = listed[str(items[0].hcpcs)].source
        window_months: int = rule_set.settings["f2f_window_months"]
        window_start = add_months(self.order_date, -window_months)
        note_dates = [d for d in self.artifact_dates.get(ArtifactType.F2F_NOTE, []) if d is not None]
        encounter = self.facts.f2f_date or (max(note_dates) if note_dates else None)
        rule = "f2f_wopd"
        if encounter is None:
            self.add(
                "F2F_ENCOUNTER_REQUIRED",
                Severity.HOLD,
                f"{codes} {need} a face-to-face encounter within the {window_months} months before the order.",
                rule=rule,
                source=source,
                artifacts=[ArtifactType.F2F_NOTE],
                field="f2f_date",
            )
        elif not (window_start <= encounter <= self.order_date):
            self.add(
                "F2F_ENCOUNTER_OUT_OF_WINDOW",
                Severity.HOLD,
                f"{codes} {need} a face-to-face encounter between {_fmt(window_start)} and {_fmt(self.order_date)};"
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
                f"{codes} {need} the face-to-face encounter note on file.",
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
                f"{codes} {need} a written order dated on or before delivery ({_fmt(self.date_of_service)}).",
                rule=rule,
                source=source,
                artifacts=[ArtifactType.WOPD],
                field="signature",
            )

    # --- 3. prior authorization ----------------------------------------------------------------
    def prior_authorization(self) -> None:
        rule_set = self.rules["prior_authorization"]
        programs = _programs(rule_set)
        state = self.facts.patient.state
        listed = _prior_authorization_rows(rule_set, on=self.date_of_service, state=state)
        for item in self.coded_items():
            row = listed.get(str(item.hcpcs))
            if row is None:
                continue
            name = programs[row["program"]]["name"]
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
                valid_until=functools.partial(
                    prior_authorization_valid_until,
                    str(item.hcpcs),
                    on=self.date_of_service,
                    state=state,
                    rule_sets=self.rules,
                ),
                code_prefix="PRIOR_AUTH",
            )

    def _require_prior_auth(
        self,
        item: ItemFacts,
        *,
        rule: str,
        source: Source | Mapping[str, str] | None,
        label: str,
        valid_until: Callable[[dt.date, dt.date | None], dt.date | None],
        code_prefix: str,
    ) -> None:
        """Hold unless an affirmed decision for the item covers the date of service.

        A decision is per HCPCS code: a decision on file counts for its own code, and an attached
        ``PRIOR_AUTH`` document only for the codes it names (one naming E0651 does not clear E0652).
        ``valid_until(decision_date, expires_on)`` is the last day a decision covers (None: no end).
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
        covered_until = [
            valid_until(pa.decision_date, pa.expires_on)
            for pa in decisions
            if pa.affirmed and pa.decision_date <= delivery
        ]
        covered_until += [valid_until(day, None) for day in attached if day <= delivery]
        if any(until is None or until >= delivery for until in covered_until):
            return
        ended = [until for until in covered_until if until is not None]
        if ended:
            code, message = (
                f"{code_prefix}_EXPIRED",
                f"{item.hcpcs} is on {label}; the affirmed decision on file expired on {_fmt(max(ended))},"
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
        """Usual maximums (``QUANTITY_LIMIT_EXCEEDED``) and refill rules (``REFILL_TOO_EARLY``,
        ``REFILL_CONFIRMATION_REQUIRED``) on the supply timeline (see ``supply_timeline``).

        Items under a usual-maximum row are checked per row (a pooled row's codes together); a
        recurring supply without a row (``ItemFacts.recurring``) gets the refill rules, its supply
        lasting ``days_of_supply`` days per unit.
        """
        limits = self.rules["quantity_limits"]
        refill_rows = self.rules["refills"].rows_in_force(self.date_of_service)
        refill = refill_rows[0] if refill_rows else None
        pools: dict[int, tuple[Row, list[ItemFacts]]] = {}
        for row in quantity_limit_rows(
            self.rules, self.facts.diagnosis_codes, self.date_of_service, self.facts.patient.medications
        ):
            for item in self.coded_items():
                if item.hcpcs in row.codes:
                    pools.setdefault(row.index, (row, []))[1].append(item)
        limited: set[str] = set()
        for row, items in pools.values():
            allowance = UsualMaximum.of(row, limits)
            limited.update(row.codes)
            self._quantity_limit(allowance, items, early_days=_early_days(refill))
            if refill is not None:
                history = _pooled_history(self.facts.supply_history, row.codes, on=self.date_of_service)
                self._refill(refill, items, history, lasts=allowance.lasts)
        if refill is None:
            return
        recurring: dict[str, list[ItemFacts]] = {}
        for item in self.coded_items():
            if item.recurring and item.hcpcs not in limited:
                recurring.setdefault(item.hcpcs or "", []).append(item)
        for code, items in recurring.items():
            days = next((item.days_of_supply for item in items if item.days_of_supply), None)
            history, known = _days_history(self.facts.supply_history, code, on=self.date_of_service, default_days=days)
            self._refill(refill, items, history, lasts=_lasts_days if known else None)

    def _quantity_limit(self, allowance: UsualMaximum, items: list[ItemFacts], *, early_days: int) -> None:
        ordered = sum(item.quantity or 0 for item in items)
        excess = usual_maximum_excess(
            allowance,
            deliveries=self.facts.supply_history,
            open_orders=self.facts.open_orders,
            ordered=ordered,
            on=self.date_of_service,
            early_days=early_days,
        )
        if excess is None:
            return
        row = allowance.row
        codes = ", ".join(sorted({item.hcpcs or "" for item in items}))
        pooled = f" (shared by {', '.join(row.codes)})" if len(row.codes) > 1 else ""
        period = _plural(allowance.period_months, "month")
        step = excess.step
        parts = _and(
            ([f"{ordered} ordered"] if step.day == self.date_of_service else [])
            + ([f"{excess.delivered_that_day} delivered"] if excess.delivered_that_day else [])
            + (
                [f"{excess.pending_that_day} on open orders ({', '.join(excess.orders_that_day)})"]
                if excess.pending_that_day
                else []
            )
        )
        message = (
            f"{codes}: {parts} for delivery on {_fmt(step.day)} exceed the usual maximum of {allowance.quantity}"
            f" per {period} for {row['description']}{pooled}"
        )
        if excess.too_many:
            message += f": at most {allowance.at_a_time} may be dispensed at a time."
        else:
            before = _and(
                (["delivered"] if excess.delivered_before else [])
                + ([f"ordered for {_fmt(self.date_of_service)}"] if step.day != self.date_of_service else [])
                + ([f"on open orders ({', '.join(excess.orders_before)})"] if excess.orders_before else [])
            )
            runs_out = step.runs_out_before or step.day
            message += (
                f": the supply {before} lasts until {_fmt(runs_out)}, so more may be delivered from"
                f" {_fmt(runs_out - dt.timedelta(days=early_days))}."
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

    def _refill(
        self,
        refill: Row,
        items: list[ItemFacts],
        history: Sequence[Dispense],
        *,
        lasts: Callable[[dt.date, Fraction], dt.date] | None,
    ) -> None:
        """A repeat delivery of a supply is a refill: not before its current supply's end less the
        rule's days, and only with the patient's confirmation in the rule's window.

        ``history``: the deliveries on or before the delivery date; ``lasts``: how long they last
        (None when not known: then only the confirmation is checked, its window counted back from
        the delivery date).
        """
        if not history:
            return  # a first delivery, not a refill
        codes = ", ".join(sorted({item.hcpcs or "" for item in items}))
        supply_end: dt.date | None = None
        if lasts is not None:
            steps = supply_timeline(history, lasts)
            last_day, supply_end = steps[-1].day, steps[-1].lasts_until
            earliest = supply_end - dt.timedelta(days=_early_days(refill))
            if self.date_of_service < earliest:
                self.add(
                    "REFILL_TOO_EARLY",
                    Severity.HOLD,
                    f"{codes}: the supply delivered on {_fmt(last_day)} lasts until {_fmt(supply_end)}; a refill may"
                    f" be delivered from {_fmt(earliest)}, not on {_fmt(self.date_of_service)}.",
                    rule="refills",
                    source=refill.source,
                    field="requested_date",
                    item=items[0],
                )
        # Before 2024 the contact window counted back from delivery; since CMS-1780-F it counts back
        # from the expected end of the current supply (the row's contact_anchor says which).
        by_end = refill.get("contact_anchor") == "expected_end_of_supply" and supply_end is not None
        anchor = supply_end if by_end and supply_end is not None else self.date_of_service
        window_start = anchor - dt.timedelta(days=int(refill["contact_no_sooner_than_days"]))
        confirmations = self.artifact_dates.get(ArtifactType.PATIENT_REFILL_CONFIRMATION, [])
        if not any(d is not None and window_start <= d <= self.date_of_service for d in confirmations):
            self.add(
                "REFILL_CONFIRMATION_REQUIRED",
                Severity.HOLD,
                f"{codes} is a refill: the patient must confirm the need on or after {_fmt(window_start)} and"
                f" before delivery on {_fmt(self.date_of_service)}.",
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
                        valid_until=_stated_end,
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
        """Ordered medications against the patient's allergies, medications, history and sex.

        The patient's free-text entries are recognised through the one medication names table
        (``compliance.medications``); each row's severity is used ("contraindicated" holds, "major"
        needs review). Entries the table does not recognise are listed to the reviewer
        (``MEDICATION_ENTRIES_UNRECOGNISED``, info) whenever a medication is ordered.
        """
        rule_set = self.rules["medication_safety"]
        table = medication_table(rule_set)
        classes = {entry["id"]: entry for entry in rule_set.tables["drug_classes"]}
        conditions = {entry["id"]: entry for entry in rule_set.tables.get("conditions", ())}
        source_of_table = next(iter(rule_set.sources.values()), None)
        patient = self.facts.patient
        allergies = table.recognise_all(patient.allergies)
        medications = table.recognise_all(patient.medications)
        rows = rule_set.rows_in_force(self.order_date)
        ordered = [item for item in self.facts.items if item.rxnorm_code]
        for item in ordered:
            ingredient = table.product(item.rxnorm_code or "")
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
            allergic = [a for a in allergies if any(e.id == ingredient.id for e in a.entries)]
            if allergic:
                self.add(
                    "MEDICATION_ALLERGY",
                    Severity.NEEDS_REVIEW,
                    f"{item.sku}: the patient has a recorded allergy to {ingredient.label}"
                    f" (recorded as {_quoted(allergic)}).",
                    rule="medication_safety",
                    source=source_of_table,
                    item=item,
                )
            for row in rows:
                if row["drug_class"] in ingredient.classes:
                    self._medication_row(row, item, medications, classes, conditions)
        unrecognised = [entry.text for entry in (*allergies, *medications) if not entry.recognised]
        if ordered and unrecognised:
            self.add(
                "MEDICATION_ENTRIES_UNRECOGNISED",
                Severity.INFO,
                "The medication safety table does not recognise these recorded medications or allergies, so they"
                f" were not checked: {_quoted_texts(unrecognised)}.",
                rule="medication_safety",
                source=source_of_table,
            )

    def _medication_row(
        self,
        row: Row,
        item: ItemFacts,
        medications: Sequence[RecognisedEntry],
        classes: Mapping[str, Mapping[str, Any]],
        conditions: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """One row of the medication safety file that applies to the ordered item's class."""
        severity = MEDICATION_SEVERITY[row["severity"]]
        kind = row["kind"]
        if kind in ("interaction", "duplicate_therapy"):
            with_class = row["drug_class"] if kind == "duplicate_therapy" else row["with_class"]
            taking = [m for m in medications if with_class in m.classes]
            if not taking:
                return
            label = classes[with_class]["label"]
            code = "MEDICATION_INTERACTION" if kind == "interaction" else "MEDICATION_DUPLICATE_THERAPY"
            message = f"{item.sku} with {label} (recorded as {_quoted(taking)}): {row['message']}"
        elif kind == "contraindication":
            if row["condition"] not in self.facts.patient.conditions:
                return
            code = "MEDICATION_CONTRAINDICATION"
            message = f"{item.sku} and {conditions[row['condition']]['label']}: {row['message']}"
        elif kind == "sex":
            if self.facts.patient.sex != row["sex"]:
                return
            code = "MEDICATION_NOT_FOR_PATIENT_SEX"
            message = f"{item.sku} for a patient whose administrative sex is {row['sex']}: {row['message']}"
        else:  # the rule book refuses other kinds; a new kind must be taught here
            return
        self.add(code, severity, message, rule="medication_safety", source=row.source, item=item)

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
    "MEDICATION_DUPLICATE_THERAPY": "A medication duplicates one of the same class the patient takes",
    "MEDICATION_NOT_FOR_PATIENT_SEX": "A medication is not indicated for the patient's sex",
    "MEDICATION_ENTRIES_UNRECOGNISED": "Recorded medications or allergies the safety table does not recognise",
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


def insulin_treated(
    rule_sets: Mapping[str, RuleSet], diagnosis_codes: Iterable[str], medications: Iterable[str] = ()
) -> bool:
    """Whether the patient is treated with insulin (LCD L33822 keys its usual maximums on it): an
    insulin-treatment diagnosis on the order (Z79.4, or any type 1 diabetes code E10.x: insulin
    treated by definition; ``quantity_limits.toml`` lists both), or a medication list naming an
    insulin (the medication names table of ``medication_safety.toml``)."""
    settings = rule_sets["quantity_limits"].settings
    codes = {code.strip().upper() for code in diagnosis_codes}
    if codes & set(settings["insulin_treated_diagnoses"]):
        return True
    prefixes = tuple(settings["insulin_treated_diagnosis_prefixes"])
    if prefixes and any(code.startswith(prefixes) for code in codes):
        return True
    return medication_table(rule_sets["medication_safety"]).names_class(list(medications), "insulin")


def quantity_limit_rows(
    rule_sets: Mapping[str, RuleSet], diagnosis_codes: Iterable[str], on: dt.date, medications: Iterable[str] = ()
) -> list[Row]:
    """The usual-maximum rows in force on ``on`` that apply to the patient: rows for insulin-treated
    patients (``insulin_treated``) or the others, and rows for everyone."""
    applicable = (
        "insulin_treated" if insulin_treated(rule_sets, diagnosis_codes, medications) else "not_insulin_treated"
    )
    return [row for row in rule_sets["quantity_limits"].rows_in_force(on) if row["when"] in ("any", applicable)]


def usual_maximums(
    *,
    on: dt.date,
    diagnosis_codes: Sequence[str] = (),
    medications: Sequence[str] = (),
    rule_sets: Mapping[str, RuleSet] | None = None,
) -> dict[str, tuple[int, int]]:
    """Per HCPCS code under a usual-maximum rule on ``on``: (quantity, period in months).

    The same rows the quantity-limit check applies to an order with these diagnoses (and a patient
    with these medications, for insulin treatment) delivered on ``on``; every code of a pooled row
    maps to the row's shared allowance. For hints beside a catalog item before it is ordered.
    """
    rule_sets = rule_sets if rule_sets is not None else load_rule_sets()
    maximums: dict[str, tuple[int, int]] = {}
    for row in quantity_limit_rows(rule_sets, diagnosis_codes, on, medications):
        for code in row.codes:
            maximums[code] = (int(row["quantity"]), int(row["period_months"]))
    return maximums


def supply_history_codes(facts: ComplianceInput, *, rule_sets: Mapping[str, RuleSet] | None = None) -> frozenset[str]:
    """The HCPCS codes whose past deliveries ``evaluate(facts)`` can read (``supply_history``).

    Only the usual-maximum and refill checks read deliveries, and they run for Medicare FFS
    insurance orders only; they read the deliveries of the codes of every usual-maximum row in
    force on the date of service that names one of the items (all codes of a pooled row) and of the
    recurring items themselves. For any other order the set is empty. Deliveries of other codes
    cannot change the result, so whoever builds ``facts`` may leave them out (``supply_history``
    is read from ``facts`` for nothing else); the items' own codes are always included.
    """
    if facts.payer_type != "insurance" or facts.payer_kind != MEDICARE_FFS:
        return frozenset()
    rule_sets = rule_sets if rule_sets is not None else load_rule_sets()
    today = dt.date.today()
    on = facts.delivered_on or facts.requested_date or facts.order_date or today
    item_codes = {item.hcpcs for item in facts.items if item.hcpcs}
    codes = set(item_codes)
    for row in quantity_limit_rows(rule_sets, facts.diagnosis_codes, on, facts.patient.medications):
        if item_codes & set(row.codes):
            codes.update(row.codes)
    return frozenset(codes)


# --- the supply timeline: how usual maximums and refill rules are counted ---------------------
#
# A usual maximum "N per M months" is an allowance of time: N units last M months, so q units
# last q·M/N months (1 disposable filter A7038, 2 per 1 month: half a month). Deliveries are laid
# end to end in date order: the units delivered on a day start to be used on that day, or, when
# the supply on hand has not run out yet, on the day it runs out. A run of deliveries that follow
# each other so counts from its first day (its anchor), so months are counted on the calendar from
# one day and do not drift. The day the supply on hand runs out is the day the allowance renews:
# an order delivered on that day starts a new supply.
#
# An order for delivery on D is within the usual maximum when, for D and for every later day that
# open orders are expected (the order may push their supply back):
#   * the units delivered that day are no more than may be dispensed at a time: a three-month
#     quantity (``dispense_at_most_months`` in quantity_limits.toml), at least one unit (a 1 per 6
#     months headgear is one unit; L33718 / L33822: "no more than a three-month quantity ... may be
#     dispensed at a time"), and
#   * they start to be used no later than the refill rule lets a refill come before the current
#     supply ends (refills.toml ``deliver_no_sooner_than_days``, 10 days since 2011-10-31; 0
#     without a refill rule): the patient holds at most that remainder plus what was delivered.
# The refill rule on the same timeline, counting what was delivered only: a refill may be delivered
# from the day the delivered supply runs out less those days. So an early refill fails both
# checks, the first day a refill may come passes both, and ``supply_status`` gives that day.

# Units on one day of a supply timeline, and the time they last in the allowance's measure:
# months (Fraction) for a usual maximum, days for a days-of-supply product.
Dispense = tuple[dt.date, int, Fraction]


@dataclass(frozen=True)
class SupplyStep:
    """One day on a supply timeline: the units delivered (or to be delivered) that day, when the
    supply on hand before them runs out (None: there was none) and when it runs out with them."""

    day: dt.date
    units: int
    runs_out_before: dt.date | None
    lasts_until: dt.date

    @property
    def starts(self) -> dt.date:
        """The day these units start to be used: their day, or when the supply before them runs out."""
        return max(self.day, self.runs_out_before) if self.runs_out_before is not None else self.day


def supply_timeline(dispenses: Iterable[Dispense], lasts: Callable[[dt.date, Fraction], dt.date]) -> list[SupplyStep]:
    """The supply timeline of ``dispenses`` (same-day ones together), in date order.

    ``lasts(anchor, amount)``: the day a supply of ``amount`` that started on ``anchor`` runs out.
    A dispense on or after the day the supply on hand runs out starts a new run (a new anchor).
    """
    by_day: dict[dt.date, tuple[int, Fraction]] = {}
    for day, units, amount in dispenses:
        units_before, amount_before = by_day.get(day, (0, Fraction(0)))
        by_day[day] = (units_before + units, amount_before + amount)
    steps: list[SupplyStep] = []
    for day in sorted(by_day):
        units, amount = by_day[day]
        before = steps[-1].lasts_until if steps else None
        if before is None or day >= before:
            anchor, total = day, amount
        else:
            total += amount
        steps.append(SupplyStep(day=day, units=units, runs_out_before=before, lasts_until=lasts(anchor, total)))
    return steps


def months_later(day: dt.date, months: Fraction) -> dt.date:
    """``day`` moved by a (fractional) number of months: whole calendar months (``add_months``),
    then the fraction of the next month's days, rounded down."""
    whole = months.numerator // months.denominator
    start = add_months(day, whole)
    rest = months - whole
    if not rest:
        return start
    month_days = (add_months(day, whole + 1) - start).days
    return start + dt.timedelta(days=int(rest * month_days))


def _lasts_days(anchor: dt.date, days: Fraction) -> dt.date:
    return anchor + dt.timedelta(days=int(days))


@dataclass(frozen=True)
class UsualMaximum:
    """A usual-maximum row as an allowance: ``quantity`` units per ``period_months``, and how many
    units may be dispensed at a time (a ``dispense_months`` quantity, at least one unit)."""

    row: Row
    dispense_months: int

    @classmethod
    def of(cls, row: Row, limits: RuleSet) -> UsualMaximum:
        return cls(row=row, dispense_months=limits.settings["dispense_at_most_months"])

    @property
    def quantity(self) -> int:
        return int(self.row["quantity"])

    @property
    def period_months(self) -> int:
        return int(self.row["period_months"])

    @property
    def at_a_time(self) -> int:
        return max(1, self.dispense_months * self.quantity // self.period_months)

    @property
    def usual_order(self) -> int:
        """The quantity an order usually holds: one period's allowance, or less when that is more
        than may be dispensed at a time."""
        return min(self.quantity, self.at_a_time)

    def lasts(self, anchor: dt.date, units: Fraction) -> dt.date:
        return months_later(anchor, units * self.period_months / self.quantity)


@dataclass(frozen=True)
class UsualMaximumExcess:
    """The first day on which an order's units break a usual maximum, and what was counted."""

    step: SupplyStep
    too_many: bool  # more than may be dispensed at a time (else: before the supply on hand runs out)
    delivered_that_day: int
    pending_that_day: int
    orders_that_day: tuple[str, ...]
    delivered_before: bool
    orders_before: tuple[str, ...]


def _early_days(refill: Row | None) -> int:
    return int(refill["deliver_no_sooner_than_days"]) if refill is not None else 0


def _pooled_history(deliveries: Iterable[Delivery], codes: Sequence[str], *, on: dt.date) -> list[Dispense]:
    """Deliveries of ``codes`` on or before ``on``, each unit one unit of the allowance."""
    return [
        (d.delivered_on, d.quantity, Fraction(d.quantity))
        for d in deliveries
        if d.hcpcs in codes and d.delivered_on <= on
    ]


def _days_history(
    deliveries: Iterable[Delivery], code: str, *, on: dt.date, default_days: int | None
) -> tuple[list[Dispense], bool]:
    """Deliveries of ``code`` on or before ``on`` as days of supply (a delivery's own days per unit,
    else ``default_days``), and whether every one of them is known."""
    history: list[Dispense] = []
    known = True
    for d in deliveries:
        if d.hcpcs != code or d.delivered_on > on:
            continue
        days = d.days_of_supply or default_days
        known = known and bool(days)
        history.append((d.delivered_on, d.quantity, Fraction(d.quantity * (days or 0))))
    return history, known


def usual_maximum_excess(
    allowance: UsualMaximum,
    *,
    deliveries: Iterable[Delivery],
    open_orders: Iterable[OpenOrder],
    ordered: int,
    on: dt.date,
    early_days: int,
) -> UsualMaximumExcess | None:
    """Whether ``ordered`` units of the allowance's codes delivered on ``on`` break its usual
    maximum, with the deliveries made by then and the open orders on their expected days (see the
    timeline notes above); None when they do not."""
    codes = allowance.row.codes
    delivered = _pooled_history(deliveries, codes, on=on)
    pending = [
        (order.expected_on, line.quantity, order.reference)
        for order in open_orders
        for line in order.lines
        if line.hcpcs in codes
    ]
    dispenses: list[Dispense] = [*delivered, *((day, units, Fraction(units)) for day, units, _ref in pending)]
    dispenses.append((on, ordered, Fraction(ordered)))
    for step in supply_timeline(dispenses, allowance.lasts):
        if step.day < on:
            continue
        too_many = step.units > allowance.at_a_time
        too_early = step.starts > step.day + dt.timedelta(days=early_days)
        if not (too_many or too_early):
            continue
        return UsualMaximumExcess(
            step=step,
            too_many=too_many,
            delivered_that_day=sum(units for day, units, _amount in delivered if day == step.day),
            pending_that_day=sum(units for day, units, _ref in pending if day == step.day),
            orders_that_day=tuple(sorted({ref for day, _units, ref in pending if day == step.day})),
            delivered_before=any(day < step.day for day, _units, _amount in delivered),
            orders_before=tuple(sorted({ref for day, _units, ref in pending if day < step.day})),
        )
    return None


@dataclass(frozen=True)
class SupplyStatus:
    """What a patient has of one supply: its last delivery and, under a usual-maximum rule or for a
    recurring supply whose days of supply are known, when the delivered supply runs out and the
    first day an order of the usual quantity may be delivered (None for items no rule covers).

    ``shares_allowance_with``: the other codes of a pooled usual-maximum row (their orders count
    against the same allowance, so the same ``next_eligible`` holds for them).
    """

    hcpcs: str
    last_delivered: dt.date
    quantity: int
    supply_ends: dt.date | None
    next_eligible: dt.date | None
    shares_allowance_with: tuple[str, ...] = ()


def supply_status(
    history: Sequence[Delivery],
    *,
    on: dt.date,
    diagnosis_codes: Sequence[str] = (),
    medications: Sequence[str] = (),
    open_orders: Sequence[OpenOrder] = (),
    rule_sets: Mapping[str, RuleSet] | None = None,
) -> list[SupplyStatus]:
    """Per HCPCS code delivered on or before ``on`` (a delivery on ``on`` counts), the last
    delivery, when the delivered supply runs out and the next eligible day. Sorted by code.

    The same timeline and rules as an order's checks: an order of the usual quantity (one period's
    allowance, at most a three-month quantity) delivered on ``next_eligible`` passes both
    ``QUANTITY_LIMIT_EXCEEDED`` and ``REFILL_TOO_EARLY``, and one delivered the day before fails
    at least one of them. ``open_orders`` count against usual maximums as in the checks.
    """
    rule_sets = rule_sets if rule_sets is not None else load_rule_sets()
    limits = rule_sets["quantity_limits"]
    refill_rows = rule_sets["refills"].rows_in_force(on)
    early_days = _early_days(refill_rows[0] if refill_rows else None)
    rows = quantity_limit_rows(rule_sets, diagnosis_codes, on, medications)
    statuses = []
    for code in sorted({d.hcpcs for d in history if d.delivered_on <= on}):
        mine = [d for d in history if d.hcpcs == code and d.delivered_on <= on]
        last_day = max(d.delivered_on for d in mine)
        quantity = sum(d.quantity for d in mine if d.delivered_on == last_day)
        row = next((r for r in rows if code in r.codes), None)
        if row is not None:
            allowance = UsualMaximum.of(row, limits)
            delivered = supply_timeline(_pooled_history(history, row.codes, on=on), allowance.lasts)
            ends = delivered[-1].lasts_until
            eligible = _next_eligible(allowance, history, open_orders, on=on, early_days=early_days)
            others = tuple(c for c in row.codes if c != code)
            statuses.append(SupplyStatus(code, last_day, quantity, ends, eligible, others))
            continue
        days_history, known = _days_history(history, code, on=on, default_days=None)
        if refill_rows and any(d.recurring for d in mine) and known:
            ends = supply_timeline(days_history, _lasts_days)[-1].lasts_until
            statuses.append(SupplyStatus(code, last_day, quantity, ends, ends - dt.timedelta(days=early_days)))
            continue
        statuses.append(SupplyStatus(code, last_day, quantity, None, None))
    return statuses


def _next_eligible(
    allowance: UsualMaximum,
    history: Sequence[Delivery],
    open_orders: Sequence[OpenOrder],
    *,
    on: dt.date,
    early_days: int,
) -> dt.date:
    """The first day, from the last delivery, on which an order of the usual quantity passes both
    the usual maximum and the refill timing: the refill's first day, or later while open orders
    still fill the allowance (tried day by day; every day after all of them have run out passes)."""
    delivered = _pooled_history(history, allowance.row.codes, on=on)
    steps = supply_timeline(delivered, allowance.lasts)
    day = max(steps[-1].day, steps[-1].lasts_until - dt.timedelta(days=early_days))
    units = allowance.usual_order
    while usual_maximum_excess(
        allowance, deliveries=history, open_orders=open_orders, ordered=units, on=day, early_days=early_days
    ):
        day += dt.timedelta(days=1)
    return day


def _and(parts: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)


def prior_authorization_valid_until(
    hcpcs: str,
    decision_date: dt.date,
    expires_on: dt.date | None,
    *,
    on: dt.date,
    state: str | None,
    rule_sets: Mapping[str, RuleSet] | None = None,
) -> dt.date | None:
    """The last day an affirmed prior-authorization decision for ``hcpcs`` covers a delivery.

    ``expires_on``, when the decision states its end; else the validity of the program that lists
    ``hcpcs`` on ``on`` (the date of service) for a beneficiary in ``state`` on the CMS Required
    Prior Authorization List (prior_authorization.toml ``[[programs]]``), counted from
    ``decision_date`` as day 1 (``_program_valid_until``); a suspended listing still has its
    program's validity. None when the decision states no end and the code is on no program that
    day, or its program states no validity (OSTEOGENESIS): then the decision has no known end.

    The compliance check (``prior_authorization``) calls this for every decision and attached
    prior-authorization document, and the patient card shows it, so both agree.
    """
    if expires_on is not None:
        return expires_on
    rule_sets = rule_sets if rule_sets is not None else load_rule_sets()
    rule_set = rule_sets["prior_authorization"]
    row = _prior_authorization_rows(rule_set, on=on, state=state).get(hcpcs)
    if row is None:
        return None
    return _program_valid_until(decision_date, _programs(rule_set)[row["program"]])


def _programs(rule_set: RuleSet) -> dict[str, Mapping[str, Any]]:
    """Program id → its ``[[programs]]`` entry (the rule book checks that every row names one)."""
    return {program["id"]: program for program in rule_set.tables["programs"]}


def _prior_authorization_rows(rule_set: RuleSet, *, on: dt.date, state: str | None) -> dict[str, Row]:
    """HCPCS code → the row of the Required Prior Authorization List in force on ``on`` for a
    beneficiary in ``state`` (a row limited to other states does not apply; a nationwide row does)."""
    state = (state or "").upper()
    return {
        code: row
        for row in rule_set.rows_in_force(on)
        if not row.get("states") or state in row["states"]
        for code in row.codes
    }


def _stated_end(decision_date: dt.date, expires_on: dt.date | None) -> dt.date | None:
    """A payer's own prior authorization: only the end the decision states (None: no end)."""
    return expires_on


def _program_valid_until(decision_date: dt.date, program: Mapping[str, Any]) -> dt.date | None:
    """Last day an affirmed decision covers a delivery, counting the decision day as day 1.

    N days: the decision day and the N - 1 days after it. CGS's worked example for orthoses
    (60 days): a request affirmed on April 30 may be furnished until June 28 (CGS JC DME,
    "Orthoses" prior authorization page, https://cgsmedicare.com/jc/pa/orthoses.html).
    N months, counted the same way: up to the day before the same day of the month N months
    later, or to the end of that month when it has no such day (a decision of January 31 valid
    one month ends on February 28 or 29). The month programs' sources state only "within 6 months
    following the determination" and "one month following the affirmed decision", without a worked
    example; the day-1 count is applied to them too (see prior_authorization.toml, NOT CONFIRMED).
    None when the program states no validity.
    """
    if "decision_valid_months" in program:
        same_day = add_months(decision_date, int(program["decision_valid_months"]))
        if same_day.day < decision_date.day:  # the month has no such day: add_months clamped it
            return same_day
        return same_day - dt.timedelta(days=1)
    if "decision_valid_days" in program:
        return decision_date + dt.timedelta(days=int(program["decision_valid_days"]) - 1)
    return None


# Severity of a medication safety row → severity of its finding: a contraindication holds the
# order, a warning needs a provider's review (the file's header says which rows are which).
MEDICATION_SEVERITY: dict[str, Severity] = {"contraindicated": Severity.HOLD, "major": Severity.NEEDS_REVIEW}


def _quoted(entries: Iterable[RecognisedEntry]) -> str:
    return _quoted_texts(entry.text for entry in entries)


def _quoted_texts(texts: Iterable[str]) -> str:
    return ", ".join(f'"{text}"' for text in texts)
