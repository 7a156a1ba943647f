"""Backups: a verified `VACUUM INTO` copy, damaged copies caught and deleted, GFS rotation."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from clanpulse.ops import archive as archive_module
from clanpulse.ops import backup as backup_module
from clanpulse.ops.backup import (
    BackupError,
    backup_database,
    backup_name,
    backups_to_keep,
    copy_verified,
    parse_backup_name,
    rotate_backups,
    verify_backup,
)
from clanpulse.settings import Settings
from clanpulse.store.database import open_database
from clanpulse.store.migrate import head_revision
from tests.conftest import sqlite_url
from tests.factories import at
from tests.test_db_copy import every_row, populate_store

NOW = at("2026-03-29 04:30")


def settings_for(url: str, backups: Path, **keep: int) -> Settings:
    return Settings(database_url=url, backup_dir=str(backups), **keep)  # type: ignore[arg-type]


def counts_of(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return backup_module.row_counts(conn)
    finally:
        conn.close()


async def test_a_backup_is_a_verified_copy_with_every_row(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "clanpulse.db")
    async with open_database(url) as db:
        await populate_store(db)
        result = await backup_database(db, settings_for(url, tmp_path / "backups"), NOW)
        original = await every_row(db)
    assert result.errors == [] and result.skipped is None
    assert result.copies == [tmp_path / "backups" / "clanpulse-20260329T043000Z.db"]
    copy = result.copies[0]
    async with open_database(sqlite_url(copy), migrate=False) as restored:
        assert await every_row(restored) == original
    assert verify_backup(copy, counts_of(tmp_path / "clanpulse.db"), head_revision()) == []
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [copy.name]


def _damage(path: Path) -> None:
    """Scribble over every page but the first (the header and schema stay readable)."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):
        data[start + 8 : start + 40] = b"\xa5" * 32
    path.write_bytes(bytes(data))


async def test_verification_catches_damage_missing_rows_and_a_wrong_schema(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path / "clanpulse.db")
    async with open_database(url) as db:
        await populate_store(db)
        copy = (await backup_database(db, settings_for(url, tmp_path / "b"), NOW)).copies[0]
    counts = counts_of(copy)
    assert verify_backup(copy, counts, head_revision()) == []

    more = {**counts, "message": counts["message"] + 1}
    assert verify_backup(copy, more, head_revision()) == [
        f"message: {counts['message']} rows, expected {counts['message'] + 1}"
    ]
    assert verify_backup(copy, counts, "9999") == [
        f"schema revision {head_revision()!r}, expected '9999'"
    ]
    _damage(copy)
    problems = verify_backup(copy, counts, head_revision())
    assert problems and ("integrity check" in problems[0] or "cannot read" in problems[0])

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 500)
    assert verify_backup(garbage, counts, head_revision())[0].startswith("cannot")


async def test_a_copy_that_fails_verification_is_deleted_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_vacuum_into = backup_module.vacuum_into

    def vacuum_into_then_damage(source: Path, target: Path) -> None:
        real_vacuum_into(source, target)
        _damage(target)  # as a failing disk or a full file system might

    monkeypatch.setattr(backup_module, "vacuum_into", vacuum_into_then_damage)
    url = sqlite_url(tmp_path / "clanpulse.db")
    backups = tmp_path / "backups"
    async with open_database(url) as db:
        await populate_store(db)
        result = await backup_database(db, settings_for(url, backups), NOW)
    assert result.copies == []
    assert len(result.errors) == 1 and "failed verification" in result.errors[0]
    assert list(backups.iterdir()) == []  # neither the copy nor its partial file is kept


def test_a_backup_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    source = tmp_path / "db.sqlite"
    sqlite3.connect(source).close()
    target = tmp_path / backup_name("clanpulse", NOW)
    target.write_bytes(b"an earlier backup")
    with pytest.raises(BackupError, match="already exists"):
        copy_verified(source, target)
    assert target.read_bytes() == b"an earlier backup"


# --------------------------------------------------------------------------------------
# rotation

# (UTC time, kept?) with 3 daily, 2 weekly (ISO), 3 monthly
DATED = [
    ("2026-03-29 04:30", True),  # newest: day, week 13 and March
    ("2026-03-29 01:00", False),  # an older one the same day
    ("2026-03-28 04:30", True),  # day 2
    ("2026-03-26 04:30", True),  # day 3
    ("2026-03-25 04:30", False),  # day 4: too old for the days, week 13 already has one
    ("2026-03-22 04:30", True),  # newest of week 12
    ("2026-03-16 04:30", False),
    ("2026-03-15 04:30", False),  # week 11: only two weeks are kept
    ("2026-02-27 04:30", True),  # newest of February
    ("2026-02-03 04:30", False),
    ("2026-01-31 04:30", True),  # newest of January: the third month
    ("2025-12-31 04:30", False),  # December: a fourth month
]


