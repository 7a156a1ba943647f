"""Serving the dashboard with uvicorn inside our own event loop.

``clanpulse serve`` runs it alone; ``clanpulse run`` runs it beside the scheduler; the
demo runs it on the demo database. The process's signals stay ours: the caller decides
when to stop (uvicorn would otherwise take SIGTERM and SIGINT over).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime

import uvicorn

from clanpulse.settings import Settings
from clanpulse.store.database import Database
from clanpulse.store.schema import utcnow
from clanpulse.web.app import JobRunner, create_app

log = logging.getLogger(__name__)
STARTUP_TIMEOUT = 30.0


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the caller handles signals


class ServerFailed(RuntimeError):
    """The server could not start (most often: the port is taken)."""


@asynccontextmanager
async def dashboard(
    db: Database,
    settings: Settings,
    runner: JobRunner,
    *,
    host: str | None = None,
    port: int | None = None,
    now: Callable[[], datetime] = utcnow,
) -> AsyncIterator[str]:
    """Serve the dashboard while the block runs; yields its address (``http://host:port``).

    ``port`` 0 picks a free port.
    """
    app = create_app(db, settings, runner, now=now)
    config = uvicorn.Config(
        app,
        host=host if host is not None else settings.web_host,
        port=port if port is not None else settings.web_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    # bound here, not by uvicorn, which would exit the process on a taken port
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # IPPROTO_TCP named, or asyncio does not set TCP_NODELAY on accepted connections (and
    # a keep-alive client then waits out delayed ACKs: 40 ms per response)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise ServerFailed(
            f"the dashboard cannot listen on {config.host}:{config.port}: {exc.strerror} "
            "(set CLANPULSE_WEB_HOST / CLANPULSE_WEB_PORT)"
        ) from None
    bound = sock.getsockname()
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard")
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started and not task.done():  # noqa: ASYNC110 (no event)
                await asyncio.sleep(0.02)
        if not server.started:
            raise ServerFailed("the dashboard did not start (see the log above)")
        address = f"http://{_shown_host(bound[0])}:{bound[1]}"
        log.info("dashboard at %s", address)
        yield address
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=5)
        except (TimeoutError, SystemExit):
            task.cancel()
        sock.close()
        await app.state.views.close()  # after the requests: they may be reading


def _shown_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve_until_stopped(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """``clanpulse serve``: the dashboard alone until SIGTERM/SIGINT (or ``stop``). Jobs
    an admin starts run in this process and stop at a batch boundary with it."""
    from clanpulse.ops.clock import Clock
    from clanpulse.ops.scheduler import Service
    from clanpulse.store.database import open_database

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_database(settings.database_url) as db:
            runner = Service(db, settings, Clock())
            async with dashboard(db, settings, runner, host=host, port=port) as address:
                if on_ready is not None:
                    on_ready(address)
                await stop.wait()
                await runner.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
