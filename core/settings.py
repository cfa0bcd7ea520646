"""Configuration: the core's settings and the base class for every plugin's settings.

Sources, highest priority first: explicit keyword arguments, the environment, `.env`,
`courtyard.toml`, defaults. Core settings use the prefix `COURTYARD_` and the top level of
`courtyard.toml`; a plugin's use `COURTYARD_<NAME>__` and the `[<name>]` table.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

CORE_ENV_PREFIX = "COURTYARD_"
DEV_SECRET_KEY = "courtyard-development-secret-do-not-use-in-production"  # noqa: S105
MIN_SECRET_BYTES = 32
MIN_SECRET_DISTINCT_CHARS = 10
GENERATE_SECRET_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'  # noqa: S105
_SECRET_RULE = (
    f"a secret needs at least {MIN_SECRET_BYTES} bytes and {MIN_SECRET_DISTINCT_CHARS} "
    f"distinct characters; generate one with {GENERATE_SECRET_HINT}"
)

# The `courtyard.toml` table being applied while a settings object is built. A context
# variable (not a class attribute) so one settings class can be bound to any table.
_toml_table: ContextVar[Mapping[str, Any]] = ContextVar(
    "courtyard_toml_table", default=MappingProxyType({})
)


class ConfigurationError(Exception):
    """Bad configuration: the message is one line naming the setting or plugin at fault."""


class _TomlTableSource(PydanticBaseSettingsSource):
    """Feeds the values of one `courtyard.toml` table, below the environment and `.env`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        table = _toml_table.get()
        return table.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {k: v for k, v in _toml_table.get().items() if k in fields}


class CourtyardSettings(BaseSettings):
    """Base of the core's and every plugin's settings (source order documented above)."""

    model_config = SettingsConfigDict(extra="ignore", env_file_encoding="utf-8")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, _TomlTableSource(settings_cls))


def split_names(value: Any) -> Any:
    if value is None or isinstance(value, list | tuple | set):
        return value
    if isinstance(value, str):
        return [part.strip().lower() for part in value.split(",") if part.strip()]
    return value


def normalize_database_url(value: str) -> str:
    """Accept the usual spellings and return a URL with an async driver, or raise ValueError."""
    try:
        url: URL = make_url(value)
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected e.g. sqlite+aiosqlite:///./courtyard.db "
            "or postgresql+asyncpg://user@host/db"
        ) from None
    backend = url.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+asyncpg")
        if not url.database:
            raise ValueError("a PostgreSQL URL must name a database")
        check_postgres_hosts(url)
    elif backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(f"unsupported database {backend!r}; use PostgreSQL or SQLite")
    return url.render_as_string(hide_password=False)


# asyncpg's `target_session_attrs` values: which of the named hosts a connection may use.
SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
_MULTI_HOST_FORMS = "host=h1:p1&host=h2:p2 or host=h1,h2&port=p1,p2"


def check_postgres_hosts(url: URL) -> None:
    """Raise ValueError (one line) for a PostgreSQL URL whose hosts the driver would reject
    only when the first connection is made, or would read otherwise than written.

    Several hosts (for failover: `?host=h1:p1&host=h2:p2&target_session_attrs=read-write`)
    each need a port, as asyncpg takes no default one for them; a port with more than one
    colon (an IPv6 address) would be cut at the first. A host before the database as well
    as `host=` parameters would silently lose the former. One `host=` alone (e.g. a socket
    folder) is the ordinary single-host form and is left as it is.
    """
    attrs = url.query.get("target_session_attrs")
    if attrs is not None and attrs not in SESSION_ATTRS:
        raise ValueError(f"target_session_attrs={attrs!r} is not one of {', '.join(SESSION_ATTRS)}")
    hosts, ports = url.query.get("host"), url.query.get("port")
    several = isinstance(hosts, tuple) or (isinstance(hosts, str) and "," in hosts)
    if not several:
        return
    if url.host or url.port:
        raise ValueError(
            "name the hosts either before the database (user@host:port/db) or as host= "
            "parameters, not both"
        )
    if isinstance(hosts, tuple):
        if ports is not None:
            raise ValueError(f"give each host its port in host=, not port= ({_MULTI_HOST_FORMS})")
        for entry in hosts:
            name, _, port = entry.partition(":")
            if not name or not port.isdecimal():
                raise ValueError(
                    f"host={entry!r}: each of several hosts needs its port, as name:port "
                    f"({_MULTI_HOST_FORMS})"
                )
        return
    names = hosts.split(",") if isinstance(hosts, str) else []
    numbers = ports.split(",") if isinstance(ports, str) else []
    if len(numbers) != len(names) or not all(
        name and number.isdecimal() for name, number in zip(names, numbers, strict=True)
    ):
        raise ValueError(
            f"host={hosts!r} needs a port for each host, in the same order: port=p1,p2 "
            f"({_MULTI_HOST_FORMS})"
        )


