"""Template helpers of the clinician portal: the words for codes the pages show."""

from __future__ import annotations

from django import template

from compliance.inputs import ArtifactType

register = template.Library()

ARTIFACT_LABELS = {
    ArtifactType.SWO: "Signed standard written order",
    ArtifactType.WOPD: "Written order prior to delivery (WOPD)",
    ArtifactType.F2F_NOTE: "Face-to-face encounter note",
    ArtifactType.PRIOR_AUTH: "Prior authorization",
    ArtifactType.CMN: "Certificate of medical necessity (CMN)",
    ArtifactType.MEDICAL_NECESSITY: "Medical-necessity documentation",
    ArtifactType.PATIENT_REFILL_CONFIRMATION: "Patient's refill confirmation",
}


@register.filter
def artifact_label(code: str) -> str:
    """``PRIOR_AUTH`` → "Prior authorization" (unknown codes are shown as they are)."""
    return ARTIFACT_LABELS.get(code, code)  # type: ignore[call-overload]


@register.filter
def money(cents: int | None) -> str:
    """Cents as dollars: 12345 → "$123.45"."""
    if cents is None:
        return ""
    return f"${cents // 100:,}.{cents % 100:02d}"
