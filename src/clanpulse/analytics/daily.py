"""The clan's chat and XP per local day, for charts and the weekly post.

Days are local days in ``zone`` (stored times are UTC), clipped to ``[start, end)``, so a
window that does not start at a local midnight gets a partial first and last day and the
days always add up to the window.

- **Messages** follow the activity report's rules: counted messages of members who have not
  opted out (or of the members asked for). Whole UTC days inside a local day come from the
  daily rollup; every other piece (all of it when the zone is not UTC, since a local day then
  never holds a whole UTC day) is counted from raw messages, in one query walking the
  ``sent_at`` index over the window.
- **XP** follows Wise Old Man's gain rules applied day by day, so the days of a window add up
  to the window's gain in the reports: per in-game account, a day gains the latest overall XP
  reading before its end minus the latest one before its start, counting only readings
  inside ``[start, end)``; the account's first reading in the window is its baseline (the
  window's start value, as in WOM). Readings taken at an instant belong to the day that
  starts there (half-open, like every window). One query: per account and day boundary an
  index seek on the snapshot primary key, so a week costs 8 seeks per account whatever the
  history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from clanpulse.analytics.gains import reading_time
from clanpulse.analytics.wom_gains import value_gain
from clanpulse.records import Platform
from clanpulse.store.schema import account, member, message, message_rollup, snapshot
from clanpulse.timeutil import utc_midnight


@dataclass(frozen=True, slots=True)
class DayTotals:
    day: date  # the local date
    start: datetime  # UTC; later than the local midnight on a window's partial first day
    end: datetime  # UTC, exclusive
    messages: int
    xp: int | None  # None: no in-game account had a reading in the window by the day's end


def day_cuts(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """``start``, every local midnight strictly inside ``(start, end)``, and ``end`` (UTC)."""
    if end <= start:
        return []
    cuts = [start.astimezone(UTC)]
    day = start.astimezone(zone).date()
    while True:
        day += timedelta(days=1)
        midnight = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        if midnight >= end:
            break
        if midnight > cuts[-1]:
            cuts.append(midnight)
    cuts.append(end.astimezone(UTC))
    return cuts


class MemberDays:
    """Per member, per local day of a window: see :func:`daily_by_member`."""

    def __init__(
        self,
        cuts: list[datetime],
        zone: ZoneInfo,
        messages: dict[int, list[int]],
        xp: dict[int, list[int | None]],
    ) -> None:
        self.cuts = cuts
        self.zone = zone
        self._messages = messages
        self._xp = xp

    def of(self, member_id: int) -> list[DayTotals]:
        """The member's days (no messages and no XP for a member without any)."""
        return self.total([member_id])

    def total(self, member_ids: Collection[int] | None = None) -> list[DayTotals]:
        """The days of ``member_ids`` (default: everyone's) added up."""
        if member_ids is None:
            member_ids = self._messages.keys() | self._xp.keys()
        count = len(self.cuts) - 1
        messages = [0] * count
        xp: list[int | None] = [None] * count
        for member_id in member_ids:
            for i, n in enumerate(self._messages.get(member_id, ())):
                messages[i] += n
            for i, gained in enumerate(self._xp.get(member_id, ())):
                if gained is not None:
                    xp[i] = (xp[i] or 0) + gained
        return [
            DayTotals(
                day=self.cuts[i].astimezone(self.zone).date(),
                start=self.cuts[i],
                end=self.cuts[i + 1],
                messages=messages[i],
                xp=xp[i],
            )
            for i in range(count)
        ]


async def daily_by_member(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    member_ids: Collection[int] | None = None,
) -> MemberDays:
    """Per member and local day of ``[start, end)``: counted messages and XP gained, of every
    member who has not opted out, or only of ``member_ids``. Three queries, whatever the
    number of members: a profile page picks one member out of it."""
    cuts = day_cuts(start, end, zone)
    if not cuts:
        return MemberDays([], zone, {}, {})
    visible: ColumnElement[bool] = member.c.opted_out.is_(False)
    if member_ids is not None:
        visible = visible & member.c.id.in_(list(member_ids))
    messages = await _messages_per_day(conn, cuts, visible)
    xp = await _xp_per_day(conn, cuts, visible)
    return MemberDays(cuts, zone, messages, xp)


async def clan_daily(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    member_ids: Collection[int] | None = None,
) -> list[DayTotals]:
    """Per local day of ``[start, end)``: counted messages and XP gained, of every member who
    has not opted out, or only of ``member_ids`` (e.g. a clan report's rows)."""
    return (await daily_by_member(conn, start, end, zone, member_ids)).total()


