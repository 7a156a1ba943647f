"""Benchmark: the JSON API under 50 concurrent clients, with and without an import writing.

The database is the demo's (``clanpulse demo --members 300 --days 120``: a 300-member clan
harvested from the in-repo fake Discord and Wise Old Man), built once a day and cached under
``bench/.cache/`` (the demo's data ends at the start of the current UTC day, so a copy from
an earlier day would have nothing in its last days). Every run works on a fresh copy.

Each run starts ``clanpulse serve --port 0`` as its own process on that copy (so the load
generator does not share its event loop or its CPU accounting), warms it up with one
sequential pass over the endpoints (cold and warm times recorded), then lets ``--clients``
(50) asyncio clients, each with its own keep-alive connection (httpx2), send a mix of API
GETs for ``--duration`` seconds: the overview, member lists (7-day XP sort, the inactive),
one random current member, two leaderboards (XP; attack over 90 days), daily activity, the
roster, the purge list and health. Any status other than 200, and any exception (timeout,
reset), is an error.

Two pacings: **closed loop** (each client sends its next request as soon as the answer is
in: a throughput test, where latency is mostly queueing, by Little's law clients /
throughput) and **think time** (each client waits ``--think`` seconds, uniformly drawn,
between requests, like a person clicking around: 50 such people send 60-70 requests/s).

The writer: in the "writer" modes a second process (this script, ``writer``) ingests chat
messages into the same SQLite file through the real write path (``Database.write`` +
``ingest_batch``, as the Discord harvest and the export import do), ``--writer-batch``
(200) messages per transaction by the clan's own Discord accounts in the guild's text
channels, sent "now", back to back (``--writer-pause`` 0) from before the first request
until after the last. Every commit bumps the data version, so the server's cache, which
checks the version at most once a second, sees its results go stale about every second: the
worst case, on purpose. It reports its transactions, messages and commit times.

The views' figures are per minute (everything is computed anew when a minute starts), so
each run (under a minute long) starts such that a minute begins a third into it: one such
moment in every run, not in some.

Measured per run: requests, requests/s, latency p50/p95/p99/max and errors, overall, per
endpoint, per second and leaving out the first seconds of a minute; every request's time
(in the JSON); the CPU time of the server (its event-loop thread and SQLite's threads
apart), the writer and the load generator (``/proc/<pid>/stat``) over the measurement, the
rest of the machine's (``/proc/stat``), the load generator's event-loop lag (how late a 5 ms
sleep wakes up: when this grows, the clients' own process is inflating the latencies), what
was written meanwhile and the WAL's size at the end. Before the first run, a **capacity**
baseline: the same clients, closed loop, on one small cached answer, with Little's law.
``--profile-server`` runs the server under cProfile and prints its own time by area;
``--without LABEL`` leaves an endpoint out of the mix.

Goal (from the issue): API p95 <= 50 ms and zero errors with 50 concurrent clients
on loopback while an import writes continuously into the same SQLite database.

Run: ``python bench/web_load.py`` (four runs of 30 s plus setup and waiting for the right
second of a minute: about 7 minutes; the first run of a day builds the database in about a
minute more). ``--quick``: 10 s runs.
Exit status 1 when any request failed. Results: ``bench/results/web_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results" / "web_load.json"
GOAL_P95_MS = 50.0
DB_NAME = "clanpulse-demo.db"
SERVER_START_TIMEOUT = 120.0
LAG_TICK = 0.005
MINUTE_START_S = 5.0  # "the start of a minute" in the figures that leave it out
CONNECT_LEAD = 4.0  # seconds set aside to connect the clients before an aligned start
CLK_TCK = os.sysconf("SC_CLK_TCK")

# (label, path): "{member}" is replaced by a random current member's id
ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("overview 30d", "/api/v1/overview?window=30d"),
    ("members 7d by xp", "/api/v1/members?window=7d&sort=xp_gained&limit=100"),
    ("members inactive", "/api/v1/members?status=inactive"),
    ("member detail", "/api/v1/members/{member}"),
    ("leaderboard xp", "/api/v1/leaderboard?metric=xp"),
    ("leaderboard attack 90d", "/api/v1/leaderboard?metric=skill:attack&window=90d"),
    ("activity 30d", "/api/v1/activity?window=30d"),
    ("roster", "/api/v1/roster"),
    ("inactive", "/api/v1/inactive"),
    ("health", "/api/v1/health"),
)
# the server's capacity when nothing is computed: a small cached answer, closed loop
CAPACITY_ENDPOINT = (("inactive (cached)", "/api/v1/inactive"),)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# the database


def cached_database(members: int, days: int, rebuild: bool) -> Path:
    """The demo database for today (UTC), built with ``clanpulse demo`` when missing."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    prefix = f"web-load-m{members}-d{days}-"
    directory = CACHE / f"{prefix}{day}"
    path = directory / DB_NAME
    if path.exists() and not rebuild:
        return path
    for stale in CACHE.glob(f"{prefix}*"):  # earlier days: ~50 MB each, never used again
        shutil.rmtree(stale, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"building the demo database ({members} members, {days} days) in {directory} ...")
    started = time.perf_counter()
    building = directory.with_name(directory.name + ".building")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "clanpulse.cli",
            "-q",
            "demo",
            "--dir",
            str(building),
            "--members",
            str(members),
            "--days",
            str(days),
            "--serve-seconds",
            "0",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=CACHE,  # no stray .env of the working directory
    )
    building.rename(directory)
    log(f"  built in {time.perf_counter() - started:.0f} s")
    return path


