"""`/api/v1/auth/oauth`: sign in with a provider (`/providers`, `/{provider}/authorize`,
`/{provider}/callback`: the URLs providers have registered, kept where they were while
this was part of the `auth` plugin) and link or unlink providers (`/identities…`). See
docs/plugins/oauth.md.

No `from __future__ import annotations` here: FastAPI must see the route signatures' types.
"""

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from core.db import Page, PageParams, page_params
from core.errors import problem_responses
from core.identity import CurrentPrincipal
from plugins.auth.api import Client, SignedIn
from plugins.oauth.flow import new_secret
from plugins.oauth.schemas import (
    AuthorizationStarted,
    IdentityInfo,
    LinkRequest,
    ProviderInfo,
    RedirectUri,
)
from plugins.oauth.service import Finished, OAuthService
from plugins.oauth.settings import OAuthSettings

BROWSER_COOKIE = "courtyard_oauth_browser"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")
# Tokens may be in the answer (JSON or the Location's fragment): never cached, never leaked
# through a Referer.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}
CallbackParam = Annotated[str | None, Query(max_length=4096)]
# `POST /identities/{provider}` links and `DELETE /identities/{id}` unlinks: one path, so
# one parameter name in the OpenAPI document (two templates differing only in the name of
# their parameter are the same path, which OpenAPI forbids).
LinkedProvider = Annotated[
    str, Path(alias="provider_or_id", description="POST: the provider to link an account of.")
]
LinkedIdentity = Annotated[
    str,
    Path(alias="provider_or_id", description="DELETE: the id of one of the caller's identities."),
]


