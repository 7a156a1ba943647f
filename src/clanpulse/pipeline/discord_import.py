"""DiscordChatExporter import: each file is written whole, in one transaction, or not at all.

Files are recognised by SHA-256, so importing the same file again is a no-op; different
files that overlap (re-exports, partitions) are de-duplicated on message id by ingest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from clanpulse.counting import BridgeAuthors, classify
from clanpulse.progress import Progress, SilentProgress
from clanpulse.records import ChatMessage, MessageBatch
from clanpulse.settings import Settings
from clanpulse.sources.discord_export import ExportError, find_export_files, open_export
from clanpulse.store.database import Database
from clanpulse.store.ingest import (
    IngestCounts,
    file_already_imported,
    ingest_batch,
    record_imported_file,
)

log = logging.getLogger("clanpulse.import")

BATCH_SIZE = 2000
PROGRESS_NAME = "discord import"
FILE_KIND = "discordchatexporter"


@dataclass(slots=True)
class FileOutcome:
    path: Path
    counts: IngestCounts = field(default_factory=IngestCounts)
    skipped: bool = False  # already imported (same SHA-256)
    error: str | None = None


@dataclass(slots=True)
class ImportReport:
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.error is not None]

    @property
    def totals(self) -> IngestCounts:
        total = IngestCounts()
        for outcome in self.files:
            total.add(outcome.counts)
        return total


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def import_discord_exports(
    db: Database,
    paths: Iterable[Path],
    settings: Settings,
    *,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every export file under ``paths``; one bad file does not stop the others."""
    progress = progress or SilentProgress()
    bridge = BridgeAuthors.from_settings(settings.discord_bridge_authors)
    files = find_export_files(paths)
    report = ImportReport()
    progress.start(PROGRESS_NAME, total=len(files))
    for path in files:
        outcome = FileOutcome(path)
        report.files.append(outcome)
        try:
            await _import_file(db, path, bridge, outcome)
        except ExportError as exc:
            outcome.error = str(exc)
            outcome.counts = IngestCounts()  # rolled back: nothing of it was written
        except DBAPIError as exc:
            # the database refused something in the file (e.g. a value too large for a column)
            reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            outcome.error = f"{path}: the database refused its data: {reason}"
            outcome.counts = IngestCounts()
        progress.advance(PROGRESS_NAME)
    totals = report.totals
    progress.finish(PROGRESS_NAME, f"{totals.inserted} new messages")
    return report


async def _import_file(
    db: Database, path: Path, bridge: BridgeAuthors, outcome: FileOutcome
) -> None:
    digest = await asyncio.to_thread(sha256_of, path)
    size = (await asyncio.to_thread(path.stat)).st_size
    async with db.write() as conn:
        if await file_already_imported(conn, digest):
            outcome.skipped = True
            log.info("%s: already imported, skipped", path)
            return
        export = await asyncio.to_thread(open_export, path)
        batches: Iterator[list[ChatMessage]] = export.batches(BATCH_SIZE)
        while True:
            # parsing is CPU work: keep it off the event loop
            page = await asyncio.to_thread(next, batches, None)
            if page is None:
                break
            batch = MessageBatch(export.channel, [classify(m, bridge) for m in page])
            outcome.counts.add(await ingest_batch(conn, batch))
        if outcome.counts.received == 0:
            await ingest_batch(conn, MessageBatch(export.channel))
        await record_imported_file(
            conn,
            sha256=digest,
            kind=FILE_KIND,
            path=str(path),
            size=size,
            items=outcome.counts.received,
        )