def _day_index(cuts: list[datetime], moment: datetime) -> int:
    return max(i for i in range(len(cuts) - 1) if cuts[i] <= moment)


async def _messages_per_day(
    conn: AsyncConnection, cuts: list[datetime], visible: ColumnElement[bool]
) -> dict[int, list[int]]:
    counts: dict[int, list[int]] = defaultdict(lambda: [0] * (len(cuts) - 1))
    # Split the window at UTC midnights too: a piece that is a whole UTC day is in the
    # rollup; the rest are raw-message ranges.
    points = set(cuts)
    midnight = utc_midnight(cuts[0]) + timedelta(days=1)
    while midnight < cuts[-1]:
        points.add(midnight)
        midnight += timedelta(days=1)
    ordered = sorted(points)
    rollup_days: dict[date, int] = {}
    raw: list[tuple[datetime, datetime]] = []
    for low, high in pairwise(ordered):
        if high - low == timedelta(days=1) and low == utc_midnight(low):
            rollup_days[low.date()] = _day_index(cuts, low)
        elif raw and raw[-1][1] == low:
            raw[-1] = (raw[-1][0], high)  # one range per run of adjacent pieces
        else:
            raw.append((low, high))

    if rollup_days:
        r = message_rollup.c
        rows = await conn.execute(
            select(member.c.id, r.day, func.sum(r.messages))
            .join(account, account.c.id == r.account_id)
            .join(member, member.c.id == account.c.member_id)
            .where(visible, r.day.in_(list(rollup_days)))
            .group_by(member.c.id, r.day)
        )
        for member_id, day, n in rows:
            counts[member_id][rollup_days[day]] += int(n or 0)
    if raw:
        m = message.c
        # the day a message falls in, as a CASE over the cuts; grouped in an outer query so
        # PostgreSQL need not match the bound parameters of SELECT and GROUP BY
        which = case(
            *((m.sent_at < cut, literal_column(str(i))) for i, cut in enumerate(cuts[1:-1])),
            else_=literal_column(str(len(cuts) - 2)),
        ).label("day_index")
        inner = (
            select(member.c.id.label("member_id"), which)
            .join(account, account.c.id == m.credited_account_id)
            .join(member, member.c.id == account.c.member_id)
            .where(visible, or_(*(and_(m.sent_at >= lo, m.sent_at < hi) for lo, hi in raw)))
            .subquery()
        )
        rows = await conn.execute(
            select(inner.c.member_id, inner.c.day_index, func.count()).group_by(
                inner.c.member_id, inner.c.day_index
            )
        )
        for member_id, index, n in rows:
            counts[member_id][int(index)] += int(n)
    return dict(counts)


async def _xp_per_day(
    conn: AsyncConnection, cuts: list[datetime], visible: ColumnElement[bool]
) -> dict[int, list[int | None]]:
    s = snapshot.c
    in_window = and_(s.account_id == account.c.id, s.taken_at >= cuts[0])

    # First *when* each reading was taken (the first in the window; the latest before each
    # day's end), then the XP at exactly those keys: the two steps let SQLite seek through
    # the view of hot and archived snapshots as well (see analytics/gains.py).
    names = ["first", *(f"k{i}" for i in range(1, len(cuts)))]
    when = (
        select(
            reading_time(and_(in_window, s.taken_at < cuts[-1]), newest=False).label("first"),
            *(
                reading_time(and_(in_window, s.taken_at < cut), newest=True).label(f"k{i}")
                for i, cut in enumerate(cuts[1:], 1)
            ),
            account.c.id.label("account_id"),
            member.c.id.label("member_id"),
        )
        .select_from(account.join(member, member.c.id == account.c.member_id))
        .where(
            account.c.platform == Platform.OSRS.value,
            account.c.external_id.is_not(None),
            visible,
        )
    )
    point = when.cte("point").prefix_with("MATERIALIZED")
    rows = await conn.execute(
        select(
            point.c.member_id,
            *(
                select(s.overall_xp)
                .where(s.account_id == point.c.account_id, s.taken_at == point.c[name])
                .correlate(point)
                .scalar_subquery()
                .label(name)
                for name in names
            ),
        ).select_from(point)
    )
    totals: dict[int, list[int | None]] = defaultdict(lambda: [None] * (len(cuts) - 1))
    for row in rows:
        gained = totals[row.member_id]
        known = [None, *list(row)[2:]]  # known[i]: latest reading in the window before cut i
        for i in range(len(cuts) - 1):
            before, after = known[i], known[i + 1]
            if after is None:
                continue  # no reading in the window yet by the day's end
            base = before if before is not None else row.first
            gained[i] = (gained[i] or 0) + int(value_gain("overall_xp", base, after))
    return dict(totals)
