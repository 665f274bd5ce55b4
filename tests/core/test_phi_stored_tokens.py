"""Tokens already stored keep opening, rows without a territory are never sealed, and exports stay sealed."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from django import forms
from django.core import serializers
from django.core.management import call_command
from django.db import connection, transaction
from django.forms import modelform_factory

from core import crypto
from core.fields import EncryptedCharField, EncryptedDateField, EncryptedFieldMixin
from orders.models import Order
from patients.models import Patient
from tests.factories import PatientFactory, ProviderFactory, TerritoryFactory

# Written by the code of 2025 with this key (id "fixed", the bytes 0..31) and kept here verbatim: any
# change to the token format (version, key id, nonce length, encoding) or to the associated data
# (territory id and field name) that would leave stored rows unreadable fails these tests.
FIXED_KEY = "fixed:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
TERRITORY_ID = uuid.UUID("0b6f2a1c-5d3e-4f7a-9b8c-1d2e3f405162")
SEALED_SENTENCE = "phi1:fixed:88IfDpVNIn48XDzdFcLJtuNuaeKdrO2vWtJShkuk90QVNpnu8PbwXNuGLWKdKTwdnAxZ_0Vj3MXKm_bCTDY="
SEALED_FIRST_NAME = "phi1:fixed:VkWfcgvubRt8jL384CDddgwuckvj6aILn2yN-8eV9ZhFxtZ2DyE="
SEALED_DATE_OF_BIRTH = "phi1:fixed:iU7jjucdKAdRvumwZTIXNi7THZ1tV5MAKJOco-Fq4IT5hTXJLAk="
SEALED_ADDRESS = (
    "phi1:fixed:Csp_0u5ch9k0hb-yyFP-692L99kw9PvCacKa2lMbmgQ4B6G3v-hFwwE4hEz6IT_z4HxVC6ThGVIm1x8uvTiidYZX3IoKZ0of7o"
    "GCTtY1AF4ZCswEVk0Uh6js1mR6B_UQHWf99nSL1VNMotqj4w5QvKi9moXP4xOjjV_zhTw="
)
ADDRESS = {"city": "Fairviewton", "line1": "4417 Wisteria Lane", "line2": "", "postal_code": "60601", "state": "IL"}
PHI_TEXT = ["Evangelina", "Thistlewood", "1951-11-23", "8TW5HJ7KM29", "312-555-0187", "Wisteria", "Fairviewton"]


@pytest.fixture
def fixed_key(settings: Any) -> None:
    """The fixed key joins the test keys; k1 stays the active key."""
    settings.PHI_ENCRYPTION_KEYS = f"{settings.PHI_ENCRYPTION_KEYS},{FIXED_KEY}"


def _raw_update(pk: Any, **columns: str) -> None:
    with connection.cursor() as cursor:
        for column, value in columns.items():
            cursor.execute(
                f"UPDATE patients_patient SET {connection.ops.quote_name(column)} = %s WHERE id = %s", [value, pk]
            )


def _raw_value(pk: Any, column: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name(column)} FROM patients_patient WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _patient_in_fixed_territory() -> Patient:
    territory = TerritoryFactory.create(id=TERRITORY_ID, code="fixed", name="Fixed")
    provider = ProviderFactory.create(territory=territory)
    patient: Patient = PatientFactory.create(provider=provider, territory=territory, insured=False)
    return patient


def test_a_token_written_by_todays_code_still_opens(fixed_key: None) -> None:
    context = f"{TERRITORY_ID}|first_name".encode()

    assert crypto.token_key_id(SEALED_SENTENCE) == "fixed"
    assert crypto.open_token(SEALED_SENTENCE, associated_data=context) == "Evangelina Thistlewood, 1951-11-23"


def test_stored_text_date_and_json_tokens_of_a_patient_still_open(fixed_key: None, db: None) -> None:
    # Given a patient row of the fixed territory holding tokens written by today's code
    patient = _patient_in_fixed_territory()
    _raw_update(patient.pk, first_name=SEALED_FIRST_NAME, date_of_birth=SEALED_DATE_OF_BIRTH, address=SEALED_ADDRESS)

    # When the patient is read
    stored = Patient.objects.get(pk=patient.pk)

    # Then each field opens to its value, typed
    assert stored.first_name == "Evangelina"
    assert stored.date_of_birth == dt.date(1951, 11, 23)
    assert stored.address == ADDRESS


def test_saving_a_row_sealed_with_an_older_key_seals_it_again_with_the_active_key(fixed_key: None, db: None) -> None:
    # Given a row whose first name was sealed with the older key "fixed", never opened since
    patient = _patient_in_fixed_territory()
    _raw_update(patient.pk, first_name=SEALED_FIRST_NAME)
    stored = Patient.objects.get(pk=patient.pk)

    # When it is saved
    stored.save()

    # Then the column holds a new token, sealed with the active key k1, of the same first name
    token = _raw_value(patient.pk, "first_name")
    assert token.startswith("phi1:k1:")
    assert crypto.open_token(token, associated_data=f"{TERRITORY_ID}|first_name".encode()) == "Evangelina"


def test_values_are_sealed_as_their_text_form_bound_to_territory_and_field(north: Any) -> None:
    # Given a patient saved with a date of birth and an address
    unsorted_address = {"state": "IL", "line1": "4417 Wisteria Lane", "city": "Fairviewton"}
    patient = PatientFactory.create(
        provider=north.provider,
        territory=north.territory,
        date_of_birth=dt.date(1951, 11, 23),
        address=unsorted_address,
    )

    # Then the columns open, with "<territory id>|<field>" as associated data, to ISO date and compact sorted JSON
    def opened(column: str) -> str:
        return crypto.open_token(
            _raw_value(patient.pk, column), associated_data=f"{north.territory.pk}|{column}".encode()
        )

    assert opened("date_of_birth") == "1951-11-23"
    assert opened("address") == '{"city":"Fairviewton","line1":"4417 Wisteria Lane","state":"IL"}'
    assert opened("first_name") == patient.first_name


def test_a_patient_without_a_territory_is_refused_and_nothing_is_written(north: Any) -> None:
    # Given a new patient of the north provider whose territory was never set
    patient = PatientFactory.build(provider=north.provider, territory=None, first_name="Evangelina")
    before = (Patient.objects.count(), Patient.history.count())

    # When it is saved
    with pytest.raises(ValueError) as caught, transaction.atomic():
        patient.save()

    # Then saving is refused before anything is sealed or written, and the error shows no PHI
    assert str(caught.value) == "Patient.first_name needs a territory before it can be sealed"
    assert (Patient.objects.count(), Patient.history.count()) == before


def _encrypted_field_names() -> list[str]:
    return [f.name for f in Patient._meta.concrete_fields if isinstance(f, EncryptedFieldMixin)]


@pytest.fixture
def evangelina(north: Any) -> Patient:
    patient: Patient = PatientFactory.create(
        provider=north.provider,
        territory=north.territory,
        first_name="Evangelina",
        last_name="Thistlewood",
        date_of_birth=dt.date(1951, 11, 23),
        mbi="8TW5HJ7KM29",
        phone="312-555-0187",
        address=ADDRESS,
        insured=False,
    )
    return patient


def _assert_sealed_export(fields: dict[str, Any], patient: Patient) -> None:
    """Every encrypted field of the exported row is a token that opens to the patient's value."""
    territory = patient.territory_id
    for name in _encrypted_field_names():
        value = fields[name]
        if getattr(patient, name) is None:
            assert value is None, name
            continue
        assert str(value).startswith("phi1:k1:"), name
        field = Patient._meta.get_field(name)
        assert isinstance(field, EncryptedFieldMixin)
        opened = crypto.open_token(value, associated_data=f"{territory}|{name}".encode())
        assert field.decode(opened) == getattr(patient, name), name