def _client(request: Request) -> Client:
    return Client(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def callback_url(request: Request, settings: OAuthSettings, provider: str) -> str:
    """Where the provider sends the browser back: the same at authorize and at the code
    exchange, as the provider checks."""
    path = request.app.url_path_for("auth_oauth_callback", provider=provider)
    base = settings.callback_base_url or str(request.base_url).rstrip("/")
    return f"{base}{path}"


def _cookie_path(request: Request) -> str:
    providers = str(request.app.url_path_for("auth_oauth_providers"))
    return str(request.scope.get("root_path", "")) + providers.rsplit("/", 1)[0]


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _finished_response(finished: Finished) -> Response:
    if finished.signed_in is not None:
        body: Any = finished.signed_in
        fragment = {
            "access_token": finished.signed_in.access_token,
            "refresh_token": finished.signed_in.refresh_token,
            "token_type": finished.signed_in.token_type,
            "expires_in": str(finished.signed_in.expires_in),
            "user_id": finished.signed_in.user.id,
        }
    else:
        assert finished.linked is not None
        body = finished.linked
        fragment = {"linked": finished.linked.provider, "identity": finished.linked.id}
    if finished.redirect_uri is None:
        return JSONResponse(body.model_dump(mode="json"), headers=NO_STORE)
    location = f"{finished.redirect_uri}#{urlencode(fragment)}"
    return RedirectResponse(location, status_code=302, headers=NO_STORE)


def build_router(container: Any) -> APIRouter:
    router = APIRouter()

    async def oauth() -> OAuthService:
        return container.service()  # type: ignore[no-any-return]

    async def settings() -> OAuthSettings:
        return container.settings()  # type: ignore[no-any-return]

    OAuth = Annotated[OAuthService, Depends(oauth)]
    Settings = Annotated[OAuthSettings, Depends(settings)]

    # The route names are those the routes had in the `auth` plugin: they make the
    # operation ids, which generated clients name their calls after.
    @router.get(
        "/providers",
        name="auth_oauth_providers",
        summary="List the providers you can sign in with",
        response_model=list[ProviderInfo],
    )
    async def list_providers(service: OAuth) -> list[ProviderInfo]:
        """The providers one can sign in with (empty when none is configured)."""
        return service.provider_list()

    @router.get(
        "/{provider}/authorize",
        summary="Start signing in with a provider",
        response_model=AuthorizationStarted,
        responses={
            302: {"description": "To the provider's sign-in page (any Accept but JSON)."},
            **problem_responses(400, 404, 422, 502),
        },
    )
    async def authorize(
        provider: str,
        request: Request,
        service: OAuth,
        config: Settings,
        redirect_uri: Annotated[RedirectUri | None, Query()] = None,
    ) -> Response:
        """Start signing in with `provider`: open it in the browser (302 to the provider).
        The callback answers the tokens as JSON, or, with an allow-listed `redirect_uri`,
        redirects there with them in the fragment; 400 for a URI off the allow-list. With
        `Accept: application/json` (a same-site front end using fetch with credentials) the
        answer is 200 `{authorization_url, expires_at}` instead, to navigate to."""
        browser = request.cookies.get(BROWSER_COOKIE)
        if browser is None or not _COOKIE_VALUE.fullmatch(browser):
            browser = new_secret()
        started = await service.start(
            provider,
            redirect_uri=redirect_uri,
            callback_url=callback_url(request, config, provider),
            browser=browser,
        )
        response: Response
        if _wants_json(request):
            response = JSONResponse(started.model_dump(mode="json"), headers=NO_STORE)
        else:
            response = RedirectResponse(
                started.authorization_url, status_code=302, headers=NO_STORE
            )
        response.set_cookie(
            BROWSER_COOKIE,
            browser,
            max_age=config.flow_ttl,
            path=_cookie_path(request),
            httponly=True,
            samesite="lax",  # sent on the provider's top-level redirect back, not cross-site
            secure=request.url.scheme == "https",
        )
        return response

    @router.get(
        "/{provider}/callback",
        name="auth_oauth_callback",
        summary="Finish signing in: where the provider sends the browser back",
        response_model=SignedIn | IdentityInfo,
        responses={
            302: {"description": "To the flow's redirect_uri, the result in the fragment."},
            **problem_responses(400, 401, 403, 404, 409, 422, 502),
        },
    )
    async def callback(
        provider: str,
        request: Request,
        service: OAuth,
        config: Settings,
        code: CallbackParam = None,
        state: CallbackParam = None,
        error: CallbackParam = None,
        iss: CallbackParam = None,
    ) -> Response:
        """Where the provider sends the browser back. Works once per flow. Signs in (the
        same body as `/login`) or, for a link flow, answers the linked identity."""
        finished = await service.finish(
            provider,
            state=state,
            code=code,
            error=error,
            issuer=iss,
            callback_url=callback_url(request, config, provider),
            browser=request.cookies.get(BROWSER_COOKIE),
            client=_client(request),
        )
        return _finished_response(finished)

    @router.get(
        "/identities",
        summary="List your linked provider accounts",
        response_model=Page[IdentityInfo],
        responses=problem_responses(401),
    )
    async def list_identities(
        principal: CurrentPrincipal,
        service: OAuth,
        page: Annotated[PageParams, Depends(page_params)],
    ) -> Page[IdentityInfo]:
        """The provider accounts that sign in as the caller, oldest first."""
        return await service.identities(principal.user_id, page)

    @router.post(
        "/identities/{provider_or_id}",
        summary="Start linking a provider account to yours",
        response_model=AuthorizationStarted,
        responses=problem_responses(400, 401, 404, 422, 502),
    )
    async def link_identity(
        provider: LinkedProvider,
        principal: CurrentPrincipal,
        request: Request,
        service: OAuth,
        config: Settings,
        data: LinkRequest | None = None,
    ) -> AuthorizationStarted:
        """Start linking a `provider` account to the caller: send the browser to
        `authorization_url`; the callback links the account that signs in there (409
        `auth.identity_taken` if it is linked to someone else)."""
        return await service.start(
            provider,
            redirect_uri=data.redirect_uri if data is not None else None,
            callback_url=callback_url(request, config, provider),
            user_id=principal.user_id,
        )

    @router.delete(
        "/identities/{provider_or_id}",
        status_code=204,
        summary="Unlink a provider account",
        responses=problem_responses(401, 404, 409),
    )
    async def unlink_identity(
        identity_id: LinkedIdentity, principal: CurrentPrincipal, service: OAuth
    ) -> Response:
        """Unlink one of the caller's identities (another user's → 404); 409
        `auth.last_sign_in_method` when the account would have no way left to sign in."""
        await service.unlink(principal.user_id, identity_id)
        return Response(status_code=204)

    return router
