"""Chat activity per member over half-open windows ending at ``as_of``.

Whole UTC days come from the daily rollup; only the partial days at a window's edges are
counted from raw messages (through the ``sent_at`` index), so the numbers are exact for any
``as_of`` and the cost does not grow with history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.analytics.members import AccountRef, people
from clanpulse.store.schema import message, message_rollup
from clanpulse.timeutil import next_utc_midnight, utc_midnight

# Window name -> length; None is "everything before as_of".
WINDOWS: dict[str, timedelta | None] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
SORT_WINDOW = "30d"


@dataclass(frozen=True, slots=True)
class MemberActivity:
    member_id: int
    name: str
    accounts: tuple[AccountRef, ...]
    messages: dict[str, int]
    last_message_at: datetime | None


@dataclass(frozen=True, slots=True)
class ActivityReport:
    as_of: datetime
    windows: tuple[str, ...]
    members: list[MemberActivity]


async def activity_report(conn: AsyncConnection, as_of: datetime) -> ActivityReport:
    counts, last = await message_counts(conn, as_of)
    rows = [
        MemberActivity(
            member_id=person.member_id,
            name=person.name,
            accounts=person.accounts,
            messages={w: sum(counts[a][w] for a in person.account_ids) for w in WINDOWS},
            last_message_at=max((last[a] for a in person.account_ids if a in last), default=None),
        )
        for person in await people(conn)
    ]
    rows.sort(key=lambda r: (-r.messages[SORT_WINDOW], r.name.casefold(), r.member_id))
    return ActivityReport(as_of=as_of, windows=tuple(WINDOWS), members=rows)


async def _counted_between(
    conn: AsyncConnection, low: datetime, high: datetime
) -> list[tuple[int, int, datetime]]:
    m = message.c
    rows = await conn.execute(
        select(m.credited_account_id, func.count(), func.max(m.sent_at))
        .where(m.sent_at >= low, m.sent_at < high, m.credited_account_id.is_not(None))
        .group_by(m.credited_account_id)
    )
    return [(int(a), int(n), newest) for a, n, newest in rows]


async def message_counts(
    conn: AsyncConnection, as_of: datetime
) -> tuple[defaultdict[int, dict[str, int]], dict[int, datetime]]:
    """Counted messages per account and window, and each account's last counted message."""
    today = utc_midnight(as_of)
    starts = {w: as_of - length for w, length in WINDOWS.items() if length is not None}
    counts: defaultdict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(WINDOWS, 0))
    last: dict[int, datetime] = {}

    # Whole days: the rollup, for days before as_of's own (UTC) day.
    r = message_rollup.c
    first_full_day = {w: next_utc_midnight(s).date() for w, s in starts.items()}
    rollup_cols = [
        func.sum(case((r.day >= first_full_day[w], r.messages), else_=0)).label(f"w_{w}")
        for w in starts
    ]
    rollup = await conn.execute(
        select(
            r.account_id,
            *rollup_cols,
            func.sum(r.messages).label("w_all"),
            func.max(r.last_sent_at).label("last"),
        )
        .where(r.day < today.date())
        .group_by(r.account_id)
    )
    for row in rollup:
        cell = counts[row.account_id]
        for w in WINDOWS:
            cell[w] += int(getattr(row, f"w_{w}") or 0)
        if row.last is not None:
            last[row.account_id] = row.last

    # Partial days: as_of's own day up to as_of (every window), and each window's first
    # partial day. One range query each, so every one is a walk along the sent_at index.
    edges: list[tuple[datetime, datetime, tuple[str, ...]]] = [(today, as_of, tuple(WINDOWS))]
    edges += [(s, next_utc_midnight(s), (w,)) for w, s in starts.items()]
    for low, high, windows in edges:
        if low >= high:
            continue
        for account_id, n, newest in await _counted_between(conn, low, high):
            for w in windows:
                counts[account_id][w] += n
            if high == as_of and (account_id not in last or newest > last[account_id]):
                last[account_id] = newest
    return counts, last
