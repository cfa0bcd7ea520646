"""What an operator configures: the providers, and where a finished sign-in may go.

Validated when the settings load, so a bad provider stops startup with one line that names
the setting and the provider's field, and never echoes a value (a client secret may sit
next to the mistake).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
GITHUB_API_URL = "https://api.github.com"
OIDC_SCOPES = ("openid", "email", "profile")
GITHUB_SCOPES = ("read:user", "user:email")
PROVIDER_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
REDIRECT_URI_MAX_LENGTH = 2048
SCOPE_NAME = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token


def _is_loopback(host: str | None) -> bool:
    return host is not None and host.lower() in LOOPBACK_HOSTS


def check_url(value: str, *, what: str) -> str:
    """An absolute https URL (http only on a loopback host, for development and tests)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(f"{what} is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{what} must use https (http is allowed for localhost only)")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{what} must carry no credentials and no #fragment")
    return value


class OAuthProviderConfig(BaseModel):
    """One entry of `providers` (`COURTYARD_OAUTH__PROVIDERS`). `kind: oidc` is any OpenID
    Connect provider, found through its issuer (`<issuer>/.well-known/openid-configuration`)
    or an explicit `discovery_url`; `kind: github` is GitHub's OAuth 2.0 (no OpenID
    Connect), whose URLs default to github.com and may point at GitHub Enterprise (or a
    test double)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["oidc", "github"] = "oidc"
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr = Field(min_length=1)
    issuer: str | None = None
    discovery_url: str | None = None
    scopes: tuple[str, ...] | None = Field(
        None, description="Scopes to ask for; default openid/email/profile, or GitHub's."
    )
    authorize_url: str | None = None
    token_url: str | None = None
    api_url: str | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> OAuthProviderConfig:
        github_urls = {"authorize_url", "token_url", "api_url"}
        oidc_urls = {"issuer", "discovery_url"}
        if self.kind == "oidc":
            if self.issuer is None and self.discovery_url is None:
                raise ValueError("an oidc provider needs `issuer` or `discovery_url`")
            wrong = sorted(name for name in github_urls if getattr(self, name) is not None)
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only for kind github")
        else:
            wrong = sorted(name for name in oidc_urls if getattr(self, name) is not None)
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only for kind oidc")
        for name in sorted(github_urls | oidc_urls):
            value = getattr(self, name)
            if value is not None:
                check_url(value, what=name)
        if self.scopes is not None and (
            not self.scopes or not all(SCOPE_NAME.fullmatch(s) for s in self.scopes)
        ):
            raise ValueError("scopes must be a non-empty list of scope names")
        return self

    @property
    def scope(self) -> str:
        default = OIDC_SCOPES if self.kind == "oidc" else GITHUB_SCOPES
        return " ".join(self.scopes or default)


def parse_providers(raw: Any) -> dict[str, OAuthProviderConfig]:
    """`providers` from a mapping or its JSON text; ValueError naming what is wrong
    (provider and field) and never the value given."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ValueError("must be a JSON object: {name: {kind, client_id, …}}") from None
    if not isinstance(raw, Mapping):
        raise ValueError("must be an object: {name: {kind, client_id, …}}")
    providers: dict[str, OAuthProviderConfig] = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not PROVIDER_NAME.fullmatch(name):
            raise ValueError(
                "provider names are 1-32 lowercase letters, digits or '-', letter first"
            )
        if isinstance(entry, OAuthProviderConfig):
            providers[name] = entry
            continue
        try:
            providers[name] = OAuthProviderConfig.model_validate(entry)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(part) for part in err.get("loc", ()))
                message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                problems.append(f"{name}.{where}: {message}" if where else f"{name}: {message}")
            raise ValueError("; ".join(problems)) from None
    return providers


def parse_allowlist(raw: Any) -> list[str]:
    """`redirect_allowlist` from a list, its JSON text, or comma-separated text."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except ValueError:
                raise ValueError("must be a JSON list or comma-separated URLs") from None
        else:
            raw = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(raw, Iterable) or isinstance(raw, Mapping):
        raise ValueError("must be a list of URLs")
    entries = []
    for entry in raw:
        if not isinstance(entry, str):
            raise ValueError("must be a list of URLs")
        check_url(entry, what=f"{entry!r}")
        if urlsplit(entry).query:
            raise ValueError(f"{entry!r}: an allowed URL carries no query")
        entries.append(entry)
    return entries


_UNSAFE = re.compile(r"[\x00-\x20\\]")
_DOT_SEGMENT = re.compile(r"(^|/)(\.|%2e){1,2}(/|$)", re.IGNORECASE)


def redirect_allowed(uri: str, allowlist: Iterable[str]) -> bool:
    """True when `uri` may receive tokens: same scheme and host:port as an allowed entry,
    and the same path (an entry ending in `/`, or with no path, allows everything under
    it, split at segment boundaries). No credentials, no fragment, no dot segments, no
    backslashes or spaces (which browsers would read differently from this check)."""
    if len(uri) > REDIRECT_URI_MAX_LENGTH or _UNSAFE.search(uri):
        return False
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return False
    if parts.username is not None or parts.password is not None or parts.fragment:
        return False
    if "#" in uri or _DOT_SEGMENT.search(parts.path):
        return False
    for entry in allowlist:
        allowed = urlsplit(entry)
        same_origin = (
            parts.scheme == allowed.scheme
            and parts.hostname == allowed.hostname
            and port == allowed.port
        )
        if not same_origin:
            continue
        if allowed.path in ("", "/"):
            return True
        if allowed.path.endswith("/"):
            if parts.path.startswith(allowed.path):
                return True
        elif parts.path == allowed.path:
            return True
    return False
