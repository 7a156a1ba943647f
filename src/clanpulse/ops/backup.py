"""SQLite backups: a consistent copy with ``VACUUM INTO``, verified, then rotated.

A backup is only worth something if it opens and holds what the database held, so every
copy is checked (integrity, schema revision, row counts) before it is kept, and a copy that
fails is deleted rather than left to be trusted later. Old copies are thinned out
grandfather-father-son style: the newest copy of each of the last N days, ISO weeks and
months is kept.

PostgreSQL is not copied here: ``pg_dump -Fc`` does it better (see the README).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from clanpulse.settings import Settings
from clanpulse.store.database import SQLITE_WRITER_BUSY_MS, Database

MAIN_STEM = "clanpulse"
ARCHIVE_STEM = "clanpulse-archive"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# Only files named like this are ever rotated away; anything else in the folder is left alone.
BACKUP_NAME = re.compile(r"^(?P<stem>clanpulse(?:-archive)?)-(?P<stamp>\d{8}T\d{6}Z)\.db$")
# A copy is written under this suffix and renamed only once verified: a crash half-way
# through never leaves a file that looks like a good backup.
PARTIAL_SUFFIX = ".partial"
PG_DUMP_HINT = (
    "PostgreSQL databases are not backed up by clanpulse: use pg_dump -Fc "
    "(restore with pg_restore), see the README"
)


class BackupError(Exception):
    """A copy could not be made or did not pass verification."""


@dataclass(slots=True)
class BackupResult:
    copies: list[Path] = field(default_factory=list)  # verified new backups
    removed: list[Path] = field(default_factory=list)  # old backups rotated away
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing was done (PostgreSQL)


def backup_name(stem: str, moment: datetime) -> str:
    return f"{stem}-{moment.astimezone(UTC).strftime(STAMP_FORMAT)}.db"


def parse_backup_name(name: str) -> tuple[str, datetime] | None:
    """(series stem, UTC time) of one of our backup files, None for any other file."""
    found = BACKUP_NAME.match(name)
    if found is None:
        return None
    moment = datetime.strptime(found["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    return found["stem"], moment


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url} is not a SQLite file")
    return Path(database)


async def backup_database(db: Database, settings: Settings, now: datetime) -> BackupResult:
    """Copy the database (and the archive database, if there is one) into ``backup_dir``,
    verify each copy, then rotate old copies. Problems are reported, never raised."""
    result = BackupResult()
    if db.backend != "sqlite":
        result.skipped = PG_DUMP_HINT
        return result
    directory = Path(settings.backup_dir)
    try:
        sources = _sources(db.url)
    except BackupError as exc:
        result.errors.append(str(exc))
        return result
    for stem, source in sources:
        target = directory / backup_name(stem, now)
        try:
            # The one write transaction of this process is held while copying: nothing in
            # this process or another can commit between the row counts and the copy, so
            # the counts are exactly what the copy must hold.
            async with db.write(changes_data=False):
                await asyncio.to_thread(copy_verified, source, target)
        except BackupError as exc:
            result.errors.append(str(exc))
            continue
        result.copies.append(target)
        result.removed += await asyncio.to_thread(
            rotate_backups,
            directory,
            stem,
            keep_daily=settings.backup_keep_daily,
            keep_weekly=settings.backup_keep_weekly,
            keep_monthly=settings.backup_keep_monthly,
            protect=target,
        )
    return result


def _sources(url: str) -> list[tuple[str, Path]]:
    """(backup name stem, file) of the main database and, when there is one, the archive."""
    sources = [(MAIN_STEM, sqlite_path(url))]
    archive = _archive_path(url)
    if archive is not None and archive.exists():
        sources.append((ARCHIVE_STEM, archive))
    return sources


def _archive_path(url: str) -> Path | None:
    # The archive database belongs to clanpulse.ops.archive; versions without one have no
    # archive to back up.
    try:
        from clanpulse.ops import archive
    except ImportError:
        return None
    locate: Callable[[str], Path | None] | None = getattr(archive, "sqlite_archive_path", None)
    return None if locate is None else locate(url)


def copy_verified(source: Path, target: Path) -> None:
    """``VACUUM INTO`` a new file, verify it against ``source``, and only then give it its
    name. The caller must keep writers out for the duration (see :func:`backup_database`)."""
    if target.exists():
        raise BackupError(f"{target} already exists (two backups in the same second?)")
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        expected, revision = _source_state(source)
        vacuum_into(source, partial)
        problems = verify_backup(partial, expected, revision)
        if problems:
            raise BackupError(f"backup of {source} failed verification: " + "; ".join(problems))
        partial.rename(target)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    finally:
        if partial.exists():  # a bad copy is never left behind
            partial.unlink()


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}{'?mode=ro' if read_only else ''}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {SQLITE_WRITER_BUSY_MS}")
    return conn


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    )
    return [name for (name,) in rows]


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in _tables(conn)}


def _revision(conn: sqlite3.Connection) -> str | None:
    if "alembic_version" not in _tables(conn):
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _source_state(source: Path) -> tuple[dict[str, int], str | None]:
    conn = _connect(source, read_only=True)
    try:
        return row_counts(conn), _revision(conn)
    finally:
        conn.close()


def vacuum_into(source: Path, target: Path) -> None:
    conn = _connect(source)
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
    finally:
        conn.close()


def verify_backup(copy: Path, expected_counts: dict[str, int], revision: str | None) -> list[str]:
    """What is wrong with ``copy`` (nothing: an empty list). ``expected_counts`` are the
    source's row counts at the time of the copy, ``revision`` its schema revision."""
    try:
        conn = _connect(copy, read_only=True)
    except sqlite3.Error as exc:
        return [f"cannot open the copy: {exc}"]
    try:
        problems = []
        checks = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if checks != ["ok"]:
            problems.append("integrity check: " + ", ".join(map(str, checks[:5])))
            return problems  # counts over a damaged file mean nothing
        if revision is not None and _revision(conn) != revision:
            problems.append(f"schema revision {_revision(conn)!r}, expected {revision!r}")
        found = row_counts(conn)
        for table, count in expected_counts.items():
            if found.get(table) != count:
                problems.append(f"{table}: {found.get(table)} rows, expected {count}")
        return problems
    except sqlite3.Error as exc:  # e.g. "file is not a database"
        return [f"cannot read the copy: {exc}"]
    finally:
        conn.close()


