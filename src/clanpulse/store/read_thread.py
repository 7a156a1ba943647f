"""Reads on a thread of their own: their own event loop and their own read connections.

The dashboard computes its figures here, so that its server's event loop only waits for
them. A clan report is ~100 ms of Python between its queries; on the server's loop every
request that arrives meanwhile would queue behind it, here they are served while it runs
(the interpreter switches threads every few milliseconds).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.store.database import Database

T = TypeVar("T")
CLOSE_WAIT = 5.0  # seconds close() gives the reads to let go of their connections


class ReadThread:
    """Runs ``work(conn)`` on a read connection of its own thread; started on first use."""

    def __init__(self, url: str, name: str = "clanpulse-reads") -> None:
        self._url = url
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._db: Database | None = None
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._reads: set[Future[Any]] = set()  # in flight, for close() to cancel
        self._reads_lock = threading.Lock()  # added here, discarded on the thread

    def __repr__(self) -> str:
        return f"ReadThread({self._name!r})"  # not the URL: it may hold a password

    def _started(self) -> tuple[asyncio.AbstractEventLoop, Database]:
        with self._start:
            if self._thread is None:
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._main, args=(ready,), name=self._name, daemon=True
                )
                self._thread.start()
                ready.wait()
        assert self._loop is not None and self._db is not None
        return self._loop, self._db

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._db = Database(self._url)  # schema already migrated by the process's own
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work``'s result; cancelling the caller cancels the work."""
        loop, db = self._started()

        async def job() -> T:
            async with db.read() as conn:
                return await work(conn)

        future = asyncio.run_coroutine_threadsafe(job(), loop)
        with self._reads_lock:
            self._reads.add(future)
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, future: Future[Any]) -> None:
        with self._reads_lock:
            self._reads.discard(future)

    async def close(self) -> None:
        """Cancel the reads in flight, close the connections, end the thread."""
        if self._thread is None:
            return
        loop, db = self._started()
        with self._reads_lock:
            reads = list(self._reads)
        for read in reads:
            read.cancel()  # the read's task is cancelled once, on its own loop

        async def shutdown() -> None:
            # wait, not cancel: what is left is the reads giving their connections back
            # (SQLAlchemy closes them in tasks of their own)
            here = asyncio.current_task()
            left = [t for t in asyncio.all_tasks() if t is not here]
            if left:
                await asyncio.wait(left, timeout=CLOSE_WAIT)
            await db.close()

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shutdown(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
