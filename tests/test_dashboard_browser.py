"""The dashboard in a real browser, used as a person would: `clanpulse serve` runs as a
subprocess over a clan harvested for real, and headless Chromium loads its pages, reads
its charts' pixels, sorts and filters the members table, switches windows, signs in as
admin and runs a job, on a desktop and a phone-sized screen.

Figures on the pages are checked against the JSON API of the same server. The API and
the pages compute "as of the start of this minute", so where a figure can move when the
minute turns (a window's edge passing a message), the API is asked before and after the
page is read, and the page must show one of the two.

Full-page screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest
from playwright.sync_api import Page

from tests.browser_support import (  # noqa: F401  (fixtures)
    BrowserPage,
    browser_page,
    chromium_path,
    screenshot,
)
from tests.conftest import sqlite_url
from tests.web_support import clan_template

# a small clan (quick to build) that still has new, active and inactive members
INACTIVE_DAYS = 1  # the shared clan has inactive members at 1 day
TOKEN = "browser-Admin-Token-5e4d3c2b1a09"
ADMIN_ZONE = "America/New_York"  # never UTC's clock: -5 or -4 hours
TIME_FORMAT = "%Y-%m-%d %H:%M"  # the pages' local(dt)
STARTUP_TIMEOUT = 90.0  # a loaded CI machine imports slowly
STOP_TIMEOUT = 30.0
READY = re.compile(r"dashboard at (http://127\.0\.0\.1:\d+)")

T = TypeVar("T")


# -- the servers ---------------------------------------------------------------------------


class Serve:
    """`python -m clanpulse.cli serve --port 0` over one database, with only the
    CLANPULSE_* settings given here (none from the caller's environment or a .env)."""

    def __init__(self, db_url: str, cwd: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLANPULSE_")}
        env["CLANPULSE_DATABASE_URL"] = db_url
        env.update({f"CLANPULSE_{key.upper()}": value for key, value in settings.items()})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clanpulse.cli", "serve", "--port", "0"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.address = ""
        self._ready = threading.Event()
        # drains stderr for the server's whole life, so its log never blocks it
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = READY.search(line)
            if found and not self.address:
                self.address = found.group(1)
                self._ready.set()
        self._ready.set()  # it exited

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> str:
        self._ready.wait(STARTUP_TIMEOUT)
        if not self.address:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"clanpulse serve did not start:\n{self.log}")
        return self.address

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def check_stopped(self) -> None:
        """After :meth:`stop`: it must exit cleanly, having logged no exception."""
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"clanpulse serve did not exit on SIGTERM:\n{self.log}")
        self._reader.join(timeout=5)
        assert code == 0, f"clanpulse serve exited with {code}:\n{self.log}"
        assert "stopped" in self.log
        assert "Traceback" not in self.log, self.log


@dataclass(frozen=True)
class Sites:
    plain: str  # read-only, in UTC
    admin: str  # with an admin token, in ADMIN_ZONE


