"""The activity report in each output form: JSON (the contract), and rows for the tables."""

from __future__ import annotations

from typing import Any

import orjson

from clanpulse.analytics.activity import ActivityReport
from clanpulse.outputs.tabular import Cell, Column, Sheet
from clanpulse.timeutil import iso_utc


def activity_json(report: ActivityReport) -> bytes:
    document: dict[str, Any] = {
        "as_of": iso_utc(report.as_of),
        "windows": list(report.windows),
        "members": [
            {
                "member_id": m.member_id,
                "name": m.name,
                "accounts": [
                    {"platform": a.platform, "id": a.id, "name": a.name} for a in m.accounts
                ],
                "messages": {w: m.messages[w] for w in report.windows},
                "last_message_at": iso_utc(m.last_message_at),
            }
            for m in report.members
        ],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def _accounts_text(report_member: Any) -> str:
    return "; ".join(f"{a.platform}:{a.name}" for a in report_member.accounts)


def activity_sheet(report: ActivityReport) -> Sheet:
    columns = [
        Column("Member ID", "int", 10),
        Column("Member"),
        Column("Accounts"),
        *(Column(f"Messages {w}", "int", 14) for w in report.windows),
        Column("Last message (UTC)", "datetime", 18),
    ]
    rows: list[list[Cell]] = [
        [
            m.member_id,
            m.name,
            _accounts_text(m),
            *(m.messages[w] for w in report.windows),
            m.last_message_at,
        ]
        for m in report.members
    ]
    return Sheet(
        title="Activity",
        columns=columns,
        rows=rows,
        note=f"As of {iso_utc(report.as_of)}; windows end just before that instant.",
    )