@pytest.mark.parametrize("export_format", ["json", "jsonl", "yaml", "xml"])
def test_dumpdata_exports_phi_as_tokens_never_in_clear(evangelina: Patient, export_format: str) -> None:
    # When the patients are dumped in each format
    out = io.StringIO()
    call_command("dumpdata", "patients.patient", format=export_format, stdout=out)
    dump = out.getvalue()

    # Then no PHI appears in clear, the date of birth included
    assert [text for text in PHI_TEXT if text in dump] == []
    assert "phi1:k1:" in dump
    if export_format == "json":
        (row,) = [r for r in json.loads(dump) if r["pk"] == str(evangelina.pk)]
        _assert_sealed_export(row["fields"], Patient.objects.get(pk=evangelina.pk))


def test_the_python_and_xml_serializers_export_each_encrypted_field_as_its_token(evangelina: Patient) -> None:
    # Given the patient as loaded (sealed) and as opened (every field read)
    loaded = Patient.objects.get(pk=evangelina.pk)
    opened = Patient.objects.get(pk=evangelina.pk)
    for name in _encrypted_field_names():
        getattr(opened, name)

    for patient in (loaded, opened):
        # When it is serialized
        (row,) = serializers.serialize("python", [patient])
        xml_fields = {
            node.get("name"): node.text
            for node in ET.fromstring(serializers.serialize("xml", [patient])).iter("field")
            if node.get("name") in _encrypted_field_names()
        }

        # Then every encrypted field is a token of the right value
        _assert_sealed_export(row["fields"], evangelina)
        _assert_sealed_export({name: xml_fields.get(name) for name in _encrypted_field_names()}, evangelina)

    # And a row never opened exports exactly the tokens it stores (the XML serializer above opened ``loaded``)
    (row,) = serializers.serialize("python", [Patient.objects.get(pk=evangelina.pk)])
    assert {name: row["fields"][name] for name in _encrypted_field_names()} == {
        name: _raw_value(evangelina.pk, name) for name in _encrypted_field_names()
    }