def backups_to_keep(
    moments: Iterable[datetime], *, keep_daily: int, keep_weekly: int, keep_monthly: int
) -> set[datetime]:
    """Grandfather-father-son: the newest backup of each of the last ``keep_daily`` days,
    ``keep_weekly`` ISO weeks and ``keep_monthly`` months that have a backup (UTC).

    "Last N that have a backup", not "the last N calendar days": when backups stop for a
    while, the old ones are kept rather than all aging out at once. One backup may count
    for a day, a week and a month at the same time.
    """
    newest_first = sorted(set(moments), reverse=True)
    periods: list[tuple[int, Callable[[datetime], object]]] = [
        (keep_daily, lambda m: m.date()),
        (keep_weekly, lambda m: m.isocalendar()[:2]),
        (keep_monthly, lambda m: (m.year, m.month)),
    ]
    keep: set[datetime] = set()
    for count, period_of in periods:
        seen: set[object] = set()
        for moment in newest_first:
            if len(seen) >= count:
                break
            period = period_of(moment)
            if period not in seen:  # the first one met is the newest of its period
                seen.add(period)
                keep.add(moment)
    return keep


def rotate_backups(
    directory: Path,
    stem: str,
    *,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    protect: Path | None = None,
) -> list[Path]:
    """Delete the backups of one series (``stem``) that :func:`backups_to_keep` lets go.

    Only files named like our backups are touched, and never ``protect`` (the one just made).
    """
    series: dict[datetime, Path] = {}
    for path in directory.iterdir():
        parsed = parse_backup_name(path.name)
        if parsed is not None and parsed[0] == stem and path.is_file():
            series[parsed[1]] = path
    keep = backups_to_keep(
        series, keep_daily=keep_daily, keep_weekly=keep_weekly, keep_monthly=keep_monthly
    )
    removed = []
    for moment, path in sorted(series.items()):
        if moment in keep or path == protect:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
