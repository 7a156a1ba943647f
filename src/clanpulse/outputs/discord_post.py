"""The weekly clan report and watchdog alerts as Discord webhook messages (rendering only).

Every message obeys Discord's limits (REST spec, section 8). Nothing is cut to fit: lists
too long for one embed continue in the next, and embeds too many or too large for one
message continue in the next message. Text that members chose (names) is escaped, so
``**x**`` or ``@everyone`` shows as typed; the poster also sends ``allowed_mentions`` so
nothing can ping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from clanpulse.analytics.clan import ClanReport, ClanRow, Ranked
from clanpulse.analytics.daily import DayTotals
from clanpulse.net.webhook import (
    DESCRIPTION_MAX,
    EMBED_TOTAL_MAX,
    EMBEDS_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    WebhookFile,
    WebhookMessage,
    chars,
    embed_size,
    message_problems,
)
from clanpulse.timeutil import iso_utc

REPORT_COLOR = 0x5865F2
ALERT_COLOR = 0xED4245
RECOVERED_COLOR = 0x57F287
CHART_FILENAME = "chart.png"
WEEK = timedelta(days=7)
TOP = 5
# No single line is longer than this: a pathological name wraps onto the next line rather
# than making a line that fits no embed. Small enough for a field value.
LINE_MAX = FIELD_VALUE_MAX
# Characters Discord markdown gives meaning to; a backslash makes any of them literal.
_MARKDOWN = frozenset("\\*_~`|<>[]()#-")
NOTHING = "none"


def escape_markdown(text: str) -> str:
    """``text`` on one line, shown literally in Discord: no markdown, no mentions, no links."""
    flat = " ".join(text.split())
    escaped = "".join(f"\\{c}" if c in _MARKDOWN else c for c in flat)
    # a zero-width space after @ keeps @everyone, @here and @name from reading as mentions
    return escaped.replace("@", "@\u200b")


def _wrap(line: str, most: int = LINE_MAX) -> Iterator[str]:
    """``line`` in pieces of at most ``most`` characters, never splitting a ``\\x`` escape."""
    while chars(line) > most:
        cut, used = 0, 0
        while used + chars(line[cut]) <= most:
            used += chars(line[cut])
            cut += 1
        trailing = len(line[:cut]) - len(line[:cut].rstrip("\\"))
        if trailing % 2:  # the cut would separate a backslash from what it escapes
            cut -= 1
        yield line[:cut]
        line = line[cut:]
    yield line


@dataclass
class _Section:
    title: str
    lines: list[str]


@dataclass
class _Packer:
    """Lines of sections into embeds, embeds into messages, each within Discord's limits."""

    color: int
    messages: list[list[dict[str, Any]]] = field(default_factory=lambda: [[]])
    used: int = 0  # characters counted toward the current message's 6000

    def add_embed(self, embed: dict[str, Any]) -> None:
        size = embed_size(embed)
        if len(self.messages[-1]) >= EMBEDS_MAX or self.used + size > EMBED_TOTAL_MAX:
            self.messages.append([])
            self.used = 0
        self.messages[-1].append(embed)
        self.used += size

    def add_section(self, section: _Section) -> None:
        current: dict[str, Any] | None = None
        length = 0
        lines = [piece for line in section.lines or [NOTHING] for piece in _wrap(line)]
        for line in lines:
            cost = chars(line) + 1  # with its newline
            if (
                current is not None
                and length + cost <= DESCRIPTION_MAX
                and self.used + cost <= EMBED_TOTAL_MAX
            ):
                current["description"] += "\n" + line
                length += cost
                self.used += cost
                continue
            title = section.title if current is None else f"{section.title} (continued)"
            current = {"title": title, "description": line, "color": self.color}
            self.add_embed(current)
            length = chars(line)


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)


def _ranked(entries: Sequence[Ranked], unit: str) -> list[str]:
    return [
        f"{place}. {escape_markdown(e.name)} · {e.value:,} {unit}"
        for place, e in enumerate(entries, 1)
    ]


def top_of_week(rows: Sequence[ClanRow], value: Callable[[ClanRow], int]) -> list[Ranked]:
    """The best ``TOP`` rows by ``value`` (zeros left out), ties by name."""
    scored = [(value(r), r) for r in rows]
    best = sorted(((v, r) for v, r in scored if v), key=lambda vr: (-vr[0], vr[1].name.casefold()))
    return [Ranked(r.member_id, r.name, v) for v, r in best[:TOP]]


def _day_line(day: DayTotals, zone: ZoneInfo) -> str:
    start, end = _local(day.start, zone), _local(day.end, zone)
    partial = (
        start.time() != time(0)
        or end.time() != time(0)
        or end.date() != day.day + timedelta(days=1)
    )
    xp = "no XP data" if day.xp is None else f"{day.xp:,} XP"
    label = f"{day.day:%a %d %b}" + (f" ({start:%H:%M}–{end:%H:%M})" if partial else "")
    return f"{label} · {day.messages:,} messages · {xp}"


def _member_line(row: ClanRow) -> str:
    xp = row.xp["7d"]
    gained = "no XP data" if xp is None else f"{xp:,} XP"
    status = "" if row.status == "active" else f" · {row.status}"
    return f"{escape_markdown(row.name)} · {row.messages['7d']:,} messages · {gained}{status}"


