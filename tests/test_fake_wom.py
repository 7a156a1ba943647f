"""The fake Wise Old Man API v2, exercised over real HTTP on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from clanpulse.demo.fake_wom import FakeWomConfig, FakeWomServer, parse_period
from clanpulse.demo.wom_data import (
    WomGroup,
    compute_gained,
    generate_wom_group,
    parse_wom_time,
    wom_iso,
)
from clanpulse.wom_metrics import METRICS, SKILLS
from tests.samples import sample

END = datetime(2026, 3, 29, tzinfo=UTC)
NOW = END + timedelta(hours=1)
CODE = "demo-verification-code"


def _sample(name: str) -> Any:
    return json.loads(sample(f"wom/{name}").read_text())


@pytest.fixture(scope="module")
def group() -> WomGroup:
    return generate_wom_group(seed=21, members=40, days=150, end=END)


@pytest.fixture(scope="module")
def server(group: WomGroup) -> Iterator[FakeWomServer]:
    # rate limits off and a fixed clock: the functional tests must not depend on either
    with FakeWomServer(group, FakeWomConfig(rate_limits=False, now=NOW)) as running:
        yield running


@pytest.fixture()
def client(server: FakeWomServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.url, headers={"User-Agent": "clanpulse-tests"}) as http:
        yield http


def _ok(response: httpx2.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _fails(response: httpx2.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert "message" in body
    if code is not None:
        assert body["code"] == code
    return body


def _snapshot_keys(snapshot: dict[str, Any]) -> None:
    expected = _sample("player.json")["latestSnapshot"]
    assert list(snapshot) == list(expected)
    data = snapshot["data"]
    assert list(data) == list(expected["data"])
    assert list(data["skills"]) == list(SKILLS)
    for section in ("skills", "bosses", "activities", "computed"):
        keys = set(next(iter(expected["data"][section].values())))
        assert all(set(entry) == keys for entry in data[section].values()), section


# -- shapes -----------------------------------------------------------------------------


def test_group_details_shape(client: httpx2.Client, group: WomGroup) -> None:
    body = _ok(client.get(f"/groups/{group.id}"))
    expected = _sample("group.json")
    assert list(body) == list(expected)
    assert body["memberCount"] == len(body["memberships"]) == len(group.members())
    assert list(body["roleOrders"][0]) == list(expected["roleOrders"][0])
    assert [r["index"] for r in body["roleOrders"]] == list(range(len(body["roleOrders"])))
    for membership in body["memberships"]:
        assert list(membership) == list(expected["memberships"][0])
        assert list(membership["player"]) == list(expected["memberships"][0]["player"])
    assert any(m["clientSyncJoinedAt"] is None for m in body["memberships"])
    assert any(m["clientSyncJoinedAt"] is not None for m in body["memberships"])


def test_player_details(client: httpx2.Client, group: WomGroup) -> None:
    expected = _sample("player.json")
    for name in ("tide%20pool", "Tide_Pool", "tidepool"):
        body = _ok(client.get(f"/players/{name}"))
        assert list(body) == list(expected)
        _snapshot_keys(body["latestSnapshot"])
    pool = _ok(client.get("/players/tide%20pool"))
    assert pool["username"] == "tide pool" and pool["displayName"] == "Tide Pool"
    assert _ok(client.get("/players/tidepool"))["id"] != pool["id"]
    assert pool["latestSnapshot"]["createdAt"] == pool["updatedAt"]
    assert pool["exp"] == pool["latestSnapshot"]["data"]["skills"]["overall"]["experience"]
    _fails(client.get("/players/nobody%20here"), 404)
    assert client.get("/players/nobody").json()["message"] == "Player not found."


def test_errors_and_unknown_routes(client: httpx2.Client, group: WomGroup) -> None:
    _fails(client.get("/groups/999"), 404, "GROUP_NOT_FOUND")
    _fails(client.get("/groups/999/activity"), 404, "GROUP_NOT_FOUND")
    _fails(client.get(f"/groups/{group.id}/competitions"), 404, "ENDPOINT_NOT_FOUND")
    _fails(client.get("/nothing/here"), 404, "ENDPOINT_NOT_FOUND")
    _fails(client.delete(f"/groups/{group.id}"), 404, "ENDPOINT_NOT_FOUND")


# -- snapshots --------------------------------------------------------------------------


def test_snapshots_pages_newest_first(client: httpx2.Client, group: WomGroup) -> None:
    player = group.player_by_username("rook")
    assert player is not None
    path = "/players/rook/snapshots"
    first = _ok(client.get(path))
    assert len(first) == 20
    _snapshot_keys(first[0])
    assert [s["createdAt"] for s in first] == sorted((s["createdAt"] for s in first), reverse=True)
    collected: list[str] = []
    offset = 0
    while True:
        page = _ok(client.get(path, params={"limit": 200, "offset": offset}))
        collected += [s["createdAt"] for s in page]
        offset += len(page)
        if len(page) < 200:
            break
    assert (
        collected
        == [wom_iso(int(t.timestamp() * 1000)) for t in group.snapshot_times(player.id)][::-1]
    )
    _fails(client.get(path, params={"limit": 201}), 400, "VALIDATION_ERROR")
    _fails(client.get(path, params={"limit": 0}), 400)
    _fails(client.get(path, params={"offset": -1}), 400)


def test_snapshots_date_filters_and_the_start_date_trap(
    client: httpx2.Client, group: WomGroup
) -> None:
    player = group.player_by_username("rookie ned")
    assert player is not None
    path = "/players/rookie%20ned/snapshots"
    times = group.snapshot_times(player.id)
    start, end = times[10], times[25]
    whole = _ok(client.get(path, params={"limit": 200}))
    # startDate alone is silently ignored: the whole history comes back
    alone = _ok(client.get(path, params={"limit": 200, "startDate": wom_iso_dt(start)}))
    assert alone == whole
    assert _ok(client.get(path, params={"limit": 200, "endDate": wom_iso_dt(end)})) == whole
    both = _ok(
        client.get(
            path, params={"limit": 200, "startDate": wom_iso_dt(start), "endDate": wom_iso_dt(end)}
        )
    )
    assert [parse_wom_time(s["createdAt"]) for s in both] == times[10:26][::-1]
    week = _ok(client.get(path, params={"limit": 200, "period": "week"}))
    assert all(parse_wom_time(s["createdAt"]) >= NOW - timedelta(days=7) for s in week)
    assert len(week) == sum(1 for t in times if t >= NOW - timedelta(days=7))
    _fails(client.get(path, params={"period": "fortnight"}), 400, "INVALID_PERIOD")
    _fails(
        client.get(path, params={"startDate": wom_iso_dt(end), "endDate": wom_iso_dt(start)}),
        400,
        "INVALID_DATE_RANGE",
    )


def wom_iso_dt(moment: datetime) -> str:
    return wom_iso(int(moment.timestamp() * 1000))


def test_periods() -> None:
    assert parse_period("week") == timedelta(days=7)
    assert parse_period("month") == parse_period("1m") == timedelta(days=31)
    assert parse_period("year") == timedelta(seconds=31_556_926)
    assert parse_period("five_min") == timedelta(minutes=5)
    assert parse_period("2w3D") == timedelta(days=17)
    assert parse_period("1y6m12h") == timedelta(seconds=31_556_926 + 6 * 31 * 86_400 + 43_200)
    for bad in ("", "5min", "3d2w", "m", "0d", "weekly", "1x"):
        assert parse_period(bad) is None, bad


# -- gains ------------------------------------------------------------------------------


def test_player_gained(client: httpx2.Client, group: WomGroup) -> None:
    expected = _sample("player-gained.json")
    player = group.player_by_username("fern whistle")
    assert player is not None
    body = _ok(client.get("/players/fern%20whistle/gained", params={"period": "month"}))
    assert list(body) == list(expected) and list(body["data"]) == list(expected["data"])
    for section in expected["data"]:
        sample_entry = next(iter(expected["data"][section].values()))
        for entry in body["data"][section].values():
            assert list(entry) == list(sample_entry)
    history = group.snapshots(player.id)
    assert body == compute_gained(history, NOW - timedelta(days=31))
    start, end = END - timedelta(days=60), END - timedelta(days=20)
    ranged = _ok(
        client.get(
            "/players/fern%20whistle/gained",
            params={"startDate": wom_iso_dt(start), "endDate": wom_iso_dt(end)},
        )
    )
    assert ranged == compute_gained(history, start, end)
    _fails(client.get("/players/fern%20whistle/gained"), 400)
    _fails(
        client.get("/players/fern%20whistle/gained", params={"startDate": wom_iso_dt(start)}), 400
    )


def test_group_gained_and_bulk_gained(client: httpx2.Client, group: WomGroup) -> None:
    rows = _ok(
        client.get(f"/groups/{group.id}/gained", params={"metric": "overall", "period": "week"})
    )
    assert list(rows[0]) == ["player", "startDate", "endDate", "data"]
    gains = [row["data"]["gained"] for row in rows]
    assert gains == sorted(gains, reverse=True)
    stale = {
        p.id
        for p in group.members()
        if (group.updated_ms(p.id) or 0) < int((NOW - timedelta(days=7)).timestamp() * 1000)
    }
    assert stale and not stale & {row["player"]["id"] for row in rows}
    assert len(rows) == len(group.members()) - len(stale)
    for row in rows[:5]:
        mine = group.gained(row["player"]["id"], NOW - timedelta(days=7))
        assert row["startDate"] == mine["startsAt"] and row["endDate"] == mine["endsAt"]
        assert row["data"] == mine["data"]["skills"]["overall"]["experience"]
    vorkath = _ok(
        client.get(f"/groups/{group.id}/gained", params={"metric": "vorkath", "period": "1m"})
    )
    assert all(set(row["data"]) == {"gained", "start", "end"} for row in vorkath)
    _fails(client.get(f"/groups/{group.id}/gained", params={"period": "week"}), 400)
    _fails(
        client.get(f"/groups/{group.id}/gained", params={"metric": "nope", "period": "week"}), 400
    )
    _fails(client.get(f"/groups/{group.id}/gained", params={"metric": "overall"}), 400)

    bulk = _ok(client.get(f"/groups/{group.id}/bulk-gained", params={"period": "week"}))
    assert {row["player"]["id"] for row in bulk} == {row["player"]["id"] for row in rows}
    entry = bulk[0]
    assert [d["metric"] for d in entry["data"]] == list(METRICS)
    assert all(list(d) == ["metric", "gained", "start", "end"] for d in entry["data"])
    by_metric = {d["metric"]: d for d in entry["data"]}
    single = next(row for row in rows if row["player"]["id"] == entry["player"]["id"])
    assert {k: by_metric["overall"][k] for k in ("gained", "start", "end")} == single["data"]


def test_bulk_hiscores(client: httpx2.Client, group: WomGroup) -> None:
    rows = _ok(client.get(f"/groups/{group.id}/bulk-hiscores"))
    assert len(rows) == len(group.members())
    for row in rows[:3]:
        assert list(row) == ["player", "data"]
        _snapshot_keys(row["data"])
        assert row["data"]["createdAt"] == row["player"]["updatedAt"]


def test_bulk_endpoints_can_be_missing(group: WomGroup) -> None:
    config = FakeWomConfig(rate_limits=False, bulk_endpoints=False, now=NOW)
    with FakeWomServer(group, config) as server, httpx2.Client(base_url=server.url) as http:
        _fails(http.get(f"/groups/{group.id}/bulk-hiscores"), 404, "ENDPOINT_NOT_FOUND")
        _fails(http.get(f"/groups/{group.id}/bulk-gained?period=week"), 404, "ENDPOINT_NOT_FOUND")
        _ok(http.get(f"/groups/{group.id}"))


# -- renames and activity -------------------------------------------------------------


def test_name_changes(client: httpx2.Client, group: WomGroup) -> None:
    expected = _sample("group-name-changes.json")
    changes = _ok(client.get(f"/groups/{group.id}/name-changes"))
    assert changes and all(list(c) == list(expected[0]) for c in changes)
    assert all(c["status"] == "approved" for c in changes)
    assert [c["resolvedAt"] for c in changes] == sorted(
        (c["resolvedAt"] for c in changes), reverse=True
    )
    for change in changes:
        # the API knows only the current name; the old one is the same player id
        _fails(client.get(f"/players/{change['oldName']}"), 404)
        current = _ok(client.get(f"/players/{change['newName']}"))
        assert current["id"] == change["playerId"] == change["player"]["id"]
        old = group.player_by_username(change["oldName"])
        assert old is not None and old.id == change["playerId"]
    second = _ok(client.get(f"/groups/{group.id}/name-changes", params={"limit": 1, "offset": 1}))
    assert second == changes[1:2]


def test_activity(client: httpx2.Client, group: WomGroup) -> None:
    expected = _sample("group-activity.json")
    events: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = _ok(
            client.get(f"/groups/{group.id}/activity", params={"limit": 50, "offset": offset})
        )
        events += page
        offset += len(page)
        if len(page) < 50:
            break
    assert events == group.activity()
    assert all(list(e) == list(expected[0]) for e in events)
    assert [e["createdAt"] for e in events] == sorted(
        (e["createdAt"] for e in events), reverse=True
    )
    members = {m["playerId"] for m in _ok(client.get(f"/groups/{group.id}"))["memberships"]}
    left = {e["playerId"] for e in events if e["type"] == "left"}
    assert left and not left & members
    assert {e["type"] for e in events} == {"joined", "left", "changed_role"}
    _fails(client.get(f"/groups/{group.id}/activity", params={"limit": 51}), 400)


# -- update-all -----------------------------------------------------------------------


def test_update_all() -> None:
    group = generate_wom_group(seed=4, members=30, days=90, end=END)
    now = END + timedelta(hours=12)
    config = FakeWomConfig(rate_limits=False, now=now)
    with FakeWomServer(group, config) as server, httpx2.Client(base_url=server.url) as http:
        path = f"/groups/{group.id}/update-all"
        _fails(http.post(path, json={}), 400)
        _fails(http.post(path), 400)
        _fails(http.post(path, json={"verificationCode": "wrong"}), 403)
        _fails(http.post("/groups/1/update-all", json={"verificationCode": CODE}), 404)
        cutoff = int((now - timedelta(hours=24)).timestamp() * 1000)
        outdated = [p for p in group.members() if (group.updated_ms(p.id) or 0) < cutoff]
        assert 0 < len(outdated) < len(group.members())
        body = _ok(http.post(path, json={"verificationCode": CODE}))
        assert body["count"] == len(outdated) > 0
        assert body["message"].startswith(f"{len(outdated)} outdated (updated > 24h ago)")
        refreshed = _ok(http.get(f"/players/{outdated[0].username}"))
        assert refreshed["updatedAt"] == wom_iso_dt(now)
        _fails(http.post(path, json={"verificationCode": CODE}), 400, "NO_OUTDATED_MEMBERS")
        assert CODE not in repr(server.stats.requests)


def test_added_progress_shows_up(client: httpx2.Client, group: WomGroup) -> None:
    player = group.player_by_username("zezima fan 1")
    assert player is not None
    before = _ok(client.get("/players/zezima%20fan%201"))
    at = parse_wom_time(before["updatedAt"]) + timedelta(minutes=30)
    group.add_snapshot(player.id, min(at, NOW - timedelta(minutes=1)))
    after = _ok(client.get("/players/zezima%20fan%201"))
    assert after["exp"] > before["exp"]
    newest = _ok(client.get("/players/zezima%20fan%201/snapshots", params={"limit": 1}))
    assert newest[0] == after["latestSnapshot"]


# -- rate limits, faults, counters ------------------------------------------------------


def test_rate_limit_without_key(group: WomGroup) -> None:
    config = FakeWomConfig(limit_without_key=5, time_scale=0.01, now=NOW)  # a 0.6 s window
    with FakeWomServer(group, config) as server, httpx2.Client(base_url=server.url) as http:
        statuses = []
        for _ in range(7):
            response = http.get(f"/groups/{group.id}/name-changes")
            statuses.append(response.status_code)
            assert response.headers["RateLimit-Limit"] == "5"
            assert "RateLimit-Remaining" in response.headers
            assert float(response.headers["RateLimit-Reset"]) <= 0.6
        assert statuses == [200] * 5 + [429] * 2
        assert response.json()["message"].startswith("Too Many Requests")
        retry = float(response.headers["Retry-After"])
        assert 0 < retry <= 0.6 and "." in response.headers["Retry-After"]
        assert response.headers["RateLimit-Remaining"] == "0"
        time.sleep(retry + 0.05)
        assert http.get(f"/groups/{group.id}/name-changes").status_code == 200
        stats = server.stats
        assert stats.total_requests == 8 and stats.rate_limited == 2
        assert stats.count(f"/v2/groups/{group.id}/name-changes") == 8
        assert len(stats.timestamps) == 8 and stats.timestamps == sorted(stats.timestamps)


def test_rate_limit_with_key_and_wrong_key(group: WomGroup) -> None:
    config = FakeWomConfig(api_key="k-123", limit_without_key=2, limit_with_key=6, now=NOW)
    with FakeWomServer(group, config) as server, httpx2.Client(base_url=server.url) as http:
        keyed = [
            http.get("/players/rook", headers={"x-api-key": "k-123"}).status_code for _ in range(7)
        ]
        assert keyed == [200] * 6 + [429]
        # the IP's own budget is separate from the key's
        assert http.get("/players/rook").headers["RateLimit-Limit"] == "2"
        wrong = http.get("/players/rook", headers={"x-api-key": "nope"})
        assert wrong.status_code == 403
        assert wrong.json()["message"].startswith("Invalid API Key.")
        assert "k-123" not in repr(server.stats.requests) and "nope" not in repr(
            server.stats.requests
        )


def test_old_deployments_send_no_rate_limit_headers(group: WomGroup) -> None:
    config = FakeWomConfig(limit_without_key=1, rate_limit_headers=False, now=NOW)
    with FakeWomServer(group, config) as server, httpx2.Client(base_url=server.url) as http:
        first = http.get(f"/groups/{group.id}/activity")
        second = http.get(f"/groups/{group.id}/activity")
        assert (first.status_code, second.status_code) == (200, 429)
        for response in (first, second):
            assert not [h for h in response.headers if h.lower().startswith("ratelimit")]
            assert "Retry-After" not in response.headers


def test_faults_are_500s(group: WomGroup) -> None:
    config = FakeWomConfig(rate_limits=False, fault_rate=1.0, now=NOW)
    with FakeWomServer(group, config) as server, httpx2.Client(base_url=server.url) as http:
        _fails(http.get(f"/groups/{group.id}"), 500)
        server.config.fault_rate = 0.0
        _ok(http.get(f"/groups/{group.id}"))
        assert server.stats.faults == 1


async def test_async_context_manager(group: WomGroup) -> None:
    config = FakeWomConfig(rate_limits=False)
    async with (
        FakeWomServer(group, config) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        assert server.url.endswith("/v2") and server.url.startswith("http://127.0.0.1:")
        response = await http.get(f"/groups/{group.id}")
        assert response.status_code == 200
        # without a fixed clock, "now" is the group's end plus the elapsed time
        assert END <= server.now() < END + timedelta(minutes=5)


def test_standalone_command() -> None:
    command = [sys.executable, "-m", "clanpulse.demo.fake_wom", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--members", "15", "--days", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx2.get(f"{url}/groups/4242", timeout=2)
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200 and response.json()["memberCount"] <= 15
    finally:
        process.terminate()
        process.wait(timeout=10)