REDIS_SCHEMES = ("redis", "rediss")


def check_redis_url(value: str) -> str:
    """`value` if it is a redis:// or rediss:// URL naming a host, with no path or a
    database number for one (redis-py would take any other path as database 0), else
    ValueError."""
    expected = "expected redis://host:port/db or rediss://host:port/db (db: a number)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise ValueError(expected) from None
    database = parts.path.removeprefix("/")
    if (
        parts.scheme not in REDIS_SCHEMES
        or not parts.hostname
        or not (database == "" or database.isdecimal())
    ):
        raise ValueError(expected)
    return value


def weak_secret_reason(value: str | bytes | SecretStr) -> str | None:
    """Why `value` is too weak to sign or key with, or None when it is strong enough.

    The one strength rule for every secret Courtyard itself signs or keys with (the core's
    `COURTYARD_SECRET_KEY`; a plugin's own signing secret): at least `MIN_SECRET_BYTES`
    bytes (UTF-8) and `MIN_SECRET_DISTINCT_CHARS` distinct characters (bytes, for a bytes
    value). Credentials another service issues (S3 keys, OAuth client secrets, SMTP
    passwords) are that service's to judge and are not checked with it.

    The reason is one line that follows the setting's name (e.g. `f"{NAME} {reason}"`),
    says how to make a good secret, and never contains the value.
    """
    secret = value.get_secret_value() if isinstance(value, SecretStr) else value
    size = len(secret) if isinstance(secret, bytes) else len(secret.encode())
    if size < MIN_SECRET_BYTES:
        problem = f"is shorter than {MIN_SECRET_BYTES} bytes"
    elif len(set(secret)) < MIN_SECRET_DISTINCT_CHARS:
        problem = f"has fewer than {MIN_SECRET_DISTINCT_CHARS} distinct characters"
    else:
        return None
    return f"{problem}: {_SECRET_RULE}"


def parse_forwarded_allow_ips(value: Any) -> Any:
    """`COURTYARD_FORWARDED_ALLOW_IPS`: comma-separated (or a list) IP addresses and CIDR
    networks, each normalized; `*` alone trusts every peer. Raises ValueError naming the
    first bad entry."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return value  # the field's own type check refuses it
    entries = [entry.strip() if isinstance(entry, str) else entry for entry in value]
    entries = [entry for entry in entries if entry != ""]
    if "*" in entries:
        if len(entries) > 1:
            raise ValueError("'*' (trust every peer) must stand alone")
        return ["*"]
    return [_trusted_peer(entry) for entry in entries]


def _trusted_peer(entry: Any) -> str:
    if not isinstance(entry, str):
        raise ValueError(f"{entry!r} is not an IP address or a CIDR network")
    try:
        if "/" in entry:
            return str(ipaddress.ip_network(entry))
        return str(ipaddress.ip_address(entry))
    except ValueError as exc:
        if "host bits" not in str(exc):
            raise ValueError(f"{entry!r} is not an IP address or a CIDR network") from None
        network = ipaddress.ip_network(entry, strict=False)
        raise ValueError(f"{entry!r} has host bits set (the network is {network})") from None


# CORS (core/cors.py): what a page of another origin may do with the API from a browser.
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Accept, Accept-Language, Content-Language and Content-Type are always allowed.
CORS_HEADERS = ("Authorization", "X-Request-ID")
CORS_EXPOSE_HEADERS = ("X-Request-ID", "Retry-After", "Location")
_ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a method or header name (RFC 9110)


def split_list(value: Any) -> Any:
    """A comma-separated string (the environment) or a list (`courtyard.toml`) as the list
    of its entries, stripped, empty ones dropped; anything else as given (the field's own
    type check refuses it)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return value
    entries = [entry.strip() if isinstance(entry, str) else entry for entry in value]
    return [entry for entry in entries if entry != ""]


