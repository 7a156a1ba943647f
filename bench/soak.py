"""Soak: ``clanpulse run`` for weeks of compressed schedule; is its memory flat?

The service runs as its own process (``clanpulse run --time-scale N``: one real second is
N seconds of schedule) against the fake Discord and Wise Old Man servers of this process,
while a feeder keeps posting new chat messages to the fake Discord so every hourly
harvest has real work. Maintenance is moved to weekly so it runs several times.

Every few real seconds the benchmark reads the service's resident memory (VmRSS) and the
virtual time. It reports the RSS after the first virtual day (warm: imports, pools and
first harvests done), at the end, the peak, and the growth per virtual week fitted over
the second half; plus the job history (runs per job, failures). Nothing is asserted:
the figures go to the README.

Run: ``python bench/soak.py`` (21 virtual days at 3600x: about 9 minutes);
``--days 3`` for a smoke run. Results: ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from clanpulse.demo.community import generate_community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.demo.fake_wom import FakeWomConfig, FakeWomServer
from clanpulse.demo.wom_data import generate_wom_group
from clanpulse.store.database import open_database
from clanpulse.store.schema import job_run, message

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "soak.json"
WARM_HOURS = 24


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def slope_per_week(points: list[tuple[float, int]]) -> float:
    """Least-squares growth of RSS (KiB) per virtual week over (virtual hours, KiB) points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var * 24 * 7


def feed(
    server: FakeDiscordServer, channels: list[int], per_second: float, stop: threading.Event
) -> int:
    """Post chat messages to the fake at a steady real-time rate until stopped."""
    posted = 0
    interval = 1.0 / per_second
    while not stop.wait(interval):
        server.community.append_message(channels[posted % len(channels)])
        posted += 1
    return posted


async def history(url: str) -> tuple[dict[str, Counter[str]], int]:
    async with open_database(url, migrate=False) as db, db.read() as conn:
        runs: dict[str, Counter[str]] = {}
        for job, status, count in await conn.execute(
            select(job_run.c.job, job_run.c.status, func.count()).group_by(
                job_run.c.job, job_run.c.status
            )
        ):
            runs.setdefault(job, Counter())[status] = count
        messages = (await conn.execute(select(func.count()).select_from(message))).scalar_one()
    return runs, int(messages)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--days", type=float, default=21, help="virtual days to run")
    p.add_argument("--scale", type=float, default=3600, help="virtual seconds per real second")
    p.add_argument("--members", type=int, default=80)
    p.add_argument("--messages-per-hour", type=float, default=40, help="virtual hour")
    p.add_argument("--sample", type=float, default=2.0, help="real seconds between samples")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    community = generate_community(seed=21, members=args.members, days=30)
    group = generate_wom_group(seed=21, members=min(args.members, 60), days=120)
    real_seconds = args.days * 86400 / args.scale
    workdir = Path(tempfile.mkdtemp(prefix="clanpulse-soak-"))
    url = f"sqlite+aiosqlite:///{workdir / 'soak.db'}"

    with (
        FakeDiscordServer(community, FakeDiscordConfig(time_scale=0.01)) as discord,
        FakeWomServer(group, FakeWomConfig(time_scale=1 / args.scale)) as wom,
    ):
        env = {
            **os.environ,
            "CLANPULSE_DATABASE_URL": url,
            "CLANPULSE_DISCORD_TOKEN": discord.token,
            "CLANPULSE_DISCORD_API_URL": discord.url,
            "CLANPULSE_DISCORD_GUILD_ID": str(discord.guild_id),
            "CLANPULSE_DISCORD_WEBHOOK_URL": discord.webhook_url(),
            "CLANPULSE_WOM_API_URL": wom.url,
            "CLANPULSE_WOM_GROUP_ID": str(wom.group_id),
            "CLANPULSE_SCHEDULE_MAINTAIN": "30 4 * * sun",
            "CLANPULSE_BACKUP_DIR": str(workdir / "backups"),
        }
        stop_feeding = threading.Event()
        channels = [int(c["id"]) for c in community.guild_channels() if c.get("type") == 0][:4]
        per_second = args.messages_per_hour * args.scale / 3600
        feeder = threading.Thread(
            target=feed, args=(discord, channels, per_second, stop_feeding), daemon=True
        )
        log_path = workdir / "run.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "clanpulse.cli",
                    "-q",
                    "run",
                    "--time-scale",
                    str(args.scale),
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
            started = time.monotonic()
            feeder.start()
            samples: list[tuple[float, int]] = []
            print(f"soak: {args.days:g} virtual days in {real_seconds:.0f} s; log {log_path}")
            while (elapsed := time.monotonic() - started) < real_seconds and proc.poll() is None:
                kib = rss_kib(proc.pid)
                if kib is not None:
                    hours = elapsed * args.scale / 3600
                    samples.append((hours, kib))
                    if len(samples) % 15 == 1:
                        print(f"  day {hours / 24:5.1f}: RSS {kib / 1024:6.1f} MiB", flush=True)
                time.sleep(args.sample)
            stop_feeding.set()
            crashed = proc.poll() is not None
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            stop_seconds = time.monotonic() - signalled
        feeder.join()
        posts = len(discord.webhook_posts)

    runs, messages = asyncio.run(history(url))
    warm = [kib for hours, kib in samples if hours >= WARM_HOURS]
    second_half = [(h, k) for h, k in samples if h >= args.days * 24 / 2]
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "virtual_days": args.days,
        "scale": args.scale,
        "real_seconds": round(real_seconds),
        "crashed": crashed,
        "exit_code": code,
        "stop_seconds": round(stop_seconds, 2),
        "samples": len(samples),
        "rss_warm_mib": round(warm[0] / 1024, 1) if warm else None,
        "rss_end_mib": round(samples[-1][1] / 1024, 1) if samples else None,
        "rss_peak_mib": round(max(k for _, k in samples) / 1024, 1) if samples else None,
        "rss_growth_mib_per_week_second_half": round(slope_per_week(second_half) / 1024, 2),
        "messages_stored": messages,
        "webhook_posts": posts,
        "runs": {job: dict(counts) for job, counts in sorted(runs.items())},
        "rss_series": [(round(h, 1), k) for h, k in samples[:: max(1, len(samples) // 60)]],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rss_series"}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"results written to {args.output}")
    if crashed or code != 0:
        print(log_path.read_text()[-3000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
