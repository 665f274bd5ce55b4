"""Reads of patients and providers, scoped to the territories the user works in."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.db.models import Q, QuerySet

from core.crypto import blind_index, blind_index_prefix, normalize_for_index
from territories.models import Territory, TerritoryPermission
from territories.selectors import territories_for_user

from .models import NAME_PREFIX_LENGTH, Coverage, Patient, PriorAuthorization, Provider, ProviderCredential


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


# Candidates of a prefix search (rows whose first three letters match) opened to compare the
# longer term: a bound on how many rows one search decrypts.
PREFIX_CANDIDATE_LIMIT = 200


def _index(value: str, field: str) -> str:
    return blind_index(value, purpose=f"patient.{field}")


def _prefix_index(value: str, field: str) -> str | None:
    return blind_index_prefix(value, purpose=f"patient.{field}_prefix", length=NAME_PREFIX_LENGTH)


def _name_matches(first: str | None, last: str | None) -> tuple[Q, Q, list[tuple[str | None, str | None]]]:
    """For a first and/or last name term: the exact condition, the prefix candidates' condition
    (through the terms of three letters or more; ``Q(pk__in=[])`` when there is none) and the
    (first, last) term pairs a candidate's names must start with."""
    exact = Q()
    prefix = Q()
    indexed = False
    for term, field in ((first, "first_name"), (last, "last_name")):
        if term is None:
            continue
        exact &= Q(**{f"{field}_index": _index(term, field)})
        index = _prefix_index(term, field)
        if index is not None:
            prefix &= Q(**{f"{field}_prefix_index": index})
            indexed = True
    return exact, prefix if indexed else Q(pk__in=[]), [(first, last)]


def patient_search(
    *,
    user: Any,
    query: str,
    territory: Territory | None = None,
    permission: TerritoryPermission = TerritoryPermission.VIEW_PHI,
) -> QuerySet[Patient]:
    """Patients matching a name and/or date of birth, through the blind indexes.

    Accepts "First Last", "Last, First", a single first or last name, a date of birth
    (YYYY-MM-DD or MM/DD/YYYY), or a name together with a date of birth. A name term matches a
    name that equals it or starts with it (after case, accent and spacing normalization): "March"
    finds Marchetti and Marcha, "Mar Lov" finds Mary Lovelace. Whole names are found through their
    whole-value indexes; a term of three letters or more also through the first-three-letters
    indexes, whose candidates (at most ``PREFIX_CANDIDATE_LIMIT`` rows, newest first, after the
    date-of-birth condition) are the only rows decrypted, to compare the longer terms. A name
    shorter than three letters alone matches whole names only; beside a longer one ("Lovelace, A")
    it narrows that one's candidates. No table is decrypted.
    """
    patients = patients_for_user(user=user, territory=territory, permission=permission)
    tokens = [t for t in re.split(r"[\s]+", query.strip()) if t]
    dates = [d for d in (_as_date(t) for t in tokens) if d is not None]
    names = [t for t in tokens if _as_date(t) is None]
    if not dates and not names:
        return patients.none()
    if dates:
        patients = patients.filter(date_of_birth_index=_index(dates[0].isoformat(), "date_of_birth"))
    if not names:
        return patients
    joined = " ".join(names)
    alternatives: list[tuple[str | None, str | None]]
    if "," in joined:
        last, _, first = (part.strip() for part in joined.partition(","))
        if not last:
            return patients.none()
        alternatives = [(first or None, last)]
    elif len(names) == 1:
        alternatives = [(joined, None), (None, joined)]
    else:
        alternatives = [(names[0], " ".join(names[1:]))]
    exact = Q(pk__in=[])
    if len(names) > 1 and "," not in joined:
        exact |= Q(full_name_index=_index(joined, "full_name"))
    prefix = Q(pk__in=[])
    wanted: list[tuple[str | None, str | None]] = []
    for first_term, last_term in alternatives:
        exact_one, prefix_one, pairs = _name_matches(first_term, last_term)
        exact |= exact_one
        prefix |= prefix_one
        wanted += pairs
    candidates = list(patients.filter(prefix).exclude(exact).order_by("-created_at", "pk")[:PREFIX_CANDIDATE_LIMIT])
    started = [patient.pk for patient in candidates if _starts_with_any(patient, wanted)]
    return patients.filter(exact | Q(pk__in=started))


def _starts_with_any(patient: Patient, wanted: list[tuple[str | None, str | None]]) -> bool:
    """Whether the patient's names start with the first and last terms of one of the ``wanted`` pairs."""
    first, last = normalize_for_index(patient.first_name or ""), normalize_for_index(patient.last_name or "")
    return any(
        (term_first is None or first.startswith(normalize_for_index(term_first)))
        and (term_last is None or last.startswith(normalize_for_index(term_last)))
        for term_first, term_last in wanted
    )


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
