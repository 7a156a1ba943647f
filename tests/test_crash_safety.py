"""kill -9 at any moment, run again: the database ends with exactly the source's messages."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.store.database import open_database
from clanpulse.store.schema import message
from tests.harvest_support import (
    env_for,
    expected_discord_counts,
    readable_channels,
    rollup_matches_messages,
    small_clan,
    source_ids,
    stored_discord_counts,
    stored_ids,
)

KILLS = 4


async def _count(url: str) -> int:
    async with open_database(url) as db, db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(message))).scalar_one())


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clanpulse.cli", "harvest", "discord"],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_harvest_killed_repeatedly_then_rerun_equals_the_source(
    db_url: str, tmp_path: Path
) -> None:
    clan = small_clan(seed=5, members=30, days=20)
    rng = random.Random(1234)
    # latency makes the harvest last long enough to be killed in the middle, several times
    config = FakeDiscordConfig(time_scale=0.02, latency=0.01, fault_rate=0.05, fault_seed=3)
    with FakeDiscordServer(clan, config) as server:
        env = env_for(server, db_url)
        asyncio.run(_count(db_url))  # create the schema first, so polling can start at once
        kills = 0
        seen = 0
        while kills < KILLS:
            proc = _start(env, tmp_path)
            deadline = time.monotonic() + 60
            # wait for the harvest to write something new, then kill it at a random instant
            while time.monotonic() < deadline and proc.poll() is None:
                if asyncio.run(_count(db_url)) > seen:
                    break
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.4))
            if proc.poll() is not None:
                break  # it finished before we could kill it: nothing left to interrupt
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            seen = asyncio.run(_count(db_url))
        assert kills >= 2, "the harvest finished too fast to be interrupted"
        final = _start(env, tmp_path)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()

    async def check() -> None:
        readable = readable_channels(clan)
        async with open_database(db_url) as db:
            assert await stored_ids(db) == source_ids(clan, readable)
            assert await stored_discord_counts(db) == expected_discord_counts(clan, readable)
            rolled, raw = await rollup_matches_messages(db)
            assert rolled == raw

    asyncio.run(check())
