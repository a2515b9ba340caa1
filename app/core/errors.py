"""The one domain error hierarchy.

Services raise these and know nothing of HTTP; ``app.core.problems`` maps them to RFC 9457
problem+json in one place. Each error has a stable machine-readable ``code`` (the phone app
switches on it) and parameters that fill the localised ``detail``; ``extra`` members are
copied into the problem body as extension fields (e.g. ``current_state``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        code: str | None = None,
        *,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
        **params: Any,
    ) -> None:
        self.code = code or self.default_code
        # A finer cause under a general code (``Forbidden(reason="out_of_scope")`` is code
        # ``forbidden``): sent as the problem's ``reason`` and worded in its ``detail``, so
        # a client switching on the contract's codes keeps working.
        self.message = reason or self.code
        # Commit what the request did before failing (e.g. revoking a stolen token's family),
        # instead of the usual rollback.
        self.keep_changes = keep_changes
        self.params = params
        self.extra = extra or {}
        if reason is not None:
            self.extra = {"reason": reason, **self.extra}
        self.headers = headers or {}
        super().__init__(self.code)


class BadRequest(DomainError):
    status = 400
    default_code = "bad_request"


class Unauthorized(DomainError):
    status = 401
    default_code = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    default_code = "forbidden"


class NotFound(DomainError):
    """``NotFound(resource="region")``: the detail names what was missing."""

    status = 404
    default_code = "not_found"


class Conflict(DomainError):
    status = 409
    default_code = "conflict"


class InvalidState(Conflict):
    """A transition asked of a resource whose current state does not allow it."""

    default_code = "invalid_state"

    def __init__(self, *, resource: str, current_state: str, action: str) -> None:
        super().__init__(
            extra={"current_state": current_state},
            resource=resource,
            current_state=current_state,
            action=action,
        )


class PayloadTooLarge(DomainError):
    """A request body over a limit (e.g. a photo above ``photo_max_bytes``)."""

    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    """A body of a type the route does not take, judged by its content, not its label."""

    status = 415
    default_code = "unsupported_media_type"


class ValidationFailed(DomainError):
    """Input that is well-formed but breaks a domain rule (e.g. a grid under a street)."""

    status = 422
    default_code = "validation_failed"


class Gone(DomainError):
    """Something the request refers to is no longer available (e.g. an old sync token)."""

    status = 410
    default_code = "gone"


class TooManyRequests(DomainError):
    status = 429
    default_code = "rate_limited"


class ServiceUnavailable(DomainError):
    status = 503
    default_code = "service_unavailable"