def _every(entries: list[Any], what: str) -> bool:
    """Whether `entries` is `*` alone (every `what`); ValueError when `*` has company."""
    if "*" not in entries:
        return False
    if len(entries) > 1:
        raise ValueError(f"'*' (every {what}) must stand alone")
    return True


def parse_cors_origins(value: Any) -> Any:
    """`COURTYARD_CORS_ORIGINS`: origins as a browser sends them in `Origin`, or `*` alone.
    Raises ValueError naming the first entry that is not one."""
    entries = split_list(value)
    if not isinstance(entries, list) or _every(entries, "origin"):
        return entries
    return [cors_origin(entry) for entry in entries]


def cors_origin(entry: Any) -> str:
    """`entry` as a browser writes an origin (`scheme://host[:port]`, lower case, no default
    port), or ValueError: anything else, a trailing `/` included, would never match one."""
    match = _ORIGIN.fullmatch(entry.lower()) if isinstance(entry, str) else None
    port = match and match.group("port")
    if match is None or (port is not None and not 0 < int(port) <= 65535):
        raise ValueError(
            f"{entry!r} is not an origin: write scheme://host[:port], with no path "
            "(not even a trailing /)"
        )
    scheme, host = match.group("scheme"), match.group("host")
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_cors_tokens(value: Any, *, what: str, upper: bool = False) -> Any:
    """A list of HTTP method or header names (`what`), or `*` alone; ValueError naming the
    first entry that is not a name. Methods (`upper`) are upper-cased, as browsers send them."""
    entries = split_list(value)
    if not isinstance(entries, list) or _every(entries, what):
        return entries
    names = []
    for entry in entries:
        if not isinstance(entry, str) or not _TOKEN.fullmatch(entry):
            raise ValueError(f"{entry!r} is not an HTTP {what} name")
        names.append(entry.upper() if upper else entry)
    return names


NameList = Annotated[list[str], NoDecode]


