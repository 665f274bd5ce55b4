"""How the back office names patients: by name to readers of PHI, by reference to everyone else.

A name shown is a PHI read: the page that shows it records the access (``PHIAccessAdmin.phi_objects``
or ``core.audit.access_record``). ``Patient.__str__`` stays the reference, because model strings
end up in logs and messages.
"""

from __future__ import annotations

from typing import Any

from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from .models import Patient


def patient_reference(patient: Patient) -> str:
    """The non-PHI way to name a patient ("Patient 166c95e2")."""
    return str(patient)


def patient_label(patient: Patient, *, phi_visible: bool) -> str:
    """ "Zelda Quartermaine (Patient 166c95e2)" when ``phi_visible``, else the reference alone."""
    if not phi_visible:
        return patient_reference(patient)
    name = " ".join(part for part in (patient.first_name, patient.last_name) if part)
    return f"{name} ({patient_reference(patient)})" if name else patient_reference(patient)


def patient_phi_visible(*, user: Any, patient: Patient) -> bool:
    """Whether ``user`` reads PHI in the patient's territory (the API's ``view_phi``)."""
    return territory_permits(user=user, permission=TerritoryPermission.VIEW_PHI, territory_id=patient.territory_id)


def patient_label_for(*, user: Any, patient: Patient) -> str:
    """The patient's label as ``user`` may see it; the caller records the read when it is a name."""
    return patient_label(patient, phi_visible=patient_phi_visible(user=user, patient=patient))
