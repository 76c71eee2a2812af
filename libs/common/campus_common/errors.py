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


class TooManyRequestsError(DomainError):
    """Over a limit; the caller may retry after `retry_after` seconds."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UnavailableError(DomainError):
    """A store or sibling service this request needs is down."""

    status_code = 503
