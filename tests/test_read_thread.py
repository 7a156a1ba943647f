"""Reads on a thread of their own: the caller's event loop goes on while they run."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.store.database import Database
from clanpulse.store.read_thread import ReadThread


async def test_a_read_that_holds_its_thread_does_not_hold_the_callers_loop(db: Database) -> None:
    reads = ReadThread(db.url)
    go_on = threading.Event()

    async def hog(conn: AsyncConnection) -> tuple[bool, int, int]:
        one = (await conn.execute(text("SELECT 1"))).scalar_one()
        # blocks its whole thread (as a long stretch of Python would) until the caller's
        # loop, which must keep running meanwhile, says so
        return go_on.wait(timeout=10), threading.get_ident(), one

    try:
        read = asyncio.create_task(reads.read(hog))
        await asyncio.sleep(0.05)  # the caller's loop runs while the read holds its thread
        go_on.set()
        released, ident, one = await read
        assert released, "the caller's loop was held while the read ran"
        assert ident != threading.get_ident()
        assert one == 1
    finally:
        await reads.close()


async def test_errors_reach_the_caller_and_cancelling_it_cancels_the_read(db: Database) -> None:
    reads = ReadThread(db.url)
    started = threading.Event()
    cancelled = threading.Event()

    async def fails(conn: AsyncConnection) -> None:
        raise ValueError("no such thing")

    async def slow(conn: AsyncConnection) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        with pytest.raises(ValueError, match="no such thing"):
            await reads.read(fails)
        read = asyncio.create_task(reads.read(slow))
        assert await asyncio.to_thread(started.wait, 10)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert await asyncio.to_thread(cancelled.wait, 10), "the read went on"
    finally:
        await reads.close()


async def test_close_cancels_what_runs_and_ends_the_thread(db: Database) -> None:
    reads = ReadThread(db.url, name="reads-under-test")
    started = threading.Event()

    async def forever(conn: AsyncConnection) -> None:
        started.set()
        await asyncio.sleep(3600)

    read = asyncio.create_task(reads.read(forever))
    assert await asyncio.to_thread(started.wait, 10)
    assert "reads-under-test" in {t.name for t in threading.enumerate()}
    await asyncio.wait_for(reads.close(), 10)
    with pytest.raises(asyncio.CancelledError):
        await read
    assert "reads-under-test" not in {t.name for t in threading.enumerate()}
    assert db.url not in repr(reads)
