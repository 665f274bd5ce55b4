"""Portal forms: the shape of what people type (required, lengths, types). The rules live in the
services these forms feed; a service's ValidationFailed is shown against the same fields."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django import forms
from django.utils import timezone

from compliance.inputs import ArtifactType
from core.exceptions import DomainError
from core.identifiers import STATE_ERROR, ZIP_ERROR, is_us_state_code, is_valid_icd10, normalize_icd10
from orders.drafts import PRESCRIPTION_DETAILS as PRESCRIPTION_FIELDS
from orders.models import (
    MAX_DAYS_SUPPLY,
    MAX_DIAGNOSIS_CODES,
    MAX_REFILLS,
    DeliveryMode,
    DeliveryWindow,
    DosePeriodUnit,
)
from orders.services import hcpcs_codes_errors
from orders.templatetags.portal import ARTIFACT_LABELS
from patients.models import PayerType


class NoteForm(forms.Form):
    note = forms.CharField(label="Note", max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class ApproveForm(forms.Form):
    """Approve an order; a review note is required when it needs review (the service says so too)."""

    notes = forms.CharField(
        label="Review note",
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What you checked and decided; recorded on the timeline and in the compliance record.",
    )

    def __init__(self, *args: Any, note_required: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["notes"].required = note_required
        if not note_required:
            self.fields["notes"].label = "Note"


class OverrideForm(forms.Form):
    """Verify over open findings: for users with the override permission only."""

    override_reason = forms.CharField(
        label="Override reason",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the order may go ahead despite the findings; audited.",
    )


class CancelForm(forms.Form):
    reason = forms.CharField(
        label="Reason for cancelling",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded on the order's timeline.",
    )


class DocumentForm(forms.Form):
    """A document for an order or a draft. ``codes``: the (HCPCS code, label) of its items, offered
    for a prior authorization, which must name the code(s) it is for (``hcpcs_codes_errors``)."""

    artifact_type = forms.ChoiceField(
        label="Document type", choices=[(t.value, ARTIFACT_LABELS[t]) for t in ArtifactType]
    )
    document_date = forms.DateField(
        label="Document date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The date on the document (a prior authorization's decision date, a note's visit date).",
    )
    hcpcs_codes = forms.MultipleChoiceField(
        label="Prior authorization for",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="For a prior authorization: the item(s) the decision is for. It clears only those.",
    )
    file = forms.FileField(label="File (PDF, PNG or JPEG)")

    def __init__(self, *args: Any, codes: Sequence[tuple[str, str]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        codes_field = self.fields["hcpcs_codes"]
        assert isinstance(codes_field, forms.MultipleChoiceField)
        codes_field.choices = list(codes)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "artifact_type" in data:
            for error in hcpcs_codes_errors(
                artifact_type=data["artifact_type"], hcpcs_codes=data.get("hcpcs_codes") or []
            ):
                self.add_error("hcpcs_codes", error)
        return data


def hcpcs_choices(products: Iterable[Any]) -> list[tuple[str, str]]:
    """(HCPCS code, "E0651 · Compression pump") for each coded product, by code, each code once: the
    items a prior authorization document may be for."""
    names: dict[str, str] = {}
    for product in products:
        if product is not None and product.hcpcs_code:
            names.setdefault(product.hcpcs_code, product.name)
    return [(code, f"{code} · {names[code]}") for code in sorted(names)]


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
        if isinstance(details, dict):  # say what was wrong, even for fields this form does not have
            for messages in details.values():
                for message in messages if isinstance(messages, list) else []:
                    if isinstance(message, str):  # not the ids and codes some errors list
                        form.add_error(None, message)


# --- the order wizard's steps --------------------------------------------------------------------


class PatientConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        label="This is the right patient", error_messages={"required": "Confirm the patient to go on."}
    )


class PrescriptionForm(forms.Form):
    provider_id = forms.ChoiceField(label="Ordering provider")
    payer_type = forms.ChoiceField(
        label="Paid by",
        choices=PayerType.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how the order is paid."},
    )
    diagnosis_codes = forms.CharField(
        label="Diagnosis codes (ICD-10-CM)",
        required=False,
        max_length=200,
        help_text="Separate codes with commas, e.g. G47.33, E11.9.",
    )
    f2f_date = forms.DateField(
        label="Face-to-face encounter date", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    notes = forms.CharField(label="Notes", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, providers: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(str(p.pk), f"{p.name} (NPI {p.npi})") for p in providers]
        self.fields["provider_id"].choices = choices  # type: ignore[attr-defined]

    def clean_diagnosis_codes(self) -> list[str]:
        codes = [code.strip() for code in self.cleaned_data["diagnosis_codes"].replace(";", ",").split(",")]
        codes = [code for code in codes if code]
        bad = [code for code in codes if not is_valid_icd10(code)]
        if bad:
            raise forms.ValidationError(f"Not valid ICD-10-CM codes: {', '.join(bad)} (e.g. E11.9).")
        if len(codes) > MAX_DIAGNOSIS_CODES:
            raise forms.ValidationError(f"Give at most {MAX_DIAGNOSIS_CODES} codes.")
        return list(dict.fromkeys(normalize_icd10(code) for code in codes))


class CatalogForm(forms.Form):
    skus = forms.MultipleChoiceField(label="Products", error_messages={"required": "Choose at least one product."})

    def __init__(self, *args: Any, skus: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["skus"].choices = [(sku, sku) for sku in skus]  # type: ignore[attr-defined]


class QuantitiesForm(forms.Form):
    """One quantity per chosen product (``qty-<position>``) and, for a medication, its prescription:
    the sig, how often (``dose_frequency`` per ``dose_period`` ``dose_period_unit``), days' supply
    and refills (``<detail>-<position>``), all required."""

    def __init__(self, *args: Any, products: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.products = products
        for index, product in enumerate(products):
            self.fields[f"qty-{index}"] = forms.IntegerField(
                label=f"{product.name} ({product.unit})", min_value=1, max_value=9999, initial=1
            )
            if product.is_medication:
                self.fields.update(self._prescription_fields(index, product))

    @staticmethod
    def _prescription_fields(index: int, product: Any) -> dict[str, forms.Field]:
        required = {"required": f"Needed for the prescription of {product.name}."}
        return {
            f"dosage_text-{index}": forms.CharField(
                label="Sig (dose and directions)",
                max_length=500,
                help_text="As the pharmacy label will read, e.g. Inject 0.25 mg under the skin once a week.",
                error_messages=required,
            ),
            f"dose_frequency-{index}": forms.IntegerField(
                label="Doses", min_value=1, max_value=24, error_messages=required
            ),
            f"dose_period-{index}": forms.IntegerField(
                label="Every", min_value=1, max_value=365, initial=1, error_messages=required
            ),
            f"dose_period_unit-{index}": forms.ChoiceField(
                label="Period", choices=DosePeriodUnit.choices, initial=DosePeriodUnit.DAY, error_messages=required
            ),
            f"days_supply-{index}": forms.IntegerField(
                label="Days' supply", min_value=1, max_value=MAX_DAYS_SUPPLY, error_messages=required
            ),
            f"refills-{index}": forms.IntegerField(
                label="Refills", min_value=0, max_value=MAX_REFILLS, initial=0, error_messages=required
            ),
        }

    def lines(self) -> list[tuple[Any, forms.BoundField, list[forms.BoundField]]]:
        """Per product: the product, its quantity field and its prescription fields (empty unless a medication)."""
        return [
            (
                product,
                self[f"qty-{index}"],
                [self[f"{name}-{index}"] for name in PRESCRIPTION_FIELDS] if product.is_medication else [],
            )
            for index, product in enumerate(self.products)
        ]

    def quantities(self) -> dict[str, int]:
        """The quantities given (those that passed validation, so a partial save keeps what it can)."""
        data = self.cleaned_data
        return {p.sku: data[f"qty-{i}"] for i, p in enumerate(self.products) if data.get(f"qty-{i}") is not None}

    def prescriptions(self) -> dict[str, dict[str, Any]]:
        """The medications' prescription details given, by SKU (only fields that passed validation)."""
        data = self.cleaned_data
        return {
            product.sku: {
                name: data[f"{name}-{index}"] for name in PRESCRIPTION_FIELDS if data.get(f"{name}-{index}") is not None
            }
            for index, product in enumerate(self.products)
            if product.is_medication
        }


