"""`POST /api/v1/auth/token`'s errors as OAuth 2.0 clients expect them (RFC 6749 §5.2).

The route is the resource owner password grant (§4.3), for Swagger's Authorize button and
OAuth2 client libraries. Those libraries read the JSON member `error` of a 400 answer, so
each failure keeps its problem-details members (`code`, `detail`, ...) and adds `error`
and `error_description`:

- a missing `username` or `password` → 400 `invalid_request` (naming the fields);
- a `grant_type` other than `password` → 400 `unsupported_grant_type` (it may be left out:
  taken as `password`, as FastAPI's own `OAuth2PasswordRequestForm` allows);
- wrong credentials, or an account that may not sign in → 400 `invalid_grant`.

Throttling (429) and outages (503) are not OAuth errors and keep their status.
"""

from __future__ import annotations

from typing import Any

from core.errors import AppError, ForbiddenError, InvalidInputError, UnauthorizedError

PASSWORD_GRANT = "password"  # noqa: S105 (the grant type's name)


class TokenRequestError(AppError):
    """An RFC 6749 §5.2 error response, in problem-details form."""

    status = 400

    def __init__(self, error: str, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(
            detail,
            code=code or f"auth.{error}",
            extra={"error": error, "error_description": detail, **extra},
        )


def password_grant(
    grant_type: str | None, username: str | None, password: str | None
) -> tuple[str, str]:
    """The username and password of a complete password grant; TokenRequestError for a
    request that is not one."""
    if grant_type is not None and grant_type != PASSWORD_GRANT:
        raise TokenRequestError(
            "unsupported_grant_type",
            f"grant_type must be {PASSWORD_GRANT!r}; this endpoint issues tokens for a "
            "username (email) and password",
        )
    missing = [
        name for name, value in (("username", username), ("password", password)) if not value
    ]
    if missing:
        errors = [
            {"field": name, "loc": ["body", name], "message": "Field required", "type": "missing"}
            for name in missing
        ]
        raise TokenRequestError(
            "invalid_request",
            f"Missing form field{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
            "(send application/x-www-form-urlencoded)",
            errors=errors,
        )
    assert username is not None
    assert password is not None
    return username, password


def as_token_error(error: AppError) -> AppError:
    """What a sign-in failure becomes at the token endpoint: refused credentials are an
    `invalid_grant`, a field the service refused an `invalid_request`; anything else
    (429, 503) is answered as it is."""
    if isinstance(error, UnauthorizedError | ForbiddenError):
        return TokenRequestError("invalid_grant", error.detail, code=error.code)
    if isinstance(error, InvalidInputError):
        return TokenRequestError("invalid_request", error.detail, code=error.code, **error.extra)
    return error
