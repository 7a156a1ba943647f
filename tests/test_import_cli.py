"""`clanpulse import discord-export` as a user runs it, on SQLite and on PostgreSQL.

Every test drives the real commands (`import discord-export`, `report activity --format json`)
through Click's runner in a scratch working directory, or as a real process, against a fresh
database of each backend. Expected numbers are never taken from clanpulse: they are computed
here from the export files or from the generator's raw Discord API messages, following the
counting rules of the README.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from clanpulse.cli import main
from clanpulse.demo.community import Community, generate_community, write_dce_export
from clanpulse.pipeline import discord_import
from clanpulse.store.database import open_database
from clanpulse.store.schema import (
    account,
    channel,
    imported_file,
    member,
    message,
    message_rollup,
)
from tests.samples import BRIDGE_WEBHOOK_ID, DCE_GENERAL, TELEGRAM_EXPORT

AS_OF = "2026-04-01"  # after every message of the sample export (27-30 March 2026)
COMMUNITY_END = datetime(2026, 4, 2, tzinfo=UTC)  # its history spans the DST change of 29 March
WINDOWS: dict[str, timedelta | None] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}


# --- running clanpulse ---------------------------------------------------------------------


@dataclass
class Clanpulse:
    """The `clanpulse` command against one database, run in the current directory."""

    database_url: str
    bridge_authors: str | None = None

    def env(self) -> dict[str, str]:
        env = {"CLANPULSE_DATABASE_URL": self.database_url}
        if self.bridge_authors is not None:
            env["CLANPULSE_DISCORD_BRIDGE_AUTHORS"] = self.bridge_authors
        return env

    def __call__(self, *args: str) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env())
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            # a crash is never an acceptable outcome: show its traceback
            raise result.exception
        return result

    def import_export(self, *paths: Path | str) -> Result:
        return self("import", "discord-export", *map(str, paths))

    def report(self, as_of: str = AS_OF) -> dict[str, Any]:
        result = self("report", "activity", "--format", "json", "--as-of", as_of)
        assert result.exit_code == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Run where no .env lies around, with no CLANPULSE_* setting leaking in from outside."""
    for name in list(os.environ):
        if name.startswith("CLANPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # every command points the root logger at the runner's (then closed) stderr: undo that
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def clanpulse(db_url: str) -> Clanpulse:
    return Clanpulse(db_url)


@pytest.fixture
def batches_of(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make the import write every ``n`` messages instead of every 2000.

    The part of a bad file before the bad spot then reaches the database inside the file's
    transaction, and the import has to take it back out.
    """

    def set_size(n: int) -> None:
        monkeypatch.setattr(discord_import, "BATCH_SIZE", n)

    return set_size


def unwrapped(result: Result) -> str:
    """Standard error with the console's line wrapping undone (it keeps the spaces).

    The console wraps long lines; one line per error is a separate, known-broken promise
    (see the xfail test at the end), so the other tests read the text unwrapped.
    """
    return result.stderr.replace("\n", "")


def assert_reported_once(result: Result, path: str, position: str) -> None:
    """The file is reported in one error that names it and the position of the problem."""
    assert unwrapped(result).count(f"error: {path}: ") == 1, result.stderr
    assert f"error: {path}: {position}" in unwrapped(result), result.stderr


# --- reading the database ------------------------------------------------------------------

DUMPED_TABLES = (message, account, member, message_rollup, channel, imported_file)


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables an import writes, in primary key order."""

    async def read() -> dict[str, list[dict[str, Any]]]:
        async with open_database(url) as db, db.read() as conn:
            return {
                table.name: [
                    dict(row._mapping)
                    for row in await conn.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in DUMPED_TABLES
            }

    return asyncio.run(read())


def stored_message_ids(url: str) -> dict[str, list[int]]:
    """Message ids per Discord channel id, as stored."""

    async def read() -> dict[str, list[int]]:
        async with open_database(url) as db, db.read() as conn:
            rows = await conn.execute(
                select(channel.c.external_id, message.c.external_id)
                .join(channel, message.c.channel_id == channel.c.id)
                .order_by(message.c.external_id)
            )
            found: dict[str, list[int]] = defaultdict(list)
            for channel_id, message_id in rows:
                found[channel_id].append(message_id)
            return dict(found)

    return asyncio.run(read())


# --- what the README's counting rules give, computed from the inputs -------------------------

_BRIDGE_CHAT = re.compile(r"(?::\w+:\s*)*\*\*(?P<name>[^*]+)\*\*:")


def wom_key(name: str) -> str:
    """Wise Old Man's name key: `-`, `_` and whitespace become a space, trimmed, lower case."""
    return re.sub(r"[-_\s]", " ", name).strip().lower()


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp).astimezone(UTC)


def sample_expectation(bridge_id: str | None) -> tuple[Counter[tuple[str, str]], dict[Any, Any]]:
    """Counted messages and latest message time per account of the sample export.

    Default and Reply messages by non-bot authors count for their Discord account. With a
    bridge configured, its lines shaped `badges **Name**: text` count for the in-game account.
    """
    export = json.loads(DCE_GENERAL.read_text(encoding="utf-8"))
    counts: Counter[tuple[str, str]] = Counter()
    last: dict[tuple[str, str], datetime] = {}
    for item in export["messages"]:
        author = item["author"]
        key: tuple[str, str] | None = None
        if bridge_id is not None and author["id"] == bridge_id:
            line = _BRIDGE_CHAT.match(item["content"])
            if item["type"] == "Default" and line:
                key = ("osrs", wom_key(line["name"]))
        elif item["type"] in ("Default", "Reply") and not author["isBot"]:
            key = ("discord", author["id"])
        if key is not None:
            counts[key] += 1
            last[key] = max(last.get(key, when(item["timestamp"])), when(item["timestamp"]))
    return counts, last


def report_by_account(report: dict[str, Any], window: str = "all") -> dict[tuple[str, str], Any]:
    """Counts and latest message times per account, for the accounts with counted messages.

    Nothing is linked in these tests, so every member has exactly one account. In-game
    accounts are keyed by the normalized name (their id is unknown until Wise Old Man says).
    """
    found: dict[tuple[str, str], Any] = {}
    for row in report["members"]:
        (acc,) = row["accounts"]
        key = (acc["platform"], acc["id"] if acc["platform"] == "discord" else wom_key(acc["name"]))
        assert key not in found, f"two members for {key}"
        if row["messages"][window]:
            found[key] = (row["messages"][window], when(row["last_message_at"]))
    return found


def source_counts(raw: list[dict[str, Any]], as_of: datetime) -> dict[str, dict[str, int]]:
    """Per author id and window, from raw API messages: types 0 and 19 by humans, no webhooks."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(WINDOWS, 0))
    for item in raw:
        if item["type"] not in (0, 19) or item["author"].get("bot") or "webhook_id" in item:
            continue
        sent = when(item["timestamp"])
        for window, length in WINDOWS.items():
            if sent < as_of and (length is None or sent >= as_of - length):
                counts[item["author"]["id"]][window] += 1
    return dict(counts)


def report_windows(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    found = {}
    for row in report["members"]:
        (acc,) = row["accounts"]
        if row["messages"]["all"]:
            found[acc["id"]] = row["messages"]
    return found


# --- inputs --------------------------------------------------------------------------------


@cache
def community() -> Community:
    return generate_community(seed=11, members=40, days=21, end=COMMUNITY_END, messages_per_day=60)


def channel_id(name: str) -> int:
    return int(community().channel_by_name(name)["id"])


def export_channel(name: str, path: Path, **options: Any) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dce_export(community(), channel_id(name), path, **options)


def copy_sample(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DCE_GENERAL.read_bytes())
    return path


def truncated_in_messages(data: bytes, fraction: float = 0.5) -> bytes:
    """The file cut inside its messages array, in the middle of a key (plain ASCII)."""
    start, end = data.index(b'"messages": ['), data.rindex(b'"messageCount"')
    cut = data.index(b'"content"', start + int((end - start) * fraction)) + 4
    return data[:cut]


def line_of_end(data: bytes) -> int:
    return data.count(b"\n") + 1


def edited_sample(edit: Callable[[dict[str, Any]], None]) -> bytes:
    export = json.loads(DCE_GENERAL.read_text(encoding="utf-8"))
    edit(export["messages"])
    return json.dumps(export, ensure_ascii=False, indent=2).encode()


def _without_id(messages: list[dict[str, Any]]) -> None:
    del messages[5]["id"]


def _bad_timestamp(messages: list[dict[str, Any]]) -> None:
    messages[7]["timestamp"] = "2026-13-45T99:00:00+01:00"


def _sample_message_id(index: int) -> str:
    return str(json.loads(DCE_GENERAL.read_text(encoding="utf-8"))["messages"][index]["id"])


# --- the sample export and the counting rules ----------------------------------------------


def test_sample_export_counts_each_member_by_the_readme_rules(tmp_path: Path, db_url: str) -> None:
    clanpulse = Clanpulse(db_url, bridge_authors=str(BRIDGE_WEBHOOK_ID))
    sample = copy_sample(tmp_path / "general.json")
    expected, last = sample_expectation(str(BRIDGE_WEBHOOK_ID))
    # the rules at work in this file: two in-game names that differ only by a space are two
    # accounts, and an underscore is a space
    assert expected["osrs", "tide pool"] == 1 and expected["osrs", "tidepool"] == 1
    assert ("osrs", "sea lark") in expected

    result = clanpulse.import_export("general.json")

    assert result.exit_code == 0, result.stderr
    total = len(json.loads(sample.read_text(encoding="utf-8"))["messages"])
    assert f"general.json: {total} messages, {total} new" in result.stderr
    assert f"({sum(expected.values())} counted)" in result.stderr
    assert report_by_account(clanpulse.report()) == {
        key: (count, last[key]) for key, count in expected.items()
    }


def test_without_the_bridge_setting_relayed_lines_count_for_nobody(
    tmp_path: Path, clanpulse: Clanpulse
) -> None:
    copy_sample(tmp_path / "general.json")
    expected, last = sample_expectation(bridge_id=None)

    assert clanpulse.import_export("general.json").exit_code == 0

    report = clanpulse.report()
    assert report_by_account(report) == {key: (n, last[key]) for key, n in expected.items()}
    assert all(acc["platform"] == "discord" for m in report["members"] for acc in m["accounts"])


# --- importing again -----------------------------------------------------------------------


def test_importing_the_same_file_again_is_a_no_op(
    tmp_path: Path, clanpulse: Clanpulse, db_url: str
) -> None:
    clanpulse.bridge_authors = str(BRIDGE_WEBHOOK_ID)
    copy_sample(tmp_path / "general.json")
    assert clanpulse.import_export("general.json").exit_code == 0
    report, rows = clanpulse.report(), dump(db_url)

    again = clanpulse.import_export("general.json")
    # files are recognised by content, not by name
    copy_sample(tmp_path / "renamed" / "copy of general.json")
    renamed = clanpulse.import_export("renamed/copy of general.json")

    assert again.exit_code == 0, again.stderr
    assert "general.json: already imported" in again.stderr
    assert renamed.exit_code == 0, renamed.stderr
    assert "renamed/copy of general.json: already imported" in unwrapped(renamed)
    assert clanpulse.report() == report
    assert dump(db_url) == rows


# --- partitions and overlapping exports ----------------------------------------------------


def test_partitions_and_an_overlapping_reexport_count_every_message_exactly_once(
    tmp_path: Path, clanpulse: Clanpulse, db_url: str
) -> None:
    raw = community().channel_messages(channel_id("general"))
    parts = export_channel(
        "general", tmp_path / "export-a" / "general.json", part_size=math.ceil(len(raw) / 3)
    )
    # the same messages again, cut differently, from a machine whose zone changes to summer
    # time during the history (offsets +01:00, then +02:00)
    reexport = export_channel(
        "general",
        tmp_path / "export-b" / "general.json",
        part_size=len(raw) // 2 + 17,
        offset="Europe/Amsterdam",
    )
    assert [p.name for p in parts] == [
        "general.json",
        "general [part 2].json",
        "general [part 3].json",
    ]
    assert len(reexport) == 2
    reexport_text = b"".join(p.read_bytes() for p in reexport)
    assert b"+01:00" in reexport_text and b"+02:00" in reexport_text

    first = clanpulse.import_export("export-a")
    second = clanpulse.import_export("export-b")

    assert first.exit_code == 0, first.stderr
    assert f"imported 3 of 3 files: {len(raw)} new messages" in first.stderr
    assert second.exit_code == 0, second.stderr
    assert "imported 2 of 2 files: 0 new messages (0 counted)" in second.stderr
    assert stored_message_ids(db_url) == {
        str(channel_id("general")): sorted(int(m["id"]) for m in raw)
    }
    assert report_windows(clanpulse.report(as_of="2026-04-02")) == source_counts(raw, COMMUNITY_END)


# --- bad input -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BadFile:
    content: Callable[[], bytes]
    position: Callable[[bytes], str]  # where the error must point, given the file's bytes


BAD_FILES = {
    # a truncated file is reported at its end
    "truncated-in-messages": BadFile(
        lambda: truncated_in_messages(DCE_GENERAL.read_bytes()),
        lambda data: f"byte {len(data)} (line {line_of_end(data)})",
    ),
    "not-json": BadFile(
        lambda: b"<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n",
        lambda _: "byte 0 (line 1)",
    ),
    "json-list": BadFile(lambda: b'[{"id": "1487134655437209628"}]\n', lambda _: "root"),
    "telegram-export": BadFile(TELEGRAM_EXPORT.read_bytes, lambda _: "root"),
    "message-without-id": BadFile(lambda: edited_sample(_without_id), lambda _: "messages[5]"),
    "message-with-bad-timestamp": BadFile(
        lambda: edited_sample(_bad_timestamp),
        lambda _: f"messages[7] (id {_sample_message_id(7)}): 'timestamp'",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_file_fails_with_one_error_and_leaves_the_database_as_it_was(
    kind: str,
    tmp_path: Path,
    clanpulse: Clanpulse,
    db_url: str,
    batches_of: Callable[[int], None],
) -> None:
    export_channel("skilling", tmp_path / "earlier" / "skilling.json")
    assert clanpulse.import_export("earlier").exit_code == 0
    before = dump(db_url)
    assert before["message"], "the database holds earlier data"
    bad = BAD_FILES[kind]
    data = bad.content()
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "bad.json").write_bytes(data)
    batches_of(2)

    result = clanpulse.import_export("exports/bad.json")

    assert result.exit_code == 1
    assert_reported_once(result, "exports/bad.json", bad.position(data))
    assert "imported 0 of 1 files" in result.stderr
    assert dump(db_url) == before


def test_a_bad_file_among_good_ones_is_skipped_whole_and_the_others_are_imported(
    tmp_path: Path, clanpulse: Clanpulse, db_url: str, batches_of: Callable[[int], None]
) -> None:
    batches_of(50)
    exports = tmp_path / "exports"
    export_channel("pvm", exports / "a-pvm.json")
    export_channel("general", exports / "b-general.json")
    export_channel("skilling", exports / "c-skilling.json")
    # most of the file is fine: many batches of it are written before the parser hits the cut
    bad = exports / "b-general.json"
    bad.write_bytes(truncated_in_messages(bad.read_bytes(), fraction=0.9))

    result = clanpulse.import_export("exports")

    assert result.exit_code == 1
    assert_reported_once(result, "exports/b-general.json", f"byte {bad.stat().st_size}")
    assert "imported 2 of 3 files" in result.stderr
    rows = dump(db_url)
    assert sorted(row["external_id"] for row in rows["channel"]) == sorted(
        str(channel_id(name)) for name in ("pvm", "skilling")
    )
    assert sorted(row["path"] for row in rows["imported_file"]) == [
        "exports/a-pvm.json",
        "exports/c-skilling.json",
    ]
    assert stored_message_ids(db_url) == {
        str(cid): sorted(int(m["id"]) for m in community().channel_messages(cid))
        for cid in (channel_id("pvm"), channel_id("skilling"))
    }


def test_a_missing_path_is_named_in_the_error(clanpulse: Clanpulse, tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()

    result = clanpulse.import_export("exports/missing.json")

    assert result.exit_code == 2  # a usage error: nothing was attempted
    assert "exports/missing.json" in result.stderr and "does not exist" in result.stderr


# --- nothing lost --------------------------------------------------------------------------


def files_by_channel(folder: Path) -> dict[str, list[int]]:
    """Message ids per channel id, read from the export files themselves."""
    found: dict[str, set[int]] = defaultdict(set)
    for path in folder.glob("*.json"):
        export = json.loads(path.read_text(encoding="utf-8"))
        assert export["messageCount"] == len(export["messages"])
        found[export["channel"]["id"]].update(int(m["id"]) for m in export["messages"])
    return {cid: sorted(ids) for cid, ids in found.items()}


def test_every_message_of_the_files_is_stored_in_its_channel(
    tmp_path: Path, clanpulse: Clanpulse, db_url: str
) -> None:
    exports = tmp_path / "exports"
    copy_sample(exports / "general.json")
    export_channel("events", exports / "events.json", part_size=25, offset="-05:00")
    assert len(list(exports.glob("*.json"))) > 3  # the sample and several parts

    result = clanpulse.import_export("exports")

    assert result.exit_code == 0, result.stderr
    assert stored_message_ids(db_url) == files_by_channel(exports)


def test_the_installed_command_in_a_real_process(tmp_path: Path) -> None:
    """`.venv/bin/clanpulse` as a cron job runs it: real exit status, real standard streams."""
    installed = Path(sys.executable).with_name("clanpulse")
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "clanpulse.cli"]
    database = tmp_path / "clanpulse.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLANPULSE_")}
    env["CLANPULSE_DATABASE_URL"] = f"sqlite:///{database}"
    exports = tmp_path / "exports"
    copy_sample(exports / "a-general.json")
    export_channel("pvm", exports / "b-pvm.json", part_size=40)
    good = files_by_channel(exports)
    (exports / "c-broken.json").write_bytes(truncated_in_messages(DCE_GENERAL.read_bytes()))

    process = subprocess.run(
        [*command, "import", "discord-export", "exports"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert process.returncode == 1, process.stderr
    assert "error: exports/c-broken.json: byte " in process.stderr.replace("\n", "")
    assert stored_message_ids(f"sqlite+aiosqlite:///{database}") == good


# --- once-found bugs, kept fixed -----------------------------------------------------------


def test_the_error_line_stays_one_line_however_long_the_path(
    tmp_path: Path, clanpulse: Clanpulse
) -> None:
    folder = Path(*(f"{n}-" + "exports-of-the-grey-heron-clan-" * 6 for n in range(4)))
    (tmp_path / folder).mkdir(parents=True)
    path = folder / "general.json"
    (tmp_path / path).write_bytes(truncated_in_messages(DCE_GENERAL.read_bytes()))

    result = clanpulse.import_export(str(path))

    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {path}: byte ")
    assert line.endswith(")")  # the reason ends with the id of the last complete message


def test_invalid_utf8_the_parser_lets_through_is_reported_like_any_bad_file(
    tmp_path: Path, clanpulse: Clanpulse, db_url: str
) -> None:
    exports = tmp_path / "exports"
    export_channel("pvm", exports / "a-pvm.json")
    data = DCE_GENERAL.read_bytes()
    at = data.index(b"Evening all")
    (exports / "b-general.json").write_bytes(data[:at] + b"\xc0\x80" + data[at:])
    export_channel("skilling", exports / "c-skilling.json")

    result = clanpulse.import_export("exports")

    assert result.exit_code == 1
    assert_reported_once(result, "exports/b-general.json", "byte ")
    assert set(stored_message_ids(db_url)) == {
        str(channel_id("pvm")),
        str(channel_id("skilling")),
    }


def test_a_message_with_a_nul_character_imports_on_postgresql_as_on_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    clanpulse = Clanpulse(postgres_url)
    data = DCE_GENERAL.read_bytes()
    at = data.index(b"Evening all")
    (tmp_path / "general.json").write_bytes(data[:at] + b"\\u0000" + data[at:])

    result = clanpulse.import_export("general.json")

    assert result.exit_code == 0, result.stderr
    assert sum(len(ids) for ids in stored_message_ids(postgres_url).values()) == 30
