"""Template helpers of the clinician portal: the words for codes the pages show."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from compliance.engine import FINDING_TITLES, finding_title
from compliance.inputs import ArtifactType
from core.tracking import tracking_url
from orders.models import SIGNATURE_ARTIFACT, ActorKind, OrderStatus

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


@register.filter
def status_words(status: str) -> str:
    """An order status code in words: ``in_progress`` → "In progress" (unknown codes as they are)."""
    return str(OrderStatus(status).label) if status in OrderStatus.values else status


@register.filter
def duration(seconds: int | None) -> str:
    """Seconds in the two largest units: 50 → "50 s", 3900 → "1 h 5 min", 190000 → "2 d 4 h"."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    first = next((i for i, (value, _unit) in enumerate(parts) if value), len(parts) - 1)
    shown = [f"{value} {unit}" for value, unit in parts[first : first + 2] if value]
    return " ".join(shown) or "0 s"


@register.filter
def finding_words(code: str) -> str:
    """A finding code in words (``compliance.engine.finding_title``)."""
    return finding_title(code)


_CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


@register.filter
def codes_in_words(text: str | None) -> str:
    """Finding codes inside a recorded text (a hold's reason) replaced by their words:
    "Compliance: REFILL_TOO_EARLY" → "Compliance: Too early for a refill"."""
    if not text:
        return ""
    return _CODE.sub(lambda match: FINDING_TITLES.get(match.group(0), match.group(0)), text)


ACTOR_WORDS = {ActorKind.AI: "the compliance checks", ActorKind.SYSTEM: "the system", ActorKind.STAFF: "staff"}


@register.filter
def actor_words(event: Any) -> str:
    """Who made a timeline entry: the person's name, else "the compliance checks" or "the system"."""
    if event.actor is not None:
        return str(event.actor.display_name)
    return ACTOR_WORDS.get(event.actor_kind, event.get_actor_kind_display())


@register.filter
def tracking_link(task: Any) -> SafeString:
    """A shipment's carrier and tracking number, the number linking to the carrier's tracking page
    (``core.tracking``); plain text for a carrier without a known page."""
    url = tracking_url(task.carrier, task.tracking_number)
    if url is None:
        return format_html("{} tracking <strong>{}</strong>", task.carrier, task.tracking_number)
    return format_html(
        '{} tracking <a href="{}" rel="noopener noreferrer" target="_blank"><strong>{}</strong>'
        '<span class="visually-hidden"> (opens the {} tracking page in a new tab)</span></a>',
        task.carrier,
        url,
        task.tracking_number,
        task.carrier,
    )
