"""Patient writes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from core.audit import with_history_user
from core.exceptions import PermissionDenied, ValidationFailed
from territories.models import Role, Territory, TerritoryMembership, TerritoryPermission
from territories.selectors import territory_permits

from .exceptions import PatientProviderMismatch
from .models import Patient, Provider
from .selectors import provider_get_for_user


@transaction.atomic
def patient_create(
    *,
    actor: Any,
    provider_id: uuid.UUID,
    first_name: str,
    last_name: str,
    date_of_birth: dt.date,
    sex: str | None = None,
    mbi: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    address: dict[str, str] | None = None,
    territory: Territory | None = None,
    allergies: list[str] | None = None,
    medications: list[str] | None = None,
    conditions: list[str] | None = None,
) -> Patient:
    """Register a patient with ``provider_id``'s provider; the patient joins that territory.

    ``territory`` is the one the request picked (``Territory-Id``), if any: the provider must
    work there. ``sex`` is an ``AdministrativeSex`` value (empty: not recorded); the MBI is
    normalised (no dashes or spaces, upper case) by the model's own check, which every field passes
    before anything is written. Raises ValidationFailed for a provider the actor cannot see or a
    field that fails its check (a malformed MBI, an unknown sex; nothing is written),
    PatientProviderMismatch when the provider is outside the picked territory, and
    PermissionDenied when the actor may not register patients there.
    """
    provider = provider_get_for_user(user=actor, pk=provider_id)
    if provider is None:
        raise ValidationFailed(details={"provider_id": ["Unknown provider."]})
    if territory is not None and provider.territory_id != territory.pk:
        raise PatientProviderMismatch("The provider does not work in the selected territory.")
    if not territory_permits(
        user=actor, permission=TerritoryPermission.MANAGE_PATIENTS, territory_id=provider.territory_id
    ):
        raise PermissionDenied("You may not register patients in this territory.")
    patient = Patient(
        territory_id=provider.territory_id,
        provider=provider,
        first_name=first_name,
        last_name=last_name,
        date_of_birth=date_of_birth,
        sex=sex or None,
        mbi=mbi or None,
        phone=phone or None,
        email=email or None,
        address=address or None,
        allergies=allergies or None,
        medications=medications or None,
        conditions=conditions or None,
    )
    patient_check(patient)
    with_history_user(patient, actor)
    patient.save()
    return patient


def patient_check(patient: Patient) -> None:
    """Run the model's field checks and ``Patient.clean`` (which normalises the MBI) on an unsaved
    or changed patient; raises ValidationFailed with the messages per field (never the values)."""
    try:
        patient.full_clean(exclude=["territory", "provider"], validate_unique=False)
    except ValidationError as error:
        raise ValidationFailed(details=error.message_dict) from None


def provider_link_account(*, user: Any, npi: str) -> Provider | None:
    """Link ``user`` (a doctor signing in by single sign-on) to the provider record with ``npi``.

    Linked only when the provider is active, in a territory where the user is a doctor, and not
    linked to another account; the provider linked, or None when nothing was linked. An account
    linked elsewhere before is unlinked first (a provider has one account, an account one
    provider). Idempotent.
    """
    doctor_territories = TerritoryMembership.objects.filter(user=user, role=Role.DOCTOR).values("territory_id")
    with transaction.atomic():
        provider = (
            Provider.objects.select_for_update()
            .filter(npi=npi, active=True, territory_id__in=doctor_territories)
            .first()
        )
        if provider is None or provider.user_id not in (None, user.pk):
            return None
        if provider.user_id == user.pk:
            return provider
        Provider.objects.filter(user=user).exclude(pk=provider.pk).update(user=None)
        provider.user = user
        provider.save(update_fields=["user"])
    return provider
