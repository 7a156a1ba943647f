"""`report activity` in every format: the JSON contract, and the same rows in table, CSV, XLSX."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from clanpulse.cli import main
from clanpulse.records import MessageKind
from clanpulse.store.database import open_database
from clanpulse.store.ingest import ingest_batch
from tests.factories import BRIDGE, batch, chat, user


@pytest.fixture
def populated(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLANPULSE_DATABASE_URL", db_url)
    monkeypatch.setenv("CLANPULSE_TIMEZONE", "Europe/Berlin")

    async def fill() -> None:
        async with open_database(db_url) as db, db.write() as conn:
            await ingest_batch(
                conn,
                batch(
                    chat(
                        user(574204114108547089, "fernwhistle", nickname="Fern"), "2026-03-28 10:00"
                    ),
                    chat(
                        user(574204114108547089, "fernwhistle", nickname="Fern"),
                        "2026-03-28 22:59:59",
                    ),
                    chat(
                        user(574204114108547089, "fernwhistle", nickname="Fern"), "2026-03-28 23:00"
                    ),
                    chat(user(806060084428931093, "quill"), "2026-01-02 10:00"),
                    chat(
                        BRIDGE, "2026-03-20 10:00", kind=MessageKind.BRIDGE_CHAT, speaker="Sea_Lark"
                    ),
                ),
            )

    asyncio.run(fill())
    return db_url


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_follows_the_documented_contract(populated: str) -> None:
    # a bare date is midnight in CLANPULSE_TIMEZONE: 2026-03-29 00:00 CET = 2026-03-28 23:00 UTC
    doc = json.loads(run_cli("report", "activity", "--as-of", "2026-03-29", "--format", "json"))
    assert doc["as_of"] == "2026-03-28T23:00:00Z"
    assert doc["windows"] == ["7d", "30d", "90d", "all"]
    first = doc["members"][0]
    assert set(first) == {"member_id", "name", "accounts", "messages", "last_message_at"}
    assert first["name"] == "Fern"
    assert first["messages"] == {"7d": 2, "30d": 2, "90d": 2, "all": 2}  # 23:00 is not before as_of
    assert first["last_message_at"] == "2026-03-28T22:59:59Z"
    assert first["accounts"] == [
        {"platform": "discord", "id": "574204114108547089", "name": "Fern"}
    ]
    by_name = {m["name"]: m for m in doc["members"]}
    assert by_name["Sea_Lark"]["accounts"] == [{"platform": "osrs", "id": None, "name": "Sea_Lark"}]
    assert by_name["quill"]["messages"] == {"7d": 0, "30d": 0, "90d": 1, "all": 1}
    assert [m["name"] for m in doc["members"]] == ["Fern", "Sea_Lark", "quill"]


def test_csv_and_xlsx_and_table_carry_the_same_rows(populated: str, tmp_path: Path) -> None:
    as_of = ["--as-of", "2026-03-29T12:00"]
    doc = json.loads(run_cli("report", "activity", *as_of, "--format", "json"))
    expected = [
        [m["member_id"], m["name"], *(m["messages"][w] for w in doc["windows"])]
        for m in doc["members"]
    ]

    rows = list(csv.reader(io.StringIO(run_cli("report", "activity", *as_of, "--format", "csv"))))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["Member ID", "Member"]
    assert [[int(r[0]), r[1], *map(int, r[3:7])] for r in body] == expected

    path = tmp_path / "activity.xlsx"
    run_cli("report", "activity", *as_of, "--format", "xlsx", "--output", str(path))
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    values = [
        list(r) for r in sheet.iter_rows(min_row=2, max_row=len(expected) + 1, values_only=True)
    ]
    assert [[r[0], r[1], *r[3:7]] for r in values] == expected
    assert sheet.freeze_panes == "A2"  # header stays visible
    assert sheet.conditional_formatting  # zero cells are highlighted

    table = run_cli("report", "activity", *as_of)
    for _member_id, name, *_ in expected:
        assert name in table
    assert "Messages 30d" in table
