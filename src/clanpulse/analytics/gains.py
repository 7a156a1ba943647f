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

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

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


def reading_time(condition: ColumnElement[bool], *, newest: bool) -> ScalarSelect[Any]:
    """When the newest (or the oldest) snapshot matching ``condition`` was taken: one seek
    on the primary key ``(account_id, taken_at)`` when ``condition`` fixes the account."""
    s = snapshot.c
    return (
        select(s.taken_at)
        .where(condition)
        .order_by(s.taken_at.desc() if newest else s.taken_at.asc())
        .limit(1)
        .scalar_subquery()
    )


async def progress_by_account(
    conn: AsyncConnection,
    as_of: datetime,
    windows: Sequence[str] = tuple(GAIN_WINDOWS),
    account_ids: Sequence[int] | None = None,
) -> dict[int, Progress]:
    """Gains of every tracked in-game account (or of ``account_ids``).

    One query of correlated index seeks per account, whatever the history: first *when*
    each reading of interest was taken (the latest before ``as_of``, the first ever, the
    first in each window: a seek on the primary key ``(account_id, taken_at)`` that stops at
    the first row), then the headline values at exactly those keys. The two steps, rather
    than one ``SELECT value ... ORDER BY taken_at LIMIT 1``, let SQLite seek through the view
    of hot and archived snapshots too (``store/archive_schema.py``), where it can flatten
    an ordered lookup only when it selects the ordering column itself.
    """
    s = snapshot.c
    before = and_(s.account_id == account.c.id, s.taken_at < as_of)
    points: dict[str, tuple[Any, bool]] = {"end": (before, True), "first": (before, False)}
    for w, start in _bounds(as_of, windows).items():
        if start is not None:
            points[w] = (and_(before, s.taken_at >= start), False)
    taken = [
        reading_time(condition, newest=newest).label(name)
        for name, (condition, newest) in points.items()
    ]
    when = select(account.c.id.label("account_id"), *taken).where(
        account.c.platform == Platform.OSRS.value, account.c.external_id.is_not(None)
    )
    if account_ids is not None:
        when = when.where(account.c.id.in_(account_ids))
    # computed once per account: inlined, every reference would seek its reading again
    point = when.cte("point").prefix_with("MATERIALIZED")

    def at(name: str, col: str) -> Any:
        return (
            select(s[col])
            .where(s.account_id == point.c.account_id, s.taken_at == point.c[name])
            .correlate(point)  # also when nested two levels down (in ``reached``)
            .scalar_subquery()
        )

    readings = [at(name, col).label(f"{name}__{col}") for name in points for col in HEADLINE]
    # when XP last changed: the first reading that had the latest XP total
    again = snapshot.alias("again")
    reached = (
        select(again.c.taken_at)
        .where(
            again.c.account_id == point.c.account_id,
            again.c.overall_xp == at("end", "overall_xp"),
            again.c.taken_at < as_of,
        )
        .order_by(again.c.taken_at)
        .limit(1)
        .scalar_subquery()
    )
    query = select(
        point.c.account_id.label("id"),
        reached.label("reached"),
        *[point.c[name].label(f"{name}__taken_at") for name in points],
        *readings,
    )

    found: dict[int, Progress] = {}
    for row in await conn.execute(query):
        values = row._mapping
        end_at = values["end__taken_at"]
        if end_at is None:
            continue  # no reading before as_of: nothing to say
        gains: dict[str, Gain | None] = {}
        for w in windows:
            origin = "first" if w not in points else w
            start_at = values[f"{origin}__taken_at"]
            gains[w] = (
                None
                if start_at is None
                else Gain(
                    start_at,
                    end_at,
                    {
                        col: value_gain(col, values[f"{origin}__{col}"], values[f"end__{col}"])
                        for col in HEADLINE
                    },
                )
            )
        first_at = values["first__taken_at"]
        # reaching today's XP at our first reading says nothing about when it changed
        last_change = row.reached if row.reached is not None and row.reached > first_at else None
        found[row.id] = Progress(gains, last_change, end_at)
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
