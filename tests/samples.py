"""Where the shared sample inputs live: ``shared/`` sits next to the repository checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT.parent / "shared" / "samples"

DCE_GENERAL = SAMPLES / "discordchatexporter" / "general.json"
API_MESSAGES_PAGE = SAMPLES / "discord-api" / "messages-page.json"
TELEGRAM_EXPORT = SAMPLES / "telegram" / "result.json"

# The clan-chat bridge webhook in both samples.
BRIDGE_WEBHOOK_ID = 1192928016972513286


def sample(relative: str) -> Path:
    """A sample file by its path under ``samples/``."""
    return SAMPLES / relative
