"""Posting messages through a Discord webhook, on the shared HTTP layer.

The execute URL is the webhook's only credential (``.../webhooks/<id>/<token>``), so the
token never leaves this module in any readable form: requests go out with a masked path
(``.../webhooks/<id>/***``) that a small transport swaps for the real one on the way to
the socket. Everything above that transport (the retry loop, its log lines, ``ApiError``
messages, httpx's own request log) only ever sees the masked path.

Limits (Discord REST spec, section 8) are checked before sending: a message that breaks
one fails here with the reason, instead of spending a request on a 400.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import httpx2
import orjson

from clanpulse.net.http import (
    ApiClient,
    ApiError,
    CircuitBreaker,
    RetryPolicy,
    Timeouts,
    make_client,
)
from clanpulse.net.ratelimit import DiscordRateLimiter
from clanpulse.sources.discord_client import USER_AGENT

log = logging.getLogger("clanpulse.net.webhook")

API_NAME: Final = "Discord webhook"

# Discord's limits on one webhook message (REST spec, section 8).
CONTENT_MAX: Final = 2000
EMBEDS_MAX: Final = 10
EMBED_TOTAL_MAX: Final = 6000  # title + description + fields + footer + author, all embeds
TITLE_MAX: Final = 256
DESCRIPTION_MAX: Final = 4096
FIELDS_MAX: Final = 25
FIELD_NAME_MAX: Final = 256
FIELD_VALUE_MAX: Final = 1024
FOOTER_MAX: Final = 2048
AUTHOR_MAX: Final = 256
FILE_MAX_BYTES: Final = 10 * 1024 * 1024

_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_WEBHOOK_PATH: Final = re.compile(
    r"^(?P<prefix>/api(?:/v\d+)?/webhooks)/(?P<id>\d+)/(?P<token>[^/]+)/?$"
)

# Webhooks that answered 404 in this process: Discord restricts clients that keep calling
# deleted webhooks, so none of them is called again. Keyed by a digest, not the URL itself.
_gone: set[str] = set()


def chars(text: str) -> int:
    """Length as Discord's limits count it, erring long: UTF-16 code units (emoji count 2)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class WebhookFile:
    filename: str
    data: bytes
    content_type: str = "image/png"
    description: str = ""


@dataclass(frozen=True)
class WebhookMessage:
    """One webhook execution: the JSON body, and files to upload with it."""

    payload: dict[str, Any]
    files: tuple[WebhookFile, ...] = ()


class WebhookGone(ApiError):
    """The webhook answered 404: it was deleted. It is never called again in this process."""


class WebhookUrlError(ApiError, ValueError):
    """The configured URL is not a webhook execute URL (the message never repeats the URL).

    An ApiError too, so callers that survive a failing webhook survive a mistyped one.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(API_NAME, "URL", detail)


@dataclass(frozen=True, slots=True)
class _Address:
    origin: str  # scheme://host[:port]
    prefix: str  # /api/webhooks or /api/v10/webhooks
    webhook_id: int
    token: str
    query: tuple[tuple[str, str], ...]  # kept from the URL (e.g. thread_id), minus ``wait``

    @property
    def masked_path(self) -> str:
        return f"{self.prefix}/{self.webhook_id}/***"

    @property
    def real_path(self) -> str:
        return f"{self.prefix}/{self.webhook_id}/{self.token}"

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.origin}{self.real_path}".encode()).hexdigest()


def _parse_url(url: str) -> _Address:
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    match = _WEBHOOK_PATH.match(parts.path)
    if (
        match is None
        or not host
        or parts.scheme not in ("https", "http")
        or (parts.scheme == "http" and host not in _LOOPBACK_HOSTS)
    ):
        raise WebhookUrlError(
            "not a webhook execute URL: expected https://discord.com/api/webhooks/<id>/<token> "
            "(plain http only to 127.0.0.1 or localhost)"
        )
    query = tuple((k, v) for k, v in parse_qsl(parts.query) if k != "wait")
    return _Address(
        f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
        match["prefix"],
        int(match["id"]),
        match["token"],
        query,
    )


def mask_webhook_url(url: str) -> str:
    """The URL as it may be shown: ``https://discord.com/api/webhooks/<id>/***``."""
    try:
        address = _parse_url(url)
    except WebhookUrlError:
        return "<malformed webhook URL>"
    return f"{address.origin}{address.masked_path}"


def check_webhook_url(url: str) -> None:
    """Raise :class:`WebhookUrlError` unless ``url`` is a usable webhook execute URL."""
    _parse_url(url)


