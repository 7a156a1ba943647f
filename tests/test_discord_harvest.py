"""Discord harvest against the fake API over real HTTP: exact, incremental, and robust."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from clanpulse.cli import main
from clanpulse.demo.community import Community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.net.http import RetryPolicy
from clanpulse.pipeline.discord_harvest import harvest_discord
from clanpulse.sources.discord_client import DiscordClient
from clanpulse.store.database import Database
from tests.harvest_support import (
    END,
    env_for,
    expected_bridge_lines,
    expected_discord_counts,
    readable_channels,
    rollup_matches_messages,
    settings_for,
    small_clan,
    source_ids,
    stored_discord_counts,
    stored_ids,
)

FAST = FakeDiscordConfig(time_scale=0.02)
QUICK_RETRY = RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05)
# Injected faults hit whichever request draws them, and which one does depends on timing
# (rate limits, requests side by side): with 3 attempts, three faults in a row on one
# request fail a channel in about one run in ten on a loaded machine. Six make it about
# one in 50,000 (the production policy tries a 5xx five times).
FAULT_TOLERANT_RETRY = RetryPolicy(attempts=6, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture(scope="module")
def clan() -> Community:
    return small_clan()


@pytest.fixture
def server(clan: Community) -> Iterator[FakeDiscordServer]:
    with FakeDiscordServer(clan, FakeDiscordConfig(time_scale=0.02)) as fake:
        yield fake


async def harvest(  # type: ignore[no-untyped-def]
    db: Database, server: FakeDiscordServer, retry: RetryPolicy = QUICK_RETRY, **settings: object
):
    config = settings_for(server, db.url, **settings)
    async with DiscordClient.open(config.discord_api_url, server.token, retry=retry) as client:
        return await harvest_discord(db, config, client=client)


async def test_first_run_backfills_every_readable_channel_exactly(
    db: Database, server: FakeDiscordServer, clan: Community
) -> None:
    report = await harvest(db, server)
    readable = readable_channels(clan)
    assert await stored_ids(db) == source_ids(clan, readable)
    assert await stored_discord_counts(db) == expected_discord_counts(clan, readable)
    rolled, raw = await rollup_matches_messages(db)
    assert rolled == raw
    discord_counted = sum(expected_discord_counts(clan, readable).values())
    assert raw == discord_counted + expected_bridge_lines(clan, readable)
    assert not report.failed
    skipped = {c.channel.id for c in report.channels if c.skipped}
    assert skipped == set(clan.forbidden_channel_ids)  # the voice channel: no access, no failure
    threads = {int(t["id"]) for t in clan.threads() if t["type"] == 11}
    assert threads <= set((await stored_ids(db)).keys())  # active and archived public threads


async def test_a_second_run_fetches_only_what_is_new(
    db: Database, server: FakeDiscordServer, clan: Community
) -> None:
    await harvest(db, server)
    before = await stored_ids(db)
    server.reset_stats()
    quiet = await harvest(db, server)
    assert quiet.totals.inserted == 0
    # per channel one "newest id" probe and nothing else
    message_reads = [r for r in server.stats.requests if r.path.endswith("/messages")]
    assert len(message_reads) == len([c for c in quiet.channels if not c.skipped]) + len(
        [c for c in quiet.channels if c.skipped]
    )
    general = int(clan.channel_by_name("general")["id"])
    added = [clan.append_message(general, f"new message {i}") for i in range(150)]
    again = await harvest(db, server)
    assert again.totals.inserted == 150
    after = await stored_ids(db)
    assert after[general] == before[general] | {int(m["id"]) for m in added}


async def test_rate_limits_and_server_faults_change_nothing_in_the_result(
    db: Database, clan: Community
) -> None:
    config = FakeDiscordConfig(time_scale=0.02, fault_rate=0.15, fault_seed=11)
    with FakeDiscordServer(clan, config) as flaky:
        report = await harvest(db, flaky, retry=FAULT_TOLERANT_RETRY)
        assert flaky.stats.faults > 0
        assert flaky.stats.rate_limited > 0
    readable = readable_channels(clan)
    assert not report.failed, [c.error for c in report.failed]
    assert await stored_ids(db) == source_ids(clan, readable)
    assert report.rate_limited > 0


async def test_a_failing_channel_does_not_stop_the_others(db: Database, clan: Community) -> None:
    general = int(clan.channel_by_name("general")["id"])
    config = FakeDiscordConfig(time_scale=0.02, fail_channels={general})
    with FakeDiscordServer(clan, config) as fake:
        report = await harvest(db, fake)
    assert [c.channel.id for c in report.failed] == [general]
    error = report.failed[0].error or ""
    assert f"GET /channels/{general}/messages" in error and "gave up after 3 attempts" in error
    # general's archived threads cannot be listed either (its listing fails too): a warning
    assert any("archived threads of #general" in w for w in report.warnings)
    threads_of_general = {
        int(t["id"]) for t in clan.threads() if t.get("parent_id") == str(general)
    }
    readable = readable_channels(clan) - {general} - threads_of_general
    stored = await stored_ids(db)
    assert {cid: stored[cid] for cid in readable} == source_ids(clan, readable)


async def test_the_circuit_breaker_stops_calling_an_api_that_keeps_failing(
    db: Database, clan: Community
) -> None:
    from clanpulse.net.http import CircuitOpenError

    config = FakeDiscordConfig(time_scale=0.02, fail_channels=set(clan.message_channel_ids()))
    with FakeDiscordServer(clan, config) as fake:
        with pytest.raises(CircuitOpenError) as info:
            await harvest(db, fake)
        failed_calls = fake.stats.status_counts.get(500, 0)
        total_calls = fake.stats.total_requests
    assert "circuit breaker open: 3 requests in a row failed" in str(info.value)
    # 3 requests x 3 attempts trip it; after that nothing more goes out
    assert failed_calls == 3 * QUICK_RETRY.attempts
    assert total_calls < 3 * QUICK_RETRY.attempts + 15


async def test_a_bad_token_stops_at_the_first_401(db: Database, clan: Community) -> None:
    with FakeDiscordServer(clan, FakeDiscordConfig(time_scale=0.02, token="the-right-one")) as fake:
        config = settings_for(fake, db.url)
        async with DiscordClient.open(fake.url, "a-wrong-token", retry=QUICK_RETRY) as client:
            with pytest.raises(Exception) as info:
                await harvest_discord(db, config, client=client)
        assert fake.stats.total_requests == 1
    assert "401" in str(info.value)
    assert "a-wrong-token" not in str(info.value)


async def test_names_come_from_guild_nicknames_when_the_member_list_is_readable(
    db: Database, server: FakeDiscordServer, clan: Community
) -> None:
    from clanpulse.analytics.activity import activity_report

    report = await harvest(db, server)
    assert report.nicknames > 0
    nicked = [m for m in clan.members if m.nick and not m.is_bot]
    async with db.read() as conn:
        activity = await activity_report(conn, END)
    names = {a.id: a.name for m in activity.members for a in m.accounts}
    assert nicked
    for person in nicked:
        if str(person.id) in names:
            assert names[str(person.id)] == person.nick


async def test_without_the_members_intent_it_warns_and_falls_back(
    db: Database, clan: Community
) -> None:
    with FakeDiscordServer(clan, FakeDiscordConfig(time_scale=0.02, members_intent=False)) as fake:
        report = await harvest(db, fake)
    assert not report.failed
    assert any("GUILD_MEMBERS" in w for w in report.warnings)


def test_the_command_reports_failures_with_exit_status_1(
    tmp_path: object, clan: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    general = int(clan.channel_by_name("general")["id"])
    config = FakeDiscordConfig(time_scale=0.02, fail_channels={general}, fault_seed=1)
    monkeypatch.chdir(str(tmp_path))
    with FakeDiscordServer(clan, config) as fake:
        env = env_for(fake, f"sqlite:///{tmp_path}/c.db")
        result = CliRunner().invoke(main, ["harvest", "discord"], env=env)
    assert result.exit_code == 1
    assert "#general" in result.output and "error" in result.output
    assert fake.token not in result.output


async def test_a_global_429_pauses_every_request_not_just_one_route(
    db: Database, clan: Community
) -> None:
    from clanpulse.demo.fake_discord import RateLimit

    # a tight global limit (20 requests/s) that four channels in parallel keep running into
    config = FakeDiscordConfig(time_scale=0.02, global_limit=RateLimit(2, 5.0))
    with FakeDiscordServer(clan, config) as fake:
        report = await harvest(db, fake)
        global_429 = fake.stats.global_rate_limited
        records = fake.stats.requests
    assert not report.failed
    assert await stored_ids(db) == source_ids(clan, readable_channels(clan))
    assert global_429 > 0
    # after a global 429 every in-flight caller waits: the next global 429 cannot follow
    # within the pause it asked for (2 requests per 100 ms window here)
    limited = [r.at for r in records if r.status == 429]
    gaps = [b - a for a, b in itertools.pairwise(limited)]
    assert sum(1 for g in gaps if g < 0.05) <= len(gaps) // 2


async def test_timeouts_are_retried_with_a_cap(db: Database, clan: Community) -> None:
    from clanpulse.net.http import Timeouts

    config = FakeDiscordConfig(time_scale=0.02, latency=0.3)
    with FakeDiscordServer(clan, config) as slow:
        settings = settings_for(slow, db.url)
        async with DiscordClient.open(
            slow.url, slow.token, retry=QUICK_RETRY, timeouts=Timeouts(connect=1.0, read=0.1)
        ) as client:
            with pytest.raises(Exception) as info:
                await harvest_discord(db, settings, client=client)
        assert slow.stats.total_requests == QUICK_RETRY.attempts
    assert "timed out; gave up after 3 attempts" in str(info.value)