class CoreSettings(CourtyardSettings):
    """Settings the core owns (`COURTYARD_*`)."""

    model_config = SettingsConfigDict(env_prefix=CORE_ENV_PREFIX, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = Field("sqlite+aiosqlite:///./courtyard.db", repr=False)
    read_database_url: str | None = Field(None, repr=False)
    redis_url: str | None = Field(
        None,
        repr=False,
        description="redis:// or rediss:// URL of the state the instances share: failed-login "
        "counters, read-your-writes marks; unset: each process (each worker of `--workers N`) "
        "keeps its own, in memory",
    )
    enabled_plugins: NameList | None = None
    disabled_plugins: NameList = Field(default_factory=list)
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    forwarded_allow_ips: NameList = Field(
        default_factory=list,
        description="peers (IP addresses, CIDR networks, or * for every peer) whose "
        "X-Forwarded-For and X-Forwarded-Proto are honoured; empty: none",
    )
    cors_origins: NameList = Field(
        default_factory=list,
        description="origins (scheme://host[:port]) whose pages may call the API from a "
        "browser, or * for every origin; empty: no CORS at all",
    )
    cors_allow_credentials: bool = Field(
        False, description="let those pages send cookies (not needed for Authorization)"
    )
    cors_allow_methods: NameList = Field(
        default_factory=lambda: list(CORS_METHODS), description="methods they may use, or *"
    )
    cors_allow_headers: NameList = Field(
        default_factory=lambda: list(CORS_HEADERS),
        description="request headers they may send, or * (the CORS-safelisted ones always)",
    )
    cors_expose_headers: NameList = Field(
        default_factory=lambda: list(CORS_EXPOSE_HEADERS),
        description="response headers their scripts may read",
    )
    cors_max_age: int = Field(
        600, ge=0, le=86400, description="seconds a browser may keep a preflight's answer"
    )

    db_pool_size: int = Field(10, ge=1, le=1000)
    db_max_overflow: int = Field(5, ge=0, le=1000)
    db_pool_timeout: float = Field(5.0, gt=0, description="seconds to wait for a free connection")
    db_connect_timeout: float = Field(5.0, gt=0, description="seconds to open a connection")
    db_statement_timeout: float = Field(30.0, ge=0, description="PostgreSQL only; 0 = none")
    db_ping_idle_after: float = Field(
        1.0, ge=0, description="ping a pooled connection idle longer than this before use"
    )
    db_pooler: Literal["none", "transaction"] = Field(
        "none",
        description="what sits between the app and PostgreSQL: none, or a pooler in "
        "transaction mode (pgbouncer, pgcat, supavisor), which hands a server connection "
        "to a client for one transaction only",
    )
    db_replica_max_lag: float = Field(
        10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds a replica may lag behind the primary before reads skip it",
    )
    db_replica_wait: float = Field(
        0.5,
        ge=0,
        le=60,
        allow_inf_nan=False,
        description="seconds a caller's read waits for the replica to replay the caller's own "
        "last write before it reads the primary instead; 0 = read the primary at once",
    )
    db_echo: bool = False

    max_request_body: int = Field(1_048_576, ge=1, description="bytes; larger bodies get 413")
    ready_timeout: float = Field(3.0, gt=0, description="seconds each readiness check may take")
    shutdown_drain: float = Field(
        5.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds `courtyard serve` keeps serving after SIGTERM, /health/ready "
        "answering 503 so that a load balancer stops sending traffic, before it shuts down; "
        "a second SIGTERM or SIGINT ends the drain; 0 = shut down at once",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text",
        description="shape of a log line: text (key=value fields) or json (one object a "
        "line); either way one record is one line",
    )
    opentelemetry: bool = Field(
        False, description="FastAPI's OpenTelemetry tracing, metrics and logs (global providers)"
    )
    metrics: bool = Field(
        False, description="serve Prometheus metrics at GET /metrics (unauthenticated)"
    )

    _source_env_file: str | None = PrivateAttr(default=None)
    _source_config_file: str | None = PrivateAttr(default=None)
    _toml: Mapping[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("enabled_plugins", "disabled_plugins", mode="before")
    @classmethod
    def _parse_names(cls, value: Any) -> Any:
        return split_names(value)

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _parse_forwarded_allow_ips(cls, value: Any) -> Any:
        return parse_forwarded_allow_ips(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_cors_origins(cls, value: Any) -> Any:
        return parse_cors_origins(value)

    @field_validator("cors_allow_methods", mode="before")
    @classmethod
    def _parse_cors_methods(cls, value: Any) -> Any:
        return parse_cors_tokens(value, what="method", upper=True)

    @field_validator("cors_allow_headers", "cors_expose_headers", mode="before")
    @classmethod
    def _parse_cors_headers(cls, value: Any) -> Any:
        return parse_cors_tokens(value, what="header")

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalize_database_url(value)  # type: ignore[arg-type]

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else check_redis_url(value)  # type: ignore[arg-type]

    @property
    def uses_development_secret(self) -> bool:
        """True when the secret key is the public development default."""
        return self.secret_key.get_secret_value() == DEV_SECRET_KEY

    @model_validator(mode="after")
    def _check_cors(self) -> Self:
        if self.cors_allow_credentials and self.cors_origins == ["*"]:
            raise ValueError(
                "COURTYARD_CORS_ORIGINS=* cannot go with COURTYARD_CORS_ALLOW_CREDENTIALS=true: "
                "every site could then call the API with its visitors' cookies; list the "
                "origins instead"
            )
        return self

    @model_validator(mode="after")
    def _check_secret(self) -> Self:
        if self.env != "production":
            return self
        if self.uses_development_secret:
            raise ValueError(
                "with COURTYARD_ENV=production, COURTYARD_SECRET_KEY must not be the public "
                f"development default: {_SECRET_RULE}"
            )
        reason = weak_secret_reason(self.secret_key)
        if reason:
            raise ValueError(f"with COURTYARD_ENV=production, COURTYARD_SECRET_KEY {reason}")
        return self

    @classmethod
    def load(
        cls,
        *,
        env_file: str | None = ".env",
        config_file: str | None = None,
        **overrides: Any,
    ) -> CoreSettings:
        """Read settings from every source; raise ConfigurationError with one clear line.

        `config_file` defaults to `$COURTYARD_CONFIG_FILE` or `./courtyard.toml` when present.
        """
        if config_file is None:
            config_file = os.environ.get("COURTYARD_CONFIG_FILE") or (
                "courtyard.toml" if Path("courtyard.toml").exists() else None
            )
        document = read_toml(config_file) if config_file else {}
        core_table = {k: v for k, v in document.items() if not isinstance(v, dict)}
        settings = build_settings(cls, CORE_ENV_PREFIX, core_table, env_file, overrides)
        settings._source_env_file = env_file
        settings._source_config_file = config_file
        settings._toml = document
        return settings

    def plugin_table(self, name: str) -> Mapping[str, Any]:
        """The `[name]` table of `courtyard.toml` (empty when absent)."""
        table = self._toml.get(name, {})
        return table if isinstance(table, Mapping) else {}

    @property
    def toml_document(self) -> Mapping[str, Any]:
        """The whole `courtyard.toml` these settings were loaded with (empty when none)."""
        return self._toml

    @property
    def config_file(self) -> str | None:
        return self._source_config_file

    @property
    def env_file(self) -> str | None:
        """The `.env` file these settings were loaded with; plugins' settings use it too."""
        return self._source_env_file


class PluginSettings(CourtyardSettings):
    """Base class for a plugin's settings; the core binds it to `COURTYARD_<NAME>__`."""


def plugin_env_prefix(name: str) -> str:
    return f"{CORE_ENV_PREFIX}{name.upper()}__"


S = TypeVar("S", bound=CourtyardSettings)


def build_settings(
    cls: type[S],
    env_prefix: str,
    toml_table: Mapping[str, Any],
    env_file: str | None,
    overrides: Mapping[str, Any] | None = None,
) -> S:
    """Build `cls` from all sources, turning validation errors into ConfigurationError."""
    token = _toml_table.set(toml_table)
    try:
        return cls(
            _env_prefix=env_prefix,  # type: ignore[call-arg]
            _env_file=env_file if env_file and Path(env_file).exists() else None,  # type: ignore[call-arg]
            **dict(overrides or {}),
        )
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, env_prefix, cls)) from None
    finally:
        _toml_table.reset(token)


def load_plugin_settings(
    cls: type[S], name: str, core: CoreSettings, overrides: Mapping[str, Any] | None = None
) -> S:
    return build_settings(
        cls, plugin_env_prefix(name), core.plugin_table(name), core.env_file, overrides
    )


def describe_validation_error(
    exc: ValidationError, env_prefix: str, settings_cls: type[BaseSettings]
) -> str:
    """One line naming each offending setting by its environment variable."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:  # a model-level check names its settings in the message itself
            parts.append(msg)
            continue
        name = f"{env_prefix}{loc[0].upper()}"
        given = err.get("input")
        hidden = is_sensitive(settings_cls, loc[0]) or isinstance(given, dict)
        shown = "" if hidden else f" (got {hide_password(given)!r})"
        parts.append(f"{name}: {msg}{shown}")
    return "invalid configuration: " + "; ".join(parts)


def hide_password(value: Any) -> Any:
    """`scheme://user:***@host/…`: a URL's password never reaches a message or a log.

    Everything up to the last `@` is credentials, so a password holding `@` or `/` is
    hidden whole.
    """
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    if "@" not in rest:
        return value
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0] if ":" in credentials else credentials
    return f"{scheme}://{user}:***@{location}" if ":" in credentials else value


_SENSITIVE_NAME = re.compile(r"secret|password|passwd|token|key|credential", re.IGNORECASE)


def is_sensitive(settings_cls: type[BaseSettings], field_name: str) -> bool:
    """A field whose value must never be echoed: a Secret type, or a name that says so."""
    field = settings_cls.model_fields.get(field_name)
    annotation = repr(field.annotation) if field is not None else ""
    return "Secret" in annotation or bool(_SENSITIVE_NAME.search(field_name))


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigurationError(
            f"config file {path} does not exist (COURTYARD_CONFIG_FILE)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
