"""Patients, the providers who treat them, and their coverage.

Every PHI field is encrypted at rest with the row's territory bound as associated data; names
and date of birth are found through keyed blind indexes, never by decrypting the table.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from core.fields import (
    BlindIndexField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedJSONField,
    PHIModel,
)
from core.identifiers import mbi_cleaned, validate_hcpcs, validate_npi


class Provider(models.Model):
    """A treating practitioner, identified by NPI, working in one territory."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="providers")
    name = models.CharField(max_length=200)
    npi = models.CharField("NPI", max_length=10, unique=True, validators=[validate_npi])
    credentials = models.CharField(max_length=50, blank=True, help_text="e.g. MD, DO, NP, PA")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="provider",
        help_text="The doctor's sign-in account, if they use the portal.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (NPI {self.npi})"


class HistoryCondition(models.TextChoices):
    """History items the intake records for the medication safety checks (compliance's rule file uses these ids)."""

    MEDULLARY_THYROID_CARCINOMA = "medullary_thyroid_carcinoma", "Personal history of medullary thyroid carcinoma"
    FAMILY_HISTORY_MEDULLARY_THYROID_CARCINOMA = (
        "family_history_medullary_thyroid_carcinoma",
        "Family history of medullary thyroid carcinoma",
    )
    MEN2 = "men2", "Multiple endocrine neoplasia type 2 (MEN 2A or 2B)"
    PREGNANCY = "pregnancy", "Currently pregnant"
    PREGNANCY_POSSIBLE = "pregnancy_possible", "May become pregnant"
    PHEOCHROMOCYTOMA = "pheochromocytoma", "Pheochromocytoma"


def validate_history_conditions(value: object) -> None:
    """A list of HistoryCondition ids (a typo would silently miss a contraindication)."""
    if value in (None, []):
        return
    if not isinstance(value, list) or any(item not in HistoryCondition.values for item in value):
        raise ValidationError(
            f"Give a list of these history items: {', '.join(HistoryCondition.values)}.", code="invalid_conditions"
        )


# Letters of a name its prefix index covers: a search term this long or longer finds every patient
# whose first or last name starts with it. Three letters give candidate sets small enough to check
# by decrypting only them, while an index of so few letters says little about any one name.
NAME_PREFIX_LENGTH = 3


class AdministrativeSex(models.TextChoices):
    """The patient's administrative sex (HL7 FHIR R4 AdministrativeGender, required by US Core
    Patient 6.1.0 as ``gender``); the medication safety checks read it for sex-specific labels."""

    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


def validate_administrative_sex(value: object) -> None:
    if value in (None, "") or value in AdministrativeSex.values:
        return
    raise ValidationError(f"Give one of: {', '.join(AdministrativeSex.values)}.", code="invalid_administrative_sex")


