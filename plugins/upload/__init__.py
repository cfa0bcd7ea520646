"""The `upload` plugin: direct-to-storage uploads through signed URLs, on local disk or S3.

A client asks for an upload grant (`POST /api/v1/uploads`), sends the bytes straight to
storage with it, then confirms (`POST /api/v1/uploads/{id}/complete`); the server checks
what was stored before the upload becomes `ready`. The API never relays a large body
except on the `local` backend, whose signed endpoint streams it to disk.
"""

from core.plugin import Plugin

plugin = Plugin(
    name="upload",
    package=__name__,
    version="0.1.0",
    core_version=">=0.1,<1",
    requires=("user",),
    description="File uploads through signed URLs, stored on local disk or any S3-compatible "
    "service, with size, type and quota checks.",
    prefix="uploads",
    tag="uploads",
    settings="settings:UploadSettings",
    container="container:UploadContainer",
    router="router:build_router",
    models="models",
    hooks="hooks:UploadHooks",
    migrations="migrations/versions",
)
