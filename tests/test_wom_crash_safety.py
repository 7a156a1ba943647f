"""kill -9 the Wise Old Man harvest at any moment, run it again: the same data as one clean run.

The harvest runs as the command a cron job runs (`python -m clanpulse.cli harvest wom`) in a
subprocess, against the fake Wise Old Man API served from this process, slowed down by a
little latency per request so that a run lasts long enough to be killed in every phase:
roster, backfill, latest readings, renames, membership events, linking.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from clanpulse.cli import main
from clanpulse.demo.fake_wom import FakeWomConfig, FakeWomServer
from clanpulse.demo.wom_data import WomGroup, generate_wom_group, parse_wom_time
from clanpulse.store.database import open_database
from clanpulse.store.schema import account, group_event, name_change, snapshot
from tests.conftest import fresh_postgres_database, sqlite_url

API_KEY = "crash-test-key"  # the fake's one valid key: 100 requests a minute for the client
KILLS = 3
PAGE = 50  # renames and membership events come 50 to a page, newest first
HOLD = 0.5  # seconds the server holds back the second page: the kill lands meanwhile


# --------------------------------------------------------------------------------------
# a second fresh database on the same backend, for the clean reference run


@pytest.fixture
def reference_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    if db_url.startswith("sqlite"):
        yield sqlite_url(tmp_path / "reference.db")
        return
    with fresh_postgres_database("clanpulse_ref") as url:
        yield url


# --------------------------------------------------------------------------------------
# running the command


def env_for(server: FakeWomServer, url: str) -> dict[str, str]:
    return {
        "CLANPULSE_DATABASE_URL": url,
        "CLANPULSE_WOM_API_URL": server.url,
        "CLANPULSE_WOM_GROUP_ID": str(server.group_id),
        "CLANPULSE_WOM_API_KEY": API_KEY,
    }


@pytest.fixture(autouse=True)
def only_these_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("CLANPULSE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The harvest as cron runs it: a process of its own, which SIGKILL can stop anywhere."""
    return subprocess.Popen(
        [sys.executable, "-m", "clanpulse.cli", "harvest", "wom"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_to_completion(env: dict[str, str]) -> None:
    """The same command run here in the test process: no interpreter start-up to wait for."""
    result = CliRunner().invoke(main, ["harvest", "wom"], env=env)
    if result.exit_code != 0:
        pytest.fail(f"harvest wom exited {result.exit_code}: {result.output}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def wait_for_requests(
    server: FakeWomServer, proc: subprocess.Popen[bytes], count: int, timeout: float = 60
) -> bool:
    """Until the server has had ``count`` requests; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.stats.total_requests >= count:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("the harvest sent no request")


# --------------------------------------------------------------------------------------
# what is stored


@dataclass(frozen=True)
class Stored:
    snapshots: dict[int, set[tuple[datetime, int]]]  # WOM player id -> (taken_at, overall XP)
    snapshot_rows: int
    roster: dict[int, tuple[str, str | None, datetime | None, datetime | None]]
    player_accounts: Counter[int]  # WOM player id -> accounts holding it (must be 1)
    renames: set[tuple[int, int, str, str, datetime]]
    rename_rows: int
    events: set[tuple[int, str, str | None, str | None, datetime]]
    event_rows: int


async def _stored(url: str) -> Stored:
    async with open_database(url) as db, db.read() as conn:
        players = {
            aid: int(xid)
            for aid, xid in await conn.execute(
                select(account.c.id, account.c.external_id).where(
                    account.c.platform == "osrs", account.c.external_id.is_not(None)
                )
            )
        }
        snapshots: dict[int, set[tuple[datetime, int]]] = {}
        rows = await conn.execute(
            select(snapshot.c.account_id, snapshot.c.taken_at, snapshot.c.overall_xp)
        )
        count = 0
        for aid, taken_at, xp in rows:
            snapshots.setdefault(players[aid], set()).add((taken_at, xp))
            count += 1
        roster = {
            players[r.id]: (r.username, r.role, r.joined_at, r.left_at)
            for r in await conn.execute(
                select(
                    account.c.id,
                    account.c.username,
                    account.c.role,
                    account.c.joined_at,
                    account.c.left_at,
                ).where(account.c.id.in_(list(players)))
            )
        }
        renames = {
            (r.id, players[r.account_id], r.old_name, r.new_name, r.resolved_at)
            for r in await conn.execute(select(name_change))
        }
        events = {
            (players[r.account_id], r.type, r.role, r.previous_role, r.at)
            for r in await conn.execute(select(group_event))
        }
        counted = {}
        for table in (name_change, group_event):
            query = select(func.count()).select_from(table)
            counted[table.name] = int((await conn.execute(query)).scalar_one())
    return Stored(
        snapshots,
        count,
        roster,
        Counter(players.values()),
        renames,
        counted["name_change"],
        events,
        counted["group_event"],
    )


def stored(url: str) -> Stored:
    return asyncio.run(_stored(url))


def assert_no_duplicates(found: Stored) -> None:
    assert found.snapshot_rows == sum(len(s) for s in found.snapshots.values())
    assert found.rename_rows == len(found.renames)
    assert found.event_rows == len(found.events)
    assert set(found.player_accounts.values()) == {1}, "one account per player"


def assert_holds_the_source(found: Stored, group: WomGroup) -> None:
    """Independent of any run: every snapshot, rename and event the fake serves."""
    for p in group.members():
        times = {t for t, _ in found.snapshots.get(p.id, set())}
        assert times == set(group.snapshot_times(p.id)), p.display_name
    assert {r[0] for r in found.renames} == {c["id"] for c in group.name_changes()}
    assert {(e[0], e[1], e[4]) for e in found.events} == {
        (e["playerId"], e["type"], parse_wom_time(e["createdAt"])) for e in group.activity()
    }


# --------------------------------------------------------------------------------------
# killed at random moments


def crash_group() -> WomGroup:
    # 24 requests a first run (roster, 20 backfills, latest readings, renames, events); with
    # the latency below it talks for a second or two. Renames and events fit one page: page
    # edges are the next test's business.
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return generate_wom_group(
        seed=12, members=22, days=30, end=end, snapshot_every_hours=12, name_changes=6
    )


@pytest.mark.slow
def test_harvest_killed_repeatedly_then_rerun_equals_one_clean_run(
    db_url: str, reference_url: str
) -> None:
    group = crash_group()
    members = group.members()
    assert len(group.activity()) < PAGE and len(group.name_changes()) < PAGE
    assert len(members) < len(group.players())  # former members come only from events
    # fresh moments every run; the seed is printed to replay a failure's kill schedule
    seed = random.SystemRandom().randrange(10**9)
    print(f"kill schedule seed: {seed}")
    rng = random.Random(seed)
    config = FakeWomConfig(api_key=API_KEY, rate_limits=False, latency=0.05)
    with FakeWomServer(group, config) as server:
        # the reference: one clean run into a fresh database
        run_to_completion(env_for(server, reference_url))

        env = env_for(server, db_url)
        kills = 0
        for attempt in range(KILLS * 3):
            if kills == KILLS:
                break
            # this run asks for the roster, each player not yet backfilled, the latest
            # readings, renames and events; it is killed while its n-th request is under way
            # (or just after), so kills land in every phase, linking at the end included
            pending = len(members) - len(stored(db_url).snapshots) if attempt else len(members)
            nth = rng.randint(3, len(members) - 2) if attempt == 0 else rng.randint(1, pending + 4)
            seen = server.stats.total_requests
            proc = start(env)
            if wait_for_requests(server, proc, seen + nth):
                time.sleep(rng.uniform(0.0, config.latency * 1.5))
            if proc.poll() is not None:
                _, err = proc.communicate()
                assert proc.returncode == 0, err.decode()
                continue  # it finished first: nothing to interrupt this time
            kill(proc)
            kills += 1
            if attempt == 0:  # the first kill lands inside the backfill
                assert 0 < len(stored(db_url).snapshots) < len(members)
        assert kills >= 2, "the harvest finished too fast to be interrupted"
        run_to_completion(env)

    reference = stored(reference_url)
    found = stored(db_url)
    assert_no_duplicates(reference)
    assert_no_duplicates(found)
    assert found.snapshots == reference.snapshots
    assert found.roster == reference.roster
    assert found.renames == reference.renames
    assert found.events == reference.events
    assert_holds_the_source(found, group)


# --------------------------------------------------------------------------------------
# killed right after a page of renames or events was committed


def paged_group() -> WomGroup:
    """Few members (few requests) but more than a page of renames and of membership events."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=9)
    players: list[tuple[str, str, datetime | None, datetime | None]] = [
        (f"Stayer {i}", "onyx", None, None) for i in range(8)
    ]
    players += [
        (f"Leaver {i}", "recruit", start + timedelta(hours=5 * i + 1), end - timedelta(days=2))
        for i in range(30)
    ]
    group = generate_wom_group(
        seed=3, players=players, days=10, end=end, snapshot_every_hours=24, name_changes=0
    )
    for round_ in range(7):
        for n, p in enumerate(group.members()):
            at = start + timedelta(days=round_, hours=n + 1)
            group.rename(p.id, f"Alt {n} r{round_}", at)
    if len(group.name_changes()) <= PAGE or len(group.activity()) <= PAGE:
        pytest.fail("the group must have more than a page of renames and of events")
    return group


def kill_after_first_page(server: FakeWomServer, env: dict[str, str], endpoint: str) -> None:
    """Run the harvest and kill it once the first page of ``endpoint`` is stored.

    The harvest stores a page before it asks for the next; so when the request for the
    second page arrives (held back by a long latency) the first page is committed.
    """
    config = server.config
    proc = start(env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            requests = server.stats.requests
            paths = [(r.path, r.query.get("offset")) for r in requests]
            if any(p.endswith("/bulk-hiscores") for p, _ in paths):
                config.latency = max(config.latency, 0.3)  # room to react to the first page
            if any(p.endswith(endpoint) and o == "0" for p, o in paths):
                config.latency = HOLD  # the second page waits: time for the kill
            if any(p.endswith(endpoint) and o == str(PAGE) for p, o in paths):
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            pytest.fail(f"the harvest ended before its second page of {endpoint}")
    finally:
        kill(proc)
        config.latency = 0.0
        # let the held request finish on the server, so it shuts down cleanly later
        deadline = time.monotonic() + HOLD + 5
        while time.monotonic() < deadline and any(r.status == 0 for r in server.stats.requests):
            time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize(
    "endpoint",
    [
        "/name-changes",
        "/activity",
    ],
)
def test_a_kill_between_two_pages_loses_nothing(tmp_path: Path, endpoint: str) -> None:
    # which pages a run asks for is the pipeline's logic, the same on every backend
    db_url = sqlite_url(tmp_path / "clanpulse.db")
    group = paged_group()
    config = FakeWomConfig(api_key=API_KEY, rate_limits=False)
    with FakeWomServer(group, config) as server:
        env = env_for(server, db_url)
        kill_after_first_page(server, env, endpoint)
        run_to_completion(env)
    found = stored(db_url)
    assert_no_duplicates(found)
    assert_holds_the_source(found, group)
