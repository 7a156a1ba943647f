"""The clan report: one row per current member, chat and game progress side by side.

A current member holds at least one in-game account on the clan roster at ``as_of``; a
community without a roster (no Wise Old Man group harvested) reports every member.
Opted-out members appear nowhere, not even in totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.analytics.activity import WINDOWS as MESSAGE_WINDOWS
from clanpulse.analytics.activity import message_counts
from clanpulse.analytics.gains import Progress, progress_by_account
from clanpulse.analytics.members import Person, people
from clanpulse.identity import account_display_name
from clanpulse.store.schema import account, group_event, member, name_change

XP_WINDOWS = ("7d", "30d", "90d", "365d")
NEW_DAYS = 14
RECENT = timedelta(days=30)
TOP = 3


@dataclass(frozen=True, slots=True)
class ClanRow:
    member_id: int
    name: str
    role: str | None
    joined_at: datetime | None
    messages: dict[str, int]
    xp: dict[str, int | None]  # None: no snapshot in the window
    ehp: dict[str, float | None]  # per XP window, like xp
    ehb: dict[str, float | None]
    boss_kills: dict[str, int | None]
    last_message_at: datetime | None
    last_xp_change_at: datetime | None
    status: str  # new | active | inactive
    seat_account_ids: tuple[int, ...] = ()  # the in-game accounts counted (current seats)

    @property
    def ehp_30d(self) -> float | None:
        return self.ehp["30d"]

    @property
    def ehb_30d(self) -> float | None:
        return self.ehb["30d"]

    @property
    def boss_kills_30d(self) -> int | None:
        return self.boss_kills["30d"]


@dataclass(frozen=True, slots=True)
class Ranked:
    member_id: int
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class RosterChange:
    name: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Rename:
    old_name: str
    new_name: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClanSummary:
    members: int
    by_status: dict[str, int]
    messages_30d: int
    xp_30d: int
    top_messages_30d: list[Ranked]
    top_xp_30d: list[Ranked]
    joined_30d: list[RosterChange]
    left_30d: list[RosterChange]
    renames_30d: list[Rename]


@dataclass(frozen=True, slots=True)
class ClanReport:
    as_of: datetime
    inactive_days: int
    rows: list[ClanRow]
    summary: ClanSummary


def _sum(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


async def clan_report(conn: AsyncConnection, as_of: datetime, inactive_days: int) -> ClanReport:
    counts, last_message = await message_counts(conn, as_of)
    progress = await progress_by_account(conn, as_of)
    everyone = await people(conn)
    has_roster = any(p.seats for p in everyone)
    idle_since = as_of - timedelta(days=inactive_days)

    rows = []
    for person in everyone:
        seats = person.current_seats(as_of)
        if has_roster and not seats:
            continue
        rows.append(_row(person, seats, counts, last_message, progress, as_of, idle_since))
    rows.sort(key=lambda r: (-r.messages["30d"], -(r.xp["30d"] or 0), r.name.casefold()))
    summary = await _summary(conn, as_of, rows, everyone)
    return ClanReport(as_of, inactive_days, rows, summary)


def _row(
    person: Person,
    seats: list,  # type: ignore[type-arg]
    counts: dict[int, dict[str, int]],
    last_message: dict[int, datetime],
    progress: dict[int, Progress],
    as_of: datetime,
    idle_since: datetime,
) -> ClanRow:
    ids = person.account_ids
    mine = [progress[s.account_id] for s in seats if s.account_id in progress]
    senior = min(seats, key=lambda s: s.joined_at) if seats else None

    def gained(window: str, column: str) -> float | None:
        found = [p.gains[window] for p in mine]
        return _sum([g.values[column] if g is not None else None for g in found])

    def whole(value: float | None) -> int | None:
        return None if value is None else int(value)

    last_msg = max((last_message[a] for a in ids if a in last_message), default=None)
    last_xp = max((p.last_xp_change for p in mine if p.last_xp_change), default=None)
    joined = senior.joined_at if senior else None
    if joined is not None and joined >= as_of - timedelta(days=NEW_DAYS):
        status = "new"
    elif (last_msg is None or last_msg < idle_since) and (last_xp is None or last_xp < idle_since):
        status = "inactive"
    else:
        status = "active"
    return ClanRow(
        member_id=person.member_id,
        # in-game names are what a clan knows its members by
        name=senior.name if senior else person.name,
        role=senior.role if senior else None,
        joined_at=joined,
        messages={w: sum(counts[a][w] for a in ids) for w in MESSAGE_WINDOWS},
        xp={w: whole(gained(w, "overall_xp")) for w in XP_WINDOWS},
        ehp={w: gained(w, "ehp") for w in XP_WINDOWS},
        ehb={w: gained(w, "ehb") for w in XP_WINDOWS},
        boss_kills={w: whole(gained(w, "boss_kills")) for w in XP_WINDOWS},
        last_message_at=last_msg,
        last_xp_change_at=last_xp,
        status=status,
        seat_account_ids=tuple(s.account_id for s in seats),
    )


async def _summary(
    conn: AsyncConnection, as_of: datetime, rows: list[ClanRow], everyone: list[Person]
) -> ClanSummary:
    since = as_of - RECENT
    by_status = {s: sum(1 for r in rows if r.status == s) for s in ("new", "active", "inactive")}
    top_messages = sorted(rows, key=lambda r: (-r.messages["30d"], r.name.casefold()))[:TOP]
    with_xp = [r for r in rows if r.xp["30d"]]
    top_xp = sorted(with_xp, key=lambda r: (-(r.xp["30d"] or 0), r.name.casefold()))[:TOP]
    joined, left, renames = await roster_changes(conn, everyone, since, as_of)
    return ClanSummary(
        members=len(rows),
        by_status=by_status,
        messages_30d=sum(r.messages["30d"] for r in rows),
        xp_30d=sum(r.xp["30d"] or 0 for r in rows),
        top_messages_30d=[Ranked(r.member_id, r.name, r.messages["30d"]) for r in top_messages],
        top_xp_30d=[Ranked(r.member_id, r.name, r.xp["30d"] or 0) for r in top_xp],
        joined_30d=joined,
        left_30d=left,
        renames_30d=renames,
    )


async def roster_changes(
    conn: AsyncConnection, everyone: list[Person], since: datetime, as_of: datetime
) -> tuple[list[RosterChange], list[RosterChange], list[Rename]]:
    """Who joined, who left and who was renamed in ``[since, as_of)``, oldest first."""
    joined = [
        RosterChange(seat.name, seat.joined_at)
        for person in everyone
        for seat in person.seats
        if seat.joined_at is not None and since <= seat.joined_at < as_of
    ]
    renames = await conn.execute(
        select(name_change.c.old_name, name_change.c.new_name, name_change.c.resolved_at)
        .join(account, account.c.id == name_change.c.account_id)
        .join(member, member.c.id == account.c.member_id)
        .where(
            member.c.opted_out.is_(False),
            name_change.c.resolved_at >= since,
            name_change.c.resolved_at < as_of,
        )
        .order_by(name_change.c.resolved_at)
    )
    return (
        sorted(joined, key=lambda c: c.at),
        sorted(await departures(conn, since, as_of), key=lambda c: c.at),
        [Rename(*row) for row in renames],
    )


async def departures(conn: AsyncConnection, since: datetime, as_of: datetime) -> list[RosterChange]:
    """Who left in [since, as_of): Wise Old Man's ``left`` events, and departures we only
    noticed in the roster (no event for them), dated when we noticed."""
    shown = account_display_name().label("name")
    visible = member.c.opted_out.is_(False)
    in_window = (group_event.c.at >= since) & (group_event.c.at < as_of)
    events = await conn.execute(
        select(shown, group_event.c.at)
        .join(account, account.c.id == group_event.c.account_id)
        .join(member, member.c.id == account.c.member_id)
        .where(visible, group_event.c.type == "left", in_window)
    )
    found = {(name, at) for name, at in events}
    with_event = select(group_event.c.account_id).where(group_event.c.type == "left", in_window)
    noticed = await conn.execute(
        select(shown, account.c.left_at)
        .join(member, member.c.id == account.c.member_id)
        .where(visible, account.c.left_at >= since, account.c.left_at < as_of)
        .where(account.c.id.not_in(with_event))
    )
    found.update((name, at) for name, at in noticed)
    return [RosterChange(name, at) for name, at in sorted(found, key=lambda f: (f[1], f[0]))]
