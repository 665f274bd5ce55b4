"""Reads of patients and providers, scoped to the territories the user works in."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.db.models import Q, QuerySet

from core.crypto import blind_index
from territories.models import Territory, TerritoryPermission
from territories.selectors import territories_for_user

from .models import Coverage, Patient, PriorAuthorization, Provider, ProviderCredential


def _scope(user: Any, territory: Territory | None, permission: TerritoryPermission) -> QuerySet[Territory]:
    territories = territories_for_user(user=user, permission=permission)
    return territories.filter(pk=territory.pk) if territory is not None else territories


def providers_for_user(
    *,
    user: Any,
    territory: Territory | None = None,
    permission: TerritoryPermission = TerritoryPermission.ACCESS,
) -> QuerySet[Provider]:
    return Provider.objects.filter(territory__in=_scope(user, territory, permission)).select_related("territory")


def provider_get_for_user(
    *, user: Any, pk: uuid.UUID | str, permission: TerritoryPermission = TerritoryPermission.ACCESS
) -> Provider | None:
    return providers_for_user(user=user, permission=permission).filter(pk=pk).first()


def patients_for_user(
    *,
    user: Any,
    territory: Territory | None = None,
    permission: TerritoryPermission = TerritoryPermission.VIEW_PHI,
) -> QuerySet[Patient]:
    """Patients of the territories where ``user`` holds ``permission`` (reading PHI by default)."""
    return Patient.objects.filter(territory__in=_scope(user, territory, permission))


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y")


def _as_date(token: str) -> dt.date | None:
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(token, fmt).date()
        except ValueError:
            continue
    return None


def patient_search(
    *,
    user: Any,
    query: str,
    territory: Territory | None = None,
    permission: TerritoryPermission = TerritoryPermission.VIEW_PHI,
) -> QuerySet[Patient]:
    """Patients matching a name and/or date of birth, through the blind indexes only.

    Accepts "First Last", "Last, First", a single first or last name, a date of birth
    (YYYY-MM-DD or MM/DD/YYYY), or a name together with a date of birth. Matching is exact
    after case, accent and spacing normalization: a blind index cannot match prefixes.
    """
    patients = patients_for_user(user=user, territory=territory, permission=permission)
    tokens = [t for t in re.split(r"[\s]+", query.strip()) if t]
    dates = [d for d in (_as_date(t) for t in tokens) if d is not None]
    names = [t for t in tokens if _as_date(t) is None]
    if not dates and not names:
        return patients.none()
    condition = Q()
    if dates:
        condition &= Q(date_of_birth_index=blind_index(dates[0].isoformat(), purpose="patient.date_of_birth"))
    if names:
        joined = " ".join(names)
        if "," in joined:
            last, _, first = (part.strip() for part in joined.partition(","))
            names_condition = (
                Q(first_name_index=blind_index(first, purpose="patient.first_name"))
                & Q(last_name_index=blind_index(last, purpose="patient.last_name"))
                if first
                else Q(last_name_index=blind_index(last, purpose="patient.last_name"))
            )
        elif len(names) == 1:
            names_condition = Q(first_name_index=blind_index(joined, purpose="patient.first_name")) | Q(
                last_name_index=blind_index(joined, purpose="patient.last_name")
            )
        else:
            names_condition = Q(full_name_index=blind_index(joined, purpose="patient.full_name")) | Q(
                first_name_index=blind_index(names[0], purpose="patient.first_name"),
                last_name_index=blind_index(" ".join(names[1:]), purpose="patient.last_name"),
            )
        condition &= names_condition
    return patients.filter(condition)


# --- facts the compliance checks read (system reads: the caller has already scoped the order) ---


def active_coverage(*, patient: Patient, on: dt.date) -> Coverage | None:
    """The patient's coverage in force on ``on`` (the newest active one), or None."""
    coverages = patient.coverages.filter(active=True).filter(
        Q(effective_from__isnull=True) | Q(effective_from__lte=on),
        Q(effective_to__isnull=True) | Q(effective_to__gte=on),
    )
    return coverages.order_by("-effective_from", "-created_at").first()


def prior_authorizations_of(*, patient: Patient) -> list[PriorAuthorization]:
    return list(PriorAuthorization.objects.filter(patient=patient))


def provider_credentialed(*, provider: Provider, territory_id: Any, on: dt.date) -> bool:
    """Whether ``provider`` holds an active credential valid in the territory on ``on``."""
    return ProviderCredential.objects.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gte=on),
        provider=provider,
        territory_id=territory_id,
        active=True,
        valid_from__lte=on,
    ).exists()
