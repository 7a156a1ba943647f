"""Posting to a Discord webhook over real HTTP against the fake Discord server.

The fake checks what Discord checks (limits, multipart, tokens) and keeps what it received;
its rate limits run on scaled-down windows so waits take a fraction of a second.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx2
import pytest
from PIL import Image

from clanpulse.demo.community import REPORT_WEBHOOK_ID, Community, generate_community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.net.http import ApiError, RetryPolicy
from clanpulse.net.webhook import (
    DiscordWebhook,
    WebhookFile,
    WebhookGone,
    WebhookMessage,
    WebhookUrlError,
    check_webhook_url,
    mask_webhook_url,
)
from clanpulse.sources.discord_client import USER_AGENT

SECRET = "s3cret-webhook-token_ABCdef123"
FAST_RETRY = RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.02)


@pytest.fixture(scope="module")
def community() -> Community:
    end = datetime(2026, 3, 1, tzinfo=UTC)
    return generate_community(seed=5, members=12, days=2, end=end, messages_per_day=20)


async def started(community: Community, **config: object) -> FakeDiscordServer:
    server = FakeDiscordServer(
        community,
        FakeDiscordConfig(webhook_token=SECRET, time_scale=0.25, **config),  # type: ignore[arg-type]
    )
    await server.astart()
    return server


@pytest.fixture
async def server(community: Community) -> AsyncIterator[FakeDiscordServer]:
    running = await started(community)
    yield running
    await running.astop()


def embed_message(title: str = "Weekly report", **payload: object) -> WebhookMessage:
    return WebhookMessage({"embeds": [{"title": title, "description": "hello"}], **payload})


def png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (88, 101, 242)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_json_post_waits_for_the_message_and_never_pings(
    server: FakeDiscordServer,
) -> None:
    message = embed_message(content="@everyone look", allowed_mentions={"parse": ["everyone"]})
    async with DiscordWebhook.open(server.webhook_url()) as webhook:
        await webhook.post(message)
        assert webhook.requests == 1 and webhook.rate_limited == 0
    [post] = server.webhook_posts
    assert post.wait is True  # Discord reports errors only with ?wait=true
    assert post.files == []
    assert post.payload["allowed_mentions"] == {"parse": []}  # whatever the caller asked
    assert post.payload["embeds"] == [{"title": "Weekly report", "description": "hello"}]
    assert message.payload["allowed_mentions"] == {"parse": ["everyone"]}  # not mutated


async def test_files_go_as_multipart_with_payload_json(server: FakeDiscordServer) -> None:
    image = png()
    message = WebhookMessage(
        {"embeds": [{"title": "Chart", "image": {"url": "attachment://chart.png"}}]},
        (WebhookFile("chart.png", image, description="Messages per day"),),
    )
    async with DiscordWebhook.open(server.webhook_url()) as webhook:
        await webhook.post(message)
    [post] = server.webhook_posts
    [upload] = post.files
    assert (upload.field, upload.filename, upload.content_type) == (
        "files[0]",
        "chart.png",
        "image/png",
    )
    assert upload.data == image
    assert Image.open(io.BytesIO(upload.data)).size == (40, 30)  # a whole, valid PNG
    assert post.payload["attachments"] == [
        {"id": 0, "filename": "chart.png", "description": "Messages per day"}
    ]
    assert post.payload["allowed_mentions"] == {"parse": []}
    # the fake resolved the attachment:// reference to the uploaded file, as Discord does
    created = post.message
    assert created["embeds"][0]["image"]["url"] == created["attachments"][0]["url"]


async def test_a_429_is_waited_out_as_the_headers_say_then_retried(
    server: FakeDiscordServer,
) -> None:
    # someone else used up the webhook's bucket (5 per 2 s, scaled): our first try gets a 429
    with httpx2.Client(headers={"User-Agent": USER_AGENT}) as other:
        for _ in range(5):
            assert other.post(server.webhook_url(), json={"content": "x"}).status_code == 204
    async with DiscordWebhook.open(server.webhook_url()) as webhook:
        await webhook.post(embed_message())
        # one 429, then a retry that succeeded: had we retried before the window reset,
        # the fake would have answered 429 again
        assert (webhook.requests, webhook.rate_limited) == (2, 1)
    assert server.stats.status_counts[429] == 1
    assert len(server.webhook_posts) == 6


async def test_a_burst_follows_the_bucket_headers_without_hitting_429(
    server: FakeDiscordServer,
) -> None:
    async with DiscordWebhook.open(server.webhook_url()) as webhook:
        for n in range(12):
            await webhook.post(embed_message(f"part {n}"))
        assert webhook.rate_limited == 0
    assert server.stats.status_counts[429] == 0
    assert [p.payload["embeds"][0]["title"] for p in server.webhook_posts] == [
        f"part {n}" for n in range(12)
    ]


async def test_a_deleted_webhook_is_never_called_again(server: FakeDiscordServer) -> None:
    gone_url = server.webhook_url(webhook_id=5)  # no such webhook: 404 Unknown Webhook
    async with DiscordWebhook.open(gone_url) as webhook:
        with pytest.raises(WebhookGone) as first:
            await webhook.post(embed_message())
        with pytest.raises(WebhookGone):
            await webhook.post(embed_message())
    async with DiscordWebhook.open(gone_url) as again:  # a later run in the same process
        with pytest.raises(WebhookGone):
            await again.post(embed_message())
        assert again.requests == 0
    assert first.value.status == 404 and "Discord webhook" in str(first.value)
    assert server.stats.count("/api/webhooks/5/***") == 1
    # another webhook is unaffected
    async with DiscordWebhook.open(server.webhook_url()) as good:
        await good.post(embed_message())
    assert len(server.webhook_posts) == 1


async def test_the_token_appears_in_no_error_log_or_repr(
    community: Community, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx2 logs every request URL at INFO (the CLI quiets it: undo that for this test)
    caplog.set_level(logging.DEBUG, logger="httpx2")
    failures: list[ApiError] = []
    shown: list[str] = []
    server = await started(community, fault_rate=1.0, fault_429_share=0.0)
    base = server.base_url
    try:
        urls = [
            server.webhook_url(),  # every request fails with a 5xx: retried, then given up
            server.webhook_url(token=SECRET + "x"),  # 401 Invalid Webhook Token
            server.webhook_url() + "?thread_id=1",  # 400 Unknown Channel
            f"http://127.0.0.1:1/api/webhooks/42/{SECRET}",  # nothing listens: network error
        ]
        for index, url in enumerate(urls):
            server.config.fault_rate = 1.0 if index == 0 else 0.0
            async with DiscordWebhook.open(url, retry=FAST_RETRY) as webhook:
                shown.append(repr(webhook))
                with pytest.raises(ApiError) as caught:
                    await webhook.post(embed_message())
                failures.append(caught.value)
    finally:
        await server.astop()
    details = [f.detail for f in failures]
    assert "server error" in details[0] and "gave up after 2 attempts" in details[0]
    assert "HTTP 401" in details[1] and "HTTP 400" in details[2]
    assert "network error" in details[3]
    for failure in failures:
        assert str(failure).startswith("Discord webhook POST /api/webhooks/")
        assert "/***" in str(failure)
    texts = [str(f) for f in failures] + [repr(f.args) for f in failures] + shown
    texts += [r.getMessage() for r in caplog.records]
    assert any("HTTP Request" in t for t in texts)  # the request log was captured, masked
    assert all(SECRET not in t for t in texts)
    assert shown[0] == f"DiscordWebhook({base}/api/webhooks/{REPORT_WEBHOOK_ID}/***)"


async def test_a_message_over_the_limits_fails_before_any_request(
    server: FakeDiscordServer,
) -> None:
    async with DiscordWebhook.open(server.webhook_url()) as webhook:
        with pytest.raises(ApiError) as caught:
            await webhook.post(embed_message("t" * 257))
        with pytest.raises(ApiError) as empty:
            await webhook.post(WebhookMessage({}))
        assert webhook.requests == 0
    assert "embed 0 title is 257 characters (at most 256)" in str(caught.value)
    assert "the message is empty" in str(empty.value)
    assert server.stats.total_requests == 0


def test_only_webhook_urls_are_accepted_and_never_echoed() -> None:
    for good in (
        "https://discord.com/api/webhooks/123/abc-DEF_9",
        "https://discord.com/api/v10/webhooks/123/abc?thread_id=7",
        "http://127.0.0.1:8080/api/webhooks/123/abc",
    ):
        check_webhook_url(good)
    assert mask_webhook_url("https://discord.com/api/webhooks/123/abc") == (
        "https://discord.com/api/webhooks/123/***"
    )
    for bad in (
        f"http://discord.com/api/webhooks/123/{SECRET}",  # plain http off this machine
        f"https://discord.com/api/webhooks/notanid/{SECRET}",
        f"https://discord.com/api/channels/123/{SECRET}",
        SECRET,
    ):
        with pytest.raises(WebhookUrlError) as caught:
            check_webhook_url(bad)
        assert SECRET not in str(caught.value)
        assert SECRET not in mask_webhook_url(bad)
