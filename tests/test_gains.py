"""Game progress from stored snapshots, with Wise Old Man's own window semantics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clanpulse.analytics.gains import detailed_gains, progress_by_account
from clanpulse.store.database import Database
from clanpulse.store.wom_ingest import store_snapshots, upsert_players
from tests.factories import at
from tests.wom_factories import player, snap

AS_OF = at("2026-03-29 12:00")


async def account_with(db: Database, *snapshots) -> int:  # type: ignore[no-untyped-def]
    async with db.write() as conn:
        accounts = await upsert_players(conn, [player(701, "Fern Whistle")], AS_OF)
        await store_snapshots(conn, accounts[701], snapshots)
        return accounts[701]


async def progress(db: Database, account_id: int):  # type: ignore[no-untyped-def]
    async with db.read() as conn:
        return (await progress_by_account(conn, AS_OF))[account_id]


async def test_start_is_the_first_snapshot_at_or_after_the_window_start(db: Database) -> None:
    aid = await account_with(
        db,
        snap(701, AS_OF - timedelta(days=8), 1_000),  # before the 7d window: not its start
        snap(701, AS_OF - timedelta(days=7), 1_500),  # exactly at the start: it is the start
        snap(701, AS_OF - timedelta(days=1), 4_000),
        snap(701, AS_OF, 9_999),  # at as_of: after the window end, ignored
    )
    found = await progress(db, aid)
    week = found.gains["7d"]
    assert week is not None
    assert week.values["overall_xp"] == 2_500
    assert (week.start_at, week.end_at) == (AS_OF - timedelta(days=7), AS_OF - timedelta(days=1))
    assert found.gains["30d"].values["overall_xp"] == 3_000
    assert found.gains["all"].values["overall_xp"] == 3_000


async def test_no_snapshot_in_the_window_is_no_gain_not_zero(db: Database) -> None:
    aid = await account_with(db, snap(701, AS_OF - timedelta(days=40), 1_000))
    found = await progress(db, aid)
    assert found.gains["7d"] is None and found.gains["30d"] is None
    assert found.gains["90d"] is not None and found.gains["90d"].values["overall_xp"] == 0


async def test_unranked_values_follow_wise_old_mans_rules(db: Database) -> None:
    aid = await account_with(
        db,
        snap(701, AS_OF - timedelta(days=5), -1, zulrah=-1, ehp=5.0, ehb=2.0),
        snap(701, AS_OF - timedelta(days=1), 50_000, zulrah=52, ehp=7.5, ehb=1.0),
    )
    week = (await progress(db, aid)).gains["7d"]
    assert week is not None
    assert week.values["overall_xp"] == 0  # appearing on the overall hiscores is not progress
    assert week.values["boss_kills"] == 52  # -1 -> 52 kills gains 52
    assert week.values["ehp"] == pytest.approx(2.5)
    assert week.values["ehb"] == 0  # totals never go below zero


async def test_last_xp_change_is_when_the_current_total_was_first_reached(db: Database) -> None:
    aid = await account_with(
        db,
        snap(701, AS_OF - timedelta(days=50), 1_000),
        snap(701, AS_OF - timedelta(days=20), 2_000),
        snap(701, AS_OF - timedelta(days=10), 2_000),
        snap(701, AS_OF - timedelta(days=2), 2_000),
    )
    assert (await progress(db, aid)).last_xp_change == AS_OF - timedelta(days=20)


async def test_an_unchanged_history_has_no_known_xp_change(db: Database) -> None:
    aid = await account_with(
        db,
        snap(701, AS_OF - timedelta(days=50), 1_000),
        snap(701, AS_OF - timedelta(days=2), 1_000),
    )
    assert (await progress(db, aid)).last_xp_change is None


async def test_per_skill_and_per_boss_gains_come_from_the_full_snapshots(db: Database) -> None:
    aid = await account_with(
        db,
        snap(701, AS_OF - timedelta(days=6), 10_000, slayer=3_000, zulrah=-1),
        snap(701, AS_OF - timedelta(days=1), 12_500, slayer=4_200, zulrah=60),
    )
    async with db.read() as conn:
        gains = await detailed_gains(conn, aid, AS_OF, "7d")
        assert await detailed_gains(conn, aid, AS_OF - timedelta(days=30), "7d") is None
    assert gains is not None
    assert gains["slayer"].gained == 1_200
    assert gains["zulrah"].gained == 60
    assert gains["overall"].gained == 2_500


async def test_replayed_snapshots_are_stored_once(db: Database) -> None:
    readings = [snap(701, AS_OF - timedelta(days=d), 1_000 * d) for d in (3, 2, 1)]
    aid = await account_with(db, *readings)
    async with db.write() as conn:
        assert await store_snapshots(conn, aid, readings) == 0


async def test_each_account_gets_its_own_last_xp_change(db: Database) -> None:
    # several players in one query: each answer must come from that player's own readings
    async with db.write() as conn:
        accounts = await upsert_players(conn, [player(701, "Fern"), player(702, "Rook")], AS_OF)
        await store_snapshots(
            conn,
            accounts[701],
            [
                snap(701, AS_OF - timedelta(days=d), xp)
                for d, xp in ((30, 100), (20, 200), (1, 200))
            ],
        )
        await store_snapshots(
            conn,
            accounts[702],
            [snap(702, AS_OF - timedelta(days=d), xp) for d, xp in ((30, 5), (3, 9), (2, 9))],
        )
    async with db.read() as conn:
        found = await progress_by_account(conn, AS_OF)
    assert found[accounts[701]].last_xp_change == AS_OF - timedelta(days=20)
    assert found[accounts[702]].last_xp_change == AS_OF - timedelta(days=3)
    assert found[accounts[701]].gains["30d"].values["overall_xp"] == 100
    assert found[accounts[702]].gains["30d"].values["overall_xp"] == 4
