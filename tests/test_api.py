"""The JSON API, /api/v1, over a clan harvested for real, on SQLite and on PostgreSQL.

Every figure is checked against something that computes it another way: the CLI's clan
report, the analytics functions called directly, or plain SQL over the store. Requests go
over real HTTP to the dashboard served on a loopback port. The clan is built once per
backend; the tests that change data come last and keep their checks relative.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cmp_to_key
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from clanpulse.analytics.clan import ClanReport, clan_report
from clanpulse.analytics.daily import DayTotals, clan_daily
from clanpulse.analytics.gains import detailed_gains
from clanpulse.ops.jobs import BACKUP, JOBS, WATCHDOG
from clanpulse.ops.runs import recorded_run
from clanpulse.ops.scheduler import Service
from clanpulse.store.database import Database, open_database
from clanpulse.store.ingest import ingest_batch
from clanpulse.store.schema import (
    account,
    group_event,
    job_run,
    member,
    message,
    name_change,
)
from clanpulse.web.views import Views
from clanpulse.wom_metrics import BOSSES, SKILLS
from tests.cli_support import clanpulse
from tests.conftest import BACKENDS, fresh_postgres_database, sqlite_url
from tests.factories import batch, chat, user
from tests.web_support import AS_OF, build_clan, served, web_settings

# a smaller clan than build_clan's default (half the build time), still with new,
# active and inactive members, renames, joins and departures
MEMBERS = 25
INACTIVE_DAYS = 5
# local days that are not UTC days (and, for most of the year, a daylight saving change
# inside the 90-day window)
ZONE = "Europe/Berlin"
WINDOWS = ("7d", "30d", "90d")
WINDOW_DAYS = {"7d": 7, "30d": 30, "90d": 90}
TOKEN = "s3cret-Admin-Token-0f9a8b7c6d"
TIME_COLUMNS = ("joined_at", "last_message_at", "last_xp_change_at", "last_seen_at")
HEADLINE = {
    "messages": "messages",
    "xp": "xp_gained",
    "ehp": "ehp_gained",
    "ehb": "ehb_gained",
    "boss_kills": "boss_kills_gained",
}
LEADERBOARDS = (*HEADLINE, "skill:attack", "skill:woodcutting", "boss:zulrah")
VERSION_WAIT = 3.0  # the cache checks the data version at most once a second


# -- the clan, once per backend ----------------------------------------------------------


async def _build(urls: list[str]) -> None:
    async with AsyncExitStack() as stack:
        # opened one after the other (the migrations are not safe side by side), then
        # harvested side by side: mostly waiting on the fake servers' rate limits
        dbs = [await stack.enter_async_context(open_database(url)) for url in urls]
        await asyncio.gather(*(build_clan(db, members=MEMBERS) for db in dbs))


@pytest.fixture(scope="module")
def clans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The clan on every backend there is, built at once; PostgreSQL's absence (where it
    may be absent) is noted as the reason to skip."""
    urls = {"sqlite": sqlite_url(tmp_path_factory.mktemp("api") / "clan.db")}
    with ExitStack() as stack:
        try:
            urls["postgresql"] = stack.enter_context(fresh_postgres_database())
        except pytest.skip.Exception as exc:
            urls["postgresql-skipped"] = str(exc)
        asyncio.run(_build([u for k, u in urls.items() if k in BACKENDS]))
        yield urls


@pytest.fixture(scope="module", params=BACKENDS)
def clan_url(request: pytest.FixtureRequest, clans: dict[str, str]) -> str:
    if request.param not in clans:
        pytest.skip(clans[f"{request.param}-skipped"])
    return clans[request.param]


@pytest.fixture
def url(clan_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The clan's database, also for the CLI (which reads its settings from the env)."""
    monkeypatch.setenv("CLANPULSE_DATABASE_URL", clan_url)
    monkeypatch.setenv("CLANPULSE_INACTIVE_DAYS", str(INACTIVE_DAYS))
    monkeypatch.setenv("CLANPULSE_TIMEZONE", ZONE)
    monkeypatch.delenv("CLANPULSE_ADMIN_TOKEN", raising=False)
    return clan_url


# -- helpers -------------------------------------------------------------------------------


@dataclass
class Api:
    client: httpx.AsyncClient
    db: Database
    service: Service
    bodies: list[bytes]

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, **kwargs)
        self.bodies.append(response.content)
        self.bodies.append(repr(list(response.headers.items())).encode())
        return response

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.request("GET", path, params=params)
        assert response.status_code == 200, (path, params, response.text)
        assert response.headers["content-type"] == "application/json"
        return response.json()

    async def members(self, window: str = "30d", **params: Any) -> list[dict[str, Any]]:
        page = await self.get("/members", window=window, limit=1000, **params)
        assert page["total"] == len(page["members"])
        rows: list[dict[str, Any]] = page["members"]
        return rows


@asynccontextmanager
async def api(url: str, **extra: Any) -> AsyncIterator[Api]:
    settings = {"inactive_days": INACTIVE_DAYS, "timezone": ZONE, **extra}
    async with (
        served(url, now=AS_OF, **settings) as (address, db, service),
        httpx.AsyncClient(base_url=f"{address}/api/v1", timeout=30) as client,
    ):
        yield Api(client, db, service, [])


def iso(moment: datetime) -> str:
    return moment.isoformat()


def when(text: str | None) -> datetime | None:
    if text is None:
        return None
    # the API's times are UTC, written with a Z
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


