"""The configured providers by name, built on first use (nothing is fetched before).

The provider implementations (and the HTTP, OAuth and JOSE libraries under them) are
imported only when a provider is first used: an app with no OAuth provider configured
does not pay for them at startup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugins.oauth import errors
from plugins.oauth.settings import OAuthSettings

if TYPE_CHECKING:
    from plugins.oauth.providers import Provider


class ProviderRegistry:
    def __init__(self, settings: OAuthSettings) -> None:
        self.settings = settings
        self._built: dict[str, Provider] = {}

    def names(self) -> list[str]:
        return sorted(self.settings.providers)

    def get(self, name: str) -> Provider:
        """The provider called `name`; 404 `auth.oauth_unknown_provider` if none is."""
        provider = self._built.get(name)
        if provider is not None:
            return provider
        config = self.settings.providers.get(name)
        if config is None:
            raise errors.unknown_provider(name)
        from plugins.oauth.oidc import OidcProvider
        from plugins.oauth.providers import GitHubProvider

        kind = OidcProvider if config.kind == "oidc" else GitHubProvider
        provider = kind(name, config, self.settings.http_timeout)
        self._built[name] = provider
        return provider