def test_a_malformed_token_is_refused_with_a_message_that_shows_nothing_of_it() -> None:
    for token in ("Evangelina", "phi2:k1:abc", "phi1"):
        with pytest.raises(crypto.PHIDecryptionError) as caught:
            crypto.open_token(token, associated_data=b"t|first_name")
        assert str(caught.value) == "malformed PHI token"


def test_a_prefix_index_covers_a_value_exactly_as_long_as_the_prefix() -> None:
    # "Eva" is three letters: its prefix index is its whole-value index; "Ev" is too short for one
    assert crypto.blind_index_prefix("Eva", purpose="p", length=3) == crypto.blind_index("eva", purpose="p")
    assert crypto.blind_index_prefix("Évangelina", purpose="p", length=3) == crypto.blind_index("eva", purpose="p")
    assert crypto.blind_index_prefix("Ev", purpose="p", length=3) is None


def test_blind_indexes_are_set_on_save_and_null_when_a_source_is_empty(north: Any) -> None:
    # Given a patient with a first name and one with an empty first name
    named = PatientFactory.create(
        provider=north.provider, territory=north.territory, first_name="Evangelina", last_name="Thistlewood"
    )
    unnamed = PatientFactory.create(provider=north.provider, territory=north.territory, first_name="")

    # Then the saved instance carries the indexes of its names, and the unnamed one has none for the first name
    assert named.first_name_index == crypto.blind_index("Evangelina", purpose="patient.first_name")
    assert named.full_name_index == crypto.blind_index("Evangelina Thistlewood", purpose="patient.full_name")
    assert named.date_of_birth_index == crypto.blind_index("1950-03-14", purpose="patient.date_of_birth")
    assert Patient.objects.get(pk=named.pk).full_name_index == named.full_name_index
    assert (unnamed.first_name_index, unnamed.full_name_index, unnamed.first_name_prefix_index) == (None, None, None)
    assert unnamed.last_name_index is not None


def test_a_date_of_birth_given_as_iso_text_is_stored_and_validated_as_a_date(north: Any) -> None:
    # Given a patient whose date of birth arrives as text (a form, an import)
    patient = PatientFactory.build(provider=north.provider, territory=north.territory, date_of_birth="1951-11-23")

    # When it is validated and saved
    patient.full_clean(exclude=["sex", "mbi", "allergies", "medications", "conditions"])
    patient.save()

    # Then it is a date, before and after the round trip through the database
    assert patient.date_of_birth == dt.date(1951, 11, 23)
    assert Patient.objects.get(pk=patient.pk).date_of_birth == dt.date(1951, 11, 23)
    # And text stored before validation is sealed as the same date
    other = PatientFactory.create(provider=north.provider, territory=north.territory, date_of_birth="1951-11-24")
    assert Patient.objects.get(pk=other.pk).date_of_birth == dt.date(1951, 11, 24)


