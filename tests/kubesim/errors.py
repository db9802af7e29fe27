"""API errors carried as the Status body a real API server sends."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: HTTP ``code`` with a ``Status`` body (reason, message, details)."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def not_found(cls, group_resource: str, name: str, group: str, kind: str) -> ApiError:
        details: dict[str, Any] = {"name": name, "kind": kind}
        if group:
            details["group"] = group
        return cls(404, "NotFound", f'{group_resource} "{name}" not found', details)

    @classmethod
    def already_exists(cls, group_resource: str, name: str, group: str, kind: str) -> ApiError:
        details: dict[str, Any] = {"name": name, "kind": kind}
        if group:
            details["group"] = group
        return cls(409, "AlreadyExists", f'{group_resource} "{name}" already exists', details)

    @classmethod
    def forbidden(
        cls, group_resource: str, name: str, reason_text: str, group: str, kind: str
    ) -> ApiError:
        subject = f'{group_resource} "{name}"' if name else group_resource
        details: dict[str, Any] = {"kind": kind}
        if name:
            details["name"] = name
        if group:
            details["group"] = group
        return cls(403, "Forbidden", f"{subject} is forbidden: {reason_text}", details)

    @classmethod
    def invalid(cls, group_resource: str, name: str, kind: str, cause: str) -> ApiError:
        message = f'{kind} "{name}" is invalid: {cause}'
        details = {
            "name": name,
            "kind": group_resource.split(".")[0],
            "causes": [{"reason": "FieldValueInvalid", "message": cause}],
        }
        return cls(422, "Invalid", message, details)
