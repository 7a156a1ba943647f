"""Cold storage: raw rows older than CLANPULSE_HOT_DAYS move to an archive database.

(Interface fixed; the body is being written.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clanpulse.settings import Settings
from clanpulse.store.database import Database


@dataclass(frozen=True)
class ArchiveReport:
    cutoff: datetime
    messages: int
    snapshots: int


async def archive_cold(db: Database, settings: Settings, now: datetime) -> ArchiveReport:
    """Move messages and snapshots older than ``now - hot_days`` into the archive."""
    raise NotImplementedError
