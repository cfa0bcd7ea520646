"""`/api/v1/auth/password-reset/…` and `/api/v1/auth/verify/…`.

The mailing half of each flow runs after the response has been sent (a background task),
so the answer never waits for, or depends on, the account lookup or the mail server.

No `from __future__ import annotations` here: FastAPI must see the route signatures' types.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Response
from pydantic import BaseModel

from core.errors import problem_responses
from core.identity import CurrentPrincipal
from plugins.auth.recovery import AccountRecovery
from plugins.auth.schemas import ResetConfirm, ResetRequest, VerifyConfirm

logger = logging.getLogger("courtyard.auth")


class Accepted(BaseModel):
    """The request was taken; what it leads to arrives by mail, if anything."""

    detail: str


RESET_ACCEPTED = Accepted(
    detail="If an account with that email exists, a mail with a reset link is on its way."
)
VERIFY_ACCEPTED = Accepted(
    detail="If your address is not verified yet, a mail with a link is on its way."
)


def after_response(tasks: BackgroundTasks, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` once the response is sent; a failure is logged (with the request id)."""

    async def run() -> None:
        try:
            await work()
        except Exception:
            logger.exception("mail work after the response failed")

    tasks.add_task(run)


def add_recovery_routes(router: APIRouter, container: Any) -> None:
    async def recovery() -> AccountRecovery:
        return container.recovery()  # type: ignore[no-any-return]

    Recovery = Annotated[AccountRecovery, Depends(recovery)]

    @router.post(
        "/password-reset/request",
        status_code=202,
        summary="Ask for a password-reset mail",
        response_model=Accepted,
        responses=problem_responses(400),
    )
    async def request_password_reset(
        data: ResetRequest, tasks: BackgroundTasks, accounts: Recovery
    ) -> Accepted:
        """Ask for a password-reset mail. Always 202 with the same body: whether the email
        belongs to an account is not revealed, and the work happens after the answer."""
        after_response(tasks, lambda: accounts.request_password_reset(data.email))
        return RESET_ACCEPTED

    @router.post(
        "/password-reset/confirm",
        status_code=204,
        summary="Set a new password with a mailed reset token",
        responses=problem_responses(400),
    )
    async def confirm_password_reset(data: ResetConfirm, accounts: Recovery) -> Response:
        """Set a new password with the mailed token: 400 `auth.invalid_token` when it is
        wrong, used, expired, or the password changed since it was sent. Every session of
        the account ends."""
        await accounts.confirm_password_reset(data.token, data.new_password)
        return Response(status_code=204)

    @router.post(
        "/verify/request",
        status_code=202,
        summary="Ask for a mail to verify your email address",
        response_model=Accepted,
        responses=problem_responses(401),
    )
    async def request_verification(
        principal: CurrentPrincipal, tasks: BackgroundTasks, accounts: Recovery
    ) -> Accepted:
        """Mail the caller a link that proves they own their email address."""
        after_response(tasks, lambda: accounts.request_verification(principal.user_id))
        return VERIFY_ACCEPTED

    @router.post(
        "/verify/confirm",
        status_code=204,
        summary="Verify an email address with a mailed token",
        responses=problem_responses(400),
    )
    async def confirm_verification(data: VerifyConfirm, accounts: Recovery) -> Response:
        """Mark the address verified with the mailed token (it works only for the address
        it was sent to); 400 `auth.invalid_token` otherwise."""
        await accounts.confirm_verification(data.token)
        return Response(status_code=204)
