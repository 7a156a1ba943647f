"""Random damage to an export file: the import takes the whole file or nothing of it.

Each example cuts the sample DiscordChatExporter file short, flips bytes or inserts random
bytes, then runs `clanpulse import discord-export` on it into a fresh SQLite database. Only
two outcomes are acceptable: the file is imported with every message it holds (as Python's
own JSON parser reads it), or the command exits 1 with an error naming the file and stores
nothing at all. A crash, a partial import, or any other exit status fails the test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from clanpulse.cli import main
from clanpulse.pipeline import discord_import
from clanpulse.store.database import open_database
from clanpulse.store.schema import channel, imported_file, message
from tests.conftest import sqlite_url
from tests.samples import DCE_GENERAL

SAMPLE = DCE_GENERAL.read_bytes()
FILE_NAME = "mutated.json"
_example_numbers = itertools.count()  # each example gets its own database file


@dataclass(frozen=True)
class Truncate:
    at: int

    def apply(self, data: bytes) -> bytes:
        return data[: self.at]


@dataclass(frozen=True)
class Flip:
    at: int
    mask: int

    def apply(self, data: bytes) -> bytes:
        if not data:
            return data
        at = self.at % len(data)
        return data[:at] + bytes([data[at] ^ self.mask]) + data[at + 1 :]


@dataclass(frozen=True)
class Insert:
    at: int
    junk: bytes

    def apply(self, data: bytes) -> bytes:
        at = min(self.at, len(data))
        return data[:at] + self.junk + data[at:]


Mutation = Truncate | Flip | Insert

mutations = st.lists(
    st.one_of(
        st.builds(Truncate, st.integers(0, len(SAMPLE))),
        st.builds(Flip, st.integers(0, len(SAMPLE) - 1), st.integers(1, 255)),
        st.builds(Insert, st.integers(0, len(SAMPLE)), st.binary(min_size=1, max_size=8)),
    ),
    min_size=1,
    max_size=3,
)


# The C parser clanpulse streams with (yajl) also takes vertical tab and form feed for
# whitespace between tokens. Inside strings it rejects them like any control character, so
# reading them as spaces gives what it reads, and no message is lost or changed by that.
_YAJL_WHITESPACE = bytes.maketrans(b"\v\f", b"  ")


def message_ids_by_python(data: bytes) -> set[int] | None:
    """The message ids Python's json module finds in the file, or None if it is no export."""
    try:
        export = json.loads(data.translate(_YAJL_WHITESPACE).decode("utf-8-sig"))
        return {int(item["id"]) for item in export["messages"]}
    except (ValueError, KeyError, TypeError):
        return None


async def _migrate(url: str) -> None:
    async with open_database(url):
        pass


async def _stored(url: str) -> tuple[set[int], int, int]:
    async with open_database(url, migrate=False) as db, db.read() as conn:
        ids = set((await conn.execute(select(message.c.external_id))).scalars())
        files = (await conn.execute(select(func.count()).select_from(imported_file))).scalar_one()
        channels = (await conn.execute(select(func.count()).select_from(channel))).scalar_one()
        return ids, files, channels


@pytest.fixture
def empty_database(tmp_path: Path) -> Path:
    """A migrated, empty SQLite file; each example starts from a copy of it."""
    template = tmp_path / "template.db"
    asyncio.run(_migrate(sqlite_url(template)))
    return template


@settings(
    max_examples=50,
    deadline=None,
    # the same examples on every run: a failure here is a regression, never luck (byte
    # strings the parser lets through but cannot decode are a known bug, tested by
    # test_import_cli.py::test_invalid_utf8_the_parser_lets_through_is_reported_like_any_bad_file)
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(damage=mutations)
def test_a_damaged_export_is_imported_whole_or_not_at_all(
    damage: list[Mutation],
    empty_database: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("CLANPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # write every few messages, so a file that fails late has had messages in the database
    monkeypatch.setattr(discord_import, "BATCH_SIZE", 4)
    data = SAMPLE
    for mutation in damage:
        data = mutation.apply(data)
    (tmp_path / FILE_NAME).write_bytes(data)
    database = tmp_path / f"example-{next(_example_numbers)}.db"
    shutil.copyfile(empty_database, database)
    url = sqlite_url(database)

    result = CliRunner().invoke(
        main, ["import", "discord-export", FILE_NAME], env={"CLANPULSE_DATABASE_URL": url}
    )

    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash: show it
    event("imported" if result.exit_code == 0 else "refused")
    ids, files, channels = asyncio.run(_stored(url))
    if result.exit_code == 0:
        expected = message_ids_by_python(data)
        assert expected is not None, "imported a file that is not a readable export"
        assert ids == expected
        assert files == 1
    else:
        assert result.exit_code == 1, result.stderr
        assert f"error: {FILE_NAME}: " in result.stderr.replace("\n", ""), result.stderr
        assert (ids, files, channels) == (set(), 0, 0)
