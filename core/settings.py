"""Service settings: environment variables (`MES_...`, `DATABASE_URL`) over an optional TOML file.

One typed model owns every default. A bad value raises `ConfigError` naming the key, where it
came from (the file or the environment variable) and what was expected; the command line turns
that into a message and exit status 2, never a traceback. Settings are built by a command's
entry point, never at import time.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.config_errors import ConfigError, describe
from core.config_model import StrictModel

ENV_PREFIX = "MES_"
CONFIG_ENV = "MES_CONFIG"


def normalise_postgres_url(value: str) -> str:
    """Accept `postgres://` and `postgresql+psycopg://`; return a libpq `postgresql://` URL."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError("expected a URL like postgresql://user:password@host:5432/dbname")
    scheme = scheme.lower()
    if scheme not in ("postgres", "postgresql") and not scheme.startswith("postgresql+"):
        raise ValueError(f"expected a postgresql:// URL, not {scheme}://")
    parts = urlsplit("postgresql://" + rest)
    if not parts.path.strip("/"):
        raise ValueError("the URL names no database (postgresql://host:port/DBNAME)")
    return urlunsplit(parts)


# One message, one exit status (2, a ConfigError) for every command that needs the database.
_URL_MISSING = ("database.url: not set: give the owner's (or an administrator's) URL in "
                "MES_DATABASE__URL, DATABASE_URL or the config file's [database] section")


class DatabaseSettings(StrictModel):
    """Where the data lives, and as whom each part connects.

    `url` is the owner's (or an administrator's) connection, used by `mes db migrate`. Services
    connect as the application role: `app_url`, or by default `url` with the user replaced by
    `app_role` and `app_password`.
    """

    url: str | None = None
    app_url: str | None = None
    app_role: str = Field(default="mes_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_password: str | None = None
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    connect_timeout_s: float = Field(default=10, gt=0)

    @field_validator("url", "app_url")
    @classmethod
    def _normalise(cls, v: str | None) -> str | None:
        return normalise_postgres_url(v) if v else None

    def owner_url(self) -> str:
        """The owner's (or an administrator's) URL, for migrations and operator commands."""
        if not self.url:
            raise ConfigError([_URL_MISSING])
        return self.url

    def application_url(self) -> str:
        """The URL services use: never the owner's role."""
        if self.app_url:
            return self.app_url
        parts = urlsplit(self.owner_url())
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        auth = quote(self.app_role, safe="")
        if self.app_password:
            auth += ":" + quote(self.app_password, safe="")
        netloc = f"{auth}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


class LogSettings(StrictModel):
    """How the service logs: JSON lines (for a collector) or text (for a terminal), on stderr."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"


class Settings(BaseSettings):
    """All settings of the `mes` command; each part reads its own section."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init values; the environment overrides it.
        return (env_settings, init_settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([f"file not found (set by --config or {CONFIG_ENV})"], path) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"not valid TOML: {e}"], path) from None


S = TypeVar("S", bound=Settings)


def load_settings(config_file: str | Path | None = None, cls: type[S] = Settings) -> S:  # type: ignore[assignment]
    """Read settings of model `cls` (a Settings subclass with more sections, for a service)
    from `config_file` (or $MES_CONFIG) and the environment.

    `DATABASE_URL` is accepted for `database.url` when `MES_DATABASE__URL` is not set.
    """
    source = config_file or os.environ.get(CONFIG_ENV)
    path = Path(source) if source else None
    file_data = _read_toml(path) if path else {}
    values = dict(file_data)
    if (url := os.environ.get("DATABASE_URL")) and not os.environ.get("MES_DATABASE__URL"):
        try:
            url = normalise_postgres_url(url)
        except ValueError as e:
            raise ConfigError(
                [f"database.url: {e} [from environment variable DATABASE_URL]"]
            ) from None
        values["database"] = {**values.get("database", {}), "url": url}
    try:
        return cls(**values)
    except ValidationError as e:
        raise describe(e, file=path, file_data=file_data, env_prefix=ENV_PREFIX) from None
