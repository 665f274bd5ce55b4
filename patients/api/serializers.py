import datetime as dt

from django.core.exceptions import ValidationError
from rest_framework import serializers

from core.api.fields import StrictUUIDField
from core.identifiers import STATE_ERROR, ZIP_ERROR, is_us_state_code, mbi_cleaned
from patients.models import AdministrativeSex, HistoryCondition

SEX_ERROR = f"Give one of: {', '.join(AdministrativeSex.values)} (or leave it out when not recorded)."


class AddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100)
    state = serializers.CharField(max_length=2, error_messages={"max_length": STATE_ERROR})
    postal_code = serializers.RegexField(r"^\d{5}(-\d{4})?$", error_messages={"invalid": ZIP_ERROR})

    def validate_state(self, value: str) -> str:
        """A USPS state or territory code (core.identifiers.US_STATE_CODES), kept upper case."""
        if not is_us_state_code(value):
            raise serializers.ValidationError(STATE_ERROR)
        return value.strip().upper()


class PatientCreateSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=100)
    last_name = serializers.CharField(max_length=100)
    date_of_birth = serializers.DateField()
    sex = serializers.ChoiceField(
        choices=AdministrativeSex.choices,
        required=False,
        allow_blank=True,
        allow_null=True,
        error_messages={"invalid_choice": SEX_ERROR},
        help_text="Administrative sex (FHIR AdministrativeGender): female, male, other or unknown. "
        "Leave it out when not recorded.",
    )
    mbi = serializers.CharField(max_length=13, required=False, allow_blank=True, allow_null=True)
    phone = serializers.RegexField(
        r"^\+?[0-9 ().-]{7,20}$",
        required=False,
        allow_blank=True,
        allow_null=True,
        error_messages={"invalid": "Enter a phone number of 7 to 20 digits."},
    )
    email = serializers.EmailField(required=False, allow_blank=True, allow_null=True)
    address = AddressSerializer(required=False, allow_null=True)
    provider_id = StrictUUIDField()
    allergies = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )
    medications = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=50
    )
    conditions = serializers.ListField(
        child=serializers.ChoiceField(choices=HistoryCondition.choices),
        required=False,
        default=list,
        max_length=20,
        help_text="History items the medication safety checks use.",
    )

    def validate_mbi(self, value: str | None) -> str | None:
        """The MBI normalised (no dashes or spaces, upper case) by the same check the model runs."""
        try:
            return mbi_cleaned(value)
        except ValidationError as error:
            raise serializers.ValidationError(error.messages) from None

    def validate_date_of_birth(self, value: dt.date) -> dt.date:
        if value > dt.date.today():
            raise serializers.ValidationError("The date of birth cannot be in the future.")
        return value


class PatientSerializer(serializers.Serializer):
    """A patient as the API shows them (decrypted, for users of the patient's territory)."""

    id = serializers.UUIDField()
    territory_id = serializers.UUIDField()
    provider_id = serializers.UUIDField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    date_of_birth = serializers.DateField()
    sex = serializers.CharField(allow_null=True, help_text="female, male, other or unknown; null when not recorded.")
    mbi = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    address = AddressSerializer(allow_null=True)
    allergies = serializers.ListField(child=serializers.CharField(), allow_null=True)
    medications = serializers.ListField(child=serializers.CharField(), allow_null=True)
    conditions = serializers.ListField(child=serializers.CharField(), allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ProviderSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    npi = serializers.CharField()
    territory_id = serializers.UUIDField()
    credentials = serializers.CharField()
