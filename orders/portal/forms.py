"""Portal forms: the shape of what people type (required, lengths, types). The rules live in the
services these forms feed; a service's ValidationFailed is shown against the same fields."""

from __future__ import annotations

from typing import Any

from django import forms

from compliance.inputs import ArtifactType
from core.exceptions import DomainError
from orders.templatetags.portal import ARTIFACT_LABELS


class NoteForm(forms.Form):
    note = forms.CharField(label="Note", max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class DocumentForm(forms.Form):
    artifact_type = forms.ChoiceField(
        label="Document type", choices=[(t.value, ARTIFACT_LABELS[t]) for t in ArtifactType]
    )
    document_date = forms.DateField(
        label="Document date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The date on the document (a prior authorization's decision date, a note's visit date).",
    )
    file = forms.FileField(label="File (PDF, PNG or JPEG)")


def add_service_errors(form: forms.Form, error: DomainError) -> None:
    """Show a service's refusal on the form: per field where it names one, else above the form."""
    details: Any = getattr(error, "details", None) or {}
    placed = False
    if isinstance(details, dict):
        for field, messages in details.items():
            if field in form.fields and isinstance(messages, list):
                for message in messages:
                    form.add_error(field, str(message))
                placed = True
    if not placed:
        form.add_error(None, str(error))
