from core.exceptions import DomainError


class PatientProviderMismatch(DomainError):
    code = "PATIENT_PROVIDER_MISMATCH"
    http_status = 422
    default_message = "The patient is not assigned to the provider's territory."


class PatientNotFound(DomainError):
    """No such patient among those whose records the user may read (also for malformed ids)."""

    code = "PATIENT_NOT_FOUND"
    http_status = 404
    default_message = "Patient not found."
