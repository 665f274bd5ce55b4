"""How the back office names patients: by name to readers of PHI, by reference to everyone else.

A name shown is a PHI read: the page that shows it records the access (``PHIAccessAdmin.phi_objects``
or ``core.audit.access_record``). ``Patient.__str__`` stays the reference, because model strings
end up in logs and messages.
"""

from __future__ import annotations

from .models import Patient


def patient_reference(patient: Patient) -> str:
    """The non-PHI way to name a patient ("Patient 166c95e2")."""
    return str(patient)


def patient_name(patient: Patient) -> str:
    """The patient's name, "First Last" (PHI: only for readers of PHI, with the read recorded)."""
    return " ".join(part for part in (patient.first_name, patient.last_name) if part)


def patient_label(patient: Patient, *, phi_visible: bool) -> str:
    """The name with the reference ("Zelda Quartermaine (Patient 166c95e2)") when ``phi_visible``,
    else the reference alone."""
    name = patient_name(patient) if phi_visible else ""
    return f"{name} ({patient_reference(patient)})" if name else patient_reference(patient)
