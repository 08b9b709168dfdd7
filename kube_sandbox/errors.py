"""API errors rendered as ``meta/v1`` Status objects, the way an API server reports them."""

from __future__ import annotations

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict:
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def bad_request(cls, msg: str) -> ApiError:
        return cls(400, msg)

    @classmethod
    def not_found(cls, rt, name: str) -> ApiError:
        res = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        return cls(404, f'{res} "{name}" not found',
                   details={"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def already_exists(cls, rt, name: str) -> ApiError:
        res = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        return cls(409, f'{res} "{name}" already exists', "AlreadyExists",
                   {"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def conflict(cls, rt, name: str, why: str) -> ApiError:
        res = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        return cls(409, f'Operation cannot be fulfilled on {res} "{name}": {why}', "Conflict",
                   {"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def invalid(cls, rt, name: str, causes: list[tuple[str, str]]) -> ApiError:
        msg = ", ".join(f"{f}: {m}" for f, m in causes)
        if len(causes) > 1:
            msg = f"[{msg}]"
        kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind  # as the API server qualifies it
        return cls(422, f'{kind} "{name}" is invalid: {msg}', "Invalid",
                   {"name": name, "group": rt.group, "kind": rt.kind,
                    "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})
