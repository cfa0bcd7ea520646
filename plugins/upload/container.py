from dependency_injector import containers, providers

from core.db import Database
from core.settings import CoreSettings
from plugins.upload.service import UploadService
from plugins.upload.settings import UploadSettings
from plugins.upload.signing import UrlSigner, url_signing_key
from plugins.upload.storage import open_storage


class UploadContainer(containers.DeclarativeContainer):
    """Inputs come from the core; everything here lives as long as the app."""

    settings = providers.Dependency(instance_of=UploadSettings)
    core_settings = providers.Dependency(instance_of=CoreSettings)
    database = providers.Dependency(instance_of=Database)

    signer = providers.Singleton(
        UrlSigner, key=providers.Callable(url_signing_key, core_settings.provided.secret_key)
    )
    storage = providers.Singleton(open_storage, settings=settings, signer=signer)
    service = providers.Singleton(
        UploadService, settings=settings, database=database, storage=storage, signer=signer
    )
