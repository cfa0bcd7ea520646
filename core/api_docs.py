"""`/docs` (Swagger UI) and `/redoc` (ReDoc), working without internet access.

FastAPI's own pages load their JavaScript and CSS from a CDN (and a favicon from FastAPI's
site, and ReDoc's fonts from Google): offline, or behind a firewall, they stay blank.
These are the same pages (`get_swagger_ui_html`, `get_redoc_html`), pointed at the files
the `fastapi-offline` package ships, which the app serves itself under `/docs/assets`.
The app is built with `docs_url=None, redoc_url=None`, so FastAPI adds none of its own.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
# Swagger UI and ReDoc as FastAPI's pages load them (the same major versions as its CDN
# URLs), in the package's `static` folder.
ASSETS_PACKAGE = ("fastapi_offline", "static")
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"


def add_docs_routes(app: FastAPI) -> None:
    """Serve Swagger UI at `/docs` (with its OAuth2 redirect page), ReDoc at `/redoc`, and
    the files they load under `/docs/assets`. Paths on the pages start with the request's
    `root_path`, as FastAPI's do, so they work behind a proxy that mounts the app lower."""
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs_assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def swagger_ui_oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            with_google_fonts=False,
        )

    app.add_route(SWAGGER_UI_URL, swagger_ui, include_in_schema=False)
    app.add_route(oauth2_redirect_url, swagger_ui_oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)


def _root_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")
