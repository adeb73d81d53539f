"""Settings: environment variables (prefix `WHEELYARD_`) over an optional TOML file.

`load_settings()` is the one construction point; nothing reads the environment elsewhere. The
TOML file (`WHEELYARD_CONFIG`, default `wheelyard.toml` in the working directory when present)
may set the same keys in lower case and may also declare storages and repositories to create
or update at start. Every variable is documented in docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from wheelyard.shared.errors import ConfigurationError

RepositoryType = Literal["hosted", "proxy", "group"]
Visibility = Literal["public", "private"]
#: The largest CA bundle accepted (PEM text; a system bundle is about 200 KB).
MAX_CA_BUNDLE = 1024 * 1024


def check_pem_bundle(pem: str) -> str:
    """`pem` if it is one or more PEM certificates OpenSSL accepts, else ValueError saying why."""
    if len(pem) > MAX_CA_BUNDLE:
        raise ValueError(f"a CA bundle is at most {MAX_CA_BUNDLE} bytes")
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("a CA bundle must be PEM text with -----BEGIN CERTIFICATE----- blocks")
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"the CA bundle is not valid PEM certificates: {exc}") from None
    return pem


def read_pem(value: str) -> str:
    """A PEM bundle given as text or as the path of a file holding it (checked)."""
    if "-----BEGIN" not in value:
        try:
            value = Path(value).read_text()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the CA bundle {value!r}: {exc}") from exc
    try:
        return check_pem_bundle(value)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc


_DURATION_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_RE = re.compile(r"(?:(\d+)([wdhms]))")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(value: Any) -> int:
    """Seconds in `value`: a whole number of seconds, or units such as `30d`, `12h`, `1d12h`,
    `90m`, `2w`, `45s`; ValueError saying how to write one otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or e.g. '30d', '12h', '90m'")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower().replace(" ", "")
        if text.isdigit():
            seconds = int(text)
        elif text and _DURATION_RE.sub("", text) == "":
            seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_RE.findall(text))
        else:
            raise ValueError(
                f"{value!r} is not a duration: write seconds or e.g. '30d', '12h', '90m', '1d12h'"
            )
    if seconds < 0 or seconds > 100 * 365 * 86400:
        raise ValueError(f"a duration must be between 0 and 100 years, not {value!r}")
    return seconds


