"""Settings: one object, read from ``CLANPULSE_*`` environment variables and an optional ``.env``.

A command asks for the settings it needs with :meth:`Settings.require`; a missing or
malformed value stops it before it does anything, with one message naming the variable.
"""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "CLANPULSE_"
DISCORD_API_URL = "https://discord.com/api/v10"
WOM_API_URL = "https://api.wiseoldman.net/v2"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


def _split_list(value: Any) -> Any:
    # Lists are written the way people write them in env files: comma separated.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # ``CLANPULSE_DISCORD_TOKEN=`` in an env file means "not set", not "set to nothing"
        env_ignore_empty=True,
    )

    database_url: str = "sqlite+aiosqlite:///clanpulse.db"
    timezone: str = "UTC"

    discord_token: SecretStr | None = None
    discord_channels: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_guild_id: int | None = None
    discord_bridge_authors: Annotated[list[str], NoDecode] = Field(default_factory=list)
    discord_api_url: str = DISCORD_API_URL

    wom_api_url: str = WOM_API_URL
    wom_api_key: SecretStr | None = None
    wom_group_id: int | None = None
    wom_verification_code: SecretStr | None = None
    # who runs this instance, sent in the User-Agent as Wise Old Man asks (e.g. a Discord name)
    wom_contact: str | None = None

    inactive_days: int = Field(default=30, ge=1)

    # --- always-on operation (``clanpulse run``) ---
    # the execute URL of a Discord webhook: it holds the webhook's token, so it is a secret
    discord_webhook_url: SecretStr | None = None
    # cron expressions (minute hour day month day-of-week) in CLANPULSE_TIMEZONE
    schedule_harvest_discord: str = "5 * * * *"
    schedule_harvest_wom: str = "35 * * * *"
    schedule_report: str = "0 9 * * mon"
    schedule_backup: str = "0 4 * * *"
    schedule_maintain: str = "30 4 1 * *"
    schedule_watchdog: str = "*/10 * * * *"
    # a run missed while the process was down is still made up to this long afterwards
    misfire_grace_hours: float = Field(default=24 * 7, gt=0)
    # the watchdog raises an alert when a harvest has not succeeded for this long ...
    stale_hours: float = Field(default=24, gt=0)
    # ... or when a job has failed this many times in a row
    alert_after_failures: int = Field(default=3, ge=1)

    # --- maintenance (``clanpulse maintain``) ---
    backup_dir: str = "backups"
    backup_keep_daily: int = Field(default=7, ge=0)
    backup_keep_weekly: int = Field(default=4, ge=0)
    backup_keep_monthly: int = Field(default=12, ge=0)
    # raw messages and snapshots older than this move to the archive database
    hot_days: int = Field(default=180, ge=1)

    # --- the dashboard (``clanpulse serve``, and ``clanpulse run``) ---
    # loopback by default: put a reverse proxy with TLS in front to expose it
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    # while data keeps changing (a harvest running), a page is recomputed at most this often
    web_refresh_seconds: float = Field(default=10, ge=0, le=3600)
    # unset: the dashboard is read-only; set: admin actions need it (and a CSRF token)
    admin_token: SecretStr | None = Field(default=None, min_length=16)

    @field_validator("discord_channels", "discord_bridge_authors", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/London)"
            ) from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_url(cls, value: str) -> str:
        # Plain scheme names are accepted and mapped to the async drivers we ship.
        if value.startswith("sqlite+aiosqlite:///"):
            return value
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            rest = value.split("://", 1)[1]
            return f"postgresql+asyncpg://{rest}"
        raise ValueError("must start with sqlite:/// or postgresql+asyncpg://")

    @field_validator("discord_api_url", "wom_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator(
        "schedule_harvest_discord",
        "schedule_harvest_wom",
        "schedule_report",
        "schedule_backup",
        "schedule_maintain",
        "schedule_watchdog",
    )
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        value = value.strip()
        if value.lower() in ("off", "never", ""):
            return "off"
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(
                f"not a cron expression ({exc}); write minute hour day month day-of-week, "
                "e.g. '0 9 * * mon', or 'off'"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def require(self, *names: str) -> None:
        """Stop with a clear message unless every named setting has a value."""
        for name in names:
            if name == "discord_source":
                if not self.discord_channels and self.discord_guild_id is None:
                    raise SettingsError(
                        f"{ENV_PREFIX}DISCORD_CHANNELS or {ENV_PREFIX}DISCORD_GUILD_ID must be set "
                        "(which channels to harvest)"
                    )
                continue
            if getattr(self, name) in (None, "", []):
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} is not set")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; turn pydantic's error into one line naming the variable.

    The offending value is never echoed back: it may be a secret.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        reason = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{ENV_PREFIX}{field.upper()} is malformed: {reason}") from None