class Patient(PHIModel):
    """A patient assigned to one provider's territory."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="patients")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="patients")

    first_name = EncryptedCharField(max_length=100, blank=False)
    last_name = EncryptedCharField(max_length=100, blank=False)
    date_of_birth = EncryptedDateField(blank=False)
    sex = EncryptedCharField(
        "administrative sex",
        max_length=10,
        validators=[validate_administrative_sex],
        help_text="female, male, other or unknown (FHIR AdministrativeGender).",
    )
    mbi = EncryptedCharField("MBI", max_length=13)
    phone = EncryptedCharField(max_length=30)
    email = EncryptedCharField(max_length=254)
    address = EncryptedJSONField(help_text="{line1, line2, city, state, postal_code}")
    # Medication-safety intake (seed 004): what the patient reports, checked before prescribing.
    allergies = EncryptedJSONField(help_text='Drug allergies as recorded, e.g. ["sulfa", "tadalafil"].')
    medications = EncryptedJSONField(
        help_text='Current medications as recorded, e.g. ["isosorbide mononitrate 30 mg"].'
    )
    conditions = EncryptedJSONField(
        help_text='History items for the medication safety checks, e.g. ["men2"].',
        validators=[validate_history_conditions],
    )

    # Messages (the engagement agent): the patient's consent per channel, when and how it was given
    # or withdrawn, and the time zone their quiet hours are counted in.
    consent_email = models.BooleanField(default=True, help_text="Order messages by email.")
    consent_sms = models.BooleanField(default=True, help_text="Order messages by text message.")
    consent_recorded_at = models.DateTimeField(null=True, blank=True)
    consent_source = models.CharField(
        max_length=30, blank=True, help_text="How consent was last given or withdrawn, e.g. intake, unsubscribe link."
    )
    time_zone = models.CharField(
        max_length=50, blank=True, help_text="IANA time zone for quiet hours, e.g. America/Chicago; blank: the site's."
    )

    first_name_index = BlindIndexField(sources=("first_name",), purpose="patient.first_name")
    last_name_index = BlindIndexField(sources=("last_name",), purpose="patient.last_name")
    full_name_index = BlindIndexField(sources=("first_name", "last_name"), purpose="patient.full_name")
    date_of_birth_index = BlindIndexField(sources=("date_of_birth",), purpose="patient.date_of_birth")
    # The first three letters of each name, for search by the start of a name (patients.selectors).
    first_name_prefix_index = BlindIndexField(
        sources=("first_name",), purpose="patient.first_name_prefix", prefix_length=NAME_PREFIX_LENGTH
    )
    last_name_prefix_index = BlindIndexField(
        sources=("last_name",), purpose="patient.last_name_prefix", prefix_length=NAME_PREFIX_LENGTH
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        # The API's patient list: a territory's patients, newest first, read by key (core.keyset).
        indexes = [models.Index(fields=["territory", "created_at", "id"], name="patient_territory_key_idx")]

    def __str__(self) -> str:
        # Never the name: strings of models end up in logs and admin messages.
        return f"Patient {str(self.pk)[:8]}"

    def clean(self) -> None:
        """Normalise the MBI (``core.identifiers.mbi_cleaned``: no dashes or spaces, upper case) and
        refuse a malformed one. Run by every writer: admin forms (``full_clean``) and the services."""
        super().clean()
        try:
            self.mbi = mbi_cleaned(self.mbi)
        except ValidationError as error:
            raise ValidationError({"mbi": error.messages}) from None


class PayerType(models.TextChoices):
    CASH = "cash", "Cash pay"
    INSURANCE = "insurance", "Insurance"


class PayerKind(models.TextChoices):
    """Which kind of payer an insurance coverage is. The Medicare fee-for-service programs (prior
    authorization, face-to-face/WOPD, usual maximums, refill rules) apply to Medicare FFS only;
    every other kind is checked against its own rules (``compliance.PayerRule``)."""

    MEDICARE_FFS = "medicare_ffs", "Medicare fee-for-service (Original Medicare)"
    MEDICARE_ADVANTAGE = "medicare_advantage", "Medicare Advantage"
    MEDICAID = "medicaid", "Medicaid"
    VA = "va", "Veterans Affairs"
    IHS = "ihs", "Indian Health Service"
    COMMERCIAL = "commercial", "Commercial"


class Coverage(PHIModel):
    """A patient's insurance plan (or cash pay), with the plan details encrypted.

    An insurance coverage says which kind of payer it is (``payer_kind``); cash pay has none.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="coverages")
    payer_type = models.CharField(max_length=20, choices=PayerType.choices)
    payer_kind = models.CharField(
        max_length=20,
        choices=PayerKind.choices,
        blank=True,
        help_text="For insurance: which kind of payer. Empty for cash pay.",
    )
    payer_name = EncryptedCharField(max_length=200)
    plan_name = EncryptedCharField(max_length=200)
    member_id = EncryptedCharField(max_length=64)
    group_number = EncryptedCharField(max_length=64)
    coverage_tier = models.CharField(max_length=50, blank=True)
    effective_from = models.DateField(null=True, blank=True)
    effective_to = models.DateField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-active", "-effective_from"]

    def __str__(self) -> str:
        return f"Coverage {str(self.pk)[:8]} ({self.get_payer_type_display()})"

    def clean(self) -> None:
        super().clean()
        if self.payer_type == PayerType.INSURANCE and not self.payer_kind:
            raise ValidationError({"payer_kind": "Say which kind of payer this insurance is."})
        if self.payer_type == PayerType.CASH and self.payer_kind:
            raise ValidationError({"payer_kind": "Cash pay has no payer kind."})


class PriorAuthorizationDecision(models.TextChoices):
    AFFIRMED = "affirmed", "Affirmed"
    NON_AFFIRMED = "non_affirmed", "Non-affirmed"


class PriorAuthorization(PHIModel):
    """A payer's prior authorization decision for one HCPCS code, on file for a patient.

    The unique tracking number (UTN) identifies the patient's request at the DME MAC, so it is
    encrypted. ``expires_on`` is the end the decision letter states; without one the engine uses
    the program's validity from the rule files.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="prior_authorizations")
    hcpcs_code = models.CharField("HCPCS code", max_length=5, validators=[validate_hcpcs])
    decision = models.CharField(max_length=20, choices=PriorAuthorizationDecision.choices)
    decision_date = models.DateField()
    expires_on = models.DateField(null=True, blank=True)
    tracking_number = EncryptedCharField("unique tracking number", max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-decision_date"]

    def __str__(self) -> str:
        return f"Prior authorization {self.hcpcs_code} ({self.get_decision_display()})"


class ProviderCredential(models.Model):
    """A licence or enrolment that lets a provider order in one territory for a date range."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="credentials_held")
    territory = models.ForeignKey("territories.Territory", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=50, help_text="e.g. state medical licence, Medicare enrolment")
    number = models.CharField(max_length=50)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True, help_text="Last valid day; empty: open-ended.")
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["provider", "-valid_from"]

    def __str__(self) -> str:
        return f"{self.kind} {self.number}"
