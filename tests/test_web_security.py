"""The dashboard is safe to expose: member-provided text never becomes markup, every
response carries the security headers (and the pages need nothing the CSP forbids), the
server listens on loopback by default, it is read-only without an admin token, admin
actions need the token (API) or a session cookie plus a CSRF token (pages), the token
never leaks, and opted-out members are nowhere.

Everything runs for real: a clan harvested from the fake servers, the dashboard on a
loopback port (or ``clanpulse serve`` as a process), HTTP requests, real databases."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx2 as httpx
import pytest
from markupsafe import escape
from sqlalchemy import insert, select, update
from sqlalchemy.engine import make_url

from clanpulse.analytics.clan import clan_report
from clanpulse.progress import SilentProgress
from clanpulse.settings import Settings, load_settings
from clanpulse.store.copy import copy_database
from clanpulse.store.database import Database, open_database
from clanpulse.store.schema import account, job_run, member, name_change
from clanpulse.web.security import SESSION_COOKIE, AdminGate
from tests.cli_support import clanpulse
from tests.conftest import sqlite_url
from tests.web_support import AS_OF, clan_template, served, web_settings

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests-0123"

# the shown names of five members (and more): each an attempt at markup or a template
HOSTILE = {
    "script": '<script>alert("x")</script>',
    "img": '"><img src=x onerror=alert(1)>',
    "quote": "' onmouseover='alert(1)",
    "template": "{{7*7}}",
    "svg": "</textarea><svg onload=alert(1)>",
}
ROLE = "<b onclick=alert(2)>officer</b>"
RENAME_OLD = "<iframe src=javascript:alert(3)>"
NOTICE = '<script>alert("notice")</script>'
# what any of them would look like had it become markup
RAW = [
    "<script>alert",
    "<img src=x onerror",
    "<svg onload",
    "</textarea><svg",
    "' onmouseover='",
    "<b onclick",
    "<iframe src=javascript",
]
# where "{{7*7}}" is shown, a template engine evaluating it would have shown 49
EVALUATED = ['">49</a>', 'event-name">49<', "· 49</title>", 'member-name">49']
LEADERBOARDS = ["messages", "xp", "ehp", "ehb", "boss_kills", "skill:slayer", "boss:zulrah"]


@pytest.fixture(scope="module", autouse=True)
def no_outside_settings() -> Iterator[None]:
    """Only the settings a test gives: none from the environment of whoever runs them."""
    with pytest.MonkeyPatch.context() as patch:
        for name in os.environ:
            if name.startswith("CLANPULSE_"):
                patch.delenv(name)
        yield


# -- the clan ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clan_template(tmp_path_factory.getbasetemp())


async def put_clan(url: str, template: Path, scratch: Path) -> None:
    """The template clan at ``url``: a file copy on SQLite, ``db copy`` on PostgreSQL."""
    if url.startswith("sqlite"):
        shutil.copy(template, make_url(url).database or "")
        return
    source = scratch / "source.db"
    shutil.copy(template, source)
    async with open_database(sqlite_url(source)) as db:
        await copy_database(db, url, progress=SilentProgress())


async def current_rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list((await clan_report(conn, AS_OF, 30)).rows)


async def rename_member(db: Database, member_id: int, name: str) -> None:
    """Give a member, and every account of theirs, the shown name ``name``."""
    async with db.write() as conn:
        await conn.execute(update(member).where(member.c.id == member_id).values(display_name=name))
        await conn.execute(
            update(account)
            .where(account.c.member_id == member_id)
            .values(username=name, global_name=None, nickname=None)
        )


async def add_rename(db: Database, member_id: int, old: str, new: str, wom_id: int) -> None:
    async with db.write() as conn:
        seat = (
            await conn.execute(
                select(account.c.id)
                .where(account.c.member_id == member_id, account.c.platform == "osrs")
                .order_by(account.c.id)
            )
        ).scalar()
        assert seat is not None
        await conn.execute(
            insert(name_change).values(
                id=wom_id,
                account_id=seat,
                old_name=old,
                old_normalized=old.lower()[:64],
                new_name=new,
                new_normalized=new.lower()[:64],
                resolved_at=AS_OF - timedelta(days=1),
            )
        )


async def state(db: Database) -> dict[str, Any]:
    """What an admin action would change: opt-outs, links, job runs, names."""
    async with db.read() as conn:
        members = await conn.execute(
            select(member.c.id, member.c.opted_out, member.c.display_name).order_by(member.c.id)
        )
        accounts = await conn.execute(
            select(account.c.id, account.c.member_id, account.c.link_locked).order_by(account.c.id)
        )
        runs = await conn.execute(select(job_run).order_by(job_run.c.id))
        return {
            "members": [tuple(r) for r in members],
            "accounts": [tuple(r) for r in accounts],
            "runs": [tuple(r) for r in runs],
        }


async def opted_out(db: Database, member_id: int) -> bool:
    async with db.read() as conn:
        found = await conn.execute(select(member.c.opted_out).where(member.c.id == member_id))
        return bool(found.scalar_one())


# -- the dashboard in a thread of its own (module-scoped servers for sync tests) ----------


@contextmanager
def dashboard_thread(url: str, **extra: Any) -> Iterator[str]:
    """``served`` in a background thread with its own event loop; yields the address."""
    loop = asyncio.new_event_loop()
    outcome: queue.Queue[str | BaseException] = queue.Queue()
    stop = asyncio.Event()

    async def main() -> None:
        async with served(url, **extra) as (address, _db, _service):
            outcome.put(address)
            await stop.wait()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # handed to the test
            outcome.put(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="dashboard", daemon=True)
    thread.start()
    first = outcome.get(timeout=120)
    if isinstance(first, BaseException):
        raise first
    try:
        yield first
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive()
        leftover = None if outcome.empty() else outcome.get()
        if isinstance(leftover, BaseException):
            raise leftover


# -- looking at pages ---------------------------------------------------------------------


class Markup(HTMLParser):
    """Every tag of a page with its attributes (values unescaped, as a browser reads them)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and all(attrs.get(k) == v for k, v in wanted.items())
        ]