def weekly_report_messages(
    report: ClanReport,
    daily: Sequence[DayTotals],
    chart: bytes | None,
    zone: ZoneInfo,
    *,
    members: bool = True,
) -> list[WebhookMessage]:
    """The clan report's last 7 days as webhook messages: a headline embed (totals, top
    lists, roster changes, per-day figures and the chart), then every member's line unless
    ``members`` is false. Long lists continue over as many embeds and messages as they need.
    """
    as_of = report.as_of
    since = as_of - WEEK
    rows = report.rows
    summary = report.summary
    messages_7d = sum(r.messages["7d"] for r in rows)
    xp_7d = sum(r.xp["7d"] or 0 for r in rows)
    first_day = _local(since, zone).date()
    last_day = _local(as_of - timedelta(microseconds=1), zone).date()
    status = summary.by_status
    description = "\n".join(
        [
            f"**{summary.members:,}** members · **{messages_7d:,}** messages · "
            f"**{xp_7d:,}** XP gained in the last 7 days",
            f"New {status.get('new', 0):,} · Active {status.get('active', 0):,} · "
            f"Inactive {status.get('inactive', 0):,} "
            f"(no message and no XP change for {report.inactive_days} days)",
        ]
    )
    headline: dict[str, Any] = {
        "title": f"Weekly clan report · {first_day:%d %b} – {last_day:%d %b %Y}",
        "description": description,
        "color": REPORT_COLOR,
        "timestamp": iso_utc(as_of),
        "footer": {"text": f"As of {_local(as_of, zone):%Y-%m-%d %H:%M} ({zone.key})"},
    }
    if chart is not None:
        headline["image"] = {"url": f"attachment://{CHART_FILENAME}"}

    joined = [c for c in summary.joined_30d if c.at >= since]
    left = [c for c in summary.left_30d if c.at >= since]
    renames = [r for r in summary.renames_30d if r.at >= since]
    when = "%a %d %b"
    short = [
        _Section(
            "Top chatters", _ranked(top_of_week(rows, lambda r: r.messages["7d"]), "messages")
        ),
        _Section("Top XP gainers", _ranked(top_of_week(rows, lambda r: r.xp["7d"] or 0), "XP")),
        _Section("Per day", [_day_line(d, zone) for d in daily]),
        _Section(
            f"Joined ({len(joined)})",
            [f"{escape_markdown(c.name)} · {_local(c.at, zone):{when}}" for c in joined],
        ),
        _Section(
            f"Left ({len(left)})",
            [f"{escape_markdown(c.name)} · {_local(c.at, zone):{when}}" for c in left],
        ),
        _Section(
            f"Renames ({len(renames)})",
            [f"{escape_markdown(r.old_name)} → {escape_markdown(r.new_name)}" for r in renames],
        ),
    ]
    # Short sections sit side by side as fields of the headline while they fit; one too
    # long for a field continues below as embeds of its own.
    fields: list[dict[str, Any]] = []
    overflow: list[_Section] = []
    size = embed_size(headline)
    for section in short:
        value = "\n".join(section.lines) or NOTHING
        cost = chars(section.title) + chars(value)
        if (
            chars(value) <= FIELD_VALUE_MAX
            and len(fields) < FIELDS_MAX
            and size + cost <= EMBED_TOTAL_MAX
        ):
            fields.append(
                {"name": section.title, "value": value, "inline": section.title.startswith("Top")}
            )
            size += cost
        else:
            overflow.append(section)
    headline["fields"] = fields

    packer = _Packer(REPORT_COLOR)
    packer.add_embed(headline)
    for section in overflow:
        packer.add_section(section)
    if members:
        ordered = sorted(
            rows, key=lambda r: (-r.messages["7d"], -(r.xp["7d"] or 0), r.name.casefold())
        )
        packer.add_section(_Section(f"Members ({len(rows):,})", [_member_line(r) for r in ordered]))

    found = [WebhookMessage({"embeds": embeds}) for embeds in packer.messages]
    if chart is not None:
        upload = WebhookFile(CHART_FILENAME, chart, "image/png", "Messages and XP per day")
        found[0] = WebhookMessage(found[0].payload, (upload,))
    return _checked(found)


def alert_message(title: str, lines: list[str], *, recovered: bool = False) -> WebhookMessage:
    """One watchdog alert (red) or recovery (green) embed; text is shown literally.

    Lines past what one message holds are replaced by a count of them, never dropped
    without saying so.
    """
    shown_title = escape_markdown(title)
    body = [piece for line in lines for piece in _wrap(escape_markdown(line))]
    if chars(shown_title) > 256:
        body.insert(0, shown_title)  # the whole title, as the first line
        shown_title = _cut(shown_title, 255) + "…"
    budget = min(DESCRIPTION_MAX, EMBED_TOTAL_MAX - chars(shown_title))
    note_room = chars("\n… and 9999999 more lines not shown")
    kept: list[str] = []
    used = 0
    for index, line in enumerate(body):
        last = index == len(body) - 1
        if used + chars(line) + 1 > budget - (0 if last else note_room):
            kept.append(f"… and {len(body) - index} more lines not shown")
            break
        kept.append(line)
        used += chars(line) + 1
    embed: dict[str, Any] = {
        "title": shown_title,
        "color": RECOVERED_COLOR if recovered else ALERT_COLOR,
    }
    if kept:
        embed["description"] = "\n".join(kept)
    return _checked([WebhookMessage({"embeds": [embed]})])[0]


def _cut(text: str, most: int) -> str:
    return next(_wrap(text, most))


def _checked(messages: list[WebhookMessage]) -> list[WebhookMessage]:
    for index, message in enumerate(messages):
        problems = message_problems(message)
        if problems:  # a bug in the packing above, never the data's fault
            raise AssertionError(f"message {index} breaks Discord's limits: {problems}")
    return messages
