"""Renderers for tabular reports: a Rich table, CSV and a formatted XLSX workbook.

A report becomes a :class:`Sheet` (title, columns, rows); every format renders the same rows.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import xlsxwriter  # type: ignore[import-untyped]
from rich.console import Console
from rich.markup import escape
from rich.table import Table

Cell = str | int | float | datetime | None


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    kind: str = "text"  # text | int | float | date | datetime
    width: int | None = None  # XLSX width in characters; None guesses from the content


@dataclass(slots=True)
class Sheet:
    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str | None = None


def _text(value: Cell, zone: Any = None, kind: str = "text") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        shown = value.astimezone(zone) if zone is not None else value
        return shown.strftime("%Y-%m-%d" if kind == "date" else "%Y-%m-%d %H:%M")
    if kind == "int" and isinstance(value, int):
        return f"{value:,}"
    if kind == "float" and isinstance(value, int | float):
        return f"{value:,.2f}"
    return str(value)


def render_table(sheet: Sheet, console: Console, *, zone: Any = None) -> None:
    table = Table(title=sheet.title, caption=sheet.note, header_style="bold")
    for col in sheet.columns:
        # numbers and times never wrap; long text columns give way first
        table.add_column(
            col.title,
            justify="right" if col.kind in ("int", "float") else "left",
            no_wrap=col.kind != "text",
            overflow="fold",
            min_width=10 if col.kind == "text" else None,
        )
    for row in sheet.rows:
        table.add_row(
            *(
                # names are member-provided: never let them act as Rich markup
                f"[dim]{_text(v)}[/dim]"
                if v == 0 and col.kind == "int"
                else escape(_text(v, zone, col.kind))
                for col, v in zip(sheet.columns, row, strict=True)
            )
        )
    console.print(table)


def write_csv(sheet: Sheet, out: IO[str]) -> None:
    writer = csv.writer(out)
    writer.writerow([c.title for c in sheet.columns])
    for row in sheet.rows:
        writer.writerow(
            [v.isoformat() if isinstance(v, datetime) else ("" if v is None else v) for v in row]
        )


def write_xlsx(sheets: Sequence[Sheet], path: Path) -> None:
    """A workbook people can read: bold frozen header, filters, widths, formats, zeros shaded."""
    book = xlsxwriter.Workbook(str(path), {"remove_timezone": True, "in_memory": False})
    try:
        header = book.add_format({"bold": True, "bg_color": "#DDE4EE", "border": 1})
        integer = book.add_format({"num_format": "#,##0"})
        decimal = book.add_format({"num_format": "#,##0.00"})
        stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        day = book.add_format({"num_format": "yyyy-mm-dd"})
        zero = book.add_format({"bg_color": "#FCE4E4", "font_color": "#9C0006"})
        for sheet in sheets:
            ws = book.add_worksheet(sheet.title[:31])
            for c, col in enumerate(sheet.columns):
                ws.write_string(0, c, col.title, header)
            for r, row in enumerate(sheet.rows, start=1):
                for c, (col, value) in enumerate(zip(sheet.columns, row, strict=True)):
                    if value is None:
                        ws.write_blank(r, c, None)
                    elif isinstance(value, datetime):
                        shown = value.replace(tzinfo=None)
                        ws.write_datetime(r, c, shown, day if col.kind == "date" else stamp)
                    elif isinstance(value, int | float) and not isinstance(value, bool):
                        ws.write_number(r, c, value, decimal if col.kind == "float" else integer)
                    else:
                        ws.write_string(r, c, str(value))
            last_row = max(len(sheet.rows), 1)
            for c, col in enumerate(sheet.columns):
                width = col.width or min(
                    60, max([len(col.title), *(len(_text(row[c])) for row in sheet.rows[:500])]) + 2
                )
                ws.set_column(c, c, width)
                if col.kind == "int" and sheet.rows:
                    ws.conditional_format(
                        1,
                        c,
                        last_row,
                        c,
                        {"type": "cell", "criteria": "==", "value": 0, "format": zero},
                    )
            ws.freeze_panes(1, 0)
            ws.autofilter(0, 0, last_row, len(sheet.columns) - 1)
            if sheet.note:
                ws.write_string(last_row + 2, 0, sheet.note)
    finally:
        book.close()
