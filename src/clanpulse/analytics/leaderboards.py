"""Members ranked by one metric over a window, by the clan report's own rules.

The headline boards (messages, XP, EHP, EHB, boss kills) rank the clan report's columns,
so a board and the report never disagree. A per-skill or per-boss board sums, over each
member's current in-game accounts, the metric's gain between the same two readings the
report's XP gain uses (Wise Old Man's rules: ``analytics/wom_gains.py``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.analytics.clan import ClanReport, ClanRow
from clanpulse.analytics.gains import progress_by_account
from clanpulse.analytics.wom_gains import metric_gains
from clanpulse.store.schema import snapshot
from clanpulse.store.wom_ingest import unpack_snapshot_data
from clanpulse.wom_metrics import BOSSES, SKILLS

HEADLINE_METRICS = ("messages", "xp", "ehp", "ehb", "boss_kills")
METRICS: tuple[str, ...] = (
    *HEADLINE_METRICS,
    *(f"skill:{s}" for s in SKILLS),
    *(f"boss:{b}" for b in BOSSES),
)
# seek the two readings of this many accounts per query
_KEYS_PER_QUERY = 200


@dataclass(frozen=True, slots=True)
class Standing:
    rank: int  # equal values share a rank (1, 2, 2, 4)
    member_id: int
    name: str
    value: float


def headline_value(row: ClanRow, metric: str, window: str) -> float | None:
    if metric == "messages":
        return row.messages[window]
    if metric == "xp":
        return row.xp[window]
    if metric == "ehp":
        return row.ehp[window]
    if metric == "ehb":
        return row.ehb[window]
    if metric == "boss_kills":
        return row.boss_kills[window]
    raise ValueError(f"not a headline metric: {metric!r}")


async def leaderboard(
    conn: AsyncConnection, report: ClanReport, metric: str, window: str, limit: int
) -> list[Standing]:
    """The top ``limit`` current members of ``report`` by ``metric`` over ``window``;
    members with nothing gained (or no data) are not ranked."""
    if metric in HEADLINE_METRICS:
        values = {r.member_id: headline_value(r, metric, window) for r in report.rows}
    elif metric in METRICS:
        values = await _metric_by_member(conn, report, metric.split(":", 1)[1], window)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    names = {r.member_id: r.name for r in report.rows}
    ranked = sorted(
        ((v, names[m], m) for m, v in values.items() if v),
        key=lambda e: (-e[0], e[1].casefold(), e[2]),
    )
    standings: list[Standing] = []
    for i, (value, name, member_id) in enumerate(ranked[:limit]):
        tied = standings and standings[-1].value == value
        standings.append(Standing(standings[-1].rank if tied else i + 1, member_id, name, value))
    return standings


async def _metric_by_member(
    conn: AsyncConnection, report: ClanReport, name: str, window: str
) -> dict[int, float | None]:
    owner = {a: r.member_id for r in report.rows for a in r.seat_account_ids}
    progress = await progress_by_account(conn, report.as_of, [window], list(owner))
    spans = {a: g for a, p in progress.items() if (g := p.gains[window]) is not None}
    keys = [(a, t) for a, g in spans.items() for t in (g.start_at, g.end_at)]
    data: dict[tuple[int, datetime], bytes] = {}
    for i in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[i : i + _KEYS_PER_QUERY]
        s = snapshot.c
        rows = await conn.execute(
            select(s.account_id, s.taken_at, s.data).where(
                tuple_(s.account_id, s.taken_at).in_(chunk)
            )
        )
        data.update({(a, t): blob for a, t, blob in rows})

    def add_up() -> dict[int, float | None]:
        totals: defaultdict[int, float | None] = defaultdict(lambda: None)
        for account_id, gain in spans.items():
            start = unpack_snapshot_data(data[(account_id, gain.start_at)])
            end = unpack_snapshot_data(data[(account_id, gain.end_at)])
            gained = metric_gains(start, end).get(name)
            if gained is not None:
                member_id = owner[account_id]
                totals[member_id] = (totals[member_id] or 0) + gained.gained
        return dict(totals)

    # decompressing two snapshots per player is the long part: not on the event loop
    return await asyncio.to_thread(add_up)
