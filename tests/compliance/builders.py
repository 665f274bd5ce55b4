"""Engine inputs for the compliance tests: a complete, signed Medicare fee-for-service order and
its lines, which each test changes only where its case differs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from compliance.inputs import ComplianceInput, ItemFacts, PatientFacts, ProviderFacts

D = dt.date
VALID_NPI = "1245319599"  # check digit per the 80840 Luhn rule (CMS example)
PROVIDER = ProviderFacts(known=True, name="Dr. Lindqvist", npi=VALID_NPI, credentialed_in_territory=True)
PATIENT = PatientFacts(known=True, has_name=True, has_mbi=True, in_territory=True, state="MN")


def line(hcpcs: str | None, quantity: int = 1, key: str = "0", **changes: Any) -> ItemFacts:
    """A catalog line for ``hcpcs`` (SKU "SKU-<code>")."""
    return ItemFacts(
        key=key, sku=f"SKU-{hcpcs}", hcpcs=hcpcs, description=f"Item {hcpcs}", quantity=quantity, **changes
    )


def ffs_order(*items: ItemFacts, order_date: dt.date, **changes: Any) -> ComplianceInput:
    """An insurance order under Medicare FFS coverage, signed on ``order_date`` by a credentialed
    provider for a known patient in the order's territory (MN); delivered on the order date unless
    ``requested_date`` or ``delivered_on`` say otherwise. ``changes`` replace any other field."""
    base = ComplianceInput(
        order_date=order_date,
        requested_date=None,
        payer_type="insurance",
        payer_kind="medicare_ffs",
        patient=PATIENT,
        provider=PROVIDER,
        items=items,
        signed_on=order_date,
    )
    return dataclasses.replace(base, **changes)
