"""One application error type; the API turns it into the one error shape."""

from __future__ import annotations


class ApplicationError(Exception):
    """A business rule refused the request. ``fields`` maps a field name to its messages."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class ValidationFailed(ApplicationError):
    status_code = 400
    code = "validation_error"

    @classmethod
    def from_fields(cls, fields: dict[str, list[str]]) -> ValidationFailed:
        names = ", ".join(sorted(fields))
        return cls(f"Invalid value for: {names}.", fields=fields)


class Conflict(ApplicationError):
    status_code = 409
    code = "conflict"


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"
