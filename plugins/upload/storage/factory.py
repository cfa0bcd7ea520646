from __future__ import annotations

from plugins.upload.settings import UploadSettings
from plugins.upload.signing import UrlSigner
from plugins.upload.storage.base import StorageBackend


def open_storage(settings: UploadSettings, signer: UrlSigner) -> StorageBackend:
    """The backend `settings.backend` names. Nothing connects until it is first used."""
    if settings.backend == "s3":
        from plugins.upload.storage.s3 import S3Storage  # only S3 deployments import it

        return S3Storage(settings)
    from plugins.upload.storage.local import LocalStorage

    return LocalStorage(settings.local_root, signer)
