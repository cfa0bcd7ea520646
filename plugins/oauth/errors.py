"""The problems an OAuth sign-in can end with: each a stable `code`, never a 500.

The codes keep the `auth.` prefix they had while this was part of the `auth` plugin:
clients tell these answers apart by code (`auth.link_required` → "sign in and link"), and
moving the code into its own plugin must not change what they see.
"""

from __future__ import annotations

from core.errors import AppError, BadRequestError, ConflictError, NotFoundError


def unknown_provider(name: str) -> NotFoundError:
    return NotFoundError(
        f"No sign-in provider named {name[:32]!r} is configured",
        code="auth.oauth_unknown_provider",
    )


def redirect_not_allowed() -> BadRequestError:
    return BadRequestError(
        "redirect_uri is not on the allow-list (COURTYARD_OAUTH__REDIRECT_ALLOWLIST)",
        code="auth.oauth_redirect_not_allowed",
    )


def invalid_state() -> BadRequestError:
    """Unknown, expired, already used, for another provider, or from another browser: one
    answer, so a probe learns nothing about other people's flows."""
    return BadRequestError(
        "The sign-in request is unknown, expired or already used; start again",
        code="auth.oauth_invalid_state",
    )


def provider_refused(error: str) -> BadRequestError:
    return BadRequestError(
        f"The provider did not authorize the sign-in ({error})", code="auth.oauth_denied"
    )


def invalid_callback(reason: str) -> BadRequestError:
    return BadRequestError(
        f"The provider's answer is not usable: {reason}", code="auth.oauth_invalid_callback"
    )


def code_rejected() -> BadRequestError:
    return BadRequestError(
        "The provider refused the authorization code (used, expired, or not issued to this "
        "sign-in); start again",
        code="auth.oauth_code_rejected",
    )


def invalid_id_token(reason: str) -> BadRequestError:
    return BadRequestError(
        f"The provider's ID token is not valid: {reason}", code="auth.oauth_invalid_id_token"
    )


def bad_account_data(reason: str) -> BadRequestError:
    return BadRequestError(
        f"The provider's account data is not usable: {reason}",
        code="auth.oauth_invalid_account",
    )


def provider_unavailable() -> AppError:
    return AppError(
        "The sign-in provider could not be reached or answered nonsense; try again later",
        code="auth.oauth_provider_unavailable",
        status=502,
    )


def email_required() -> BadRequestError:
    return BadRequestError(
        "The provider shares no email address for this account; an account needs one",
        code="auth.oauth_email_required",
    )


def link_required(provider: str) -> ConflictError:
    return ConflictError(
        f"An account with this email exists, and {provider} does not vouch that the address "
        f"is verified. Sign in to that account and link {provider} from it.",
        code="auth.link_required",
    )


def identity_taken(provider: str) -> ConflictError:
    return ConflictError(
        f"This {provider} account is linked to another account", code="auth.identity_taken"
    )


def identity_not_found(identity_id: str) -> NotFoundError:
    return NotFoundError(f"Identity {identity_id} not found", code="auth.identity_not_found")


def last_sign_in_method() -> ConflictError:
    return ConflictError(
        "This is the account's last way to sign in: set a password or link another provider first",
        code="auth.last_sign_in_method",
    )