class DeliveryForm(forms.Form):
    mode = forms.ChoiceField(label="Delivery", choices=DeliveryMode.choices, widget=forms.RadioSelect)
    window = forms.ChoiceField(label="Delivery window", choices=DeliveryWindow.choices)
    requested_date = forms.DateField(
        label="Deliver on or after", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    line1 = forms.CharField(label="Address line 1", required=False, max_length=200)
    line2 = forms.CharField(label="Address line 2", required=False, max_length=200)
    city = forms.CharField(label="City", required=False, max_length=100)
    state = forms.CharField(
        label="State",
        required=False,
        max_length=2,
        help_text="The two-letter USPS code, e.g. ND.",
        error_messages={"max_length": STATE_ERROR},
    )
    postal_code = forms.RegexField(
        label="ZIP code",
        regex=r"^\d{5}(-\d{4})?$",
        required=False,
        max_length=10,
        help_text="5 digits, or ZIP+4 such as 58102-1234.",
        error_messages={"invalid": ZIP_ERROR, "max_length": ZIP_ERROR},
    )

    ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code")
    REQUIRED_ADDRESS_FIELDS = {"line1": "street address", "city": "city", "state": "state", "postal_code": "ZIP code"}

    def clean_state(self) -> str:
        state = self.cleaned_data["state"].strip().upper()
        if state and not is_us_state_code(state):
            raise forms.ValidationError(STATE_ERROR)
        return state

    def clean_requested_date(self) -> dt.date | None:
        day = self.cleaned_data["requested_date"]
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError("Choose today or a later day.")
        return day

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        given = [name for name in self.ADDRESS_FIELDS if data.get(name)]
        if given:
            for name in self.REQUIRED_ADDRESS_FIELDS:
                if not data.get(name) and name not in self.errors:
                    self.add_error(
                        name,
                        (
                            f"Enter the {self.REQUIRED_ADDRESS_FIELDS[name]} of the delivery address, or clear the "
                            "address fields to deliver to the address on file."
                        ),
                    )
        return data

    def delivery(self) -> dict[str, Any]:
        data = self.cleaned_data
        address = {name: data.get(name, "") for name in self.ADDRESS_FIELDS}
        if address["state"]:
            address["state"] = address["state"].upper()
        return {
            "mode": data.get("mode") or DeliveryMode.SHIP_TO_PATIENT,
            "window": data.get("window") or DeliveryWindow.ANY,
            "requested_date": data["requested_date"].isoformat() if data.get("requested_date") else None,
            "address": address if any(address.values()) else None,
        }


class SignForm(forms.Form):
    """The review step: the drawn signature arrives as a PNG data URL from the signature pad."""

    PREFIX = "data:image/png;base64,"

    sign = forms.BooleanField(label="I sign this written order", required=False)
    signature = forms.CharField(required=False, widget=forms.HiddenInput, max_length=800_000)

    def __init__(self, *args: Any, signature_needed: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signature_needed = signature_needed

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        image = None
        value = data.get("signature") or ""
        if value:
            if not value.startswith(self.PREFIX):
                self.add_error("signature", "The signature pad sent no image; sign again.")
            else:
                try:
                    image = base64.b64decode(value[len(self.PREFIX) :], validate=True)
                except (binascii.Error, ValueError):
                    self.add_error("signature", "The signature pad sent no image; sign again.")
        if self.signature_needed and not (data.get("sign") and image):
            self.add_error("sign", "Sign in the box and tick the box to sign the order.")
        data["signature_image"] = image if data.get("sign") else None
        return data