def test_rotation_keeps_the_newest_of_each_day_week_and_month(tmp_path: Path) -> None:
    for when, _ in DATED:
        (tmp_path / backup_name("clanpulse", at(when))).write_bytes(b"x")
    removed = rotate_backups(tmp_path, "clanpulse", keep_daily=3, keep_weekly=2, keep_monthly=3)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted(backup_name("clanpulse", at(w)) for w, keep in DATED if keep)
    assert sorted(p.name for p in removed) == sorted(
        backup_name("clanpulse", at(w)) for w, keep in DATED if not keep
    )


def test_old_backups_are_kept_when_backups_stopped_for_a_while() -> None:
    # "the last 3 days that have a backup", not "the last 3 calendar days"
    moments = [at("2026-01-10 04:30"), at("2026-01-09 04:30"), at("2026-01-08 04:30")]
    assert backups_to_keep(moments, keep_daily=3, keep_weekly=0, keep_monthly=0) == set(moments)


def test_rotation_touches_only_our_files_of_that_series_and_never_the_new_one(
    tmp_path: Path,
) -> None:
    new = tmp_path / backup_name("clanpulse", NOW)
    old = tmp_path / backup_name("clanpulse", NOW - timedelta(days=1))
    foreign = [
        "notes.txt",
        "clanpulse.db",
        "clanpulse-manual.db",
        "clanpulse-20260101T000000Z.db.partial",
        "other-20250101T000000Z.db",
        "clanpulse-archive-20250101T000000Z.db",  # another series
    ]
    for path in [new, old, *(tmp_path / name for name in foreign)]:
        path.write_bytes(b"x")
    removed = rotate_backups(
        tmp_path, "clanpulse", keep_daily=0, keep_weekly=0, keep_monthly=0, protect=new
    )
    assert removed == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.name, *foreign])


def test_backup_names_round_trip_and_foreign_names_do_not_parse() -> None:
    name = backup_name("clanpulse-archive", NOW)
    assert name == "clanpulse-archive-20260329T043000Z.db"
    assert parse_backup_name(name) == ("clanpulse-archive", NOW)
    assert parse_backup_name("clanpulse-2026-03-29.db") is None
    assert parse_backup_name("xclanpulse-20260329T043000Z.db") is None


async def test_a_backup_run_rotates_the_older_copies(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "clanpulse.db")
    backups = tmp_path / "backups"
    async with open_database(url) as db:
        settings = settings_for(
            url, backups, backup_keep_daily=2, backup_keep_weekly=0, backup_keep_monthly=0
        )
        made: list[Path] = []
        for day in range(4):
            result = await backup_database(db, settings, NOW + timedelta(days=day))
            assert result.errors == []
            made += result.copies
    assert sorted(backups.iterdir()) == made[-2:]


# --------------------------------------------------------------------------------------
# the archive database, PostgreSQL


async def test_the_archive_database_is_backed_up_beside_the_main_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "clanpulse-archive.db"
    conn = sqlite3.connect(archive)
    conn.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, content TEXT)")
    conn.executemany("INSERT INTO message (content) VALUES (?)", [("old",)] * 25)
    conn.commit()
    conn.close()

    def archive_path(url: str) -> Path | None:
        return archive

    monkeypatch.setattr(archive_module, "sqlite_archive_path", archive_path, raising=False)
    url = sqlite_url(tmp_path / "clanpulse.db")
    async with open_database(url) as db:
        result = await backup_database(db, settings_for(url, tmp_path / "backups"), NOW)
    assert result.errors == []
    assert [p.name for p in result.copies] == [
        "clanpulse-20260329T043000Z.db",
        "clanpulse-archive-20260329T043000Z.db",
    ]
    assert counts_of(result.copies[1]) == {"message": 25}


async def test_no_archive_function_means_only_the_main_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(archive_module, "sqlite_archive_path", raising=False)
    url = sqlite_url(tmp_path / "clanpulse.db")
    async with open_database(url) as db:
        result = await backup_database(db, settings_for(url, tmp_path / "backups"), NOW)
    assert [p.name for p in result.copies] == ["clanpulse-20260329T043000Z.db"]


async def test_postgresql_is_not_copied_and_the_message_says_pg_dump(
    postgres_url: str, tmp_path: Path
) -> None:
    async with open_database(postgres_url) as db:
        result = await backup_database(db, settings_for(postgres_url, tmp_path / "b"), NOW)
    assert result.copies == [] and result.errors == []
    assert result.skipped is not None and "pg_dump -Fc" in result.skipped
    assert not (tmp_path / "b").exists()
