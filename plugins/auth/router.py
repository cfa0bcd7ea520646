"""`/api/v1/auth`: sign up, sign in, stay signed in, sign out, manage sessions.

No `from __future__ import annotations` here: FastAPI must see the route signatures' types.
"""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request, Response

from core.db import Page, PageParams, page_params
from core.errors import AppError, NotFoundError, problem_responses
from core.identity import CurrentPrincipal
from core.openapi_links import operation_link, with_links
from plugins.auth.api import Client, SignedIn, Tokens
from plugins.auth.recovery_routes import add_recovery_routes, after_response
from plugins.auth.schemas import (
    AccountCreated,
    LoginRequest,
    PasswordChange,
    RefreshRequest,
    SessionInfo,
    SignupRequest,
)
from plugins.auth.service import AuthService
from plugins.auth.token_grant import as_token_error, password_grant


def client_from(request: Request) -> Client:
    """The caller's address (the connection's peer, or the client a peer listed in
    COURTYARD_FORWARDED_ALLOW_IPS forwards) and user agent."""
    return Client(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


async def client_of(request: Request) -> Client:
    """`client_from` as a dependency (async, so FastAPI runs it on the loop, not a thread)."""
    return client_from(request)


def build_router(container: Any) -> APIRouter:
    router = APIRouter()

    async def auth_service() -> AuthService:
        return container.service()  # type: ignore[no-any-return]

    Auth = Annotated[AuthService, Depends(auth_service)]
    ClientInfo = Annotated[Client, Depends(client_of)]

    @router.post(
        "/signup",
        status_code=201,
        summary="Create an account and sign in",
        response_model=SignedIn | AccountCreated,
        responses=with_links(
            problem_responses(400, 409),
            201,
            me=operation_link(
                "get",
                "/api/v1/users/me",
                description="The new account, read with `Authorization: Bearer <access_token>`.",
            ),
            account=operation_link(
                "get",
                "/api/v1/users/{user_id}",
                {"path.user_id": "$response.body#/user/id"},
                description="The new account by its id.",
            ),
        ),
    )
    async def signup(
        data: SignupRequest, auth: Auth, client: ClientInfo, tasks: BackgroundTasks
    ) -> SignedIn | AccountCreated:
        """Create an account and sign it in; 409 when the email is taken. When mail is
        configured a verification mail follows; when verified emails are required the
        answer is the account alone (`verification_required`), to sign in once verified."""
        created = await auth.signup(data.email, data.password, data.name, client)
        recovery = container.recovery()
        if recovery.mailer.configured:
            after_response(tasks, lambda: recovery.request_verification(created.user.id))
        return created

    # Sign-in and refresh, the hot routes, take the service from the container and the
    # client from the request themselves: each dependency FastAPI solves costs about 5% of
    # a sign-in's instructions besides the hash (docs/performance.md). Overriding the
    # container's providers still reaches them; `dependency_overrides[client_of]` does
    # not (the client's address comes from the server: uvicorn's `--proxy-headers`).

    @router.post(
        "/login",
        summary="Sign in with email and password",
        response_model=SignedIn,
        responses=problem_responses(400, 401, 403, 429),
    )
    async def login(data: LoginRequest, request: Request) -> SignedIn:
        """Sign in with email and password. Every failure is the same 401."""
        auth: AuthService = container.service()
        return await auth.login(data.email, data.password, client_from(request))

    @router.post(
        "/token",
        name="auth_token",
        summary="Sign in with an OAuth2 password grant (form)",
        response_model=SignedIn,
        responses=problem_responses(400, 429),
    )
    async def token(
        auth: Auth,
        client: ClientInfo,
        response: Response,
        grant_type: Annotated[str | None, Form(description="`password` (may be left out)")] = None,
        username: Annotated[str | None, Form(description="The account's email")] = None,
        password: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
        scope: Annotated[str, Form(description="Ignored: tokens carry the account's roles")] = "",
    ) -> SignedIn:
        """OAuth2 password grant (form fields `username` = email, `password`), for Swagger's
        Authorize button and OAuth2 clients. Same rules as `/login`; errors are 400s with
        the RFC 6749 `error` member (`invalid_request`, `unsupported_grant_type`,
        `invalid_grant`) besides the problem details; 429 when throttled."""
        email, secret = password_grant(grant_type, username, password)
        try:
            signed_in = await auth.login(email, secret, client)
        except AppError as error:
            raise as_token_error(error) from None
        response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1
        return signed_in

    @router.post(
        "/refresh",
        summary="Trade a refresh token for new tokens",
        response_model=Tokens,
        responses=problem_responses(400, 401),
    )
    async def refresh(data: RefreshRequest) -> Tokens:
        """Trade a refresh token for a new pair. Each refresh token works once; using one
        twice ends its session."""
        auth: AuthService = container.service()
        return await auth.refresh(data.refresh_token)

    @router.post(
        "/logout",
        status_code=204,
        summary="Sign out: end the session",
        responses=problem_responses(400),
    )
    async def logout(data: RefreshRequest, auth: Auth) -> Response:
        """End the session the refresh token belongs to; its access tokens stop working."""
        await auth.logout(data.refresh_token)
        return Response(status_code=204)

    @router.post(
        "/password",
        status_code=204,
        summary="Change your password",
        responses=problem_responses(400, 401, 403, 429),
    )
    async def change_password(
        data: PasswordChange, principal: CurrentPrincipal, auth: Auth, client: ClientInfo
    ) -> Response:
        """Change the caller's password; every other session of the caller ends."""
        await auth.change_password(
            principal.user_id,
            principal.session_id,
            data.current_password,
            data.new_password,
            client,
        )
        return Response(status_code=204)

    @router.get(
        "/sessions",
        summary="List your sessions (signed-in devices)",
        response_model=Page[SessionInfo],
        responses=problem_responses(401),
    )
    async def list_sessions(
        principal: CurrentPrincipal,
        auth: Auth,
        page: Annotated[PageParams, Depends(page_params)],
    ) -> Page[SessionInfo]:
        """The caller's active sessions, newest first."""
        return await auth.sessions(principal.user_id, principal.session_id, page)

    @router.delete(
        "/sessions/{session_id}",
        status_code=204,
        summary="End one of your sessions",
        responses=problem_responses(401, 404),
    )
    async def revoke_session(session_id: str, principal: CurrentPrincipal, auth: Auth) -> Response:
        """End one of the caller's sessions (another user's → 404)."""
        await auth.revoke_session(principal.user_id, session_id)
        return Response(status_code=204)

    @router.get(
        "/jwks.json",
        summary="Public keys for verifying tokens (JWKS)",
        responses=problem_responses(404),
    )
    async def jwks() -> dict[str, Any]:
        """The public keys access tokens are signed with (asymmetric keys only)."""
        keys = container.tokens().jwks()
        if keys is None:
            raise NotFoundError(
                "Tokens are signed with a shared secret (HS256); there is no public key. "
                "Set COURTYARD_AUTH__JWT_PRIVATE_KEY to sign with Ed25519 or RSA.",
                code="auth.no_public_keys",
            )
        return keys  # type: ignore[no-any-return]

    add_recovery_routes(router, container)
    return router
