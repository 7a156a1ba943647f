"""Shared fixtures: a fresh real database per test, on SQLite and on PostgreSQL.

PostgreSQL tests use the server at CLANPULSE_TEST_POSTGRES_URL (default: the local one,
trust auth). Without a reachable server they skip with the reason, except under CI
(CI=true), where they fail: the suite must prove both backends there.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from clanpulse.store.database import Database, open_database

PG_ADMIN_URL = os.environ.get(
    "CLANPULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]

_pg_problem: str | None = None
_pg_checked = False


def _postgres_problem() -> str | None:
    global _pg_checked, _pg_problem
    if not _pg_checked:
        _pg_checked = True

        async def probe() -> None:
            conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
            await conn.close()

        try:
            asyncio.run(probe())
        except Exception as exc:  # any failure to connect means "no server here"
            _pg_problem = f"PostgreSQL at {PG_ADMIN_URL} not reachable: {type(exc).__name__}: {exc}"
    return _pg_problem


def _require_postgres() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI must run the PostgreSQL tests)")
    pytest.skip(problem)


@contextmanager
def fresh_postgres_database(prefix: str = "clanpulse_t") -> Iterator[str]:
    """A new, empty PostgreSQL database for as long as the block runs."""
    _require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+asyncpg://{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "clanpulse.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with open_database(db_url) as database:
        yield database


# -- running in parallel (pytest-xdist, `-n` and `--dist loadgroup` in pyproject.toml) -----

_SHARED_SCOPES = ("module", "package", "class")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each module that shares an expensive fixture (a harvested clan, a served
    dashboard, a fuzzed API) on one worker, so that it is built once, not once per worker
    that happens to run one of its tests. Every other test is handed out on its own."""
    for item in items:
        infos = getattr(item, "_fixtureinfo", None)
        if infos is None:
            continue
        shared = any(
            fixturedef.scope in _SHARED_SCOPES
            for fixturedefs in infos.name2fixturedefs.values()
            for fixturedef in fixturedefs
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
