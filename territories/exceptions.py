from core.exceptions import DomainError


class TerritoryMismatch(DomainError):
    code = "TERRITORY_MISMATCH"
    http_status = 403
    default_message = "You do not work in that territory."
