"""The fake Discord REST API, exercised over real HTTP on loopback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest

from clanpulse.demo.community import Community, generate_community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer, RateLimit

END = datetime(2026, 3, 1, tzinfo=UTC)
UA = "DiscordBot (https://example.invalid/tests, 0.1)"


@pytest.fixture(scope="module")
def community() -> Community:
    return generate_community(seed=21, members=40, days=14, end=END, messages_per_day=150)


@pytest.fixture(scope="module")
def server(community: Community) -> Iterator[FakeDiscordServer]:
    # rate limits off here: the functional tests must not trip over them
    with FakeDiscordServer(community, FakeDiscordConfig(rate_limits=False)) as running:
        yield running


@pytest.fixture()
def client(server: FakeDiscordServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.url, headers=server.auth_headers()) as http:
        yield http


def _ids(response: httpx2.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [int(m["id"]) for m in response.json()]


def _channel(community: Community, name: str) -> int:
    return int(community.channel_by_name(name)["id"])


# -- messages endpoint --------------------------------------------------------------------


def test_default_page_is_newest_first(client: httpx2.Client, community: Community) -> None:
    channel_id = _channel(community, "general")
    ids = community.message_ids(channel_id)
    assert _ids(client.get(f"/channels/{channel_id}/messages")) == ids[-50:][::-1]
    body = client.get(f"/channels/{channel_id}/messages", params={"limit": 2}).json()
    assert body == community.channel_messages(channel_id)[-2:][::-1]


def test_after_before_around(client: httpx2.Client, community: Community) -> None:
    channel_id = _channel(community, "pvm")
    ids = community.message_ids(channel_id)
    path = f"/channels/{channel_id}/messages"
    assert _ids(client.get(path, params={"after": ids[10], "limit": 5})) == ids[11:16][::-1]
    assert _ids(client.get(path, params={"after": ids[10] + 1, "limit": 5})) == ids[11:16][::-1]
    assert _ids(client.get(path, params={"before": ids[10], "limit": 5})) == ids[5:10][::-1]
    assert _ids(client.get(path, params={"before": ids[2], "limit": 5})) == ids[:2][::-1]
    assert _ids(client.get(path, params={"after": ids[-1]})) == []
    around = _ids(client.get(path, params={"around": ids[30], "limit": 7}))
    assert ids[30] in around and len(around) == 7 and around == sorted(around, reverse=True)
    assert _ids(client.get(path, params={"after": 0, "limit": 100})) == ids[:100][::-1]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"before": 1, "after": 2},
        {"after": 1, "around": 2},
        {"before": "abc"},
    ],
)
def test_bad_parameters_are_400(
    client: httpx2.Client, community: Community, params: dict[str, Any]
) -> None:
    response = client.get(f"/channels/{_channel(community, 'general')}/messages", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == 50035


def test_forward_walk_yields_every_message_once(
    client: httpx2.Client, community: Community
) -> None:
    for channel_id in community.message_channel_ids():
        seen: list[int] = []
        cursor = 0
        while True:
            page = _ids(
                client.get(
                    f"/channels/{channel_id}/messages", params={"after": cursor, "limit": 100}
                )
            )
            if not page:
                break
            assert page == sorted(page, reverse=True)
            seen += sorted(page)
            cursor = max(page)
        assert seen == community.message_ids(channel_id)


def test_backward_walk(client: httpx2.Client, community: Community) -> None:
    channel_id = community.bridge_channel_id
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 100}
    while page := _ids(client.get(f"/channels/{channel_id}/messages", params=params)):
        seen += page
        params["before"] = page[-1]
    assert seen[::-1] == community.message_ids(channel_id)


def test_errors(server: FakeDiscordServer, community: Community) -> None:
    good = server.auth_headers()
    with httpx2.Client(base_url=server.url) as http:
        general = f"/channels/{_channel(community, 'general')}/messages"
        unauthorized = http.get(general, headers={"User-Agent": UA})
        assert unauthorized.status_code == 401
        assert unauthorized.json() == {"message": "401: Unauthorized", "code": 0}
        wrong = http.get(general, headers={"User-Agent": UA, "Authorization": "Bot nope"})
        assert wrong.status_code == 401
        no_ua = http.get(
            general, headers={"Authorization": good["Authorization"], "User-Agent": "python-httpx"}
        )
        assert no_ua.status_code == 400
        voice = http.get(f"/channels/{community.voice_channel_id}/messages", headers=good)
        assert voice.status_code == 403
        assert voice.json() == {"message": "Missing Access", "code": 50001}
        unknown = http.get("/channels/123456789012345678/messages", headers=good)
        assert unknown.status_code == 404
        assert unknown.json() == {"message": "Unknown Channel", "code": 10003}
        assert http.get("/guilds/1/channels", headers=good).json()["code"] == 10004
        category = community.channel_by_name("Clan")["id"]
        assert http.get(f"/channels/{category}/messages", headers=good).status_code == 400
        assert http.get("/no/such/route", headers=good).status_code == 404


def test_channel_and_single_message(client: httpx2.Client, community: Community) -> None:
    channel_id = _channel(community, "events")
    assert client.get(f"/channels/{channel_id}").json() == community.channel(channel_id)
    message = community.channel_messages(channel_id)[3]
    assert client.get(f"/channels/{channel_id}/messages/{message['id']}").json() == message
    assert client.get(f"/channels/{channel_id}/messages/1").status_code == 404
    me = client.get("/users/@me").json()
    assert me["bot"] is True


# -- guild endpoints ----------------------------------------------------------------------


def test_guild_channels_and_threads(client: httpx2.Client, community: Community) -> None:
    guild = community.guild_id
    channels = client.get(f"/guilds/{guild}/channels").json()
    assert {c["type"] for c in channels} == {0, 2, 4, 5, 15}
    assert [c["id"] for c in channels] == [c["id"] for c in community.guild_channels()]
    active = client.get(f"/guilds/{guild}/threads/active").json()
    ids = [int(t["id"]) for t in active["threads"]]
    assert ids == sorted(ids, reverse=True) and ids
    assert not any(t["thread_metadata"]["archived"] for t in active["threads"])
    assert active["members"] == []


def test_archived_threads_paging(
    client: httpx2.Client, server: FakeDiscordServer, community: Community
) -> None:
    forum = _channel(community, "pvm-guides")
    expected = {
        t["id"]
        for t in community.threads()
        if t["parent_id"] == str(forum) and t["thread_metadata"]["archived"]
    }
    assert len(expected) >= 2
    found: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        body = client.get(f"/channels/{forum}/threads/archived/public", params=params).json()
        found += [t["id"] for t in body["threads"]]
        if not body["has_more"]:
            break
        params["before"] = body["threads"][-1]["thread_metadata"]["archive_timestamp"]
    assert sorted(found) == sorted(expected) and len(found) == len(expected)
    by_id = {t["id"]: t for t in community.threads()}
    stamps = [by_id[t]["thread_metadata"]["archive_timestamp"] for t in found]
    assert stamps == sorted(stamps, reverse=True)
    events = _channel(community, "events")
    private = f"/channels/{events}/threads/archived/private"
    assert client.get(private).status_code == 403
    server.config.private_threads_access = True
    try:
        body = client.get(private).json()
        assert [t["type"] for t in body["threads"]] == [12] and body["has_more"] is False
    finally:
        server.config.private_threads_access = False
    bad = client.get(f"/channels/{forum}/threads/archived/public", params={"before": "x"})
    assert bad.status_code == 400


def test_members_paging_and_intent(
    client: httpx2.Client, server: FakeDiscordServer, community: Community
) -> None:
    path = f"/guilds/{community.guild_id}/members"
    everyone = client.get(path, params={"limit": 1000}).json()
    assert everyone == community.members_payload()
    assert len(client.get(path).json()) == 1  # default limit is 1
    collected: list[str] = []
    after = 0
    while page := client.get(path, params={"limit": 7, "after": after}).json():
        collected += [m["user"]["id"] for m in page]
        after = int(page[-1]["user"]["id"])
    assert collected == [m["user"]["id"] for m in everyone]
    assert any(m["nick"] for m in everyone)
    assert client.get(path, params={"limit": 1001}).status_code == 400
    server.config.members_intent = False
    try:
        denied = client.get(path)
        assert denied.status_code == 403 and denied.json()["code"] == 50001
    finally:
        server.config.members_intent = True


# -- live data ----------------------------------------------------------------------------


def test_live_append_is_picked_up(client: httpx2.Client, server: FakeDiscordServer) -> None:
    community = server.community
    channel_id = _channel(community, "skilling")
    mark = community.message_ids(channel_id)[-1]
    assert _ids(client.get(f"/channels/{channel_id}/messages", params={"after": mark})) == []
    added: list[int] = []

    def writer() -> None:
        for n in range(20):
            added.append(int(server.append_message(channel_id, f"live {n}")["id"]))

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen: list[int] = []
    while page := _ids(
        client.get(f"/channels/{channel_id}/messages", params={"after": mark, "limit": 100})
    ):
        seen += sorted(page)
        mark = max(page)
    assert seen == sorted(added) and len(set(seen)) == 60
    last = client.get(f"/channels/{channel_id}").json()["last_message_id"]
    assert int(last) == max(added)


# -- webhooks -----------------------------------------------------------------------------


def test_webhook_json_and_multipart(server: FakeDiscordServer) -> None:
    with httpx2.Client(headers={"User-Agent": UA}) as http:
        created = http.post(
            server.webhook_url(),
            params={"wait": "true"},
            json={
                "content": "weekly report",
                "allowed_mentions": {"parse": []},
                "embeds": [{"title": "Top chatters", "fields": [{"name": "a", "value": "1"}]}],
            },
        )
        assert created.status_code == 200
        message = created.json()
        assert message["content"] == "weekly report" and message["embeds"][0]["type"] == "rich"
        assert message["webhook_id"] == message["author"]["id"]
        quiet = http.post(server.webhook_url(), json={"content": "no wait"})
        assert quiet.status_code == 204
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
        payload = {
            "content": "chart",
            "embeds": [{"image": {"url": "attachment://chart.png"}}],
            "attachments": [{"id": 0, "filename": "chart.png", "description": "c"}],
        }
        uploaded = http.post(
            server.webhook_url(),
            params={"wait": "true"},
            files={
                "payload_json": (None, json.dumps(payload), "application/json"),
                "files[0]": ("chart.png", png, "image/png"),
            },
        )
        assert uploaded.status_code == 200, uploaded.text
        body = uploaded.json()
        assert body["attachments"][0]["filename"] == "chart.png"
        assert body["attachments"][0]["size"] == len(png)
        assert body["embeds"][0]["image"]["url"] == body["attachments"][0]["url"]
        post = server.webhook_posts[-1]
        assert post.files[0].data == png and post.payload["content"] == "chart"
        assert http.post(server.webhook_url(), json={}).json()["code"] == 50006
        too_long = http.post(server.webhook_url(), json={"content": "x" * 2001})
        assert too_long.status_code == 400 and too_long.json()["code"] == 50035
        big = [{"description": "d" * 4000}, {"description": "d" * 2500}]
        assert http.post(server.webhook_url(), json={"embeds": big}).status_code == 400
        assert (
            http.post(server.webhook_url(token="wrong"), json={"content": "x"}).status_code == 401
        )
        assert http.post(server.webhook_url(webhook_id=5), json={"content": "x"}).status_code == 404
    logged = [r.path for r in server.stats.requests if "webhooks" in r.path]
    assert logged and all(p.endswith("/***") for p in logged)


# -- counters, logging ------------------------------------------------------------------


def test_counters_and_bounded_log(community: Community) -> None:
    config = FakeDiscordConfig(rate_limits=False, max_logged_requests=3)
    with (
        FakeDiscordServer(community, config) as server,
        httpx2.Client(base_url=server.url, headers=server.auth_headers()) as http,
    ):
        channel_id = _channel(community, "general")
        for _ in range(4):
            http.get(f"/channels/{channel_id}/messages", params={"limit": 1})
        http.get(f"/channels/{community.voice_channel_id}/messages")
        stats = server.stats
        assert stats.total_requests == 5
        assert stats.count(f"/api/v10/channels/{channel_id}/messages") == 4
        assert stats.status_counts[200] == 4 and stats.status_counts[403] == 1
        assert len(stats.requests) == 3
        assert stats.requests[-1].status == 403
        assert stats.requests[0].query == {"limit": "1"}
        server.reset_stats()
        assert server.stats.total_requests == 0 and server.stats.requests == []


def test_token_is_never_logged(
    server: FakeDiscordServer, community: Community, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), httpx2.Client(base_url=server.url) as http:
        http.get(
            f"/channels/{_channel(community, 'general')}/messages", headers=server.auth_headers()
        )
        http.get("/users/@me", headers={"User-Agent": UA, "Authorization": "Bot leaked?"})
    assert server.token not in caplog.text and "leaked?" not in caplog.text


# -- rate limits and faults ---------------------------------------------------------------


def test_rate_limit_headers_and_bucket_429(community: Community) -> None:
    config = FakeDiscordConfig(time_scale=0.5, global_limit=RateLimit(1000, 1.0))
    with (
        FakeDiscordServer(community, config) as server,
        httpx2.Client(base_url=server.url, headers=server.auth_headers()) as http,
    ):
        first, second = _channel(community, "general"), _channel(community, "pvm")
        responses = [http.get(f"/channels/{first}/messages", params={"limit": 1}) for _ in range(6)]
        other = http.get(f"/channels/{second}/messages", params={"limit": 1})
        assert [r.status_code for r in responses] == [200] * 5 + [429]
        assert [r.headers["X-RateLimit-Remaining"] for r in responses[:5]] == [
            "4",
            "3",
            "2",
            "1",
            "0",
        ]
        for response in (*responses, other):
            assert response.headers["X-RateLimit-Limit"] == "5"
            assert 0 <= float(response.headers["X-RateLimit-Reset-After"]) <= 0.5
            assert float(response.headers["X-RateLimit-Reset"]) > time.time() - 1
        # same bucket id, independent counter per channel
        assert other.headers["X-RateLimit-Bucket"] == responses[0].headers["X-RateLimit-Bucket"]
        assert other.headers["X-RateLimit-Remaining"] == "4"
        limited = responses[-1]
        body = limited.json()
        assert body["message"] == "You are being rate limited." and body["global"] is False
        assert isinstance(body["retry_after"], float) and 0 < body["retry_after"] <= 0.5
        assert limited.headers["X-RateLimit-Scope"] == "user"
        assert float(limited.headers["Retry-After"]) >= body["retry_after"] - 0.001
        time.sleep(body["retry_after"] + 0.02)
        assert http.get(f"/channels/{first}/messages").status_code == 200
        assert server.stats.rate_limited == 1


def test_global_rate_limit(community: Community) -> None:
    config = FakeDiscordConfig(time_scale=0.5, global_limit=RateLimit(8, 1.0))
    with (
        FakeDiscordServer(community, config) as server,
        httpx2.Client(base_url=server.url, headers=server.auth_headers()) as http,
    ):
        channels = community.message_channel_ids()
        statuses = [
            http.get(f"/channels/{channels[n]}/messages", params={"limit": 1}) for n in range(9)
        ]
        assert [r.status_code for r in statuses] == [200] * 8 + [429]
        limited = statuses[-1]
        assert limited.json()["global"] is True
        assert limited.headers["X-RateLimit-Global"] == "true"
        assert limited.headers["X-RateLimit-Scope"] == "global"
        assert 0 < limited.json()["retry_after"] <= 0.5
        assert server.stats.global_rate_limited == 1 and server.stats.rate_limited == 1


def test_fault_injection_is_seeded(community: Community) -> None:
    config = FakeDiscordConfig(rate_limits=False, fault_rate=0.4, fault_seed=99, time_scale=0.01)
    with (
        FakeDiscordServer(community, config) as server,
        httpx2.Client(base_url=server.url, headers=server.auth_headers()) as http,
    ):
        path = f"/channels/{_channel(community, 'general')}/messages"

        def run() -> list[int]:
            return [http.get(path, params={"limit": 1}).status_code for _ in range(40)]

        first = run()
        faults = server.stats.faults
        server.reseed_faults()
        assert run() == first
        assert {200, 429} <= set(first) and set(first) & {500, 502, 503}
        assert faults == sum(code != 200 for code in first)
        assert server.stats.rate_limited == 2 * first.count(429)
        server.config.fault_rate = 0.0
        server.config.fail_channels = {_channel(community, "pvm")}
        failing = http.get(f"/channels/{_channel(community, 'pvm')}/messages")
        assert failing.status_code == 500
        assert http.get(path).status_code == 200


def test_latency(community: Community) -> None:
    config = FakeDiscordConfig(rate_limits=False, latency=0.1)
    with (
        FakeDiscordServer(community, config) as server,
        httpx2.Client(base_url=server.url, headers=server.auth_headers()) as http,
    ):
        http.get("/users/@me")
        started = time.perf_counter()
        http.get("/users/@me")
        assert time.perf_counter() - started >= 0.1


async def test_async_context_manager(community: Community) -> None:
    async with (
        FakeDiscordServer(community, FakeDiscordConfig(rate_limits=False)) as server,
        httpx2.AsyncClient(base_url=server.url, headers=server.auth_headers()) as http,
    ):
        response = await http.get(f"/guilds/{community.guild_id}/channels")
        assert response.status_code == 200
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/api/v10")
    with pytest.raises(RuntimeError):
        _ = server.url  # stopped servers have no address


def test_standalone_command() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clanpulse.demo.fake_discord",
            "--port",
            "0",
            "--members",
            "20",
            "--days",
            "2",
            "--messages-per-day",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        url = lines[0].split()[-1]
        token = lines[1].split()[-1]
        assert url.startswith("http://127.0.0.1:") and token == "demo-token"
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx2.get(
                    f"{url}/users/@me", headers={"Authorization": f"Bot {token}", "User-Agent": UA}
                )
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