def format_duration(seconds: int) -> str:
    """`seconds` in the largest unit that divides it exactly: `30d`, `36h`, `90s`."""
    for unit in ("w", "d", "h", "m"):
        size = _DURATION_UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_size(value: Any) -> int:
    """Bytes in `value`: a whole number, or with a unit (`500MB`, `10GB`, `2GiB`; decimal
    units are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` of 1024)."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or e.g. '500MB', '10GiB'")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.fullmatch(str(value).strip().lower())
        if match is None or match[2] not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size: write bytes or e.g. '500MB', '10GiB'")
        if len(match[1]) > 30:  # no sane size; and floats overflow
            raise ValueError(f"{value!r} is not a size: write bytes or e.g. '500MB', '10GiB'")
        size = int(Decimal(match[1]) * _SIZE_UNITS[match[2]])
    if size < 0 or size > 2**62:
        raise ValueError(f"a size must be between 0 and 2^62 bytes, not {value!r}")
    return size


class UpstreamConfig(BaseModel):
    """One upstream index of a proxy repository, tried in the order listed."""

    url: str
    username: str | None = None
    password: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    #: PEM certificates trusted for this upstream besides the system store and the global
    #: WHEELYARD_PYPI_PROXY_CA_BUNDLE (a TLS-inspecting proxy, a private CA).
    ca_bundle: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream URL must be http(s)://host/..., got {value!r}")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_pem_bundle(value)


class RepositoryConfig(BaseModel):
    """A repository declared in the TOML file; created or updated at start."""

    storage: str = "default"
    name: str
    type: RepositoryType
    visibility: Visibility = "public"
    upstreams: list[UpstreamConfig] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    ttl: int | None = Field(default=None, ge=0)
    # Group only: projects whose upstream files are merged even when a hosted member has them
    # (an explicit opt-out of the dependency-confusion protection, per project).
    allow_upstream: list[str] = Field(default_factory=list)
    # Supply-chain rules (checked by `wheelyard.shared.domain.policy` when the repository is
    # applied; docs/supply-chain.md): a duration such as "7d", and requirement strings with
    # name wildcards.
    min_release_age: str | int | None = None
    release_age_exempt: list[str] = Field(default_factory=list)
    blocked: list[str] = Field(default_factory=list)
    allowed: list[str] = Field(default_factory=list)
    withheld_files: Literal["yanked", "hidden"] = "yanked"
    # Proxy only: retention of the cache (bytes; seconds since the last download). None: none.
    cache_max_bytes: int | None = None
    cache_max_idle: int | None = None

    @field_validator("cache_max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int | None:
        return None if value is None else parse_size(value)

    @field_validator("cache_max_idle", mode="before")
    @classmethod
    def _idle(cls, value: Any) -> int | None:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _kind_fits(self) -> RepositoryConfig:
        if self.type == "proxy" and not self.upstreams:
            raise ValueError(f"proxy repository {self.name!r} needs at least one upstream")
        if self.type != "proxy" and self.upstreams:
            raise ValueError(f"only proxy repositories have upstreams ({self.name!r})")
        if self.type != "group" and self.members:
            raise ValueError(f"only group repositories have members ({self.name!r})")
        if self.type != "group" and self.allow_upstream:
            raise ValueError(f"only group repositories have allow_upstream ({self.name!r})")
        if self.type != "proxy" and (
            self.cache_max_bytes is not None or self.cache_max_idle is not None
        ):
            raise ValueError(
                f"only proxy repositories have cache_max_bytes and cache_max_idle ({self.name!r})"
            )
        return self


class Settings(BaseSettings):
    """Every runtime setting of Wheelyard. Environment variables win over the TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="WHEELYARD_",
        extra="forbid",
        validate_default=True,
        populate_by_name=True,
    )

    data_dir: Path = Path(".wheelyard")
    database_url: str | None = None
    blob_url: str | None = None
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_secure: bool = True
    s3_region: str | None = None
    blob_redirect: bool = False
    cache_url: str = "memory://"
    cache_prefix: str = Field(default="wheelyard:", min_length=1, max_length=100)
    # The in-process cache (`memory://`, and the stand-in while Redis is down), in bytes.
    memory_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    public_url: str | None = None
    # Hosts whose name may appear in links of publicly cacheable pages (None: any; see
    # web/base_url.py). Comma-separated in the environment, a list in TOML.
    allowed_hosts: Annotated[list[str] | None, NoDecode] = None
    trust_proxy_headers: bool = False
    # Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs; comma-separated in
    # the environment). The client is the right-most address not in this list.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_password: str | None = None
    # Failed authentications written to the audit log per minute: per client address and per
    # account, and from everyone together (the rest are counted, not written).
    audit_failures_per_minute: int = Field(default=20, gt=0)
    audit_failures_per_minute_total: int = Field(default=300, gt=0)
    pypi_proxy: str = "https://pypi.org/simple/"
    pypi_proxy_auth: str | None = None
    pypi_proxy_timeout: float = Field(default=30.0, gt=0)
    pypi_proxy_ttl: int = Field(default=600, ge=0)
    # Once a cold page is parsed, fetch the `.metadata` an installer is sure to ask for next,
    # then the pages it requires without condition (wheelyard.proxy_cache.readahead).
    pypi_proxy_read_ahead: bool = True
    # PEM certificates (text or a file path) trusted for every upstream besides the system's.
    pypi_proxy_ca_bundle: str | None = None
    # Forward proxies for upstream requests: the standard variables (either case), as curl,
    # pip and uv read them; WHEELYARD_-prefixed names win.
    https_proxy: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WHEELYARD_HTTPS_PROXY", "HTTPS_PROXY", "https_proxy"),
    )
    http_proxy: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WHEELYARD_HTTP_PROXY", "HTTP_PROXY", "http_proxy"),
    )
    no_proxy: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WHEELYARD_NO_PROXY", "NO_PROXY", "no_proxy"),
    )
    allow_private_upstreams: bool = False
    max_upload_size: int = Field(default=1024**3, gt=0)
    # Request heads (request line + headers): larger or more numerous get 431, slower 408.
    max_header_size: int = Field(default=32 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=16)
    header_timeout: float = Field(default=20.0, gt=0)
    allow_local_versions: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = True
    metrics_token: str | None = None
    # The gateway signs internal tokens with this Ed25519 key (PEM text or a file path);
    # services verify with the public key. Embedded mode generates a pair in the data dir.
    internal_jwt_private_key: str | None = None
    internal_jwt_public_key: str | None = None
    # Split mode: where the gateway forwards to. Unset means embedded (apps mounted in-process).
    # Each is a comma-separated list of http://host:port URLs; a name may resolve to several
    # addresses: every address is a replica.
    index_url: str | None = None
    upload_url: str | None = None
    proxy_cache_url: str | None = None
    repositories: list[RepositoryConfig] = Field(default_factory=list)
    # Proxy cache retention and blob garbage collection: how often the sweep runs (seconds or
    # e.g. "1h"; 0 = never, run `wheelyard cache prune` instead) and how long an unreferenced
    # blob is kept after its last write.
    retention_interval: int = 3600
    gc_grace: int = 86400

    @field_validator("retention_interval", "gc_grace", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> int:
        return parse_duration(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL, e.g. https://pypi.example.com")
        return value.rstrip("/")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        if isinstance(value, list):
            hosts = [str(h).strip().lower() for h in value]
            for host in hosts:
                if not host or "/" in host or "@" in host:
                    raise ValueError(f"{host!r} is not a host name (e.g. pypi.example.com)")
            return hosts
        return value

    @field_validator("https_proxy", "http_proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if "://" not in value:
            value = "http://" + value  # `proxy.corp:3128`, as curl reads it
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be http://host:port (or https://host:port)")
        return value

    @field_validator("pypi_proxy_ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return read_pem(value)
        except ConfigurationError as exc:
            raise ValueError(exc.message) from None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        networks = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError as exc:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 10.0.0.0/8, 127.0.0.1); "
                    "trusting every peer would let any client forge X-Forwarded-For"
                ) from exc
        return networks

    @field_validator("cache_url")
    @classmethod
    def _cache_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("memory", "redis", "rediss", "unix"):
            raise ValueError("must start with memory://, redis://, rediss:// or unix://")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # A plain libpq URL is what people paste; the async driver is what we run on.
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("blob_url")
    @classmethod
    def _blob_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("file", "s3"):
            raise ValueError("must start with file:// or s3://")
        return value

    @field_validator("pypi_proxy_auth")
    @classmethod
    def _auth_pair(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("must be user:password")
        return value

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.blob_url and self.blob_url.startswith("s3://") and not self.s3_endpoint:
            raise ValueError("WHEELYARD_S3_ENDPOINT is required when WHEELYARD_BLOB_URL is s3://")
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data dir."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve()}/wheelyard.db"

    @property
    def effective_blob_url(self) -> str:
        """The blob store URL, defaulting to a directory inside the data dir."""
        return self.blob_url or f"file://{self.data_dir.resolve()}/blobs"

    @property
    def pypi_upstream(self) -> UpstreamConfig:
        """The default `pypi` proxy repository's upstream, from the WHEELYARD_PYPI_PROXY* keys."""
        url = self.pypi_proxy.rstrip("/")
        if not url.endswith("/simple"):
            url += "/simple"
        username = password = None
        if self.pypi_proxy_auth:
            username, password = self.pypi_proxy_auth.split(":", 1)
        return UpstreamConfig(
            url=url + "/", username=username, password=password, timeout=self.pypi_proxy_timeout
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads `WHEELYARD_CONFIG` (or ./wheelyard.toml when present) as the lowest-priority source."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data = _read_toml_file()

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_toml_file() -> dict[str, Any]:
    explicit = os.environ.get("WHEELYARD_CONFIG")
    path = Path(explicit) if explicit else Path("wheelyard.toml")
    if not path.exists():
        if explicit:
            raise ConfigurationError(f"WHEELYARD_CONFIG: file {path} does not exist")
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"WHEELYARD_CONFIG: cannot read {path}: {exc}") from exc
    # Accept both `[wheelyard]` tables and top-level keys, and `[[repositories]]` arrays.
    merged = dict(data.pop("wheelyard", {}))
    merged.update(data)
    return merged


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from overrides, the environment and the TOML file.

    Raises ConfigurationError whose message names the offending key (as an environment
    variable), so a bad value stops the start with a message a person can act on.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            if loc and loc[0] == "repositories":
                key = (
                    "repositories[" + "].".join(loc[1:2]) + "]" + "".join(f".{p}" for p in loc[2:])
                )
            else:
                key = "WHEELYARD_" + "_".join(loc).upper() if loc else "configuration"
            problems.append(f"{key}: {err['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from exc
