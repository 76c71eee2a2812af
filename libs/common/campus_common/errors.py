"""Domain errors that service functions raise; the app factory turns them into 4xx bodies."""


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(DomainError):
    status_code = 404


class ConflictError(DomainError):
    status_code = 409


class ForbiddenError(DomainError):
    status_code = 403


class InvalidError(DomainError):
    status_code = 422


class UnavailableError(DomainError):
    """A store or sibling service this request needs is down."""

    status_code = 503
