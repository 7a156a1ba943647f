"""Settings: read from CLANPULSE_* variables and .env; a bad one stops the command, named."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clanpulse.cli import main
from clanpulse.settings import SettingsError, load_settings

TOKEN = "test-token-not-a-real-one-7f3a9c"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "DATABASE_URL",
        "TIMEZONE",
        "DISCORD_TOKEN",
        "DISCORD_CHANNELS",
        "DISCORD_GUILD_ID",
        "DISCORD_BRIDGE_AUTHORS",
        "DISCORD_API_URL",
    ):
        monkeypatch.delenv(f"CLANPULSE_{name}", raising=False)


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def test_defaults_are_a_local_sqlite_file_in_utc() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///clanpulse.db"
    assert settings.timezone == "UTC"
    assert settings.discord_api_url == "https://discord.com/api/v10"


def test_lists_are_comma_separated_and_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "CLANPULSE_DISCORD_CHANNELS=11, 22 ,33\nCLANPULSE_DISCORD_BRIDGE_AUTHORS=900,Clan Chat\n"
    )
    settings = load_settings()
    assert settings.discord_channels == [11, 22, 33]
    assert settings.discord_bridge_authors == ["900", "Clan Chat"]


def test_plain_postgres_urls_use_the_async_driver() -> None:
    settings = load_settings(database_url="postgresql://u@h/db")
    assert settings.database_url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CLANPULSE_DISCORD_CHANNELS", "general,pvm"),
        ("CLANPULSE_TIMEZONE", "Mars/Olympus"),
        ("CLANPULSE_DATABASE_URL", "mysql://root:pw-secret@localhost/x"),
        ("CLANPULSE_DISCORD_GUILD_ID", "not-a-number"),
    ],
)
def test_a_malformed_setting_stops_every_command_naming_the_variable(
    variable: str, value: str, tmp_path: Path
) -> None:
    result = invoke("report", "activity", env={variable: value})
    assert result.exit_code == 2
    assert variable in result.output
    assert "pw-secret" not in result.output  # the value itself is never echoed
    assert not list(tmp_path.iterdir())  # nothing was created


def test_harvest_without_a_token_stops_before_touching_anything(tmp_path: Path) -> None:
    result = invoke("harvest", "discord", env={"CLANPULSE_DISCORD_CHANNELS": "1"})
    assert result.exit_code == 2
    assert "CLANPULSE_DISCORD_TOKEN is not set" in result.output
    assert not (tmp_path / "clanpulse.db").exists()


def test_harvest_without_channels_or_guild_names_both_variables() -> None:
    result = invoke("harvest", "discord", env={"CLANPULSE_DISCORD_TOKEN": TOKEN})
    assert result.exit_code == 2
    assert "CLANPULSE_DISCORD_CHANNELS or CLANPULSE_DISCORD_GUILD_ID" in result.output
    assert TOKEN not in result.output


def test_the_token_never_shows_in_reprs_or_errors() -> None:
    settings = load_settings(discord_token=TOKEN)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())
    with pytest.raises(SettingsError) as info:
        settings.require("discord_source")
    assert TOKEN not in str(info.value)


def test_bad_as_of_is_a_usage_error() -> None:
    result = invoke("report", "activity", "--as-of", "yesterday")
    assert result.exit_code == 2
    assert "--as-of 'yesterday'" in result.output


def test_the_admin_token_is_a_secret_and_must_be_long_enough() -> None:
    admin = "an-admin-token-of-some-length"
    settings = load_settings(admin_token=admin)
    assert admin not in repr(settings) and admin not in str(settings.model_dump())
    assert settings.web_host == "127.0.0.1"  # loopback unless asked otherwise
    with pytest.raises(SettingsError) as info:
        load_settings(admin_token="short")
    assert "CLANPULSE_ADMIN_TOKEN" in str(info.value) and "short" not in str(info.value)
