"""`COURTYARD_OAUTH__*`: the environment form works, and mistakes stop startup with one line
that names the setting and never shows a secret."""

from __future__ import annotations

import json

import pytest

from core.settings import ConfigurationError, build_settings
from plugins.oauth.config import redirect_allowed
from plugins.oauth.settings import OAuthSettings

PREFIX = "COURTYARD_OAUTH__"
SECRET = "s3cr3t-value-never-shown"


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> OAuthSettings:
    for name, value in env.items():
        monkeypatch.setenv(f"{PREFIX}{name.upper()}", value)
    return build_settings(OAuthSettings, PREFIX, {}, None)


def test_providers_and_allow_list_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    providers = {
        "acme": {"issuer": "https://id.acme.example", "client_id": "c", "client_secret": SECRET},
        "github": {"kind": "github", "client_id": "g", "client_secret": SECRET},
    }

    settings = load(
        monkeypatch,
        providers=json.dumps(providers),
        redirect_allowlist="https://app.example.com/done, http://localhost:3000/",
        callback_base_url="https://api.example.com/",
        flow_ttl="300",
        http_timeout="2.5",
    )

    acme, github = settings.providers["acme"], settings.providers["github"]
    assert acme.kind == "oidc"
    assert acme.client_secret.get_secret_value() == SECRET
    assert acme.scope == "openid email profile"
    assert github.scope == "read:user user:email"
    assert github.authorize_url is None  # github.com by default
    assert settings.redirect_allowlist == [
        "https://app.example.com/done",
        "http://localhost:3000/",
    ]
    assert settings.callback_base_url == "https://api.example.com"
    assert (settings.flow_ttl, settings.http_timeout) == (300, 2.5)
    assert SECRET not in repr(settings)


def test_the_allow_list_also_takes_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, redirect_allowlist='["https://app.example.com/"]')

    assert settings.redirect_allowlist == ["https://app.example.com/"]


def test_nothing_configured_means_no_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)

    assert settings.providers == {}
    assert settings.redirect_allowlist == []
    assert (settings.callback_base_url, settings.flow_ttl, settings.http_timeout) == (None, 600, 10)


@pytest.mark.parametrize(
    ("providers", "expected"),
    [
        ('{"acme": {"client_id": "c", "client_secret": "SECRET"}}', "acme: an oidc provider"),
        ('{"acme": {"issuer": "https://x.example", "client_secret": "SECRET"}}', "acme.client_id"),
        (
            '{"acme": {"issuer": "https://x.example", "client_id": "c", "client_secret": 1234}}',
            "acme.client_secret",
        ),
        (
            '{"acme": {"issuer": "http://x.example", "client_id": "c", "client_secret": "SECRET"}}',
            "issuer must use https",
        ),
        ('{"acme": {"kind": "saml", "client_id": "c", "client_secret": "SECRET"}}', "acme.kind"),
        (
            '{"gh": {"kind": "github", "issuer": "https://x.example", "client_id": "c", '
            '"client_secret": "SECRET"}}',
            "only for kind oidc",
        ),
        (
            '{"gh": {"kind": "github", "client_id": "c", "client_secret": "SECRET", "typo": 1}}',
            "gh.typo",
        ),
        ('{"Bad Name": {"client_id": "c", "client_secret": "SECRET"}}', "provider names"),
        ('{"acme": {"client_secret": "SECRET"', "must be a JSON object"),
        ('["SECRET"]', "must be an object"),
    ],
)
def test_a_bad_provider_is_one_line_naming_the_setting_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, providers: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load(monkeypatch, providers=providers.replace("SECRET", SECRET))

    message = str(caught.value)
    assert "\n" not in message
    assert "COURTYARD_OAUTH__PROVIDERS" in message
    assert expected in message
    assert SECRET not in message
    assert "1234" not in message


@pytest.mark.parametrize(
    "entry", ["http://app.example.com/", "ftp://app.example.com/", "https://a.example/?x=1", "/x"]
)
def test_a_bad_allow_list_entry_is_refused(monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    with pytest.raises(ConfigurationError, match="COURTYARD_OAUTH__REDIRECT_ALLOWLIST"):
        load(monkeypatch, redirect_allowlist=entry)


def test_the_redirect_matching_rules() -> None:
    allow = ["https://app.example.com/cb", "https://sub.example.com/app/", "http://localhost:3000"]

    assert redirect_allowed("https://app.example.com/cb", allow)
    assert redirect_allowed("https://app.example.com/cb?next=%2Fhome", allow)
    assert redirect_allowed("https://APP.example.com/cb", allow)
    assert redirect_allowed("https://sub.example.com/app/deep/page", allow)
    assert redirect_allowed("http://localhost:3000/anything", allow)
    assert not redirect_allowed("https://sub.example.com/application", allow)
    assert not redirect_allowed("https://sub.example.com/app", allow)
    assert not redirect_allowed("https://sub.example.com/app/../admin", allow)
    assert not redirect_allowed("https://sub.example.com/app/%2E%2E/admin", allow)
    assert not redirect_allowed("http://localhost:3001/", allow)
    assert not redirect_allowed("https://app.example.com/cb ", allow)
    assert not redirect_allowed("https://app.example.com:99999/cb", allow)
    assert not redirect_allowed("https://app.example.com/cb", [])


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("callback_base_url", "http://api.example.com", "COURTYARD_OAUTH__CALLBACK_BASE_URL"),
        ("flow_ttl", "10", "COURTYARD_OAUTH__FLOW_TTL"),
        ("http_timeout", "0", "COURTYARD_OAUTH__HTTP_TIMEOUT"),
    ],
)
def test_other_bad_values_name_their_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        load(monkeypatch, **{name: value})


async def test_the_settings_of_the_auth_plugin_are_refused_naming_them(
    app_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stops an upgrade silently switching OAuth sign-in off: the settings this plugin had
    as part of `auth` are unknown now, and startup says which one it met."""
    monkeypatch.setenv("COURTYARD_AUTH__OAUTH_PROVIDERS", "{}")

    with pytest.raises(ConfigurationError, match="COURTYARD_AUTH__OAUTH_PROVIDERS"):
        async with app_client(enabled_plugins="user,auth,mail,oauth"):  # type: ignore[operator]
            pass
