"""What the services refuse, in the services' words; ``http`` maps each to a problem."""

from __future__ import annotations


class ServiceError(Exception):
    pass


class OutOfStockError(ServiceError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"not enough stock for {sku}")
        self.sku = sku


class NotFoundError(ServiceError):
    pass


class InvalidInputError(ServiceError):
    """Field errors found by Python-side validation: (pointer, code, message)."""

    def __init__(self, errors: list[tuple[str, str, str]]) -> None:
        super().__init__(f"{len(errors)} problem{'' if len(errors) == 1 else 's'} in the request body")
        self.errors = errors


class InvalidStateError(ServiceError):
    """The order's state does not allow the action (``status`` says which state it is in)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class ConflictError(ServiceError):
    """The change conflicts with what is stored (e.g. max_redemptions below redemptions so far)."""


class InvalidCredentials(ServiceError):
    """A credential (an API key) is unknown, revoked or wrong."""
