"""Template helpers of the clinician portal: the words for codes the pages show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django import template

from compliance.inputs import ArtifactType
from orders.models import SIGNATURE_ARTIFACT

register = template.Library()

ARTIFACT_LABELS: dict[str, str] = {
    ArtifactType.SWO: "Signed standard written order",
    ArtifactType.WOPD: "Written order prior to delivery (WOPD)",
    ArtifactType.F2F_NOTE: "Face-to-face encounter note",
    ArtifactType.PRIOR_AUTH: "Prior authorization",
    ArtifactType.CMN: "Certificate of medical necessity (CMN)",
    ArtifactType.MEDICAL_NECESSITY: "Medical-necessity documentation",
    ArtifactType.PATIENT_REFILL_CONFIRMATION: "Patient's refill confirmation",
    SIGNATURE_ARTIFACT: "Practitioner's signature",
}


@register.filter
def artifact_label(code: str) -> str:
    """``PRIOR_AUTH`` → "Prior authorization" (unknown codes are shown as they are)."""
    return ARTIFACT_LABELS.get(code, code)


@register.filter
def money(cents: int | None) -> str:
    """Cents as dollars: 12345 → "$123.45"."""
    if cents is None:
        return ""
    return f"${cents // 100:,}.{cents % 100:02d}"


@register.filter
def get_item(mapping: Mapping[Any, Any] | None, key: Any) -> Any:
    """``mapping[key]``, or None when the key (or the mapping) is missing."""
    return mapping.get(key) if mapping else None


@register.filter
def index(sequence: Sequence[Any], position: int) -> Any:
    """``sequence[position]``, or None past its end."""
    return sequence[position] if 0 <= position < len(sequence) else None
