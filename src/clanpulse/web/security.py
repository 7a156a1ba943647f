"""Safe to expose: security headers on every response, and the admin gate.

Without CLANPULSE_ADMIN_TOKEN the dashboard is read-only: every admin action answers 403.
With it, the API takes the token as ``Authorization: Bearer <token>`` (a header a browser
never sends on its own, so no cross-site request can carry it), and the pages sign an
admin in with a cookie (HttpOnly, SameSite=Strict) whose forms also carry a CSRF token
derived from that session. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clanpulse.settings import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
SESSION_COOKIE = "clanpulse_admin"


class SecurityHeaders:
    """Adds the headers to every HTTP response (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class AdminGate:
    """Who may change things. ``enabled`` only when an admin token is configured."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.admin_token
        self._token = secret.get_secret_value().encode() if secret is not None else None

    def __repr__(self) -> str:
        return f"AdminGate(enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def _sign(self, purpose: str, value: str) -> str:
        assert self._token is not None
        return hmac.new(self._token, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def token_ok(self, given: str | None) -> bool:
        if self._token is None or not given:
            return False
        return hmac.compare_digest(given.encode(), self._token)

    def bearer_ok(self, authorization: str | None) -> bool:
        scheme, _, credentials = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(credentials.strip())

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign('session', nonce)}"

    def session_nonce(self, cookie: str | None) -> str | None:
        """The nonce of a genuine session cookie, or None."""
        if self._token is None or not cookie:
            return None
        nonce, _, signature = cookie.partition(".")
        expected = self._sign("session", nonce).encode()
        if not nonce or not hmac.compare_digest(signature.encode(), expected):
            return None
        return nonce

    def csrf_token(self, nonce: str) -> str:
        return self._sign("csrf", nonce)

    def csrf_ok(self, cookie: str | None, given: str | None) -> bool:
        nonce = self.session_nonce(cookie)
        return (
            nonce is not None
            and bool(given)
            and hmac.compare_digest(str(given).encode(), self.csrf_token(nonce).encode())
        )
