"""Game progress per account over windows ending at ``as_of``, from stored snapshots.

Wise Old Man's semantics: the start value is the first snapshot at or after the window
start, the end value the latest snapshot before ``as_of``; with no snapshot in the window
there is no gain (``None``, not 0). Every lookup is an index seek per account and window
(primary key ``(account_id, taken_at)``), so the cost does not grow with history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.analytics.wom_gains import HeadlineColumn, MetricGain, metric_gains, value_gain
from clanpulse.records import Platform
from clanpulse.store.schema import account, snapshot
from clanpulse.store.wom_ingest import unpack_snapshot_data

GAIN_WINDOWS: dict[str, timedelta | None] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
    "all": None,
}
HEADLINE: tuple[HeadlineColumn, ...] = get_args(HeadlineColumn)
PAIR_CHUNK = 500  # (account, time) pairs per lookup query


@dataclass(frozen=True, slots=True)
class Gain:
    start_at: datetime
    end_at: datetime
    values: dict[str, float]  # headline column -> gained


@dataclass(frozen=True, slots=True)
class Progress:
    """One account's progress: gains per window, and when its XP last changed."""

    gains: dict[str, Gain | None]
    last_xp_change: datetime | None
    end_at: datetime | None  # its latest reading before as_of


def _bounds(as_of: datetime, windows: Iterable[str]) -> dict[str, datetime | None]:
    return {
        w: None if GAIN_WINDOWS[w] is None else as_of - GAIN_WINDOWS[w]  # type: ignore[operator]
        for w in windows
    }


async def progress_by_account(
    conn: AsyncConnection,
    as_of: datetime,
    windows: Sequence[str] = tuple(GAIN_WINDOWS),
    account_ids: Sequence[int] | None = None,
) -> dict[int, Progress]:
    """Gains of every tracked in-game account (or of ``account_ids``)."""
    s = snapshot.c
    before = and_(s.account_id == account.c.id, s.taken_at < as_of)
    end_at = select(func.max(s.taken_at)).where(before).scalar_subquery()
    first_at = select(func.min(s.taken_at)).where(before).scalar_subquery()
    starts = {
        w: select(func.min(s.taken_at)).where(before, s.taken_at >= start).scalar_subquery()
        for w, start in _bounds(as_of, windows).items()
        if start is not None
    }
    query = select(
        account.c.id,
        end_at.label("end_at"),
        first_at.label("first_at"),
        *(sub.label(f"start_{w}") for w, sub in starts.items()),
    ).where(account.c.platform == Platform.OSRS.value, account.c.external_id.is_not(None))
    if account_ids is not None:
        query = query.where(account.c.id.in_(account_ids))
    timeline = [row for row in await conn.execute(query) if row.end_at is not None]

    wanted = {(row.id, row.end_at) for row in timeline} | {
        (row.id, row.first_at) for row in timeline
    }
    for row in timeline:
        wanted.update((row.id, getattr(row, f"start_{w}")) for w in starts)
    values = await _values(conn, {pair for pair in wanted if pair[1] is not None})
    changed = await _xp_reached_at(
        conn, as_of, {row.id: values[(row.id, row.end_at)]["overall_xp"] for row in timeline}
    )

    found: dict[int, Progress] = {}
    for row in timeline:
        end = values[(row.id, row.end_at)]
        gains: dict[str, Gain | None] = {}
        for w in windows:
            start_at = row.first_at if w not in starts else getattr(row, f"start_{w}")
            if start_at is None:
                gains[w] = None
                continue
            start = values[(row.id, start_at)]
            gains[w] = Gain(
                start_at,
                row.end_at,
                {col: value_gain(col, start[col], end[col]) for col in HEADLINE},
            )
        reached = changed.get(row.id)
        # reaching today's XP at our first reading says nothing about when it changed
        last_change = reached if reached is not None and reached > row.first_at else None
        found[row.id] = Progress(gains, last_change, row.end_at)
    return found


async def _values(
    conn: AsyncConnection, pairs: set[tuple[int, datetime]]
) -> dict[tuple[int, datetime], dict[str, Any]]:
    s = snapshot.c
    found: dict[tuple[int, datetime], dict[str, Any]] = {}
    ordered = sorted(pairs)
    for i in range(0, len(ordered), PAIR_CHUNK):
        chunk = ordered[i : i + PAIR_CHUNK]
        rows = await conn.execute(
            select(s.account_id, s.taken_at, *(s[c] for c in HEADLINE)).where(
                tuple_(s.account_id, s.taken_at).in_(chunk)
            )
        )
        for row in rows:
            found[(row.account_id, row.taken_at)] = {c: row._mapping[c] for c in HEADLINE}
    return found


async def _xp_reached_at(
    conn: AsyncConnection, as_of: datetime, xp: dict[int, int]
) -> dict[int, datetime]:
    """When each account first reached the XP it has now: the time XP last changed."""
    s = snapshot.c
    found: dict[int, datetime] = {}
    items = sorted(xp.items())
    for i in range(0, len(items), PAIR_CHUNK):
        chunk = items[i : i + PAIR_CHUNK]
        rows = await conn.execute(
            select(s.account_id, func.min(s.taken_at))
            .where(tuple_(s.account_id, s.overall_xp).in_(chunk), s.taken_at < as_of)
            .group_by(s.account_id)
        )
        found.update({aid: when for aid, when in rows})
    return found


async def detailed_gains(
    conn: AsyncConnection, account_id: int, as_of: datetime, window: str
) -> dict[str, MetricGain] | None:
    """Per-skill, per-boss and per-activity gains of one account (None: no data in window)."""
    progress = (await progress_by_account(conn, as_of, [window], [account_id])).get(account_id)
    gain = progress.gains.get(window) if progress else None
    if gain is None:
        return None
    rows = await conn.execute(
        select(snapshot.c.taken_at, snapshot.c.data).where(
            snapshot.c.account_id == account_id,
            snapshot.c.taken_at.in_([gain.start_at, gain.end_at]),
        )
    )
    data = {when: unpack_snapshot_data(blob) for when, blob in rows}
    return metric_gains(data[gain.start_at], data[gain.end_at])
