"""Compliance writes: evaluating an order and freezing the decision in a snapshot."""

from __future__ import annotations

from typing import Any

from .engine import ComplianceResult, evaluate
from .inputs import ComplianceInput
from .models import ComplianceSnapshot


def compliance_evaluate_and_record(
    *, order_id: Any, territory_id: Any, kind: str, facts: ComplianceInput, actor: Any
) -> tuple[ComplianceResult, ComplianceSnapshot]:
    """Evaluate ``facts`` and write the ComplianceSnapshot of the inputs and the result.

    Call inside the transaction that applies the result to the order, so the record and the
    decision commit together.
    """
    result = evaluate(facts)
    snapshot = ComplianceSnapshot.objects.create(
        order_id=order_id,
        territory_id=territory_id,
        kind=kind,
        disposition=str(result.disposition),
        rule_versions=dict(result.rule_versions),
        inputs=facts.as_record(),
        result=result.as_dict(),
        actor=actor,
    )
    return result, snapshot