def csp_problems(html: str) -> list[str]:
    """What the CSP would block or what could run: inline script, handlers, styles."""
    problems = []
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html, re.IGNORECASE)
    if inline:
        problems.append(f"inline <script>: {inline}")
    for tag in re.findall(r"<[a-zA-Z][^>]*>", html):
        names = re.sub(r"\"[^\"]*\"|'[^']*'", "''", tag)  # attribute names, not values
        if re.search(r"\son\w+\s*=", names, re.IGNORECASE):
            problems.append(f"event handler attribute: {tag}")
        if re.search(r"\sstyle\s*=", names, re.IGNORECASE):
            problems.append(f"style attribute: {tag}")
    for tag, attrs in Markup(html).tags:
        if tag == "script" and not (attrs.get("src") or "").startswith("/static/"):
            problems.append(f"<script> not from /static/: {attrs}")
        if tag == "style":
            problems.append("<style> element")
        if tag in ("img", "svg", "iframe", "object", "embed"):
            problems.append(f"<{tag}> {attrs}")
        for name, value in attrs.items():
            if name.startswith("on") or name == "style":
                problems.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action") and "javascript:" in (value or "").lower():
                problems.append(f"<{tag} {name}={value!r}>")
    return problems


def header_problems(response: httpx.Response) -> list[str]:
    where = f"{response.request.method} {response.request.url.raw_path.decode()}"
    csp = response.headers.get("content-security-policy", "")
    problems = []
    if "script-src 'self'" not in csp:
        problems.append(f"{where}: CSP without script-src 'self': {csp!r}")
    if "unsafe-inline" in csp or "unsafe-eval" in csp:
        problems.append(f"{where}: CSP allows unsafe script or style: {csp!r}")
    if "frame-ancestors 'none'" not in csp:
        problems.append(f"{where}: CSP without frame-ancestors 'none': {csp!r}")
    if response.headers.get("x-content-type-options") != "nosniff":
        problems.append(f"{where}: no X-Content-Type-Options: nosniff")
    if response.headers.get("x-frame-options") != "DENY":
        problems.append(f"{where}: no X-Frame-Options: DENY")
    return problems


