"""`/api/v1/uploads`: grants, completion, the caller's uploads, and (on the `local`
backend) the signed endpoints that receive and serve the bytes.

No `from __future__ import annotations` here: FastAPI must see the route signatures' types.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse

from core.db import ID_PATTERN, Page, PageParams, page_params
from core.db.ids import ID_MAX_LENGTH
from core.errors import problem_responses
from core.identity import CurrentPrincipal
from core.middleware import streams_request_body
from core.openapi_links import operation_link, with_links
from plugins.upload.filenames import content_disposition
from plugins.upload.schemas import Status, Upload, UploadCreate, UploadGrant
from plugins.upload.service import UploadService
from plugins.upload.storage.base import ContentUrl

CONTENT_ROUTE = "upload_content"
UPLOADS_PATH = "/api/v1/uploads"  # where the core mounts this router (for OpenAPI links)
_SIGNATURE_MAX_LENGTH = 128


def _link(method: str, path: str, upload_id: str, description: str) -> dict[str, Any]:
    """An OpenAPI link to the upload route at `path` (under /api/v1/uploads), for the
    upload whose id is at the runtime expression `upload_id`."""
    return operation_link(
        method, f"{UPLOADS_PATH}{path}", {"path.upload_id": upload_id}, description=description
    )


_COMPLETE = "Confirm the bytes were sent."
_READ = "The upload (with its download URL once ready)."
_DELETE = "Delete the upload."


def _content_url(request: Request) -> ContentUrl:
    return lambda upload_id: str(request.url_for(CONTENT_ROUTE, upload_id=upload_id))


def _expires(value: str) -> int:
    """The `expires` of a signed URL; a malformed one fails the signature check (403)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else -1


Expires = Annotated[
    str, Query(max_length=20, description="Unix time the signed URL stops working.")
]
Signature = Annotated[
    str, Query(max_length=_SIGNATURE_MAX_LENGTH, description="The URL's HMAC signature.")
]


def build_router(container: Any) -> APIRouter:
    router = APIRouter()
    settings = container.settings()

    async def service() -> UploadService:
        return container.service()  # type: ignore[no-any-return]

    Uploads = Annotated[UploadService, Depends(service)]

    @router.post(
        "",
        status_code=201,
        summary="Start an upload: where to send the file",
        response_model=UploadGrant,
        responses=with_links(
            problem_responses(400, 401, 403, 409, 413, 415, 503),
            201,
            complete=_link("post", "/{upload_id}/complete", "$response.body#/upload/id", _COMPLETE),
            read=_link("get", "/{upload_id}", "$response.body#/upload/id", _READ),
            delete=_link("delete", "/{upload_id}", "$response.body#/upload/id", _DELETE),
        ),
    )
    async def create_upload(
        data: UploadCreate, request: Request, principal: CurrentPrincipal, uploads: Uploads
    ) -> UploadGrant:
        """Start an upload: a pending record and where to send the bytes (see `UploadGrant`).

        413 over the size limit, 415 for a type not accepted, 409 `upload.quota_exceeded`.
        """
        return await uploads.create(principal, data, _content_url(request))

    @router.get(
        "",
        summary="List your uploads",
        response_model=Page[Upload],
        responses=problem_responses(401, 403),
    )
    async def list_uploads(
        principal: CurrentPrincipal,
        uploads: Uploads,
        page: Annotated[PageParams, Depends(page_params)],
        status: Annotated[Status | None, Query(description="Only uploads in this state.")] = None,
        owner_id: Annotated[
            str | None,
            Query(
                max_length=ID_MAX_LENGTH,
                pattern=ID_PATTERN,
                description="Another user's uploads (admins only).",
            ),
        ] = None,
    ) -> Page[Upload]:
        """The caller's uploads, newest first, one cursor page at a time."""
        return await uploads.list(principal, owner_id, status, page)

    @router.get(
        "/{upload_id}",
        summary="Read an upload, with its download URL once ready",
        response_model=Upload,
        responses=with_links(
            problem_responses(401, 404, 503),
            200,
            complete=_link("post", "/{upload_id}/complete", "$response.body#/id", _COMPLETE),
            delete=_link("delete", "/{upload_id}", "$response.body#/id", _DELETE),
        ),
    )
    async def read_upload(
        upload_id: str, request: Request, principal: CurrentPrincipal, uploads: Uploads
    ) -> Upload:
        """An upload, with a short-lived `download_url` once it is ready. 404 for anyone
        but its owner (and admins)."""
        return await uploads.get(principal, upload_id, _content_url(request))

    @router.post(
        "/{upload_id}/complete",
        summary="Confirm an upload's file was sent",
        response_model=Upload,
        responses=with_links(
            problem_responses(401, 404, 409, 503),
            200,
            read=_link("get", "/{upload_id}", "$response.body#/id", _READ),
            delete=_link("delete", "/{upload_id}", "$response.body#/id", _DELETE),
        ),
    )
    async def complete_upload(
        upload_id: str, principal: CurrentPrincipal, uploads: Uploads
    ) -> Upload:
        """Confirm the bytes were sent. The server checks the stored object (size, and
        content against the declared type); a wrong one is discarded with 409
        `upload.not_received` or `upload.type_mismatch`, and may be sent again."""
        return await uploads.complete(principal, upload_id)

    @router.delete(
        "/{upload_id}",
        status_code=204,
        summary="Delete an upload and its file",
        responses=problem_responses(401, 404, 503),
    )
    async def delete_upload(
        upload_id: str, principal: CurrentPrincipal, uploads: Uploads
    ) -> Response:
        """Delete the file and its record."""
        await uploads.delete(principal, upload_id)
        return Response(status_code=204)

    if settings.backend == "local":
        _add_local_content_routes(router, service, settings.max_size)
    return router


def _add_local_content_routes(router: APIRouter, service: Any, max_size: int) -> None:
    Uploads = Annotated[UploadService, Depends(service)]

    @router.put(
        "/{upload_id}/content",
        status_code=204,
        name="upload_content_put",
        summary="Send a file's bytes to its signed URL (local storage)",
        responses=problem_responses(400, 403, 404, 409, 413, 415, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    @streams_request_body(max_size)
    async def put_content(
        upload_id: str,
        request: Request,
        uploads: Uploads,
        expires: Expires = "",
        signature: Signature = "",
    ) -> Response:
        """Send the file's bytes to the signed URL of a grant (local storage only): exactly
        the declared size, with the declared `Content-Type`. A refused attempt stores
        nothing and may be repeated until the URL expires; once stored, 409."""
        length = request.headers.get("content-length")
        await uploads.receive(
            upload_id,
            _expires(expires),
            signature,
            request.headers.get("content-type"),
            int(length) if length is not None and length.isdigit() else None,
            request.stream(),
        )
        return Response(status_code=204)

    @router.get(
        "/{upload_id}/content",
        name=CONTENT_ROUTE,
        summary="Download a file from its signed URL (local storage)",
        response_class=FileResponse,
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "The file."},
            **problem_responses(403, 404, 503),
        },
    )
    async def get_content(
        upload_id: str,
        uploads: Uploads,
        expires: Expires = "",
        signature: Signature = "",
    ) -> FileResponse:
        """Download a ready file through a signed URL from `GET /uploads/{id}` (local storage)."""
        stored = await uploads.signed_download(upload_id, _expires(expires), signature)
        return FileResponse(
            stored.path,
            media_type=stored.content_type,
            headers={
                "Content-Disposition": content_disposition(stored.filename),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, no-cache",
            },
        )
