from core.exceptions import DomainError


class PatientProviderMismatch(DomainError):
    code = "PATIENT_PROVIDER_MISMATCH"
    http_status = 422
    default_message = "The patient is not assigned to the provider's territory."