@pytest.fixture(scope="module")
def sites(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:  # noqa: F811
    """The clan, built once, and two dashboards serving copies of it (started together)."""
    root = tmp_path_factory.mktemp("dashboard")
    template = clan_template(tmp_path_factory.getbasetemp())
    plain_db, admin_db = root / "clan.db", root / "admin.db"
    # copies, so the admin's job runs touch neither the other nor the shared template
    for copy in (plain_db, admin_db):
        for suffix in ("", "-wal"):
            if Path(f"{template}{suffix}").exists():
                shutil.copyfile(f"{template}{suffix}", f"{copy}{suffix}")
    common = {"inactive_days": str(INACTIVE_DAYS)}
    servers = [Serve(sqlite_url(plain_db), root, **common)]
    servers.append(
        Serve(sqlite_url(admin_db), root, admin_token=TOKEN, timezone=ADMIN_ZONE, **common)
    )
    try:
        plain, admin = (server.wait_ready() for server in servers)
        yield Sites(plain=plain, admin=admin)
    finally:
        started = [server for server in servers if server.address]
        for server in servers:
            if server.address:
                server.stop()  # both at once: each takes a moment to wind down
            elif server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait()
        for server in started:
            server.check_stopped()


# -- helpers -------------------------------------------------------------------------------


def api(base: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base}/api/v1{path}", params=params, timeout=15)
    response.raise_for_status()
    return response.json()


def around(fetch: Callable[[], T], look: Callable[[], Any]) -> tuple[Any, tuple[T, T]]:
    """What ``look`` reads off the page, and what ``fetch`` gives before and after it."""
    before = fetch()
    seen = look()
    return seen, (before, fetch())


def go(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, f"{url}: {response and response.status}"


def heading(page: Page) -> str:
    return " ".join(page.locator("h1").first.inner_text().split())


def member_heading(page: Page) -> tuple[str, str]:
    """A profile's heading: the name, and the status badge beside it."""
    name = page.evaluate(
        "() => document.querySelector('h1.member-name').firstChild.textContent.trim()"
    )
    return name, page.locator("h1.member-name .badge").inner_text()


def query(page: Page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(page.url).query).items()}


# The chart on a canvas: its labels and values as Chart.js holds them, and its pixels:
# how many are not transparent, and how many have exactly the bars' colour.
CHART_STATE = """(id) => {
  const canvas = document.getElementById(id);
  const chart = window.Chart && Chart.getChart(canvas);
  if (!chart) return null;
  const dataset = chart.data.datasets[0];
  const [r, g, b] = String(dataset.backgroundColor).match(/\\d+/g).map(Number);
  const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  let bars = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] !== 0) painted++;
    if (px[i] === r && px[i + 1] === g && px[i + 2] === b && px[i + 3] === 255) bars++;
  }
  return {labels: chart.data.labels, values: dataset.data, painted, bars,
          size: canvas.width * canvas.height};
}"""


def chart_state(page: Page, canvas_id: str) -> dict[str, Any]:
    page.wait_for_function(
        "(id) => !!(window.Chart && Chart.getChart(document.getElementById(id)))",
        arg=canvas_id,
    )
    state: dict[str, Any] = page.evaluate(CHART_STATE, canvas_id)
    assert state is not None
    return state


def check_charts(page: Page, fetch_days: Callable[[], list[dict[str, Any]]]) -> int:
    """Both day charts are drawn, with the API's days and figures; the number of days."""
    (messages, xp), (before, after) = around(
        fetch_days, lambda: (chart_state(page, "messages-chart"), chart_state(page, "xp-chart"))
    )
    for state, field in ((messages, "messages"), (xp, "xp_gained")):
        assert state["size"] > 0
        assert state["painted"] > 0, f"{field}: nothing drawn on the canvas"
        expected = [
            ([d["day"] for d in days], [d[field] for d in days]) for days in (before, after)
        ]
        assert (state["labels"], state["values"]) in expected, field
        assert len(state["labels"]) == len(state["values"])
        if any(state["values"]):
            assert state["bars"] > 0, f"{field}: no bar drawn though there are figures"
    assert len(messages["labels"]) == len(xp["labels"])
    return len(messages["labels"])


def stats(page: Page) -> dict[str, str]:
    """The headline figures: label -> the figure shown."""
    found: dict[str, str] = page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll(".stats .stat"))
             .map(s => [s.querySelector("dt").textContent.trim(),
                        s.querySelector("dd").textContent.trim()]))"""
    )
    return found


# One column of the members table, found by its header's text (without the sort mark).
MEMBERS_COLUMN = """(label) => {
  const table = document.getElementById("members-table");
  const heads = Array.from(table.tHead.rows[0].cells)
    .map(th => th.textContent.replace(/[\\u25b2\\u25bc]/g, "").trim());
  const i = heads.indexOf(label);
  if (i < 0) throw new Error("no column " + label + " in " + heads.join(", "));
  return Array.from(table.tBodies[0].rows).map(row => row.cells[i].textContent.trim());
}"""


def column(page: Page, label: str) -> list[str]:
    values: list[str] = page.evaluate(MEMBERS_COLUMN, label)
    return values


def click_header(page: Page, label: str) -> None:
    link = page.locator("#members-table thead").get_by_role("link", name=label, exact=True)
    with page.expect_navigation():
        link.click()


def sorted_by(page: Page) -> tuple[str, str]:
    """The header marked as sorted, and its aria-sort."""
    th = page.locator("#members-table thead th[aria-sort]")
    assert th.count() == 1
    label = (th.text_content() or "").replace("\u25b2", "").replace("\u25bc", "").strip()
    return label, th.get_attribute("aria-sort") or ""


def count(text: str) -> int:
    return int(text.replace(",", ""))


def shared_part(name: str, rows: list[dict[str, Any]]) -> str | None:
    """Four letters of ``name`` that some other names have too, but not all."""
    for i in range(len(name) - 3):
        part = name[i : i + 4]
        having = sum(part.casefold() in r["name"].casefold() for r in rows)
        if part.isalpha() and 2 <= having < len(rows):
            return part
    return None


def no_page_overflow(page: Page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert widths[0] <= widths[1] + 1, f"the page scrolls sideways: {widths} on {page.url}"
    assert widths[2] <= widths[1] + 1, f"the body is wider than the screen: {widths}"


# -- tests ---------------------------------------------------------------------------------


def test_every_page_loads_and_the_charts_draw(
    browser_page: BrowserPage,  # noqa: F811
    sites: Sites,
) -> None:
    page, base = browser_page.page, sites.plain
    top = api(base, "/members", sort="messages", order="desc", limit=1)["members"][0]

    go(page, f"{base}/")
    assert heading(page) == "Overview last 30d"
    assert page.locator("footer").inner_text().strip() == "Times in UTC"
    days = check_charts(page, lambda: api(base, "/activity", window="30d")["days"])
    # 30 days cut into local days: a partial first and last one (30 at exactly midnight)
    assert days in (30, 31)
    screenshot(page, "overview")

    go(page, f"{base}/members")
    total = api(base, "/members")["total"]
    assert heading(page) == f"Members {total} members"
    assert page.locator("#members-table tbody tr").count() == total
    screenshot(page, "members")

    go(page, f"{base}/members/{top['member_id']}")
    assert member_heading(page) == (top["name"], top["status"])
    check_charts(page, lambda: api(base, f"/members/{top['member_id']}", window="30d")["days"])
    screenshot(page, "member")

    go(page, f"{base}/leaderboards")
    assert heading(page) == "Leaderboards Messages, last 30d"
    first = page.locator("#leaderboard-table tbody tr").first
    assert first.locator("td.name").inner_text() == top["name"]
    screenshot(page, "leaderboards")

    go(page, f"{base}/inactive")
    inactive = api(base, "/inactive")["members"]
    assert inactive, "the clan was meant to have inactive members"
    assert heading(page) == f"Inactive {len(inactive)} members"
    shown = page.locator("#inactive-table tbody td.name").all_inner_texts()
    assert shown == [r["name"] for r in inactive]
    screenshot(page, "inactive")

    go(page, f"{base}/jobs")
    assert heading(page).startswith("Jobs")
    jobs = [j["job"] for j in api(base, "/jobs")["health"]["jobs"]]
    assert page.locator("#jobs-table tbody td.name").all_inner_texts() == jobs
    assert page.get_by_role("button", name="Run now").count() == 0  # read-only
    screenshot(page, "jobs")

    go(page, f"{base}/admin")
    assert heading(page) == "Admin"
    assert page.locator("section.card h2").inner_text() == "Read-only"
    assert page.locator("#login-form").count() == 0
    screenshot(page, "admin")

    browser_page.assert_no_errors()


def test_switching_the_window_changes_figures_and_chart(
    browser_page: BrowserPage,  # noqa: F811
    sites: Sites,
) -> None:
    page, base = browser_page.page, sites.plain
    go(page, f"{base}/")
    bars_30d = chart_state(page, "messages-chart")["labels"]

    switcher = page.locator("nav.window-switcher")
    assert switcher.locator("a.active").inner_text() == "30d"
    with page.expect_navigation():
        switcher.get_by_role("link", name="7d", exact=True).click()
    assert query(page)["window"] == "7d"
    assert heading(page) == "Overview last 7d"
    assert switcher.locator("a[aria-current]").inner_text() == "7d"

    shown, (before, after) = around(
        lambda: api(base, "/overview", window="7d"), lambda: stats(page)
    )
    assert count(shown["Messages"]) in (before["messages"], after["messages"])
    assert count(shown["XP gained"]) in (before["xp_gained"], after["xp_gained"])
    assert count(shown["Members"]) == before["members"]
    assert before["messages"] != api(base, "/overview", window="30d")["messages"]

    bars_7d = check_charts(page, lambda: api(base, "/activity", window="7d")["days"])
    assert bars_7d in (7, 8)
    assert bars_7d < len(bars_30d)
    browser_page.assert_no_errors()


def test_members_table_sorts_filters_and_opens_a_profile(
    browser_page: BrowserPage,  # noqa: F811
    sites: Sites,
) -> None:
    page, base = browser_page.page, sites.plain
    go(page, f"{base}/members")
    assert sorted_by(page) == ("Messages", "descending")
    messages = [count(v) for v in column(page, "Messages")]
    assert messages == sorted(messages, reverse=True)
    assert len(set(messages)) > 3  # enough distinct figures for the order to mean something

    # the sorted column's header flips the order
    click_header(page, "Messages")
    assert query(page)["sort"] == "messages"
    assert sorted_by(page) == ("Messages", "ascending")
    messages = [count(v) for v in column(page, "Messages")]
    assert messages == sorted(messages)

    click_header(page, "Messages")
    assert sorted_by(page) == ("Messages", "descending")
    messages = [count(v) for v in column(page, "Messages")]
    assert messages == sorted(messages, reverse=True)

    # another column starts ascending for names
    click_header(page, "Member")
    assert sorted_by(page) == ("Member", "ascending")
    names = column(page, "Member")
    assert names == sorted(names, key=str.casefold)

    # a status chosen in the filter form applies at once (no button pressed)
    go(page, f"{base}/members")
    with page.expect_navigation():
        page.locator('#member-filters select[name="status"]').select_option("inactive")
    assert query(page)["status"] == "inactive"
    inactive = api(base, "/members", status="inactive")
    assert inactive["total"] > 0
    badges = page.locator("#members-table tbody .badge").all_inner_texts()
    assert badges == ["inactive"] * inactive["total"]
    assert heading(page) == f"Members {inactive['total']} members"
    assert set(column(page, "Member")) == {r["name"] for r in inactive["members"]}
    assert page.locator("#member-filters a.clear").is_visible()

    # typing in the search box searches after a pause, and keeps the focus there
    go(page, f"{base}/members")
    everyone = api(base, "/members")["members"]
    wanted, part = next(
        (r, part) for r in everyone if (part := shared_part(r["name"], everyone)) is not None
    )
    typed = part.swapcase()  # any case matches
    box = page.locator('#member-filters input[name="q"]')
    with page.expect_navigation():
        box.press_sequentially(typed, delay=40)
    assert query(page)["q"] == typed
    assert page.evaluate("() => document.activeElement && document.activeElement.name") == "q"
    assert box.input_value() == typed
    names = column(page, "Member")
    assert wanted["name"] in names
    assert len(names) >= 2
    assert all(typed.casefold() in name.casefold() for name in names), names
    assert set(names) == {r["name"] for r in api(base, "/members", q=typed)["members"]}

    # a member's name opens their profile
    with page.expect_navigation():
        page.locator("#members-table tbody td.name").get_by_role(
            "link", name=wanted["name"], exact=True
        ).click()
    assert urlsplit(page.url).path == f"/members/{wanted['member_id']}"
    assert member_heading(page) == (wanted["name"], wanted["status"])
    detail = api(base, f"/members/{wanted['member_id']}")
    assert detail["accounts"]
    rows = page.locator("#accounts-table tbody tr")
    assert rows.count() == len(detail["accounts"])
    shown = [tuple(rows.nth(i).locator("td").all_inner_texts()[:2]) for i in range(rows.count())]
    assert shown == [(a["platform"], a["name"]) for a in detail["accounts"]]
    check_charts(page, lambda: api(base, f"/members/{wanted['member_id']}")["days"])
    browser_page.assert_no_errors()


def test_phone_width_pages_do_not_scroll_sideways(
    browser_page: BrowserPage,  # noqa: F811
    sites: Sites,
) -> None:
    page, base = browser_page.page, sites.plain
    page.set_viewport_size({"width": 390, "height": 844})
    go(page, f"{base}/members")
    assert page.evaluate("() => window.innerWidth") == 390
    assert page.locator("#members-table").is_visible()
    no_page_overflow(page)
    # the wide table scrolls inside its own wrapper instead
    wrap = page.locator(".table-wrap", has=page.locator("#members-table"))
    assert wrap.evaluate("(el) => el.getBoundingClientRect().right <= window.innerWidth + 1")
    screenshot(page, "members-phone")

    go(page, f"{base}/")
    no_page_overflow(page)
    state = chart_state(page, "messages-chart")
    assert state["painted"] > 0 and state["bars"] > 0
    box = page.locator("#messages-chart").bounding_box()
    assert box is not None and 0 < box["width"] <= 390
    screenshot(page, "overview-phone")
    browser_page.assert_no_errors()


def test_admin_signs_in_and_runs_a_job_in_local_time(
    browser_page: BrowserPage,  # noqa: F811
    sites: Sites,
) -> None:
    page, base = browser_page.page, sites.admin
    zone = ZoneInfo(ADMIN_ZONE)

    # not signed in: no job can be run from the page
    go(page, f"{base}/jobs")
    assert page.get_by_role("button", name="Run now").count() == 0
    assert page.locator("footer").inner_text().strip() == f"Times in {ADMIN_ZONE}"

    go(page, f"{base}/admin")
    assert page.locator("section.card h2").inner_text() == "Sign in"
    page.locator('#login-form input[name="token"]').fill(TOKEN)
    with page.expect_navigation():
        page.locator("#login-form").get_by_role("button", name="Sign in").click()
    assert urlsplit(page.url).path == "/admin"
    assert page.locator("p.notice").inner_text() == "signed in"
    assert page.locator("section.card h2").inner_text() == "Signed in"
    footer = page.locator("footer").inner_text().strip()
    assert footer == f"Times in {ADMIN_ZONE} · signed in as admin"

    go(page, f"{base}/jobs")
    watchdog = page.locator('#jobs-table tr[data-job="watchdog"]')
    with page.expect_navigation():
        watchdog.get_by_role("button", name="Run now").click()
    assert urlsplit(page.url).path == "/jobs"
    assert page.locator("p.notice").inner_text() == "watchdog started"

    deadline = time.monotonic() + 15
    while True:
        go(page, f"{base}/jobs")
        runs = page.locator(
            "#runs-table tbody tr", has=page.locator("td.name", has_text="watchdog")
        )
        if runs.count() and runs.first.locator(".badge").inner_text() != "running":
            break
        assert time.monotonic() < deadline, "no finished watchdog run on the jobs page"
        page.wait_for_timeout(300)
    # the notice was for one page view only
    assert page.locator("p.notice").count() == 0
    run = api(base, "/jobs")["runs"][0]
    assert run["job"] == "watchdog"
    cells = runs.first.locator("td").all_inner_texts()
    started = datetime.fromisoformat(run["started_at"]).astimezone(zone)
    assert cells[1] == started.strftime(TIME_FORMAT)
    assert cells[3] == run["status"]
    screenshot(page, "jobs-admin")

    # times on a profile are the API's UTC times in the configured zone
    top = api(base, "/members", sort="last_message_at", order="desc", limit=1)["members"][0]
    go(page, f"{base}/members/{top['member_id']}")
    utc = datetime.fromisoformat(top["last_message_at"])
    local = utc.astimezone(zone).strftime(TIME_FORMAT)
    assert local != utc.strftime(TIME_FORMAT)
    facts = page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll("dl.facts > div"))
             .map(d => [d.querySelector("dt").textContent.trim(),
                        d.querySelector("dd").textContent.trim()]))"""
    )
    assert facts["Last message"] == local
    seen = datetime.fromisoformat(top["last_seen_at"]).astimezone(zone).strftime(TIME_FORMAT)
    assert facts["Last seen"] == seen
    # and the day charts are cut into that zone's days, as the API's are
    check_charts(page, lambda: api(base, f"/members/{top['member_id']}")["days"])
    browser_page.assert_no_errors()
