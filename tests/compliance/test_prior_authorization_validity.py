"""``prior_authorization_valid_until``: the last day an affirmed prior-authorization decision covers a
delivery, from the decision's stated end or, without one, from the program's validity in
prior_authorization.toml counted with the decision day as day 1 (CGS JC orthoses: affirmed April 30,
valid until June 28). The compliance check uses the same function, so the patient card and the
engine agree on the last valid day and the first invalid day."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from compliance.engine import evaluate, prior_authorization_valid_until
from compliance.inputs import (
    ComplianceInput,
    ItemFacts,
    PriorAuthorizationFacts,
)
from compliance.rulebook import load_rule_sets
from tests.compliance.builders import D, ffs_order


@pytest.mark.parametrize(
    ("hcpcs", "decision_date", "on", "state", "valid_until"),
    [
        # ORTHOSES, 60 days (CGS_ORTHOSES_JC's worked example): April 30 → June 28
        ("L1851", D(2024, 4, 30), D(2024, 5, 15), "MN", D(2024, 6, 28)),
        # PCD, 60 calendar days (CGS_PCD), listed nationwide from 2026-04-13
        ("E0651", D(2026, 4, 13), D(2026, 4, 20), "MN", D(2026, 6, 11)),
        # LLP, 120 days (CGS_LLP)
        ("L5856", D(2024, 1, 10), D(2024, 1, 20), "MN", D(2024, 5, 8)),
        # PMD, 6 months: to the day before the same day six months later
        ("K0856", D(2024, 1, 15), D(2024, 2, 1), "MN", D(2024, 7, 14)),
        # PRSS, 1 month from January 31: February has no 31st, so its last day
        ("E0193", D(2024, 1, 31), D(2024, 2, 10), "MN", D(2024, 2, 29)),
        # ORTHOSES phase one (CA, FL, IL, NY only): listed in CA, so the program's 60 days apply
        ("L1851", D(2022, 5, 2), D(2022, 5, 10), "ca", D(2022, 6, 30)),
    ],
)
def test_a_decision_without_a_stated_end_is_valid_for_its_programs_period(
    hcpcs: str, decision_date: D, on: D, state: str, valid_until: D
) -> None:
    assert prior_authorization_valid_until(hcpcs, decision_date, None, on=on, state=state) == valid_until


def test_a_stated_end_is_used_as_stated() -> None:
    # A decision letter's own end wins over the program's 60 days (longer or shorter).
    assert prior_authorization_valid_until("L1851", D(2024, 4, 30), D(2024, 6, 1), on=D(2024, 5, 15), state="MN") == D(
        2024, 6, 1
    )
    assert prior_authorization_valid_until("A7032", D(2024, 4, 30), D(2024, 9, 1), on=D(2024, 5, 15), state="MN") == D(
        2024, 9, 1
    )


@pytest.mark.parametrize(
    ("hcpcs", "on", "state"),
    [
        ("A7032", D(2024, 5, 15), "MN"),  # a mask cushion: on no prior-authorization program
        ("L1833", D(2024, 8, 12), "MN"),  # left the ORTHOSES list on 2024-08-12 (89 FR 41324)
        ("L1851", D(2022, 5, 10), "MN"),  # ORTHOSES phase one did not include MN
        ("E0651", D(2026, 4, 12), "MN"),  # PCD starts on 2026-04-13 (CMS-6097-N)
        ("E0747", D(2024, 8, 20), "CA"),  # OSTEOGENESIS: its validity was never published ("TBD")
    ],
)
def test_no_end_is_known_off_the_list_or_for_a_program_without_a_validity(hcpcs: str, on: D, state: str) -> None:
    assert prior_authorization_valid_until(hcpcs, on - dt.timedelta(days=5), None, on=on, state=state) is None


def orthosis_delivered_on(delivered: D, *, expires_on: D | None = None) -> ComplianceInput:
    """A signed Medicare FFS order for an L1851 knee orthosis (with its F2F and WOPD on file), with
    a decision affirmed on 2024-04-30."""
    return ffs_order(
        ItemFacts(key="0", sku="KO-1", hcpcs="L1851", description="Knee orthosis", quantity=1),
        order_date=D(2024, 5, 1),
        requested_date=delivered,
        f2f_date=D(2024, 4, 20),
        prior_authorizations=(
            PriorAuthorizationFacts(hcpcs="L1851", affirmed=True, decision_date=D(2024, 4, 30), expires_on=expires_on),
        ),
    )


def prior_auth_findings(facts: ComplianceInput) -> list[tuple[str, str]]:
    return [(f.code, f.message) for f in evaluate(facts).findings if f.code.startswith("PRIOR_AUTH")]


@pytest.mark.parametrize(
    ("delivered", "expires_on"),
    [
        (D(2024, 6, 28), None),
        (D(2024, 6, 29), None),
        (D(2024, 6, 10), D(2024, 6, 10)),
        (D(2024, 6, 11), D(2024, 6, 10)),
    ],
)
def test_the_check_holds_exactly_after_the_day_the_function_gives(delivered: D, expires_on: D | None) -> None:
    facts = orthosis_delivered_on(delivered, expires_on=expires_on)
    until = prior_authorization_valid_until("L1851", D(2024, 4, 30), expires_on, on=delivered, state="MN")
    assert until is not None
    expected = (
        []
        if delivered <= until
        else [
            (
                "PRIOR_AUTH_EXPIRED",
                "L1851 is on the CMS Required Prior Authorization List (Orthoses (lumbar-sacral, knee and ankle-foot"
                f" orthoses)); the affirmed decision on file expired on {until.isoformat()}, before delivery on"
                f" {delivered.isoformat()}.",
            )
        ]
    )
    assert prior_auth_findings(facts) == expected
    assert prior_auth_findings(dataclasses.replace(facts, prior_authorizations=()))[0][0] == "PRIOR_AUTH_REQUIRED"


def test_a_prior_authorization_finding_cites_the_list_that_requires_it() -> None:
    (finding,) = [f for f in evaluate(orthosis_delivered_on(D(2024, 6, 29))).findings if f.code == "PRIOR_AUTH_EXPIRED"]
    assert (finding.rule, finding.item, finding.required_artifacts) == ("prior_authorization", "0", ("PRIOR_AUTH",))
    assert finding.source is not None
    assert finding.source["id"] == "87FR2051"
    assert finding.source["url"] == "https://www.federalregister.gov/d/2022-00572"


def test_the_validity_comes_from_the_rule_sets_given() -> None:
    # The check passes the rule sets it evaluates with; a program's validity is read from them.
    rule_sets = load_rule_sets()
    pa = rule_sets["prior_authorization"]
    programs = tuple(
        {**program, "decision_valid_days": 30} if program["id"] == "ORTHOSES" else program
        for program in pa.tables["programs"]
    )
    changed = {**rule_sets, "prior_authorization": dataclasses.replace(pa, tables={**pa.tables, "programs": programs})}
    on = D(2024, 5, 15)
    assert prior_authorization_valid_until("L1851", D(2024, 4, 30), None, on=on, state="MN") == D(2024, 6, 28)
    assert prior_authorization_valid_until("L1851", D(2024, 4, 30), None, on=on, state="MN", rule_sets=changed) == D(
        2024, 5, 29
    )
