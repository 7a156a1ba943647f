"""Serving an ASGI app on 127.0.0.1 from a background thread: what every fake API shares.

``with Server(...)`` or ``start()``/``stop()`` from synchronous code; ``async with`` or
``await astart()``/``await astop()`` inside an event loop. The server runs on its own thread,
so blocking code in the caller's event loop cannot stall it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

STARTUP_SECONDS = 15


class LoopbackServer:
    """An ASGI ``app`` on ``host`` (loopback), port 0 picking a free one."""

    label = "loopback server"

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"the {self.label} is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no API prefix)."""
        return f"http://{self.host}:{self.port}"

    def _bind(self) -> socket.socket:
        # An explicit IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections;
        # without it every response stalls ~40 ms on Nagle plus delayed ACKs.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self._port = int(sock.getsockname()[1])
        return sock

    def _uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            access_log=False,  # access lines could carry tokens in paths
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        return uvicorn.Server(config)

    def bind(self) -> int:
        """Reserve the listening socket now (to learn the port early); return the port."""
        if self._socket is None:
            self._socket = self._bind()
        return self.port

    def start(self) -> None:
        """Start serving on a background thread; returns once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self.bind()
        self._server = self._uvicorn()
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"{self.label}-{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.label} did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Shut down and wait for the server thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._port = None

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def run_forever(self) -> None:
        """Serve on the calling (main) thread until interrupted, for standalone use."""
        self.bind()
        assert self._socket is not None
        try:
            self._uvicorn().run(sockets=[self._socket])
        finally:
            self._socket.close()
            self._socket = None
            self._port = None


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options every fake API's standalone mode shares."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="rate-limit windows are multiplied by this"
    )
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0)