async def cli_report() -> dict[str, Any]:
    """``clanpulse report clan --format json`` as of AS_OF (run beside the event loop)."""
    result = await asyncio.to_thread(
        clanpulse, "report", "clan", "--format", "json", "--as-of", iso(AS_OF)
    )
    document: dict[str, Any] = json.loads(result.stdout)
    return document


async def report_of(db: Database) -> ClanReport:
    async with db.read() as conn:
        return await clan_report(conn, AS_OF, INACTIVE_DAYS)


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def window_start(window: str) -> datetime:
    return AS_OF - timedelta(days=WINDOW_DAYS[window])


def check_day_cuts(days: list[dict[str, Any]], window: str) -> None:
    """The days are the window cut at local midnights: partial first and last days."""
    zone = ZoneInfo(ZONE)
    start = window_start(window)
    first = start.astimezone(zone).date()
    last = (AS_OF - timedelta(microseconds=1)).astimezone(zone).date()
    assert [d["day"] for d in days] == [
        (first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)
    ]
    assert when(days[0]["start"]) == start
    assert when(days[-1]["end"]) == AS_OF
    for day, following in itertools.pairwise(days):
        assert day["end"] == following["start"]
        midnight = when(following["start"]).astimezone(zone)  # type: ignore[union-attr]
        assert (midnight.hour, midnight.minute, midnight.date().isoformat()) == (
            0,
            0,
            following["day"],
        )


def xp_total(days: list[dict[str, Any]]) -> int | None:
    known = [d["xp_gained"] for d in days if d["xp_gained"] is not None]
    return sum(known) if known else None


def days_of(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (d["day"], when(d["start"]), when(d["end"]), d["messages"], d["xp_gained"]) for d in found
    ]


def expected_days(days: list[DayTotals]) -> list[tuple[Any, ...]]:
    return [(d.day.isoformat(), d.start, d.end, d.messages, d.xp) for d in days]


def ranked(entries: list[tuple[int, str, float | None]]) -> list[tuple[int, int, str, float]]:
    """(rank, member id, name, value) of the entries with a positive value, best first;
    equal values share a rank."""
    kept = sorted(
        ((v, name, m) for m, name, v in entries if v is not None and v > 0),
        key=lambda e: (-e[0], e[1].casefold(), e[2]),
    )
    return [
        (1 + sum(1 for other, _, _ in kept if other > v), m, name, round(v, 2))
        for v, name, m in kept
    ]


def standings(board: dict[str, Any]) -> list[tuple[int, int, str, float]]:
    return [(s["rank"], s["member_id"], s["name"], s["value"]) for s in board["standings"]]


def expected_order(rows: list[dict[str, Any]], column: str, order: str) -> list[dict[str, Any]]:
    """Sorted by ``column`` (text case-insensitively), equal values by name, then id;
    rows without a value last, by name."""

    def value(row: dict[str, Any]) -> Any:
        v = row[column]
        if column in TIME_COLUMNS:
            return when(v)
        return v.casefold() if isinstance(v, str) else v

    def tie(row: dict[str, Any]) -> tuple[str, int]:
        return row["name"].casefold(), row["member_id"]

    def compare(x: dict[str, Any], y: dict[str, Any]) -> int:
        a, b = value(x), value(y)
        if a != b:
            sign = -1 if a < b else 1
            return sign if order == "asc" else -sign
        return -1 if tie(x) < tie(y) else 1

    known = [r for r in rows if r[column] is not None]
    unknown = [r for r in rows if r[column] is None]
    return sorted(known, key=cmp_to_key(compare)) + sorted(unknown, key=tie)


async def counted_messages(
    db: Database, account_ids: list[int], start: datetime, end: datetime
) -> int:
    async with db.read() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(message)
                    .where(
                        message.c.credited_account_id.in_(account_ids),
                        message.c.sent_at >= start,
                        message.c.sent_at < end,
                    )
                )
            ).scalar_one()
        )


async def account_ids_of(db: Database, member_id: int) -> list[int]:
    async with db.read() as conn:
        found = await conn.execute(select(account.c.id).where(account.c.member_id == member_id))
        return [int(a) for a in found.scalars()]