def fresh_copy(source: Path, workdir: Path) -> Path:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    target = workdir / DB_NAME
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # a consistent copy even if a -wal were left beside the source
    return target


def database_counts(path: Path) -> dict[str, int]:
    wal = path.with_name(path.name + "-wal")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {
            "file_bytes": path.stat().st_size,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "data_version": conn.execute("SELECT version FROM data_version").fetchone()[0],
            "messages": conn.execute("SELECT count(*) FROM message").fetchone()[0],
            "rollup_rows": conn.execute("SELECT count(*) FROM message_rollup").fetchone()[0],
        }


# --------------------------------------------------------------------------------------
# CPU accounting


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    return _stat_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """utime + stime of each live thread of a process, in seconds."""
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        seconds = _stat_seconds(task / "stat")
        if seconds is not None:
            found[int(task.name)] = seconds
    return found


def _stat_seconds(path: Path) -> float | None:
    try:
        stat = path.read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_ticks() -> tuple[int, int]:
    """(idle incl. iowait, total) jiffies of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return values[3] + values[4], sum(values[:8])


# --------------------------------------------------------------------------------------
# the writer process


async def writer_main(
    url: str, batch_size: int, pause: float, seed: int, sent: str, days: int
) -> dict[str, Any]:
    """Ingest chat messages batch after batch until SIGTERM; return what was written.

    ``sent``: "history" (as an export import: each batch one stretch of a channel's past,
    200 messages 5 s apart from a random moment of the last ``days`` days), or "now" (every
    message sent at the moment it is written: all of them land in today's figures)."""
    from sqlalchemy import select

    from clanpulse.records import (
        Channel,
        ChatMessage,
        ClassifiedMessage,
        DiscordUser,
        MessageBatch,
        MessageKind,
    )
    from clanpulse.store.database import open_database
    from clanpulse.store.ingest import IngestCounts, ingest_batch
    from clanpulse.store.schema import account, channel

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    rng = random.Random(seed)
    words = ("gz", "lf tob", "nice drop", "brb", "what world", "mass at 8?", "ty", "lol", "gl")
    totals = IngestCounts()
    commits: list[float] = []
    async with open_database(url, migrate=False) as db:
        async with db.read() as conn:
            authors = [
                DiscordUser(int(r.external_id), r.username, r.global_name, r.nickname)
                for r in await conn.execute(
                    select(account).where(
                        account.c.platform == "discord",
                        account.c.is_bot.is_(False),
                        account.c.member_id.is_not(None),
                    )
                )
            ]
            channels = [
                Channel(int(r.external_id), r.name, r.type, int(r.guild_id) if r.guild_id else None)
                for r in await conn.execute(
                    select(channel).where(channel.c.platform == "discord", channel.c.type == 0)
                )
            ]
        if not authors or not channels:
            raise SystemExit("writer: no Discord accounts or text channels in the database")
        print(f"ready {len(authors)} authors {len(channels)} channels", flush=True)
        last_ms, increment, n = 0, 0, 0
        started = time.perf_counter()
        history_ms = days * 86_400_000
        while not stop.is_set():
            now = datetime.now(UTC)
            now_ms = int(now.timestamp() * 1000)
            ch = channels[n % len(channels)]
            messages = []
            if sent == "now":
                if now_ms != last_ms:
                    last_ms, increment = now_ms, 0
                stamps = []
                for _ in range(batch_size):
                    stamps.append((now_ms, increment % 4096))
                    increment += 1
            else:  # a stretch of the past; batch number in the id's middle bits: unique ids
                first = now_ms - rng.randrange(history_ms)
                stamps = [(first + i * 5000, ((n % 1024) << 12) | i) for i in range(batch_size)]
            for ms, low in stamps:
                message = ChatMessage(
                    id=((ms - 1_420_070_400_000) << 22) | low,
                    channel_id=ch.id,
                    author=rng.choice(authors),
                    sent_at=datetime.fromtimestamp(ms / 1000, UTC),
                    type=0,
                    content=rng.choice(words),
                )
                messages.append(ClassifiedMessage(message, MessageKind.CHAT))
            t0 = time.perf_counter()
            async with db.write() as conn:
                totals.add(await ingest_batch(conn, MessageBatch(ch, messages)))
            commits.append(time.perf_counter() - t0)
            n += 1
            if n == 1:
                print("first commit", flush=True)
            if sent == "now" and increment >= 4096 - batch_size:
                await asyncio.sleep(0.002)  # next millisecond: ids stay unique
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
            else:
                await asyncio.sleep(0)
        elapsed = time.perf_counter() - started
    return {
        "transactions": len(commits),
        "messages_received": totals.received,
        "messages_inserted": totals.inserted,
        "messages_counted": totals.counted,
        "seconds": round(elapsed, 2),
        "transactions_per_s": round(len(commits) / elapsed, 1) if elapsed else None,
        "messages_per_s": round(totals.inserted / elapsed) if elapsed else None,
        "commit_ms": summary_ms(commits),
        "batch": batch_size,
        "pause_s": pause,
        "sent": sent,
    }


def run_writer(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="web_load.py writer")
    p.add_argument("url")
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--sent", choices=("history", "now"), default="history")
    p.add_argument("--days", type=int, default=120)
    args = p.parse_args(argv)
    result = asyncio.run(
        writer_main(args.url, args.batch, args.pause, args.seed, args.sent, args.days)
    )
    print("result " + json.dumps(result), flush=True)
    return 0


class Writer:
    """The writer child: started before the clients, stopped after them."""

    def __init__(
        self, url: str, batch: int, pause: float, sent: str, days: int, workdir: Path
    ) -> None:
        self.log_path = workdir / "writer.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "writer",
                url,
                "--batch",
                str(batch),
                "--pause",
                str(pause),
                "--sent",
                sent,
                "--days",
                str(days),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=workdir,
        )

    def wait_for(self, line_start: str, timeout: float = 120.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"writer exited: {self.log_path.read_text()[-2000:]}")
            if line.startswith(line_start):
                return line.strip()
        raise RuntimeError(f"writer: no {line_start!r} within {timeout:.0f} s")

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            line = self.wait_for("result ", timeout=60)
        finally:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        result: dict[str, Any] = json.loads(line.removeprefix("result "))
        return result