def shown_texts(data: Any) -> list[str]:
    """Every name and role in an API answer (what the matching page shows)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("name", "role", "clan_role", "old_name", "new_name") and value:
                found.append(value)
            else:
                found.extend(shown_texts(value))
    elif isinstance(data, list):
        for value in data:
            found.extend(shown_texts(value))
    return found


def api_twin(page: str) -> tuple[str, dict[str, str]] | None:
    """The API request whose answer holds the names and roles ``page`` shows."""
    parts = urlsplit(page)
    params = dict(parse_qsl(parts.query))
    window = {"window": params["window"]} if "window" in params else {}
    if parts.path == "/":
        return "/api/v1/overview", window
    if parts.path == "/members":
        keys = ("window", "status", "role", "q", "sort", "order")
        return "/api/v1/members", {k: v for k, v in params.items() if k in keys and v}
    if parts.path.startswith("/members/"):
        return f"/api/v1{parts.path}", window
    if parts.path == "/leaderboards":
        metric = params.get("metric", "messages")
        if metric not in LEADERBOARDS:
            return None
        return "/api/v1/leaderboard", {
            "metric": metric,
            "limit": params.get("limit", "25"),
            **window,
        }
    if parts.path == "/inactive":
        return "/api/v1/inactive", {}
    return None


# -- 1 and 2: hostile names on every page; headers; nothing the CSP blocks -----------------


@dataclass(frozen=True)
class Hostile:
    address: str
    ids: dict[str, int]  # HOSTILE key: the member shown by that name


def q(text: str) -> str:
    return quote(text, safe="")


PAGES: dict[str, Callable[[Hostile], str]] = {
    "overview": lambda h: "/",
    "overview-7d": lambda h: "/?window=7d",
    "overview-90d": lambda h: "/?window=90d",
    "members": lambda h: "/members",
    **{f"members-q-{k}": (lambda h, k=k: f"/members?q={q(HOSTILE[k])}") for k in HOSTILE},
    "members-role": lambda h: f"/members?role={q(ROLE)}&sort=name&order=asc",
    "members-inactive": lambda h: "/members?status=inactive&sort=role&order=desc",
    "members-new-7d": lambda h: "/members?status=new&window=7d&sort=name",
    "members-last-seen-90d": lambda h: "/members?sort=last_seen_at&order=asc&window=90d",
    **{f"member-{k}": (lambda h, k=k: f"/members/{h.ids[k]}") for k in HOSTILE},
    "member-script-7d": lambda h: f"/members/{h.ids['script']}?window=7d",
    "leaderboards": lambda h: "/leaderboards",
    **{
        f"leaderboard-{m}": (lambda h, m=m: f"/leaderboards?metric={q(m)}&limit=500")
        for m in LEADERBOARDS
    },
    "leaderboard-messages-7d": lambda h: "/leaderboards?metric=messages&window=7d",
    "inactive": lambda h: "/inactive",
    "jobs": lambda h: "/jobs",
    "admin": lambda h: "/admin",
    "no-such-member": lambda h: "/members/999999",
    "no-such-leaderboard": lambda h: f"/leaderboards?metric={q(HOSTILE['script'])}",
    "notice-overview": lambda h: f"/?notice={q(NOTICE)}",
    "notice-forged": lambda h: f"/inactive?notice={q(NOTICE)}&sig={'0' * 32}",
    "notice-members": lambda h: f"/members?notice={q(HOSTILE['svg'])}&q={q(HOSTILE['img'])}",
}
# hostile text each page must show (escaped): so the checks are not vacuous
REQUIRED: dict[str, list[str]] = {
    "overview": [HOSTILE["script"], HOSTILE["img"], HOSTILE["template"]],
    "members": [*HOSTILE.values(), ROLE],
    **{f"members-q-{k}": [HOSTILE[k]] for k in HOSTILE},
    "members-role": [HOSTILE["quote"], ROLE],
    "members-inactive": [HOSTILE["quote"], ROLE],
    **{f"member-{k}": [HOSTILE[k]] for k in HOSTILE},
    "member-script-7d": [HOSTILE["script"], RENAME_OLD],
    "leaderboard-messages": [HOSTILE["script"]],
    "leaderboard-xp": [HOSTILE["img"]],
    "leaderboard-ehb": [HOSTILE["svg"]],
    "inactive": [HOSTILE["quote"], ROLE],
    "notice-members": [HOSTILE["img"]],
}
NOT_FOUND = {"no-such-member", "no-such-leaderboard"}


async def make_hostile(url: str) -> dict[str, int]:
    """Give members hostile names, one a hostile role, one a hostile rename."""
    async with open_database(url) as db:
        async with db.read() as conn:
            # inactive after one quiet day (the server below uses the same setting)
            rows = (await clan_report(conn, AS_OF, 1)).rows
        chosen: dict[str, int] = {}

        def pick(key: str, candidates: list[Any]) -> None:
            taken = set(chosen.values())
            found = next(r.member_id for r in candidates if r.member_id not in taken)
            chosen[key] = found

        pick("script", sorted(rows, key=lambda r: -r.messages["30d"]))  # top by messages
        pick("img", sorted(rows, key=lambda r: -(r.xp["30d"] or 0)))  # top by XP
        pick("quote", [r for r in rows if r.status == "inactive"])
        pick("template", [r for r in rows if r.status == "new"])  # joined lately
        pick("svg", sorted(rows, key=lambda r: -(r.ehb["30d"] or 0)))
        for key, member_id in chosen.items():
            await rename_member(db, member_id, HOSTILE[key])
        async with db.write() as conn:
            await conn.execute(
                update(account)
                .where(account.c.member_id == chosen["quote"], account.c.platform == "osrs")
                .values(role=ROLE)
            )
            # who left: shown on the overview by their account's name
            await conn.execute(
                update(account)
                .where(account.c.left_at.is_not(None))
                .values(username=HOSTILE["svg"], global_name=None, nickname=None)
            )
        await add_rename(db, chosen["script"], RENAME_OLD, HOSTILE["script"], 990_000_001)
    return chosen


@pytest.fixture(scope="module")
def hostile(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    path = tmp_path_factory.mktemp("hostile") / "clanpulse.db"
    shutil.copy(template, path)
    url = sqlite_url(path)
    ids = asyncio.run(make_hostile(url))
    with dashboard_thread(url, now=AS_OF, inactive_days=1) as address:
        yield Hostile(address, ids)


@pytest.fixture(scope="module")
def client(hostile: Hostile) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile.address, timeout=30) as found:
        yield found


@pytest.mark.parametrize("page", list(PAGES))
def test_hostile_names_are_shown_as_text_on_every_page(
    page: str, hostile: Hostile, client: httpx.Client
) -> None:
    path = PAGES[page](hostile)
    response = client.get(path)
    assert response.status_code == (404 if page in NOT_FOUND else 200), response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    for raw in RAW:
        assert raw not in html, f"{raw!r} unescaped on {path}"
    for evaluated in EVALUATED:
        assert evaluated not in html, f"{{{{7*7}}}} evaluated on {path}"

    # every name and role the page is about is on it, escaped
    expected: list[str] = []
    twin = api_twin(path)
    if twin is not None and page not in NOT_FOUND:
        answer = client.get(twin[0], params=twin[1])
        assert answer.status_code == 200, answer.text
        expected = shown_texts(answer.json())
    params = dict(parse_qsl(urlsplit(path).query))
    expected += [params["q"]] if "q" in params else []
    for text in expected:
        assert str(escape(text)) in html, f"{text!r} not shown (escaped) on {path}"
    for text in REQUIRED.get(page, []):
        assert text in expected, f"{text!r} expected on {path}"

    # and form fields hold it as a value, not as markup
    markup = Markup(html)
    if "q" in params and urlsplit(path).path == "/members":
        assert markup.find("input", name="q")[0]["value"] == params["q"]
    if page == "members":
        assert markup.find("option", value=ROLE), "the hostile role is a choice of the filter"
    # a notice shows only when the dashboard itself signed it: no link can put words there
    if "notice" in params:
        assert not markup.find("p", **{"class": "notice"}), html
        assert str(escape(params["notice"])) not in html


@pytest.mark.parametrize("page", list(PAGES))
def test_pages_need_nothing_the_csp_forbids(
    page: str, hostile: Hostile, client: httpx.Client
) -> None:
    response = client.get(PAGES[page](hostile))
    assert not csp_problems(response.text)
    assert not header_problems(response)


def test_the_api_returns_hostile_names_verbatim_as_json(
    hostile: Hostile, client: httpx.Client
) -> None:
    listing = client.get("/api/v1/members", params={"limit": 1000})
    assert listing.headers["content-type"] == "application/json"
    assert listing.headers["x-content-type-options"] == "nosniff"
    rows = {r["member_id"]: r for r in listing.json()["members"]}
    for key, member_id in hostile.ids.items():
        assert rows[member_id]["name"] == HOSTILE[key]
    assert rows[hostile.ids["quote"]]["role"] == ROLE

    detail = client.get(f"/api/v1/members/{hostile.ids['script']}")
    assert detail.headers["content-type"] == "application/json"
    assert {"old_name": RENAME_OLD, "new_name": HOSTILE["script"]}.items() <= next(
        r for r in detail.json()["renames"] if r["old_name"] == RENAME_OLD
    ).items()
    asked: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/overview", {}),
        ("/api/v1/roster", {"window": "7d"}),
        ("/api/v1/inactive", {}),
        ("/api/v1/leaderboard", {"metric": "ehb", "limit": 500}),
    ]
    for path, params in asked:
        answer = client.get(path, params=params)
        assert answer.headers["content-type"] == "application/json"
        texts = shown_texts(answer.json())
        assert set(texts) & {*HOSTILE.values(), ROLE, RENAME_OLD}, (path, texts)
        # JSON strings, exactly as stored: parsing the body gives them back unchanged
        assert json.loads(answer.text) == answer.json()


def test_security_headers_on_every_kind_of_response(hostile: Hostile, client: httpx.Client) -> None:
    responses = [client.get(build(hostile)) for build in PAGES.values()]
    member_id = hostile.ids["script"]
    for path in [
        "/api/v1/health",
        "/api/v1/jobs",
        "/api/v1/overview",
        "/api/v1/members",
        f"/api/v1/members/{member_id}",
        "/api/v1/leaderboard",
        "/api/v1/activity",
        "/api/v1/roster",
        "/api/v1/inactive",
        "/api/v1/openapi.json",
        "/static/app.css",
        "/static/app.js",
        "/static/vendor/chart.umd.min.js",
    ]:
        found = client.get(path)
        assert found.status_code == 200, (path, found.status_code)
        responses.append(found)
    errors = [
        ("GET", "/no-such-page", 404),
        ("GET", "/static/no-such-file.js", 404),
        ("GET", "/api/v1/no-such-endpoint", 404),
        ("GET", "/api/v1/members/999999", 404),
        ("GET", "/api/v1/members?limit=0", 422),
        ("GET", "/members?page=0", 422),
        ("GET", "/admin/login", 405),
        ("POST", "/api/v1/admin/jobs/watchdog/run", 403),
        ("POST", "/admin/login", 422),
    ]
    for method, path, status in errors:
        found = client.request(method, path)
        assert found.status_code == status, (method, path, found.status_code)
        responses.append(found)
    problems = [p for r in responses for p in header_problems(r)]
    assert not problems, "\n".join(problems)
    # static files keep their types: nosniff would refuse a script served as text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")


# -- 3: where it listens ------------------------------------------------------------------


def serve_process(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLANPULSE_")}
    env["CLANPULSE_DATABASE_URL"] = sqlite_url(db)
    return subprocess.Popen(
        [sys.executable, "-m", "clanpulse.cli", "serve", *args],
        cwd=db.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_listens_on_loopback_by_default_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = serve_process(tmp_path / "clanpulse.db", "--port", "0")
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        address = None
        while address is None:
            line = lines.get(timeout=60)  # a loaded machine imports slowly
            assert line is not None, f"serve ended before listening: {seen}"
            seen.append(line)
            found = re.search(r"dashboard at (http://\S+)", line)
            address = found.group(1) if found else None
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", address), address
        health = httpx.get(f"{address}/api/v1/health", timeout=30)
        assert health.status_code == 200
        assert health.json()["status"] in ("ok", "degraded")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        reader.join(5)
        while (line := lines.get(timeout=1)) is not None:
            seen.append(line)
        assert "stopped" in seen[-1]
        assert "Traceback" not in "".join(seen)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_default_host_is_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    assert Settings.model_fields["web_host"].default == "127.0.0.1"
    assert load_settings().web_host == "127.0.0.1"
    assert web_settings(sqlite_url(tmp_path / "x.db")).web_host == "127.0.0.1"


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = serve_process(tmp_path / "clanpulse.db", "--port", str(port))
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 1, stderr
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


# -- 4: read-only without a token ---------------------------------------------------------


async def test_without_a_token_every_admin_action_is_refused_and_changes_nothing(
    db_url: str, template: Path, tmp_path: Path
) -> None:
    await put_clan(db_url, template, tmp_path)
    async with served(db_url, now=AS_OF) as (address, db, service):
        victim = (await current_rows(db))[0].member_id
        before = await state(db)
        forged = f"abc.{'0' * 64}"
        async with httpx.AsyncClient(base_url=address, timeout=30) as client:
            calls: list[tuple[str, dict[str, Any]]] = []
            for member_id in (1, victim):
                calls += [
                    ("/api/v1/admin/jobs/watchdog/run", {}),
                    (f"/api/v1/admin/members/{member_id}/opt-out", {"json": {}}),
                    (f"/api/v1/admin/members/{member_id}/opt-out", {"json": {"opted_out": True}}),
                    (f"/api/v1/admin/members/{member_id}/accounts", {"json": {"account": "x"}}),
                    ("/admin/login", {"data": {"token": TOKEN}}),
                    ("/admin/login", {"data": {"token": "x" * 40}}),
                    ("/admin/jobs/watchdog/run", {"data": {"csrf": "x"}}),
                    (f"/admin/members/{member_id}/opt-out", {"data": {"csrf": "x"}}),
                    (f"/admin/members/{member_id}/link", {"data": {"csrf": "x", "account": "y"}}),
                    ("/admin/logout", {"data": {"csrf": "x"}}),
                ]
            for path, kwargs in calls:
                for headers in (
                    {},
                    {"authorization": f"Bearer {TOKEN}"},
                    {"cookie": f"{SESSION_COOKIE}={forged}"},
                ):
                    answer = await client.post(path, headers=headers, **kwargs)
                    assert answer.status_code == 403, (path, headers, answer.text)
                    assert not header_problems(answer)
                    assert "set-cookie" not in answer.headers
            admin = await client.get("/admin")
            assert "read-only" in admin.text
            assert 'name="token"' not in admin.text  # no sign-in form to offer
            page = await client.get(f"/members/{victim}")
            assert 'action="/admin/' not in page.text and 'name="csrf"' not in page.text
        await asyncio.sleep(0.5)  # a job that started would have recorded its run by now
        assert not service.running
        assert await state(db) == before


# -- 5: with a token ----------------------------------------------------------------------


def hidden_csrf(html: str, action: str) -> str | None:
    """The CSRF token in the form that posts to ``action``."""
    found = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.DOTALL)
    if found is None:
        return None
    fields = Markup(found.group(1)).find("input", name="csrf", type="hidden")
    return fields[0]["value"] if fields else None


async def test_admin_actions_need_the_token_or_a_session_with_its_csrf_token(
    db_url: str, template: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await put_clan(db_url, template, tmp_path)
    gate = AdminGate(web_settings(db_url, admin_token=TOKEN))
    seen: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    async with served(db_url, now=AS_OF, admin_token=TOKEN) as (address, db, service):
        victim = (await current_rows(db))[0].member_id
        opt_out = f"/admin/members/{victim}/opt-out"
        async with httpx.AsyncClient(
            base_url=address, timeout=30, event_hooks={"response": [keep]}
        ) as client:

            async def post(
                path: str, data: dict[str, str], cookie: str | None, **headers: str
            ) -> httpx.Response:
                client.cookies.clear()  # only the cookie given here
                if cookie is not None:
                    headers["cookie"] = f"{SESSION_COOKIE}={cookie}"
                return await client.post(path, data=data, headers=headers)

            async def get(path: str, cookie: str | None = None) -> httpx.Response:
                client.cookies.clear()
                headers = {"cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
                return await client.get(path, headers=headers)

            # the API: a bearer token and nothing else
            for path, body in [
                ("/api/v1/admin/jobs/watchdog/run", None),
                (f"/api/v1/admin/members/{victim}/opt-out", {"opted_out": True}),
                (f"/api/v1/admin/members/{victim}/accounts", {"account": "discord:x"}),
            ]:
                for authorization in (
                    None,
                    "Bearer wrong-token-wrong-token",
                    f"Bearer {TOKEN}x",
                    f"Bearer {TOKEN[:-1]}",
                    f"Basic {TOKEN}",
                    TOKEN,
                ):
                    headers = {"authorization": authorization} if authorization else {}
                    answer = await client.post(path, json=body, headers=headers)
                    assert answer.status_code == 401, (path, authorization, answer.text)
                    assert answer.headers["www-authenticate"] == "Bearer"
            # the right token gets through (to answers that change nothing)
            bearer = {"authorization": f"Bearer {TOKEN}"}
            answer = await client.post("/api/v1/admin/jobs/no-such-job/run", headers=bearer)
            assert answer.status_code == 409, answer.text
            answer = await client.post(
                "/api/v1/admin/members/999999/opt-out", json={}, headers=bearer
            )
            assert answer.status_code == 404, answer.text

            # the pages: a sign-in form, then a session cookie
            login_page = await get("/admin")
            assert Markup(login_page.text).find("input", name="token", type="password")
            assert 'action="/admin/login"' in login_page.text
            before_login = await get(f"/members/{victim}")
            assert hidden_csrf(before_login.text, opt_out) is None

            wrong = await post("/admin/login", {"token": "not-the-token-at-all"}, None)
            assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
            wrong = await post("/admin/login", {"token": TOKEN + " "}, None)
            assert wrong.status_code == 403 and "set-cookie" not in wrong.headers

            sessions = []
            for _ in range(2):
                signed_in = await post("/admin/login", {"token": TOKEN}, None)
                assert signed_in.status_code == 303, signed_in.text
                assert signed_in.headers["location"].startswith("/admin")
                name_value, *attributes = signed_in.headers["set-cookie"].split(";")
                name, _, cookie = name_value.partition("=")
                assert name == SESSION_COOKIE
                flags = {a.strip().lower() for a in attributes}
                assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
                sessions.append(cookie)
            cookie, other = sessions
            assert cookie != other  # a session each
            nonce = cookie.partition(".")[0]

            admin_page = await get("/admin", cookie)
            assert "signed in as admin" in admin_page.text
            page = await get(f"/members/{victim}", cookie)
            csrf = hidden_csrf(page.text, opt_out)
            assert csrf is not None, "the member page offers no opt-out form to an admin"
            assert csrf == gate.csrf_token(nonce)
            assert hidden_csrf(page.text, f"/admin/members/{victim}/link") == csrf
            other_csrf = hidden_csrf((await get(f"/members/{victim}", other)).text, opt_out)
            assert other_csrf is not None and other_csrf != csrf

            before = await state(db)
            evil = {"origin": "https://evil.example", "referer": "https://evil.example/x"}
            refused = [
                (opt_out, {}, cookie, {}, (403, 422)),  # no CSRF field
                (opt_out, {}, cookie, evil, (403, 422)),  # a cross-site form
                (opt_out, {"csrf": ""}, cookie, evil, (403, 422)),
                (opt_out, {"csrf": "0" * 64}, cookie, {}, (403,)),
                (opt_out, {"csrf": other_csrf}, cookie, {}, (403,)),  # another session's
                (opt_out, {"csrf": csrf}, None, {}, (403,)),  # no session
                (opt_out, {"csrf": csrf}, other, {}, (403,)),  # not this session's
                (opt_out, {"csrf": csrf}, f"{nonce}.{'0' * 64}", {}, (403,)),  # forged
                (opt_out, {"csrf": TOKEN}, cookie, {}, (403,)),
                ("/admin/jobs/watchdog/run", {"csrf": other_csrf}, cookie, {}, (403,)),
                (
                    f"/admin/members/{victim}/link",
                    {"csrf": "bad", "account": "discord:someone"},
                    cookie,
                    {},
                    (403,),
                ),
            ]
            for path, data, session, headers, statuses in refused:
                answer = await post(path, data, session, **headers)
                assert answer.status_code in statuses, (path, data, session, answer.text)
                assert "location" not in answer.headers
            await asyncio.sleep(0.5)
            assert not service.running
            assert await state(db) == before
            assert not await opted_out(db, victim)
            assert f'href="/members/{victim}"' in (await get("/members")).text

            # the real thing: the session's own CSRF token. A link first: its notice and
            # its error page show what was asked for, escaped
            link = f"/admin/members/{victim}/link"
            missing = await post(
                link, {"csrf": csrf, "account": f"discord:{HOSTILE['svg']}"}, cookie
            )
            assert missing.status_code == 404, missing.text
            assert "<svg" not in missing.text and str(escape(HOSTILE["svg"])) in missing.text
            async with db.write() as conn:
                linked = (
                    await conn.execute(
                        select(account.c.id).where(
                            account.c.platform == "discord", account.c.member_id != victim
                        )
                    )
                ).scalar()
                await conn.execute(
                    update(account)
                    .where(account.c.id == linked)
                    .values(username=HOSTILE["script"], global_name=None, nickname=None)
                )
            done = await post(
                link, {"csrf": csrf, "account": f"discord:{HOSTILE['script']}"}, cookie
            )
            assert done.status_code == 303, done.text
            assert done.headers["location"].startswith(f"/members/{victim}?notice=")
            async with db.read() as conn:
                moved = await conn.execute(select(account).where(account.c.id == linked))
                assert moved.one()._mapping["member_id"] == victim
            shown = await get(done.headers["location"], cookie)
            notice = Markup(shown.text).find("p", **{"class": "notice"})
            assert notice, "a notice the dashboard signed is shown"
            assert "<script>alert" not in shown.text
            assert f"linked discord:{escape(HOSTILE['script'])} to member #{victim}" in shown.text

            done = await post(opt_out, {"csrf": csrf}, cookie)
            assert done.status_code == 303, done.text
            assert done.headers["location"].startswith("/members?notice=")
            assert await opted_out(db, victim)
            assert f'href="/members/{victim}"' not in (await get("/members")).text
            assert (await get(f"/members/{victim}")).status_code == 404
            assert (await client.get(f"/api/v1/members/{victim}")).status_code == 404

            runs_before = len((await state(db))["runs"])
            started = await post("/admin/jobs/watchdog/run", {"csrf": csrf}, cookie)
            assert started.status_code == 303, started.text
            assert started.headers["location"].startswith("/jobs?notice=")
            deadline = time.monotonic() + 10
            while len((await state(db))["runs"]) == runs_before:  # the job ran
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)

            signed_out = await post("/admin/logout", {"csrf": csrf}, cookie)
            assert signed_out.status_code == 303
            assert signed_out.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=")
        await asyncio.sleep(0.3)

    assert len(seen) > 40
    problems = [p for r in seen for p in header_problems(r)]
    assert not problems, "\n".join(problems)
    for response in seen:
        where = f"{response.request.method} {response.request.url}"
        assert TOKEN not in response.text, where
        for name, value in response.headers.items():
            assert TOKEN not in value, (where, name)
    assert caplog.records, "nothing was logged: the capture is not working"
    for record in caplog.records:
        assert TOKEN not in record.getMessage(), record
        assert TOKEN not in (record.exc_text or ""), record
    assert TOKEN not in caplog.text


# -- 6: opted-out members are nowhere -----------------------------------------------------

MARK = "Xyzzy-Optout"  # searched for; their names (and old names) all start with it
NAMES = [f"{MARK} Name", f"{MARK} Old", f"{MARK} New"]


def everything() -> list[str]:
    """Every page and API endpoint that lists or shows members."""
    found = ["/inactive", "/jobs", "/api/v1/inactive", "/api/v1/jobs", "/api/v1/health"]
    for window in ("7d", "30d", "90d"):
        found += [
            f"/?window={window}",
            f"/members?window={window}",
            f"/members?window={window}&q={MARK}",
            f"/members?window={window}&sort=name&order=asc",
            f"/api/v1/overview?window={window}",
            f"/api/v1/members?window={window}&limit=1000",
            f"/api/v1/members?window={window}&q={MARK}",
            f"/api/v1/roster?window={window}",
            f"/api/v1/activity?window={window}",
        ]
        for metric in LEADERBOARDS:
            found += [
                f"/leaderboards?metric={q(metric)}&window={window}&limit=500",
                f"/api/v1/leaderboard?metric={q(metric)}&window={window}&limit=500",
            ]
    return found


def member_ids(data: Any) -> set[int]:
    if isinstance(data, dict):
        own = {data["member_id"]} if "member_id" in data else set()
        return own.union(*(member_ids(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(member_ids(v) for v in data))
    return set()


async def test_an_opted_out_member_is_on_no_page_and_in_no_answer(
    db_url: str, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put_clan(db_url, template, tmp_path)
    async with open_database(db_url) as db:
        rows = await current_rows(db)
        victim = max(rows, key=lambda r: (r.messages["30d"], r.xp["30d"] or 0)).member_id
        await rename_member(db, victim, NAMES[0])
        await add_rename(db, victim, NAMES[1], NAMES[2], 990_000_002)

    async with (
        served(db_url, now=AS_OF) as (address, _db, _service),
        httpx.AsyncClient(base_url=address, timeout=30) as client,
    ):
        # shown before: the search below would find them
        for path in [
            "/",
            "/members",
            f"/members/{victim}",
            "/leaderboards?metric=messages&limit=500",
            f"/api/v1/members/{victim}",
        ]:
            assert NAMES[0] in (await client.get(path)).text, path
        assert NAMES[1] in (await client.get("/api/v1/roster?window=7d")).text

        monkeypatch.setenv("CLANPULSE_DATABASE_URL", db_url)
        await asyncio.to_thread(clanpulse, "member", "opt-out", f"#{victim}")

        deadline = time.monotonic() + 10  # the dashboard notices within a second or so
        while NAMES[0] in (await client.get("/api/v1/members?limit=1000")).text:
            assert time.monotonic() < deadline, "still listed after opting out"
            await asyncio.sleep(0.2)

        for path in everything():
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            assert not [n for n in NAMES if n in answer.text], path
            if path.startswith("/api/"):
                assert victim not in member_ids(answer.json()), path
            else:
                assert f'href="/members/{victim}"' not in answer.text, path
        for path in (f"/members/{victim}", f"/api/v1/members/{victim}"):
            answer = await client.get(path)
            assert answer.status_code == 404, path
            assert not [n for n in NAMES if n in answer.text], path
    async with open_database(db_url) as db:
        assert await opted_out(db, victim)
