"""Wise Old Man harvest against the fake API over real HTTP: exact, frugal, within limits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx2
import pytest
from sqlalchemy import func, select

from clanpulse.analytics.gains import detailed_gains, progress_by_account
from clanpulse.demo.fake_wom import FakeWomConfig, FakeWomServer
from clanpulse.demo.wom_data import WomGroup, generate_wom_group
from clanpulse.net.http import RetryPolicy
from clanpulse.pipeline.wom_harvest import harvest_wom
from clanpulse.settings import load_settings
from clanpulse.sources.wom_api import parse_player_gained
from clanpulse.sources.wom_client import WomClient
from clanpulse.store.database import Database
from clanpulse.store.schema import account, name_change, snapshot
from clanpulse.store.wom_ingest import player_accounts

SCALE = 0.002  # the real limits (20 per 60 s) in 120 ms windows
QUICK_RETRY = RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture
def group() -> WomGroup:
    return generate_wom_group(seed=11, members=14, days=420, snapshot_every_hours=24)


@pytest.fixture
def server(group: WomGroup) -> Iterator[FakeWomServer]:
    with FakeWomServer(group, FakeWomConfig(time_scale=SCALE)) as fake:
        yield fake


async def harvest(db: Database, fake: FakeWomServer, **settings: object):  # type: ignore[no-untyped-def]
    config = load_settings(
        database_url=db.url, wom_api_url=fake.url, wom_group_id=fake.group_id, **settings
    )
    key = config.wom_api_key.get_secret_value() if config.wom_api_key else None
    async with WomClient.open(
        fake.url, api_key=key, retry=QUICK_RETRY, window=60 * SCALE
    ) as client:
        return await harvest_wom(db, config, client=client)


async def stored_times(db: Database) -> dict[int, set[object]]:
    async with db.read() as conn:
        accounts = {aid: pid for pid, aid in (await player_accounts(conn)).items()}
        rows = await conn.execute(select(snapshot.c.account_id, snapshot.c.taken_at))
        found: dict[int, set[object]] = {}
        for aid, when in rows:
            found.setdefault(accounts[aid], set()).add(when)
    return found


async def test_first_run_holds_a_year_of_every_members_history(
    db: Database, server: FakeWomServer, group: WomGroup
) -> None:
    started = datetime.now(UTC)
    report = await harvest(db, server)
    members = group.members()
    assert report.members == len(members) and report.backfilled == len(members)
    assert server.stats.rate_limited == 0
    stored = await stored_times(db)
    # the backfill reaches 366 days back from the harvest's own clock
    horizon = started + timedelta(minutes=1) - timedelta(days=366)
    for p in members:
        expected = {t for t in group.snapshot_times(p.id) if t >= horizon}
        assert expected <= stored[p.id], p.display_name
    async with db.read() as conn:
        roles = dict((await conn.execute(select(account.c.external_id, account.c.role))).all())
    assert {str(p.id): p.role for p in members}.items() <= roles.items()


async def test_gains_equal_wise_old_mans_own_for_the_same_snapshots(
    db: Database, server: FakeWomServer, group: WomGroup
) -> None:
    await harvest(db, server)
    as_of = server.now()
    async with db.read() as conn:
        accounts = await player_accounts(conn)
        progress = await progress_by_account(conn, as_of)
    with httpx2.Client(base_url=server.url) as http:
        for p in group.members()[:5]:
            for window, days in (("7d", 7), ("30d", 30), ("365d", 365)):
                response = http.get(
                    f"/players/{quote(p.username)}/gained",
                    params={
                        "startDate": (as_of - timedelta(days=days)).isoformat(),
                        "endDate": (as_of - timedelta(milliseconds=1)).isoformat(),
                    },
                )
                theirs = parse_player_gained(response.json(), "gained")
                ours = progress[accounts[p.id]].gains[window]
                if theirs.starts_at is None:
                    assert ours is None
                    continue
                assert ours is not None
                assert ours.values["overall_xp"] == theirs.gains["overall"].gained
                assert ours.values["ehp"] == pytest.approx(theirs.gains["ehp"].gained)
                assert ours.values["ehb"] == pytest.approx(theirs.gains["ehb"].gained)
                async with db.read() as conn:
                    detail = await detailed_gains(conn, accounts[p.id], as_of, window)
                assert detail is not None
                for metric, gain in theirs.gains.items():
                    assert detail[metric].gained == pytest.approx(gain.gained), metric


async def test_an_incremental_run_costs_a_handful_of_requests(
    db: Database, server: FakeWomServer, group: WomGroup
) -> None:
    await harvest(db, server)
    movers = group.members()[:3]
    for p in movers:
        group.add_snapshot(p.id, server.now())
    server.reset_stats()
    report = await harvest(db, server)
    assert report.new_snapshots == len(movers)
    assert server.stats.total_requests <= len(group.members()) // 50 + 3 + 1
    assert server.stats.total_requests == report.requests
    assert not [r for r in server.stats.requests if "/snapshots" in r.path]  # nothing re-read


async def test_without_the_bulk_endpoint_only_updated_players_are_fetched(
    db: Database, group: WomGroup
) -> None:
    config = FakeWomConfig(time_scale=SCALE, bulk_endpoints=False)
    with FakeWomServer(group, config) as fake:
        await harvest(db, fake)
        moved = group.members()[0]
        group.add_snapshot(moved.id, fake.now())
        fake.reset_stats()
        report = await harvest(db, fake)
        player_reads = [r.path for r in fake.stats.requests if r.path.startswith("/v2/players/")]
    assert not report.bulk
    assert player_reads == [f"/v2/players/{moved.username}"]  # the log shows it decoded
    assert report.new_snapshots == 1


@pytest.mark.parametrize("headers", [True, False], ids=["with-headers", "without-headers"])
async def test_the_rate_limit_is_never_exceeded(
    db: Database, group: WomGroup, headers: bool
) -> None:
    config = FakeWomConfig(time_scale=SCALE, rate_limit_headers=headers)
    with FakeWomServer(group, config) as fake:
        report = await harvest(db, fake)
        assert report.requests > 20  # more than one window's worth
        assert fake.stats.rate_limited == 0


async def test_a_renamed_player_keeps_one_history(
    db: Database, server: FakeWomServer, group: WomGroup
) -> None:
    await harvest(db, server)
    renamed = group.members()[1]
    before = len((await stored_times(db))[renamed.id])
    group.rename(renamed.id, "Brand New", server.now())
    group.add_snapshot(renamed.id, server.now())
    report = await harvest(db, server)
    assert report.name_changes >= 1
    async with db.read() as conn:
        accounts = await player_accounts(conn)
        row = (
            await conn.execute(
                select(account.c.username, account.c.normalized_name).where(
                    account.c.id == accounts[renamed.id]
                )
            )
        ).one()
        changes = (
            await conn.execute(
                select(func.count())
                .select_from(name_change)
                .where(
                    name_change.c.account_id == accounts[renamed.id],
                    name_change.c.new_normalized == "brand new",
                )
            )
        ).scalar_one()
        count = (
            await conn.execute(
                select(func.count())
                .select_from(snapshot)
                .where(snapshot.c.account_id == accounts[renamed.id])
            )
        ).scalar_one()
    assert tuple(row) == ("Brand New", "brand new")
    assert changes == 1
    assert count == before + 1  # the history stayed with the player, plus the new reading


async def test_update_all_is_asked_for_with_the_verification_code(
    db: Database, server: FakeWomServer
) -> None:
    report = await harvest(db, server, wom_verification_code="demo-verification-code")
    assert report.refresh_requested is not None
    updates = [r for r in server.stats.requests if r.path.endswith("/update-all")]
    assert len(updates) == 1


async def test_a_wrong_verification_code_is_a_clear_error_without_the_code(
    db: Database, server: FakeWomServer
) -> None:
    with pytest.raises(Exception) as info:
        await harvest(db, server, wom_verification_code="wrong-code-4711")
    assert "403" in str(info.value) and "update-all" in str(info.value)
    assert "wrong-code-4711" not in str(info.value)