# --------------------------------------------------------------------------------------
# the server process


class Server:
    def __init__(self, db_path: Path, workdir: Path, profile: Path | None = None) -> None:
        self.log_path = workdir / "server.log"
        self._log = self.log_path.open("w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLANPULSE_")} | {
            "CLANPULSE_DATABASE_URL": f"sqlite:///{db_path}"
        }
        python = [sys.executable]
        if profile is not None:  # SIGTERM ends serve normally, so cProfile writes its file
            python += ["-m", "cProfile", "-o", str(profile)]
        self.proc = subprocess.Popen(
            [*python, "-m", "clanpulse.cli", "-q", "serve", "--port", "0"],
            env=env,
            stdout=self._log,
            stderr=self._log,
            cwd=workdir,  # no stray .env of the working directory
        )
        self.address = ""

    def wait_ready(self) -> float:
        started = time.monotonic()
        while time.monotonic() - started < SERVER_START_TIMEOUT:
            text = self.log_path.read_text()
            for line in text.splitlines():
                if "dashboard at http://" in line:
                    self.address = line.split("dashboard at ", 1)[1].split()[0]
                    return time.monotonic() - started
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {text[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"the server did not start within {SERVER_START_TIMEOUT:.0f} s")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


# --------------------------------------------------------------------------------------
# the clients


@dataclass
class Sample:
    endpoint: str
    start: float  # seconds since the measurement began
    latency: float
    status: int  # 0: an exception
    error: str | None = None


@dataclass
class LoopLag:
    lags: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            self.lags.append(time.perf_counter() - t0 - LAG_TICK)


def path_for(template: str, rng: random.Random, member_ids: list[int]) -> str:
    return template.replace("{member}", str(rng.choice(member_ids)))


def new_client(address: str, timeout: float = 30.0) -> httpx.AsyncClient:
    # one connection per client, like a browser tab keeping its connection alive; no TLS
    # on loopback (verify=False skips loading the CA bundle, ~50 ms of CPU per client)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=address, limits=limits, timeout=timeout, verify=False)


async def client_loop(
    n: int,
    client: httpx.AsyncClient,
    endpoints: tuple[tuple[str, str], ...],
    member_ids: list[int],
    think: tuple[float, float] | None,
    t_zero: float,
    deadline: float,
    samples: list[Sample],
) -> None:
    rng = random.Random(1000 + n)
    if think is not None:  # people do not all arrive in the same millisecond
        await asyncio.sleep(rng.uniform(0, think[1]))
    while time.perf_counter() < deadline:
        label, template = rng.choice(endpoints)
        path = path_for(template, rng, member_ids)
        t0 = time.perf_counter()
        try:
            response = await client.get(path)
            status, error = response.status_code, None
            if status != 200:
                error = f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            status, error = 0, f"{type(exc).__name__}: {exc!r}"
        samples.append(Sample(label, t0 - t_zero, time.perf_counter() - t0, status, error))
        if think is not None:
            await asyncio.sleep(rng.uniform(*think))


async def warm_up(address: str) -> tuple[list[int], dict[str, dict[str, Any]]]:
    """One sequential pass over the endpoints, then the same again: each one's cold time
    (computed on request) and warm time (cached); and the current members' ids."""
    async with new_client(address, timeout=60.0) as client:
        t0 = time.perf_counter()
        found = await client.get("/api/v1/members?limit=1000")
        found.raise_for_status()
        first = time.perf_counter() - t0
        member_ids = [row["member_id"] for row in found.json()["members"]]
        rng = random.Random(5)
        paths = {label: path_for(template, rng, member_ids) for label, template in ENDPOINTS}
        times: dict[str, dict[str, Any]] = {
            "first request (all members)": {"cold_ms": round(first * 1000, 1)}
        }
        for attempt in ("cold_ms", "warm_ms"):
            for label, path in paths.items():
                t0 = time.perf_counter()
                response = await client.get(path)
                response.raise_for_status()
                times.setdefault(label, {"path": path})[attempt] = round(
                    (time.perf_counter() - t0) * 1000, 1
                )
    return member_ids, times


# --------------------------------------------------------------------------------------
# statistics


def until_second(second: float) -> float:
    """Seconds until the clock is next ``second`` seconds into a minute (UTC minutes)."""
    return (second - time.time()) % 60


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of unsorted ``values`` (q in 0-100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": round(percentile(values, 50) * 1000, 1),
        "p95": round(percentile(values, 95) * 1000, 1),
        "p99": round(percentile(values, 99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
        "mean": round(statistics.fmean(values) * 1000, 1),
    }


# --------------------------------------------------------------------------------------
# one run


@dataclass(frozen=True)
class Mode:
    writer: bool
    think: tuple[float, float] | None
    sent: str = "history"  # the writer's messages: see writer_main

    @property
    def name(self) -> str:
        pacing = (
            "closed loop" if self.think is None else f"think {self.think[0]:g}-{self.think[1]:g} s"
        )
        writer = "no writer"
        if self.writer:
            writer = "writer" if self.sent == "history" else "writer (sent now)"
        return f"{writer}, {pacing}"


async def measure(
    address: str,
    member_ids: list[int],
    clients: int,
    duration: float,
    think: tuple[float, float] | None,
    pids: dict[str, int],
    endpoints: tuple[tuple[str, str], ...] = ENDPOINTS,
    *,
    start_second: float | None = None,
    prime: bool = False,
    db_path: Path | None = None,
) -> dict[str, Any]:
    """``start_second``: start when the clock is that many seconds into a minute (the
    views' figures are per minute: everything is computed anew after each minute
    starts); ``prime``: request each endpoint once before the clock starts."""
    samples: list[Sample] = []
    if start_second is not None:
        await asyncio.sleep(until_second(start_second - CONNECT_LEAD))
    clients_ = [new_client(address) for _ in range(clients)]
    # connect them all before the clock starts (a connection is set up once per client)
    await asyncio.gather(*(c.get("/api/v1/health") for c in clients_))
    if prime:
        for _, template in endpoints:
            await clients_[0].get(path_for(template, random.Random(0), member_ids))
    if start_second is not None and until_second(start_second) <= CONNECT_LEAD + 1:
        await asyncio.sleep(until_second(start_second))  # else connecting took too long
    stop_lag = asyncio.Event()
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run(stop_lag))
    db_before = database_counts(db_path) if db_path is not None else None
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    threads_before = thread_cpu_seconds(pids["server"])
    idle_before, total_before = machine_ticks()
    load_before = os.getloadavg()[0]
    t_zero = time.perf_counter()
    wall_start = time.time()
    deadline = t_zero + duration
    await asyncio.gather(
        *(
            client_loop(n, client, endpoints, member_ids, think, t_zero, deadline, samples)
            for n, client in enumerate(clients_)
        )
    )
    elapsed = time.perf_counter() - t_zero
    cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    threads_after = thread_cpu_seconds(pids["server"])
    idle_after, total_after = machine_ticks()
    load_after = os.getloadavg()[0]
    db_after = database_counts(db_path) if db_path is not None else None
    stop_lag.set()
    await lag_task
    for client in clients_:
        await client.aclose()

    latencies = [s.latency for s in samples]
    # the first seconds of a minute, where every figure is computed anew, left out
    steady = [s.latency for s in samples if (wall_start + s.start) % 60 >= MINUTE_START_S]
    errors = [s for s in samples if s.error is not None]
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        by_endpoint[s.endpoint].append(s.latency)
    per_second: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        per_second[int(s.start)].append(s.latency)
    cpu: dict[str, Any] = {}
    for name in pids:
        before, after = cpu_before[name], cpu_after[name]
        if before is not None and after is not None:
            cpu[name] = {
                "seconds": round(after - before, 2),
                "share_of_one_core": round((after - before) / elapsed, 3),
            }
    # the rest of the machine (this machine is shared): busy core-seconds not ours
    total_ticks = total_after - total_before
    cores = os.cpu_count() or 1
    if total_ticks:
        busy = (1 - (idle_after - idle_before) / total_ticks) * cores * elapsed
        ours = sum(v["seconds"] for v in cpu.values())
        cpu["machine_idle_share"] = round((idle_after - idle_before) / total_ticks, 3)
        cpu["others_share_of_one_core"] = round(max(0.0, busy - ours) / elapsed, 2)
    cpu["load_average_1min"] = [round(load_before, 2), round(load_after, 2)]
    # the server's event loop (HTTP, FastAPI, SQLAlchemy, the analytics' Python) runs in its
    # main thread; SQLite's own work in aiosqlite's threads (one per pooled connection)
    main = pids["server"]
    loop_s = threads_after.get(main, 0.0) - threads_before.get(main, 0.0)
    other_s = sum(
        t - threads_before.get(tid, 0.0) for tid, t in threads_after.items() if tid != main
    )
    cpu["server_threads_share_of_one_core"] = {
        "event_loop": round(loop_s / elapsed, 3),
        "sqlite_threads": round(other_s / elapsed, 3),
    }
    if samples and "server" in cpu:
        cpu["server_ms_per_request"] = round(cpu["server"]["seconds"] / len(samples) * 1000, 2)
    written = None
    if db_path is not None and db_before is not None and db_after is not None:
        written = {
            "data_versions": db_after["data_version"] - db_before["data_version"],
            "messages": db_after["messages"] - db_before["messages"],
            "rollup_rows": db_after["rollup_rows"] - db_before["rollup_rows"],
            # the WAL only restarts from its beginning after a checkpoint that no reader's
            # snapshot holds back: under constant reads it grows with every commit
            "wal_bytes_at_end": db_after["wal_bytes"],
            "database_bytes_at_end": db_after["file_bytes"],
        }
    return {
        "written_during_measurement": written,
        "started_seconds_into_minute": round(wall_start % 60, 1),
        "seconds": round(elapsed, 2),
        "requests": len(samples),
        "requests_per_s": round(len(samples) / elapsed, 1),
        "errors": len(errors),
        "error_examples": sorted({e.error or "" for e in errors})[:10],
        "latency_ms": summary_ms(latencies),
        "latency_ms_outside_minute_starts": summary_ms(steady),
        "endpoints": {label: summary_ms(by_endpoint[label]) for label, _ in endpoints},
        "per_second": [
            {"second": sec, **summary_ms(values)} for sec, values in sorted(per_second.items())
        ],
        "cpu": cpu,
        "loop_lag_ms": summary_ms(lag.lags),
        # (start s, latency ms, endpoint, status) of every request, for later analysis
        "samples": [
            (round(s.start, 3), round(s.latency * 1000, 2), s.endpoint, s.status) for s in samples
        ],
    }


async def run_mode(
    mode: Mode, source: Path, args: argparse.Namespace, *, capacity: bool = False
) -> dict[str, Any]:
    workdir = CACHE / "web-load-run"
    db_path = fresh_copy(source, workdir)
    before = database_counts(db_path)
    profile = workdir / "server.prof" if args.profile_server else None
    server = Server(db_path, workdir, profile)
    writer: Writer | None = None
    result: dict[str, Any] = {
        "mode": mode.name,
        "writer": mode.writer,
        "think_s": mode.think,
        "parameters_clients": args.clients,
    }
    try:
        result["server_start_s"] = round(server.wait_ready(), 1)
        for _ in range(3):  # the cold and the warm pass in the same minute
            if until_second(0) < 20:
                await asyncio.sleep(until_second(1))
            minute = int(time.time() // 60)
            member_ids, result["warm_up"] = await warm_up(server.address)
            if int(time.time() // 60) == minute:
                break
        result["member_ids"] = len(member_ids)
        pids = {"server": server.proc.pid, "load_generator": os.getpid()}
        if capacity:
            seconds = min(10.0, args.duration / 3)
            log(
                f"  capacity: {args.clients} clients, closed loop, a cached endpoint, {seconds:g} s"
            )
            found = await measure(
                server.address,
                member_ids,
                args.clients,
                seconds,
                None,
                pids,
                CAPACITY_ENDPOINT,
                start_second=CONNECT_LEAD + 1,  # all in one minute: nothing computed
                prime=True,
            )
            rps = found["requests_per_s"]
            result["capacity"] = {
                "endpoint": CAPACITY_ENDPOINT[0][1],
                "requests_per_s": rps,
                "latency_ms": found["latency_ms"],
                "errors": found["errors"],
                "cpu": found["cpu"],
                # Little's law: N clients always waiting on a server doing X requests/s wait
                # N / X on average: no pacing-free run with these clients can do better
                "little_mean_ms": round(args.clients / rps * 1000, 1) if rps else None,
            }
        if mode.writer:
            writer = Writer(
                f"sqlite+aiosqlite:///{db_path}",
                args.writer_batch,
                args.writer_pause,
                args.writer_sent,
                args.days,
                workdir,
            )
            pids["writer"] = writer.proc.pid
            await asyncio.to_thread(writer.wait_for, "ready")
            await asyncio.to_thread(writer.wait_for, "first commit")
        # a new minute a third into the run (below a minute: one minute's start, where
        # everything is computed anew, in every run, not in some)
        start = (60 - args.duration / 3) % 60 if args.duration < 60 else None
        log(f"  {mode.name}: {args.clients} clients for {args.duration:g} s ...")
        mix = tuple(e for e in ENDPOINTS if e[0] not in args.without)
        result.update(
            await measure(
                server.address,
                member_ids,
                args.clients,
                args.duration,
                mode.think,
                pids,
                mix,
                start_second=start,
                db_path=db_path,
            )
        )
        if writer is not None:
            result["writer_stats"] = await asyncio.to_thread(writer.stop)
            writer = None
    finally:
        if writer is not None:
            writer.proc.kill()
            writer.proc.wait()
        result["server_exit"] = server.stop()
    after = database_counts(db_path)
    result["database"] = {"before": before, "after": after}
    result["data_versions_during_run"] = after["data_version"] - before["data_version"]
    if profile is not None and profile.exists():
        result["server_profile"] = profile_summary(profile)
    return result


AREAS = (  # (area, markers in a profiled function's file or name): first match wins
    ("startup: compiling modules", ("builtins.compile", "<frozen importlib", "<frozen zipimport")),
    ("waiting for I/O (epoll)", ("select.epoll",)),
    ("clanpulse analytics", ("/clanpulse/analytics/",)),
    ("clanpulse web, store, rest", ("/clanpulse/",)),
    ("SQLAlchemy (main thread)", ("/sqlalchemy/",)),
    ("aiosqlite hand-off", ("/aiosqlite/", "SimpleQueue", "_queue.")),
    ("uvicorn + h11 (HTTP)", ("/uvicorn/", "/h11/", "_socket.socket")),
    ("FastAPI + Starlette + pydantic", ("/fastapi/", "/starlette/", "/pydantic", "/anyio/")),
    ("asyncio", ("/asyncio/",)),
)


def profile_summary(path: Path, top: int = 20) -> dict[str, Any]:
    """The server's cProfile (its main thread: SQLite itself runs in aiosqlite's threads and
    is not in it): the functions with the most own time, and own time by area."""
    import pstats

    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]

    def name(key: tuple[str, int, str]) -> str:
        file, line, func = key
        for marker in ("/site-packages/", "/src/", "/lib/python3.11/"):
            if marker in file:
                file = file.split(marker, 1)[1]
                break
        return f"{file}:{line}({func})"

    areas: dict[str, float] = defaultdict(float)
    for (file, _line, func), value in entries.items():
        where = f"{file} {func}"
        area = next((a for a, marks in AREAS if any(m in where for m in marks)), "other")
        areas[area] += value[2]
    rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    own = [
        {
            "function": name(k),
            "calls": v[1],
            "own_s": round(v[2], 3),
            "cumulative_s": round(v[3], 3),
        }
        for k, v in rows
    ]
    return {
        "total_s": round(stats.total_tt, 2),  # type: ignore[attr-defined]
        "by_area_s": {a: round(t, 2) for a, t in sorted(areas.items(), key=lambda kv: -kv[1])},
        "by_own": own,
    }


# --------------------------------------------------------------------------------------
# printing


def fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def print_results(runs: list[dict[str, Any]]) -> None:
    print(
        f"\n{'mode':<30} {'requests':>8} {'req/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} "
        f"{'max':>7} {'errors':>6}  (latency in ms)"
    )
    for r in runs:
        lat = r["latency_ms"]
        print(
            f"{r['mode']:<30} {r['requests']:>8} {r['requests_per_s']:>7.1f} {lat['p50']:>7.1f} "
            f"{lat['p95']:>7.1f} {lat['p99']:>7.1f} {lat['max']:>7.1f} {r['errors']:>6}"
        )
    print(
        f"p95 leaving out requests sent in the first {MINUTE_START_S:g} s of a minute (when all "
        "figures are computed anew): "
        + ", ".join(
            f"{r['mode']} {r['latency_ms_outside_minute_starts']['p95']:.1f} ms" for r in runs
        )
    )
    print("\np95 per endpoint (ms)")
    short = [r["mode"].replace("think ", "think\u00a0") for r in runs]
    print(f"{'endpoint':<24}" + "".join(f" {s[:22]:>22}" for s in short))
    for label in runs[0]["endpoints"]:
        cells = []
        for r in runs:
            e = r["endpoints"][label]
            cells.append(f"{e['p95']:.1f} (n={e['count']})" if e["count"] else "-")
        print(f"{label:<24}" + "".join(f" {c:>22}" for c in cells))
    print("\ncold / warm single request before the load (ms), first run")
    for label, t in runs[0]["warm_up"].items():
        cold, warm = fmt(t.get("cold_ms", "-")), fmt(t.get("warm_ms", "-"))
        print(f"  {label:<30} cold {cold:>7}  warm {warm:>7}")
    print(
        "\nCPU over the measurement (share of one core; the machine has "
        f"{os.cpu_count()} cores), event-loop lag of the load generator"
    )
    for r in runs:
        cpu = r["cpu"]
        parts = [
            f"{name} {cpu[name]['share_of_one_core']:.2f}"
            for name in ("server", "writer", "load_generator")
            if name in cpu
        ]
        lag = r["loop_lag_ms"]
        split = cpu.get("server_threads_share_of_one_core", {})
        parts[0] += (
            f" (event loop {split.get('event_loop', 0):.2f}, "
            f"SQLite threads {split.get('sqlite_threads', 0):.2f})"
        )
        print(
            f"  {r['mode']:<30} {', '.join(parts)}, other processes "
            f"{cpu.get('others_share_of_one_core', 0):.2f}; machine idle "
            f"{cpu.get('machine_idle_share', 0):.2f};"
            f" loop lag p95 {lag['p95']:.1f} ms, max {lag['max']:.1f} ms"
        )
    for r in runs:
        if "writer_stats" in r:
            w = r["writer_stats"]
            d = r["written_during_measurement"]
            print(
                f"  writer in {r['mode']}: during the {r['seconds']:.0f} s measured "
                f"{d['data_versions']} commits ({d['data_versions'] / r['seconds']:.1f}/s), "
                f"{d['messages']:,} messages ({d['messages'] / r['seconds']:,.0f}/s), "
                f"WAL at the end {d['wal_bytes_at_end'] / 1e6:,.0f} MB (database "
                f"{d['database_bytes_at_end'] / 1e6:,.0f} MB); over its whole run "
                f"{w['transactions']} transactions, {w['messages_inserted']:,} messages, commit "
                f"p50 {w['commit_ms']['p50']} ms, p95 {w['commit_ms']['p95']} ms"
            )
    for r in runs:
        if "capacity" in r:
            c = r["capacity"]
            lat = c["latency_ms"]
            print(
                f"\ncapacity (same {r['parameters_clients']} clients, closed loop, only "
                f"{c['endpoint']}, cached, no writer): {c['requests_per_s']:.0f} req/s, p50 "
                f"{lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms (Little's law mean "
                f"{c['little_mean_ms']} ms); server {c['cpu'].get('server_ms_per_request')} ms "
                f"CPU per request, {c['cpu']['server']['share_of_one_core']:.2f} core"
            )
    print(
        "\nserver CPU per request (ms): "
        + ", ".join(f"{r['mode']} {r['cpu'].get('server_ms_per_request')}" for r in runs)
    )
    for r in runs:
        if "server_profile" in r:
            prof = r["server_profile"]
            print(
                f"\nserver main thread under cProfile, {r['mode']} ({prof['total_s']} s in all, "
                "start-up included), own time by area:"
            )
            for area, seconds in prof["by_area_s"].items():
                print(f"  {seconds:8.2f} s  {area}")
            print("  functions with the most own time:")
            for row in prof["by_own"]:
                print(f"  {row['own_s']:8.2f} s {row['calls']:>8} calls  {row['function'][:100]}")
    for r in runs:
        if r["errors"]:
            print(f"  errors in {r['mode']}: {r['errors']}, e.g. {r['error_examples'][:3]}")


# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The JSON API under concurrent clients and a writer.")
    p.add_argument("--members", type=int, default=300, help="demo clan size")
    p.add_argument("--days", type=int, default=120, help="demo history in days")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--duration", type=float, default=30.0, help="seconds per run")
    p.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(0.5, 1.0),
        metavar=("MIN", "MAX"),
        help="seconds between a client's requests in the think-time runs",
    )
    p.add_argument(
        "--pacing",
        choices=("both", "closed", "think"),
        default="both",
        help="closed loop, think time, or both (default)",
    )
    p.add_argument("--writer-batch", type=int, default=200, help="messages per transaction")
    p.add_argument(
        "--writer-pause", type=float, default=0.0, help="seconds between the writer's commits"
    )
    p.add_argument(
        "--writer-sent",
        choices=("history", "now"),
        default="history",
        help="when the written messages were sent: spread over the past, as an export "
        "import (default), or all now (every one lands in today's figures: see the README)",
    )
    p.add_argument(
        "--without",
        action="append",
        default=[],
        choices=[label for label, _ in ENDPOINTS],
        metavar="ENDPOINT",
        help="leave this endpoint (its label, e.g. 'member detail') out of the mix; repeatable",
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached demo database")
    p.add_argument(
        "--profile-server",
        action="store_true",
        help="run the server under cProfile (diagnosis: slower, figures not comparable)",
    )
    p.add_argument("--quick", action="store_true", help="10 s runs (smoke test)")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 10.0)
    return args


def code_version() -> dict[str, Any]:
    """The commit measured, and whether ``src/`` differed from it."""

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=BENCH, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "src_modified": bool(git("status", "--short", "--", "../src")),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    source = await asyncio.to_thread(cached_database, args.members, args.days, args.rebuild)
    think = (args.think[0], args.think[1])
    pacings: list[tuple[float, float] | None] = []
    if args.pacing in ("both", "closed"):
        pacings.append(None)
    if args.pacing in ("both", "think"):
        pacings.append(think)
    runs: list[dict[str, Any]] = []
    for pacing in pacings:
        for with_writer in (False, True):
            mode = Mode(with_writer, pacing, args.writer_sent)
            runs.append(await run_mode(mode, source, args, capacity=not runs))
    return {
        "bench": "web_load",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "goal": {"p95_ms": GOAL_P95_MS, "errors": 0},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "code": code_version(),
        "database": str(source),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["writer"]:
        return run_writer(argv[1:])
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    runs = result["runs"]
    print_results(runs)
    for r in runs:
        met = r["latency_ms"]["p95"] <= GOAL_P95_MS and r["errors"] == 0
        print(
            f"goal p95 <= {GOAL_P95_MS:g} ms, no errors, {r['mode']}: "
            f"{'met' if met else 'MISSED'} (p95 {r['latency_ms']['p95']:.1f} ms, "
            f"{r['errors']} errors)"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults written to {args.output}")
    return 1 if any(r["errors"] for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