class _TokenTransport(httpx2.AsyncBaseTransport):
    """Puts the real token into the path of requests sent with the masked one."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, masked: str, real: str) -> None:
        self._inner = inner
        self._masked = masked
        self._real = real

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.path == self._masked:
            url = url.copy_with(path=self._real)
        # a copy: the client logs and keeps the original request, which must stay masked
        real = httpx2.Request(
            request.method,
            url,
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return await self._inner.handle_async_request(real)

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- limits ------------------------------------------------------------------------------


def embed_size(embed: Mapping[str, Any]) -> int:
    """What an embed counts toward the 6000-character total of its message."""
    total = chars(str(embed.get("title") or "")) + chars(str(embed.get("description") or ""))
    for field in embed.get("fields") or []:
        total += chars(str(field.get("name") or "")) + chars(str(field.get("value") or ""))
    total += chars(str((embed.get("footer") or {}).get("text") or ""))
    total += chars(str((embed.get("author") or {}).get("name") or ""))
    return total


def message_problems(message: WebhookMessage) -> list[str]:
    """Every way ``message`` breaks Discord's limits (empty when it is valid)."""
    payload = message.payload
    problems: list[str] = []

    def too_long(what: str, text: Any, most: int) -> None:
        if text is not None and chars(str(text)) > most:
            problems.append(f"{what} is {chars(str(text))} characters (at most {most})")

    too_long("content", payload.get("content"), CONTENT_MAX)
    embeds = payload.get("embeds") or []
    if len(embeds) > EMBEDS_MAX:
        problems.append(f"{len(embeds)} embeds (at most {EMBEDS_MAX})")
    for index, embed in enumerate(embeds):
        where = f"embed {index}"
        too_long(f"{where} title", embed.get("title"), TITLE_MAX)
        too_long(f"{where} description", embed.get("description"), DESCRIPTION_MAX)
        too_long(f"{where} footer", (embed.get("footer") or {}).get("text"), FOOTER_MAX)
        too_long(f"{where} author", (embed.get("author") or {}).get("name"), AUTHOR_MAX)
        fields = embed.get("fields") or []
        if len(fields) > FIELDS_MAX:
            problems.append(f"{where} has {len(fields)} fields (at most {FIELDS_MAX})")
        for f_index, field in enumerate(fields):
            name, value = field.get("name"), field.get("value")
            if not name or not value:
                problems.append(f"{where} field {f_index} has an empty name or value")
            too_long(f"{where} field {f_index} name", name, FIELD_NAME_MAX)
            too_long(f"{where} field {f_index} value", value, FIELD_VALUE_MAX)
    total = sum(embed_size(e) for e in embeds)
    if total > EMBED_TOTAL_MAX:
        problems.append(f"embeds hold {total} characters in all (at most {EMBED_TOTAL_MAX})")
    if not (payload.get("content") or embeds or message.files):
        problems.append("the message is empty")
    for upload in message.files:
        if len(upload.data) > FILE_MAX_BYTES:
            problems.append(f"file {upload.filename} is {len(upload.data)} bytes (at most 10 MiB)")
    return problems


# -- the poster --------------------------------------------------------------------------


class DiscordWebhook:
    """Posts messages to one webhook; open with :meth:`open`."""

    def __init__(self, api: ApiClient, address: _Address) -> None:
        self._api = api
        self._address = address

    def __repr__(self) -> str:
        return f"DiscordWebhook({self._address.origin}{self._address.masked_path})"

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> AsyncIterator[DiscordWebhook]:
        """A poster for ``url``; raises :class:`WebhookUrlError` if it is not a webhook URL."""
        address = _parse_url(url)
        inner = transport or httpx2.AsyncHTTPTransport(
            limits=httpx2.Limits(max_connections=2, max_keepalive_connections=2)
        )
        wrapped = _TokenTransport(inner, address.masked_path, address.real_path)
        headers = {"User-Agent": USER_AGENT}
        async with make_client(
            address.origin, headers=headers, timeouts=timeouts, transport=wrapped
        ) as http:
            api = ApiClient(
                API_NAME,
                http,
                DiscordRateLimiter(),
                retry=retry or RetryPolicy(),
                breaker=CircuitBreaker(API_NAME),
            )
            yield cls(api, address)

    @property
    def requests(self) -> int:
        return self._api.stats.requests

    @property
    def rate_limited(self) -> int:
        return self._api.stats.rate_limited

    async def post(self, message: WebhookMessage) -> None:
        """Post one message and wait for Discord to confirm it was saved (``wait=true``)."""
        address = self._address
        endpoint = f"POST {address.masked_path}"
        if address.digest in _gone:
            raise WebhookGone(
                API_NAME, endpoint, "webhook is gone (404 earlier); not called again", 404
            )
        problems = message_problems(message)
        if problems:
            raise ApiError(
                API_NAME, endpoint, "message breaks Discord's limits: " + "; ".join(problems)
            )
        payload = dict(message.payload)
        # report text must never ping anyone, whatever member names contain
        payload["allowed_mentions"] = {"parse": []}
        kwargs: dict[str, Any]
        if message.files:
            payload["attachments"] = [
                {"id": index, "filename": f.filename, "description": f.description}
                if f.description
                else {"id": index, "filename": f.filename}
                for index, f in enumerate(message.files)
            ]
            parts: list[tuple[str, tuple[str | None, bytes, str]]] = [
                ("payload_json", (None, orjson.dumps(payload), "application/json"))
            ]
            parts += [
                (f"files[{index}]", (f.filename, f.data, f.content_type))
                for index, f in enumerate(message.files)
            ]
            kwargs = {"files": parts}
        else:
            kwargs = {
                "content": orjson.dumps(payload),
                "headers": {"Content-Type": "application/json"},
            }
        try:
            await self._api.request(
                "POST",
                address.masked_path,
                # a webhook's limits are keyed by the webhook (id and token): one bucket
                bucket=f"POST /webhooks/{{id}}|{address.webhook_id}",
                params={**dict(address.query), "wait": "true"},
                **kwargs,
            )
        except ApiError as exc:
            if exc.status == 404:
                _gone.add(address.digest)
                log.error(
                    "%s %s: 404, the webhook is gone; not calling it again", API_NAME, endpoint
                )
                raise WebhookGone(API_NAME, exc.endpoint, exc.detail, 404, exc.code) from None
            raise
