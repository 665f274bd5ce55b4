"""Compliance writes: evaluating an order and freezing the decision in a snapshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .engine import ComplianceResult, evaluate
from .inputs import ComplianceInput
from .models import ComplianceSnapshot


def compliance_evaluate_and_record(
    *,
    order_id: Any,
    territory_id: Any,
    kind: str,
    facts: ComplianceInput,
    actor: Any,
    resolve: Callable[[ComplianceResult], dict[str, Any] | None] | None = None,
) -> tuple[ComplianceResult, ComplianceSnapshot]:
    """Evaluate ``facts`` and write the ComplianceSnapshot of the inputs and the result.

    ``resolve`` is a person's decision on the result (a reviewer resolving a review with a note,
    an override of a hold): called with the result before anything is written, what it returns is
    frozen in the snapshot's result as ``resolution``, and what it raises writes nothing.

    Call inside the transaction that applies the result to the order, so the record and the
    decision commit together.
    """
    result = evaluate(facts)
    resolution = resolve(result) if resolve is not None else None
    snapshot = compliance_record(
        order_id=order_id,
        territory_id=territory_id,
        kind=kind,
        facts=facts,
        result=result,
        actor=actor,
        resolution=resolution,
    )
    return result, snapshot


def compliance_record(
    *,
    order_id: Any,
    territory_id: Any,
    kind: str,
    facts: ComplianceInput,
    result: ComplianceResult,
    actor: Any,
    resolution: dict[str, Any] | None = None,
) -> ComplianceSnapshot:
    """Write the ComplianceSnapshot of ``result``, the evaluation of ``facts`` already made.

    For a caller that must know the result before it writes anything else (a new order, created in
    the state the result gives it). Call inside the transaction that applies the result.
    """
    recorded = result.as_dict()
    if resolution:
        recorded["resolution"] = resolution
    return ComplianceSnapshot.objects.create(
        order_id=order_id,
        territory_id=territory_id,
        kind=kind,
        disposition=str(result.disposition),
        rule_versions=dict(result.rule_versions),
        inputs=facts.as_record(),
        result=recorded,
        actor=actor,
    )
