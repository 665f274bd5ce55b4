from typing import Any

from core.exceptions import DomainError, ValidationFailed


class OrderNotFound(DomainError):
    code = "ORDER_NOT_FOUND"
    http_status = 404
    default_message = "Order not found."


class InvalidStatusTransition(DomainError):
    code = "INVALID_STATUS_TRANSITION"
    http_status = 409

    def __init__(
        self, *, order_id: Any, current_status: str, requested_status: str, message: str | None = None
    ) -> None:
        super().__init__(
            message or f"Cannot transition from {current_status} to {requested_status}",
            details={
                "order_id": str(order_id),
                "current_status": current_status,
                "requested_status": requested_status,
            },
        )


class ComplianceNotClear(DomainError):
    """Verification refused: the compliance checks found holds or reviews and no override was given."""

    code = "COMPLIANCE_NOT_CLEAR"
    http_status = 409

    def __init__(
        self, *, order_id: Any, disposition: str, findings: list[dict[str, Any]], required_artifacts: list[str]
    ):
        super().__init__(
            f"The checks say {disposition.replace('_', ' ')}: resolve the findings or override with a reason.",
            details={
                "order_id": str(order_id),
                "disposition": disposition,
                "findings": findings,
                "required_artifacts": required_artifacts,
            },
        )


class ReviewNoteRequired(DomainError):
    """Verification refused: the checks say ``needs_review``, which a reviewer resolves only with a review note."""

    code = "REVIEW_NOTE_REQUIRED"
    http_status = 400

    def __init__(self, *, order_id: Any, findings: list[dict[str, Any]]) -> None:
        super().__init__(
            "The checks say needs review: resolve the review with a note saying what you checked.",
            details={
                "order_id": str(order_id),
                "disposition": "needs_review",
                "notes": ["A review note is required to resolve a needs-review order."],
                "findings": findings,
            },
        )


class CoverageMissing(ValidationFailed):
    """An insurance order for a patient with no insurance coverage in force: it could not be billed."""

    code = "COVERAGE_MISSING"
    default_message = "The patient has no insurance coverage in force: choose cash pay, or add the coverage first."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, details={"payer_type": [message or self.default_message]})
