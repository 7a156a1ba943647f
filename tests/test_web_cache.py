"""The dashboard's result cache: a data change or a new minute never makes a reader wait,
and an opt-out is never served stale."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from clanpulse.identity import set_opted_out
from clanpulse.store.database import Database
from clanpulse.store.ingest import ingest_batch
from clanpulse.store.schema import member
from clanpulse.web import views
from clanpulse.web.views import ResultCache
from tests.factories import batch, chat, user

MINUTE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def check_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "VERSION_CHECK_SECONDS", 0.0)


async def write_message(db: Database, uid: int, when: str) -> None:
    async with db.write() as conn:
        await ingest_batch(conn, batch(chat(user(uid, f"user{uid}"), when)))


async def test_latest_is_served_stale_once_while_one_recomputation_runs(db: Database) -> None:
    await write_message(db, 1, "2026-03-01 10:00")
    cache = ResultCache(db)
    computed: list[datetime] = []

    def compute(minute: datetime) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            computed.append(minute)
            await asyncio.sleep(0.05)
            return len(computed)

        return run

    assert await cache.latest("k", MINUTE, compute(MINUTE)) == 1  # nothing yet: computed at once
    assert await cache.latest("k", MINUTE, compute(MINUTE)) == 1  # fresh: not computed again
    await write_message(db, 2, "2026-03-01 11:00")
    # new data: the old result at once, twice, and one recomputation behind it
    assert (
        await asyncio.gather(*(cache.latest("k", MINUTE, compute(MINUTE)) for _ in range(5)))
        == [1] * 5
    )
    await asyncio.gather(*cache._tasks)
    assert await cache.latest("k", MINUTE, compute(MINUTE)) == 2
    # a new minute: likewise
    later = MINUTE + timedelta(minutes=1)
    assert await cache.latest("k", later, compute(later)) == 2
    await asyncio.gather(*cache._tasks)
    assert await cache.latest("k", later, compute(later)) == 3
    assert computed == [MINUTE, MINUTE, later]


async def test_an_opt_out_is_never_served_stale(db: Database) -> None:
    await write_message(db, 1, "2026-03-01 10:00")
    cache = ResultCache(db)

    async def visible() -> list[int]:
        async with db.read() as conn:
            found = await conn.execute(select(member.c.id).where(member.c.opted_out.is_(False)))
            return sorted(found.scalars())

    (shown,) = await cache.latest("members", MINUTE, visible)
    async with db.write() as conn:  # as `clanpulse member opt-out` in another process
        await set_opted_out(conn, shown)
    assert await cache.latest("members", MINUTE, visible) == []


async def test_while_data_keeps_changing_a_result_is_recomputed_at_most_every_min_age(
    db: Database,
) -> None:
    await write_message(db, 1, "2026-03-01 10:00")
    cache = ResultCache(db, min_age=3600)
    runs: list[int] = []

    async def compute() -> int:
        runs.append(len(runs) + 1)
        return len(runs)

    assert await cache.latest("k", MINUTE, compute) == 1
    await write_message(db, 2, "2026-03-01 11:00")
    assert await cache.latest("k", MINUTE, compute) == 1
    await asyncio.gather(*cache._tasks)
    assert runs == [1]  # new data, but the result is younger than min_age
    later = MINUTE + timedelta(minutes=1)
    assert await cache.latest("k", later, compute) == 1  # a new minute always refreshes
    await asyncio.gather(*cache._tasks)
    assert await cache.latest("k", later, compute) == 2


async def test_a_result_built_on_others_is_never_older_than_they_are(db: Database) -> None:
    """For now, everything one generation computes reads data at least as new as the
    generation's start: a result recomputed on a new generation does not reuse a figure
    read before it (and so miss a write) just because that figure was still young."""
    await write_message(db, 1, "2026-03-01 10:00")
    cache = ResultCache(db, min_age=0.3)

    async def messages() -> int:
        async with db.read() as conn:
            return len((await conn.execute(select(member.c.id))).all())

    async def page() -> int:  # a figure built on another, as the JSON on the clan report
        return await cache.current(("members", MINUTE), messages)

    assert await cache.latest("page", MINUTE, page) == 1
    await write_message(db, 2, "2026-03-01 11:00")
    # younger than min_age: the same generation, whose figures stay as they were
    assert await cache.current(("members", MINUTE), messages) == 1
    assert await cache.latest("page", MINUTE, page) == 1
    await asyncio.sleep(0.35)
    # a new generation: the page is served once more, then recomputed on new figures
    assert await cache.latest("page", MINUTE, page) == 1
    await asyncio.gather(*cache._tasks)
    assert await cache.latest("page", MINUTE, page) == 2
    assert await cache.current(("members", MINUTE), messages) == 2