def test_plaintext_writes_are_refused_with_the_whole_explanation(patient_in_north: Patient) -> None:
    with pytest.raises(TypeError) as caught, transaction.atomic():
        Patient.objects.filter(pk=patient_in_north.pk).update(first_name="x")

    assert str(caught.value) == (
        "Patient.first_name is encrypted: write it by saving the model, and search it through its blind index"
    )


@pytest.fixture
def patient_in_north(north: Any) -> Patient:
    return north.patient


def test_forms_for_encrypted_fields_validate_like_plain_fields() -> None:
    patient_form = modelform_factory(Patient, fields=["first_name", "date_of_birth", "address"])
    order_form = modelform_factory(Order, fields=["notes"])

    fields = patient_form().fields
    first_name = fields["first_name"]
    assert isinstance(first_name, forms.CharField)
    assert (type(first_name), first_name.max_length, first_name.required) == (forms.CharField, 100, True)
    assert (type(fields["date_of_birth"]), fields["date_of_birth"].required, fields["date_of_birth"].label) == (
        forms.DateField,
        True,
        "Date of birth",
    )
    assert (type(fields["address"]), fields["address"].required, fields["address"].label) == (
        forms.JSONField,
        False,
        "Address",
    )
    assert isinstance(order_form().fields["notes"].widget, forms.Textarea)
    assert patient_form(data={"first_name": "x" * 101, "date_of_birth": "1951-11-23"}).errors == {
        "first_name": ["Ensure this value has at most 100 characters (it has 101)."]
    }


def test_encrypted_columns_are_unbounded_text_because_tokens_outgrow_max_length() -> None:
    # A 100-character first name seals to a token of about 180 characters.
    assert Patient._meta.get_field("first_name").db_type(connection) == "text"
    assert Patient._meta.get_field("date_of_birth").db_type(connection) == "text"


@pytest.mark.django_db(databases="__all__")
def test_the_models_match_their_migrations() -> None:
    # Encrypted and blind index fields describe themselves (deconstruct) as their migrations recorded them.
    # (makemigrations reads the migration history of every database, the replica stand-in included.)
    call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())


def test_fields_describe_their_territory_column_and_index_to_migrations() -> None:
    # The default territory column is left out; another one is recorded
    assert "territory_field" not in Patient._meta.get_field("first_name").deconstruct()[3]
    clinic_bound = EncryptedCharField(max_length=10, territory_field="clinic")
    assert clinic_bound.deconstruct()[3]["territory_field"] == "clinic"
    assert clinic_bound.territory_attname == "clinic_id"
    # A blind index records its sources, purpose and prefix length
    kwargs = Patient._meta.get_field("first_name_prefix_index").deconstruct()[3]
    assert (kwargs["sources"], kwargs["purpose"], kwargs["prefix_length"]) == (
        ("first_name",),
        "patient.first_name_prefix",
        3,
    )
    assert "prefix_length" not in Patient._meta.get_field("first_name_index").deconstruct()[3]


def test_form_fields_take_the_widgets_labels_and_blank_of_their_model_fields() -> None:
    widgets: dict[str, Any] = {
        name: forms.TextInput(attrs={"data-x": name}) for name in ("first_name", "date_of_birth", "address")
    }
    form = modelform_factory(Patient, fields=list(widgets), widgets=widgets, labels={"first_name": "Given name"})()

    assert {name: form.fields[name].widget.attrs.get("data-x") for name in widgets} == {n: n for n in widgets}
    assert form.fields["first_name"].label == "Given name"
    optional_date = EncryptedDateField(blank=True)
    optional_date.set_attributes_from_name("visit_date")
    assert (optional_date.formfield().required, optional_date.formfield().label) == (False, "Visit date")