async def poll(check: Any, seconds: float = VERSION_WAIT) -> Any:
    """Call the coroutine function ``check`` until it returns something true (or time ends)."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


# -- 1. members and overview are the CLI's clan report -----------------------------------


async def test_members_are_the_cli_clan_report_in_every_window(url: str) -> None:
    document = await cli_report()
    assert when(document["as_of"]) == AS_OF
    cli = {r["member_id"]: r for r in document["members"]}
    async with api(url) as a:
        report = await report_of(a.db)
        ours = {r.member_id: r for r in report.rows}
        assert ours.keys() == cli.keys()
        for window in WINDOWS:
            page = await a.get("/members", window=window, limit=1000, as_of=iso(AS_OF))
            assert (when(page["as_of"]), page["window"]) == (AS_OF, window)
            assert page["total"] == len(page["members"]) == len(cli)
            rows = {r["member_id"]: r for r in page["members"]}
            assert rows.keys() == cli.keys()
            for member_id, row in rows.items():
                theirs, mine = cli[member_id], ours[member_id]
                where = (window, member_id, row["name"])
                for key in ("name", "role", "status"):
                    assert row[key] == theirs[key], (*where, key)
                for key in ("joined_at", "last_message_at", "last_xp_change_at"):
                    assert when(row[key]) == when(theirs[key]), (*where, key)
                assert row["messages"] == theirs["messages"][window], where
                assert row["xp_gained"] == theirs["xp_gained"][window], where
                if window == "30d":  # the CLI prints these for 30 days only
                    gains = (
                        theirs["ehp_gained_30d"],
                        theirs["ehb_gained_30d"],
                        theirs["boss_kills_gained_30d"],
                    )
                else:
                    gains = (
                        rounded(mine.ehp[window]),
                        rounded(mine.ehb[window]),
                        mine.boss_kills[window],
                    )
                shown = (row["ehp_gained"], row["ehb_gained"], row["boss_kills_gained"])
                assert shown == gains, where
                seen = [t for t in (row["last_message_at"], row["last_xp_change_at"]) if t]
                assert when(row["last_seen_at"]) == max(map(when, seen), default=None), where  # type: ignore[type-var]
            # the same members in the same order, sorted by the same key
            by_name = await a.members(window, sort="name", order="asc")
            cli_by_name = sorted(cli.values(), key=lambda r: (r["name"].casefold(), r["member_id"]))
            assert [r["member_id"] for r in by_name] == [r["member_id"] for r in cli_by_name]
            by_messages = [r["messages"] for r in page["members"]]
            assert by_messages == sorted(
                (r["messages"][window] for r in cli.values()), reverse=True
            )
    # the clan the tests rely on has every kind of member
    assert {r["status"] for r in cli.values()} == {"new", "active", "inactive"}
    assert any(r["xp_gained"]["30d"] is None for r in cli.values())


async def test_overview_is_the_cli_summary(url: str) -> None:
    summary = (await cli_report())["summary"]
    async with api(url) as a:
        overview = await a.get("/overview", window="30d")
        roster = await a.get("/roster", window="30d")
        week = await a.get("/overview", window="7d")
        week_rows = await a.members("7d")
    assert (when(overview["as_of"]), overview["window"]) == (AS_OF, "30d")
    assert overview["members"] == summary["members"]
    assert overview["by_status"] == summary["by_status"]
    assert overview["messages"] == summary["messages_30d"]
    assert overview["xp_gained"] == summary["xp_gained_30d"]
    top = [(t["member_id"], t["name"], t["value"]) for t in overview["top_messages"][:3]]
    cli_top = [(t["member_id"], t["name"], t["messages"]) for t in summary["top_messages_30d"]]
    assert top == cli_top
    top_xp = [(t["member_id"], t["name"], t["value"]) for t in overview["top_xp"][:3]]
    cli_top_xp = [(t["member_id"], t["name"], t["xp_gained"]) for t in summary["top_xp_30d"]]
    assert top_xp == cli_top_xp
    assert len(overview["top_messages"]) == len(overview["top_xp"]) == 5

    def events(found: list[dict[str, Any]]) -> list[tuple[str, datetime | None]]:
        return [(e["name"], when(e["at"])) for e in found]

    assert events(roster["joined"]) == events(summary["joined_30d"])
    assert events(roster["left"]) == events(summary["left_30d"])
    assert roster["joined"] and roster["left"]
    renames = [(r["old_name"], r["new_name"], when(r["at"])) for r in roster["renames"]]
    cli_renames = [(r["old_name"], r["new_name"], when(r["at"])) for r in summary["renames_30d"]]
    assert renames == cli_renames
    assert (overview["joined"], overview["left"]) == (roster["joined"], roster["left"])
    # another window: the same members, that window's sums
    assert (week["members"], week["by_status"]) == (overview["members"], overview["by_status"])
    assert week["messages"] == sum(r["messages"] for r in week_rows)
    assert week["xp_gained"] == sum(r["xp_gained"] or 0 for r in week_rows)


# -- 2. filtering, sorting, paging ---------------------------------------------------------


async def test_members_filter_sort_and_page_as_documented(url: str) -> None:
    async with api(url) as a:
        everyone = await a.members("30d")
        for status in ("new", "active", "inactive"):
            found = await a.members("30d", status=status)
            assert found == [r for r in everyone if r["status"] == status]
            assert found, status

        roles = Counter(r["role"] for r in everyone if r["role"])
        role = roles.most_common(1)[0][0]
        found = await a.members("30d", role=role.upper())  # case does not matter
        assert found == [r for r in everyone if (r["role"] or "").casefold() == role.casefold()]
        assert 1 < len(found) < len(everyone)

        words = Counter(w for r in everyone for w in r["name"].replace("_", " ").split())
        word = next(w for w, n in words.most_common() if n > 1 and len(w) > 2)
        needle = word[1:].swapcase()  # part of a name, in another case
        found = await a.members("30d", q=needle)
        assert found == [r for r in everyone if needle.casefold() in r["name"].casefold()]
        assert 1 < len(found) < len(everyone)
        active_ones = await a.members("30d", q=needle, status="active")
        assert active_ones == [r for r in found if r["status"] == "active"]
        assert await a.members("30d", q="no such name anywhere") == []

        columns = (
            "messages",
            "xp_gained",
            "ehp_gained",
            "boss_kills_gained",
            "name",
            "role",
            "status",
            "joined_at",
            "last_message_at",
            "last_seen_at",
            "member_id",
        )
        for column in columns:
            for order in ("asc", "desc"):
                found = await a.members("30d", sort=column, order=order)
                assert found == expected_order(everyone, column, order), (column, order)
        # members without a value come last either way
        assert any(r["xp_gained"] is None for r in everyone)
        for order in ("asc", "desc"):
            found = await a.members("30d", sort="xp_gained", order=order)
            values = [r["xp_gained"] for r in found]
            assert values.index(None) == sum(1 for v in values if v is not None)

        # pages: the same rows in the same order, the total unchanged
        pages: list[dict[str, Any]] = []
        for offset in range(0, len(everyone) + 7, 7):
            page = await a.get("/members", offset=offset, limit=7)
            assert (page["total"], page["offset"], page["limit"]) == (len(everyone), offset, 7)
            pages += page["members"]
        assert pages == everyone
        active = [r for r in everyone if r["status"] == "active"]
        page = await a.get("/members", status="active", sort="name", offset=2, limit=3)
        assert page["total"] == len(active)
        assert page["members"] == expected_order(active, "name", "desc")[2:5]

        for bad in (
            {"sort": "password"},
            {"order": "sideways"},
            {"limit": 0},
            {"limit": 1001},
            {"offset": -1},
            {"status": "gone"},
            {"window": "1y"},
        ):
            response = await a.request("GET", "/members", params=bad)
            assert response.status_code == 422, bad


# -- 3. one member -------------------------------------------------------------------------


async def test_member_detail_is_the_store_and_the_daily_totals(url: str) -> None:
    zone = ZoneInfo(ZONE)
    async with api(url) as a:
        rows = {r["member_id"]: r for r in await a.members("30d")}
        weekly = {r["member_id"]: r for r in await a.members("7d")}
        async with a.db.read() as conn:
            owners = Counter(
                (
                    await conn.execute(
                        select(account.c.member_id).where(account.c.member_id.is_not(None))
                    )
                ).scalars()
            )
            renamed = set(
                (
                    await conn.execute(
                        select(account.c.member_id).join(
                            name_change, name_change.c.account_id == account.c.id
                        )
                    )
                ).scalars()
            )
            opted_out = set(
                (await conn.execute(select(member.c.id).where(member.c.opted_out))).scalars()
            )
        # one of each: the most talkative, renamed, with several accounts, new, inactive;
        # and people with accounts who are not on the roster now: the page knows them too
        outsiders = sorted(m for m in owners if m not in rows and m not in opted_out)[:2]
        assert outsiders
        sample = {
            next(iter(rows)),
            *(m for m in rows if m in renamed),
            next(m for m in rows if owners[m] > 1),
            next(m for m, r in rows.items() if r["status"] == "new"),
            next(m for m, r in rows.items() if r["status"] == "inactive"),
            *outsiders,
        }
        shown_renames = multi = 0
        for member_id in sorted(sample):
            for window in ("30d", "7d") if member_id in weekly else ("30d",):
                detail = await a.get(f"/members/{member_id}", window=window)
                row = (rows if window == "30d" else weekly).get(member_id)
                assert (detail["member_id"], when(detail["as_of"])) == (member_id, AS_OF)
                assert detail["current"] is (row is not None)
                assert detail["row"] == row
                if row is not None:
                    assert detail["name"] == row["name"]
                    assert detail["last_seen_at"] == row["last_seen_at"]
                else:
                    assert detail["last_seen_at"] is None

                ids = await account_ids_of(a.db, member_id)
                start = window_start(window)
                async with a.db.read() as conn:
                    accounts = await conn.execute(
                        select(account)
                        .where(account.c.member_id == member_id)
                        .order_by(account.c.platform, account.c.id)
                    )
                    expected_accounts = [
                        {
                            "platform": x.platform,
                            "id": x.external_id,
                            "name": x.nickname or x.global_name or x.username,
                            "clan_role": x.role,
                            "joined_at": x.joined_at,
                            "left_at": x.left_at,
                        }
                        for x in accounts
                    ]
                    renames = await conn.execute(
                        select(
                            name_change.c.old_name,
                            name_change.c.new_name,
                            name_change.c.resolved_at,
                        )
                        .where(name_change.c.account_id.in_(ids))
                        .order_by(name_change.c.resolved_at)
                    )
                    expected_renames = [tuple(r) for r in renames]
                    days = await clan_daily(conn, start, AS_OF, zone, [member_id])
                got_accounts = [
                    {**x, "joined_at": when(x["joined_at"]), "left_at": when(x["left_at"])}
                    for x in detail["accounts"]
                ]
                assert got_accounts == expected_accounts, member_id
                got_renames = [
                    (r["old_name"], r["new_name"], when(r["at"])) for r in detail["renames"]
                ]
                assert got_renames == expected_renames, member_id
                # the window itself, in local days, adding up to the window's figures
                assert days_of(detail["days"]) == expected_days(days), member_id
                check_day_cuts(detail["days"], window)
                total = sum(d["messages"] for d in detail["days"])
                assert total == await counted_messages(a.db, ids, start, AS_OF), member_id
                if row is not None:
                    assert total == row["messages"], member_id
                    assert xp_total(detail["days"]) == row["xp_gained"], member_id
                shown_renames += bool(detail["renames"])
                multi += len(detail["accounts"]) > 1
        assert shown_renames and multi  # the clan has both

        response = await a.request("GET", "/members/987654321")
        assert response.status_code == 404
        assert response.json() == {"detail": "no member #987654321"}
        for bad in ("0", "-3", "abc"):
            assert (await a.request("GET", f"/members/{bad}")).status_code == 422


# -- 4. leaderboards ---------------------------------------------------------------------


async def test_leaderboards_rank_the_report_and_the_metric_gains(url: str) -> None:
    async with api(url) as a:
        report = await report_of(a.db)
        for window in WINDOWS:
            rows = {r["member_id"]: r for r in await a.members(window)}
            for metric, column in HEADLINE.items():
                board = await a.get("/leaderboard", metric=metric, window=window, limit=500)
                assert (board["metric"], board["window"]) == (metric, window)
                assert when(board["as_of"]) == AS_OF
                # ranked by the column's full value (EHP and EHB show 2 decimals only)
                expected = ranked(
                    [(r.member_id, r.name, getattr(r, metric)[window]) for r in report.rows]
                )
                assert standings(board) == expected, (metric, window)
                assert expected, (metric, window)
                # the members the /members column ranks, with its values
                positive = {m for m, r in rows.items() if (r[column] or 0) > 0}
                assert {s["member_id"] for s in board["standings"]} >= positive
                for s in board["standings"]:
                    assert s["value"] == rows[s["member_id"]][column], (metric, window)
                values = [s["value"] for s in board["standings"]]
                assert values == sorted(values, reverse=True)
        board = await a.get("/leaderboard", metric="messages", window="30d", limit=3)
        full = await a.get("/leaderboard", metric="messages", window="30d", limit=500)
        assert board["standings"] == full["standings"][:3]
        default = await a.get("/leaderboard")
        assert (default["metric"], default["window"]) == ("messages", "30d")
        assert default["standings"] == full["standings"][:10]

        # skills and bosses: each current member's seats' gains, one account at a time
        report = await report_of(a.db)
        async with a.db.read() as conn:
            gains = {
                seat: await detailed_gains(conn, seat, AS_OF, "30d")
                for r in report.rows
                for seat in r.seat_account_ids
            }

        def per_member(metric: str) -> list[tuple[int, str, float | None]]:
            found = []
            for r in report.rows:
                values = [
                    g[metric].gained
                    for seat in r.seat_account_ids
                    if (g := gains[seat]) is not None and metric in g
                ]
                found.append((r.member_id, r.name, sum(values) if values else None))
            return found

        def gainers(metric: str) -> int:
            return sum(1 for _, _, v in per_member(metric) if v)

        skill = max((s for s in SKILLS if s not in ("overall", "attack")), key=gainers)
        boss = max(BOSSES, key=gainers)
        for metric in ("skill:attack", f"skill:{skill}", f"boss:{boss}"):
            board = await a.get("/leaderboard", metric=metric, window="30d", limit=500)
            expected = ranked(per_member(metric.split(":", 1)[1]))
            assert standings(board) == expected, metric
            assert len(expected) >= 2, metric

        for bad in ({"metric": "skill:juggling"}, {"window": "2d"}, {"limit": 0}):
            assert (await a.request("GET", "/leaderboard", params=bad)).status_code == 422


# -- 5. activity ---------------------------------------------------------------------------


async def test_activity_is_the_daily_totals_of_the_current_members(url: str) -> None:
    async with api(url) as a:
        report = await report_of(a.db)
        current = [r.member_id for r in report.rows]
        async with a.db.read() as conn:
            found_seats = await conn.execute(
                select(account.c.id).where(account.c.member_id.in_(current))
            )
            seats = list(found_seats.scalars())
        for window in WINDOWS:
            found = await a.get("/activity", window=window)
            assert (found["window"], found["zone"], when(found["as_of"])) == (window, ZONE, AS_OF)
            start = window_start(window)
            async with a.db.read() as conn:
                expected = await clan_daily(conn, start, AS_OF, ZoneInfo(ZONE), current)
            assert days_of(found["days"]) == expected_days(expected), window
            check_day_cuts(found["days"], window)
            total = sum(d["messages"] for d in found["days"])
            assert total == await counted_messages(a.db, seats, start, AS_OF), window
            assert total > 0
            # the days add up to the window's figures
            overview = await a.get("/overview", window=window)
            assert total == overview["messages"], window
            assert (xp_total(found["days"]) or 0) == overview["xp_gained"], window
        response = await a.request("GET", "/activity", params={"window": "1y"})
        assert response.status_code == 422
        assert response.json()["detail"]


# -- 6. the purge list ---------------------------------------------------------------------


async def test_inactive_lists_the_inactive_members_with_reasons(url: str) -> None:
    async with api(url) as a:
        found = await a.get("/inactive")
        rows = {r["member_id"]: r for r in await a.members("30d", status="inactive")}
    assert found["inactive_days"] == INACTIVE_DAYS
    assert when(found["as_of"]) == AS_OF
    assert [m["member_id"] for m in found["members"]]
    assert {m["member_id"] for m in found["members"]} == rows.keys()

    def reason(moment: datetime | None, what: str) -> str:
        if moment is None:
            return f"no {what} on record"
        assert (AS_OF - moment).days >= INACTIVE_DAYS
        return f"no {what} for {(AS_OF - moment).days} days"

    for m in found["members"]:
        row = rows[m["member_id"]]
        for key in ("name", "role", "joined_at", "last_message_at", "last_xp_change_at"):
            assert m[key] == row[key], key
        assert m["reasons"] == [
            reason(when(row["last_message_at"]), "counted message"),
            reason(when(row["last_xp_change_at"]), "XP change"),
        ]
    # longest idle first
    never = datetime.min.replace(tzinfo=UTC)
    seen = [when(rows[m["member_id"]]["last_seen_at"]) or never for m in found["members"]]
    assert seen == sorted(seen)


# -- 7. health -----------------------------------------------------------------------------


async def fresh_health(a: Api, status: str) -> dict[str, Any] | None:
    found: dict[str, Any] = await a.get("/health")
    return found if found["status"] == status else None


async def test_health_turns_degraded_when_a_job_fails(url: str) -> None:
    async with api(url) as a:
        health = await a.get("/health")
        assert (health["status"], health["open_alerts"]) == ("ok", [])
        assert [j["job"] for j in health["jobs"]] == [spec.name for spec in JOBS]
        assert (when(health["now"]), health["zone"]) == (AS_OF, ZONE)

        # a job that failed in part, and one that raised
        async with recorded_run(a.db, WATCHDOG) as run:
            run.failure = "the check fell over"
        with pytest.raises(RuntimeError):
            async with recorded_run(a.db, BACKUP):
                raise RuntimeError("disk full")
        health = await poll(lambda: fresh_health(a, "degraded"))  # kept for a second
        assert health, "no degraded health within 3 s"
        shown = {j["job"]: j for j in health["jobs"]}
        for job, error in ((WATCHDOG, "the check fell over"), (BACKUP, "RuntimeError: disk full")):
            found = shown[job]
            assert (found["last_status"], found["last_error"]) == ("failed", error)
            assert found["failures_in_a_row"] == 1
        jobs = await a.get("/jobs")
        assert [r["job"] for r in jobs["runs"][:2]] == [BACKUP, WATCHDOG]
        assert jobs["runs"][0]["error"] == "RuntimeError: disk full"
        assert jobs["health"]["status"] == "degraded"

        # a success ends each failure streak
        for job in (WATCHDOG, BACKUP):
            async with recorded_run(a.db, job):
                pass
        health = await poll(lambda: fresh_health(a, "ok"))
        assert health, "health not back to ok within 3 s"
        assert all(j["failures_in_a_row"] == 0 for j in health["jobs"])


# -- 8. the cache --------------------------------------------------------------------------


async def test_results_are_cached_until_the_data_changes(url: str) -> None:
    async with api(url) as a:
        views = Views(
            a.db, web_settings(url, inactive_days=INACTIVE_DAYS, timezone=ZONE), lambda: AS_OF
        )
        first = await views.report(AS_OF)
        assert await views.report(AS_OF) is first
        overview = await views.overview(AS_OF, "7d")
        assert await views.overview(AS_OF, "7d") == overview
        activity = await views.activity(AS_OF, "7d")
        assert await views.activity(AS_OF, "7d") is activity
        # many asking at once for what is not cached: one computation, shared
        boards = await asyncio.gather(
            *(views.leaderboard(AS_OF, "skill:attack", "90d", 7) for _ in range(5))
        )
        assert all(b is boards[0] for b in boards)

        # a new message from the most talkative member with a Discord account
        async with a.db.read() as conn:
            on_discord = await conn.execute(
                select(account.c.member_id, account.c.external_id, account.c.username)
                .where(account.c.platform == "discord", account.c.is_bot.is_(False))
                .order_by(account.c.id)
            )
            discord = {m: (int(x), name) for m, x, name in on_discord}
        top = next(r for r in first.rows if r.member_id in discord)
        before = {w: (await views.members(AS_OF, w, limit=1000)).members for w in WINDOWS}
        over_http = {r["member_id"]: r for r in await a.members("7d")}
        said = (AS_OF - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
        async with a.db.write() as conn:
            await ingest_batch(conn, batch(chat(user(*discord[top.member_id]), said)))
        await asyncio.sleep(1.1)  # the data version is checked at most once a second
        for w in WINDOWS:
            after = {r.member_id: r for r in (await views.members(AS_OF, w, limit=1000)).members}
            for row in before[w]:
                plus = 1 if row.member_id == top.member_id else 0
                assert after[row.member_id].messages == row.messages + plus, (w, row.name)
        assert await views.report(AS_OF) is not first
        assert await views.activity(AS_OF, "7d") is not activity

        # the server's own cache sees the new version too
        async def counted() -> bool:
            rows = {r["member_id"]: r for r in await a.members("7d")}
            return rows[top.member_id]["messages"] == over_http[top.member_id]["messages"] + 1

        assert await poll(counted)


async def test_the_cache_counts_what_it_computed(url: str) -> None:
    """BUG (reported): ``ResultCache.computed`` ("how many results were computed (not
    served from the cache)", web/views.py) is never incremented by ``ResultCache.get``,
    so it stays 0 whatever is computed."""
    async with open_database(url) as db:
        views = Views(
            db, web_settings(url, inactive_days=INACTIVE_DAYS, timezone=ZONE), lambda: AS_OF
        )
        await views.report(AS_OF)
        assert views.cache.computed == 1
        await views.report(AS_OF)
        assert views.cache.computed == 1  # served from the cache
        # the overview: the roster and two leaderboards, over the cached report
        await views.overview(AS_OF, "7d")
        assert views.cache.computed == 4
        await views.overview(AS_OF, "7d")
        assert views.cache.computed == 4
        await asyncio.gather(*(views.leaderboard(AS_OF, "ehb", "90d", 3) for _ in range(5)))
        assert views.cache.computed == 5  # single flight


# -- 9. opting out -------------------------------------------------------------------------


async def everything(a: Api) -> dict[str, Any]:
    found: dict[str, Any] = {
        "members": await a.members("30d"),
        "overview": await a.get("/overview", window="30d"),
        "inactive": await a.get("/inactive"),
        "roster": await a.get("/roster", window="90d"),
        "activity": await a.get("/activity", window="30d"),
    }
    for metric in LEADERBOARDS:
        found[metric] = await a.get("/leaderboard", metric=metric, window="30d", limit=500)
    return found


async def test_an_opted_out_member_is_absent_from_every_endpoint(url: str) -> None:
    async with api(url) as a:
        before = await everything(a)
        rows = before["members"]
        by_id = {r["member_id"]: r for r in rows}
        top = before["overview"]["top_messages"][0]["member_id"]
        idle = before["inactive"]["members"][0]["member_id"]
        newcomer = next(r["member_id"] for r in rows if r["status"] == "new")
        since = AS_OF - timedelta(days=90)
        async with a.db.read() as conn:
            renamed = (
                await conn.execute(
                    select(account.c.member_id)
                    .join(name_change, name_change.c.account_id == account.c.id)
                    .where(name_change.c.resolved_at >= since, name_change.c.resolved_at < AS_OF)
                    .where(account.c.member_id.in_(list(by_id)))
                    .order_by(name_change.c.resolved_at)
                )
            ).scalar()
            # and someone who left: not a current member, but on the roster page
            departed = (
                await conn.execute(
                    select(account.c.member_id)
                    .join(group_event, group_event.c.account_id == account.c.id)
                    .where(group_event.c.type == "left", group_event.c.at >= since)
                    .where(group_event.c.at < AS_OF, account.c.member_id.not_in(list(by_id)))
                    .order_by(group_event.c.at)
                )
            ).scalar()
        assert renamed is not None and departed is not None
        current = list(dict.fromkeys([top, idle, newcomer, renamed]))
        gone = [*current, departed]
        details = {m: await a.get(f"/members/{m}", window="30d") for m in gone}
        names = {x["name"] for d in details.values() for x in d["accounts"]}
        names |= {
            n
            for d in details.values()
            for r in d["renames"]
            for n in (r["old_name"], r["new_name"])
        }

        for member_id in gone:
            await asyncio.to_thread(clanpulse, "member", "opt-out", f"#{member_id}")

        async def vanished() -> bool:
            return not {r["member_id"] for r in await a.members("30d")} & set(gone)

        assert await poll(vanished), "the opt-out did not reach the API in time"
        after = await everything(a)

        assert after["members"] == [r for r in rows if r["member_id"] not in gone]
        for member_id in gone:
            for window in WINDOWS:
                response = await a.request(
                    "GET", f"/members/{member_id}", params={"window": window}
                )
                assert response.status_code == 404
                assert response.json() == {"detail": f"no member #{member_id}"}

        for metric in LEADERBOARDS:
            # the others keep their order; a rank drops by the opted-out members above it
            was = standings(before[metric])
            above = [rank for rank, m, _, _ in was if m in gone]
            expected = [
                (rank - sum(1 for r in above if r < rank), m, name, value)
                for rank, m, name, value in was
                if m not in gone
            ]
            assert standings(after[metric]) == expected, metric
        assert any(s["member_id"] == top for s in before["messages"]["standings"])

        overview, was = after["overview"], before["overview"]
        assert overview["members"] == was["members"] - len(current)
        lost = sum(by_id[m]["messages"] for m in current)
        assert overview["messages"] == was["messages"] - lost
        assert overview["xp_gained"] == was["xp_gained"] - sum(
            by_id[m]["xp_gained"] or 0 for m in current
        )
        for board in ("top_messages", "top_xp"):
            assert not {s["member_id"] for s in overview[board]} & set(gone)
        assert overview["top_messages"] == after["messages"]["standings"][:5]
        for kind in ("joined", "left"):
            assert overview[kind] == [e for e in was[kind] if e["name"] not in names], kind

        assert after["inactive"]["members"] == [
            m for m in before["inactive"]["members"] if m["member_id"] not in gone
        ]

        roster, was_roster = after["roster"], before["roster"]
        for kind in ("joined", "left"):
            assert roster[kind] == [e for e in was_roster[kind] if e["name"] not in names], kind
        assert roster["renames"] == [
            r
            for r in was_roster["renames"]
            if r["old_name"] not in names and r["new_name"] not in names
        ]
        # the newcomer's join, the departure, the rename
        for kind in ("joined", "left", "renames"):
            assert len(roster[kind]) < len(was_roster[kind]), kind

        # the clan's days lose exactly the opted-out members' own
        was_days, days = before["activity"]["days"], after["activity"]["days"]
        assert [d["day"] for d in days] == [d["day"] for d in was_days]
        for i, (old, new) in enumerate(zip(was_days, days, strict=True)):
            theirs = [details[m]["days"][i] for m in current]
            assert new["messages"] == old["messages"] - sum(d["messages"] for d in theirs)
            xp_lost = sum(d["xp_gained"] or 0 for d in theirs)
            assert (new["xp_gained"] or 0) == (old["xp_gained"] or 0) - xp_lost
        assert sum(d["messages"] for d in days) < sum(d["messages"] for d in was_days)

        # back in: everything as it was
        for member_id in gone:
            await asyncio.to_thread(clanpulse, "member", "opt-out", "--undo", f"#{member_id}")

        async def back() -> bool:
            return await a.members("30d") == rows

        assert await poll(back), "the opt-in did not reach the API in time"
        again = await everything(a)
        assert again == before


# -- 10. admin -----------------------------------------------------------------------------


async def test_admin_endpoints_refuse_without_an_admin_token(url: str) -> None:
    async with api(url) as a:
        member_id = (await a.members("30d"))[0]["member_id"]
        for path, body in (
            (f"/admin/members/{member_id}/opt-out", {"opted_out": True}),
            (f"/admin/members/{member_id}/accounts", {"account": "discord:someone"}),
            ("/admin/jobs/watchdog/run", None),
        ):
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
                response = await a.request("POST", path, json=body, headers=headers)
                assert response.status_code == 403, path
                assert "read-only" in response.json()["detail"]
        assert member_id in {r["member_id"] for r in await a.members("30d")}
        async with a.db.read() as conn:
            runs = (await conn.execute(select(func.count()).select_from(job_run))).scalar_one()
            opted = (
                await conn.execute(select(member.c.opted_out).where(member.c.id == member_id))
            ).scalar_one()
        assert opted is False
        await asyncio.sleep(0.3)
        async with a.db.read() as conn:
            assert (
                await conn.execute(select(func.count()).select_from(job_run))
            ).scalar_one() == runs


async def test_admin_endpoints_with_the_token(url: str) -> None:
    async with api(url, admin_token=TOKEN) as a:
        rows = await a.members("30d")
        target = rows[1]["member_id"]
        path = f"/admin/members/{target}/opt-out"

        for headers in (
            {},
            {"Authorization": "Bearer not-the-token-at-all-0000"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": TOKEN},
        ):
            response = await a.request("POST", path, json={"opted_out": True}, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"detail": "admin token required"}
        assert await a.members("30d") == rows

        admin = {"Authorization": f"Bearer {TOKEN}"}

        # opting out: gone at once (the API drops its cache), and back
        response = await a.request("POST", path, json={"opted_out": True}, headers=admin)
        assert response.status_code == 200
        assert response.json() == {"detail": f"member #{target} opted out"}
        assert target not in {r["member_id"] for r in await a.members("30d")}
        assert (await a.request("GET", f"/members/{target}")).status_code == 404
        response = await a.request("POST", path, json={"opted_out": False}, headers=admin)
        assert response.status_code == 200
        assert response.json() == {"detail": f"member #{target} opted back in"}
        assert await a.members("30d") == rows
        response = await a.request(
            "POST", "/admin/members/987654321/opt-out", json={}, headers=admin
        )
        assert response.status_code == 404

        # linking: a chat account of someone off the roster goes to a current member
        current = [r["member_id"] for r in rows]
        since = AS_OF - timedelta(days=30)
        async with a.db.read() as conn:
            spoken = (
                select(message.c.credited_account_id, func.count().label("n"))
                .where(message.c.sent_at >= since, message.c.sent_at < AS_OF)
                .group_by(message.c.credited_account_id)
                .subquery()
            )
            chosen = (
                await conn.execute(
                    select(account.c.id, account.c.external_id, account.c.member_id, spoken.c.n)
                    .join(spoken, spoken.c.credited_account_id == account.c.id)
                    .where(account.c.platform == "discord", account.c.member_id.not_in(current))
                    .order_by(spoken.c.n.desc(), account.c.id)
                    .limit(1)
                )
            ).first()
        assert chosen is not None, "no chat account off the roster to link"
        moved, external_id, _, spoken_30d = chosen
        before = {r["member_id"]: r for r in rows}[target]
        response = await a.request(
            "POST",
            f"/admin/members/{target}/accounts",
            json={"account": f"discord:{external_id}"},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        assert response.json()["detail"].endswith(f"to member #{target}")
        async with a.db.read() as conn:
            owner, locked = (
                await conn.execute(
                    select(account.c.member_id, account.c.link_locked).where(account.c.id == moved)
                )
            ).one()
        assert (owner, locked) == (target, True)
        after = {r["member_id"]: r for r in await a.members("30d")}[target]
        assert after["messages"] == before["messages"] + spoken_30d
        detail = await a.get(f"/members/{target}")
        assert external_id in {x["id"] for x in detail["accounts"]}
        response = await a.request(
            "POST",
            f"/admin/members/{target}/accounts",
            json={"account": "discord:nobody-by-this-name"},
            headers=admin,
        )
        assert response.status_code == 404
        assert "no account matches" in response.json()["detail"]

        # jobs: started now, one run recorded
        response = await a.request("POST", "/admin/jobs/no-such-job/run", headers=admin)
        assert response.status_code == 409
        assert response.json()["detail"].startswith("no job called")
        response = await a.request("POST", "/admin/jobs/harvest-discord/run", headers=admin)
        assert response.status_code == 409
        assert response.json()["detail"] == "Discord is not configured"
        async with a.db.read() as conn:
            earlier = (
                await conn.execute(select(func.max(job_run.c.id)).where(job_run.c.job == WATCHDOG))
            ).scalar()
        response = await a.request("POST", "/admin/jobs/watchdog/run", headers=admin)
        assert response.status_code == 202
        assert response.json() == {"detail": "watchdog started"}

        async def finished() -> Any:
            async with a.db.read() as conn:
                return (
                    await conn.execute(
                        select(job_run.c.status).where(
                            job_run.c.job == WATCHDOG,
                            job_run.c.id > (earlier or 0),
                            job_run.c.status != "running",
                        )
                    )
                ).scalar()

        assert await poll(finished, 10) == "ok"
        jobs = await a.get("/jobs")
        assert jobs["runs"][0]["job"] == WATCHDOG

        # the token is never echoed back
        await a.get("/health")
        response = await a.request("GET", "/openapi.json")
        assert response.status_code == 200
        assert all(TOKEN.encode() not in body for body in a.bodies)
