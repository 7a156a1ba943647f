"""The clan report in each output form: JSON, sheets (table, CSV, XLSX) and Markdown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from clanpulse.analytics.activity import WINDOWS as MESSAGE_WINDOWS
from clanpulse.analytics.clan import XP_WINDOWS, ClanReport, ClanRow
from clanpulse.outputs.tabular import Cell, Column, Sheet
from clanpulse.timeutil import iso_utc


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _row_json(r: ClanRow) -> dict[str, Any]:
    return {
        "member_id": r.member_id,
        "name": r.name,
        "role": r.role,
        "joined_at": iso_utc(r.joined_at),
        "status": r.status,
        "messages": r.messages,
        "xp_gained": r.xp,
        "ehp_gained_30d": _round(r.ehp_30d),
        "ehb_gained_30d": _round(r.ehb_30d),
        "boss_kills_gained_30d": r.boss_kills_30d,
        "last_message_at": iso_utc(r.last_message_at),
        "last_xp_change_at": iso_utc(r.last_xp_change_at),
    }


def clan_json(report: ClanReport) -> bytes:
    s = report.summary
    document = {
        "as_of": iso_utc(report.as_of),
        "inactive_days": report.inactive_days,
        "message_windows": list(MESSAGE_WINDOWS),
        "xp_windows": list(XP_WINDOWS),
        "members": [_row_json(r) for r in report.rows],
        "summary": {
            "members": s.members,
            "by_status": s.by_status,
            "messages_30d": s.messages_30d,
            "xp_gained_30d": s.xp_30d,
            "top_messages_30d": [
                {"member_id": t.member_id, "name": t.name, "messages": t.value}
                for t in s.top_messages_30d
            ],
            "top_xp_30d": [
                {"member_id": t.member_id, "name": t.name, "xp_gained": t.value}
                for t in s.top_xp_30d
            ],
            "joined_30d": [{"name": c.name, "at": iso_utc(c.at)} for c in s.joined_30d],
            "left_30d": [{"name": c.name, "at": iso_utc(c.at)} for c in s.left_30d],
            "renames_30d": [
                {"old_name": r.old_name, "new_name": r.new_name, "at": iso_utc(r.at)}
                for r in s.renames_30d
            ],
        },
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def members_sheet(report: ClanReport) -> Sheet:
    # short titles: this table is wide, and terminals are not
    columns = [
        Column("Member"),
        Column("Role"),
        Column("Joined", "date", 11),
        Column("Status"),
        *(Column(f"Msgs {w}", "int", 10) for w in MESSAGE_WINDOWS),
        *(Column(f"XP {w}", "int", 13) for w in XP_WINDOWS),
        Column("EHP 30d", "float", 9),
        Column("EHB 30d", "float", 9),
        Column("Kills 30d", "int", 10),
        Column("Last message", "datetime", 17),
        Column("Last XP change", "datetime", 17),
    ]
    rows: list[list[Cell]] = [
        [
            r.name,
            r.role,
            r.joined_at,
            r.status,
            *(r.messages[w] for w in MESSAGE_WINDOWS),
            *(r.xp[w] for w in XP_WINDOWS),
            _round(r.ehp_30d),
            _round(r.ehb_30d),
            r.boss_kills_30d,
            r.last_message_at,
            r.last_xp_change_at,
        ]
        for r in report.rows
    ]
    return Sheet(
        "Members",
        columns,
        rows,
        note=f"As of {iso_utc(report.as_of)}; times in UTC. Empty XP cells: no snapshot in that "
        "window. "
        f"Inactive: no message and no XP change for {report.inactive_days} days.",
    )


def summary_sheets(report: ClanReport) -> list[Sheet]:
    s = report.summary
    totals: list[list[Cell]] = [["Current members", s.members]]
    totals += [[f"Status: {k}", v] for k, v in s.by_status.items()]
    totals += [["Messages, last 30 days", s.messages_30d], ["XP gained, last 30 days", s.xp_30d]]
    top: list[list[Cell]] = [
        ["Messages", i + 1, t.name, t.value] for i, t in enumerate(s.top_messages_30d)
    ]
    top += [["XP gained", i + 1, t.name, t.value] for i, t in enumerate(s.top_xp_30d)]
    roster: list[list[Cell]] = [["joined", c.name, c.at] for c in s.joined_30d]
    roster += [["left", c.name, c.at] for c in s.left_30d]
    renames: list[list[Cell]] = [[r.old_name, r.new_name, r.at] for r in s.renames_30d]
    when = Column("When (UTC)", "datetime", 17)
    return [
        Sheet("Summary", [Column("Figure"), Column("Value", "int", 14)], totals),
        Sheet(
            "Top 30d",
            [
                Column("Ranking"),
                Column("Place", "int", 7),
                Column("Member"),
                Column("Value", "int"),
            ],
            top,
        ),
        Sheet("Joined and left", [Column("Change"), Column("Name"), when], roster),
        Sheet("Renames", [Column("Old name"), Column("New name"), when], renames),
    ]


def _md_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    # member-provided text must not break the table
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(sheet: Sheet) -> list[str]:
    lines = [
        "| " + " | ".join(c.title for c in sheet.columns) + " |",
        "|"
        + "|".join("---:" if c.kind in ("int", "float") else "---" for c in sheet.columns)
        + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in sheet.rows]
    return lines


def clan_markdown(report: ClanReport) -> str:
    lines = [f"# Clan report, {report.as_of:%Y-%m-%d %H:%M} UTC", ""]
    for sheet in summary_sheets(report):
        lines += [f"## {sheet.title}", ""]
        lines += _md_table(sheet) if sheet.rows else ["(none)"]
        lines.append("")
    members = members_sheet(report)
    lines += ["## Members", "", *_md_table(members), "", f"_{members.note}_", ""]
    return "\n".join(lines)
