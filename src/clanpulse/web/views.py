"""What the dashboard shows, computed from the analytics and cached per data version.

Every figure comes from the same functions as the CLI reports (``analytics/``), at a
moment ``as_of``: by default (None) the start of the current minute, so that everyone
looking in the same minute shares one computation. Reads run on a thread of their own
(``store/read_thread.py``): the server's event loop only serves what is computed. What is
kept and for how long: see :class:`ResultCache`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, cast, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.analytics import leaderboards
from clanpulse.analytics.clan import ClanReport, ClanRow, clan_report, roster_changes
from clanpulse.analytics.daily import DayTotals, MemberDays, daily_by_member
from clanpulse.analytics.members import people
from clanpulse.identity import account_display_name
from clanpulse.ops.runs import recent_runs
from clanpulse.ops.status import service_status
from clanpulse.settings import Settings
from clanpulse.store.database import Database, data_version
from clanpulse.store.read_thread import ReadThread
from clanpulse.store.schema import account, member, name_change, utcnow
from clanpulse.web import models as m

WINDOWS: tuple[m.Window, ...] = ("7d", "30d", "90d")
WINDOW_DAYS = {"7d": 7, "30d": 30, "90d": 90}
MEMBER_SORTS = tuple(m.MemberRow.model_fields)
STATUSES: tuple[m.Status, ...] = get_args(m.Status)
TOP = 5
CACHE_SIZE = 1024  # results, e.g. every member's profile of a large clan
VERSION_CHECK_SECONDS = 1.0
RUNS_SHOWN = 50

T = TypeVar("T")
log = logging.getLogger(__name__)


class NotFound(LookupError):
    """No such member (or one who opted out: the dashboard does not know them)."""


class _Results:
    """Results by key: bounded (least recently used go first) and single-flight (many
    asking at once for a missing result wait for one computation). :meth:`clear` also
    disowns computations in flight: what they return was read before it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self._epoch = 0

    def clear(self) -> None:
        self._entries.clear()
        self._pending.clear()
        self._epoch += 1

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def peek(self, key: Hashable) -> Any:
        self._entries.move_to_end(key)
        return self._entries[key]

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        if key in self._entries:
            return cast(T, self.peek(key))
        pending = self._pending.get(key)
        if pending is not None:
            return cast(T, await asyncio.shield(pending))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        epoch = self._epoch
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
        future.set_result(value)
        if epoch == self._epoch:
            self._entries[key] = value
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value


class ResultCache:
    """The dashboard's results, never older than the data allow.

    - :meth:`get`: a result for an exact moment, kept while the store's data version stays
      the same (checked at most once a second).
    - :meth:`current`: a result for *now*, kept for a generation: a generation starts when
      the data version has changed, but at most every ``min_age`` seconds
      (CLANPULSE_WEB_REFRESH_SECONDS), so that a harvest committing every second does not
      keep the server recomputing. Everything computed in one generation (a report and the
      figures built on it) reads data at least as new as the generation's start.
    - :meth:`latest`: like :meth:`current`, but when the generation (or the minute it is
      for) has moved on, the previous result is served once more while one background task
      recomputes it (stale while revalidating): readers never wait for a recomputation.

    Someone opting out (or back in) ends everything at once: no result may show them again.
    """

    def __init__(self, db: Database, size: int = CACHE_SIZE, min_age: float = 0.0) -> None:
        self.db = db
        self.min_age = min_age
        self._exact = _Results(size)
        self._current = _Results(size)
        self._shown: OrderedDict[Hashable, Any] = OrderedDict()  # latest result per key
        self._size = size
        self._forgotten = 0  # how many times everything was dropped
        self._version: int | None = None
        self._generation: int | None = None  # the data version the generation started at
        self._generation_started = float("-inf")
        self._hidden: frozenset[int] | None = None  # opted-out members at the last check
        self._checked_at = float("-inf")
        self._check = asyncio.Lock()
        self._refreshing: set[Hashable] = set()
        self._refresh_turn = asyncio.Semaphore(1)  # one recomputation at a time
        self._tasks: set[asyncio.Task[None]] = set()
        self.computed = 0  # how many results were computed (not served from the cache)

    async def _fresh(self) -> None:
        if time.monotonic() - self._checked_at < VERSION_CHECK_SECONDS:
            return
        async with self._check:
            if time.monotonic() - self._checked_at < VERSION_CHECK_SECONDS:
                return
            async with self.db.read() as conn:
                version = await data_version(conn)
                hidden = None
                if version != self._version:
                    found = await conn.execute(select(member.c.id).where(member.c.opted_out))
                    hidden = frozenset(found.scalars())
            now = time.monotonic()
            self._checked_at = now
            if version != self._version:
                self._exact.clear()
                self._version = version
                if hidden != self._hidden:
                    self._hidden = hidden
                    self._forget_now()
            if self._generation != version and now - self._generation_started >= self.min_age:
                self._current.clear()
                self._generation = version
                self._generation_started = now

    def _forget_now(self) -> None:
        self._current.clear()
        self._shown.clear()
        self._forgotten += 1
        self._generation = None
        self._generation_started = float("-inf")

    def forget(self) -> None:
        """Drop everything now (this process changed the data: an opted-out member must be
        gone from the next response)."""
        self._exact.clear()
        self._forget_now()
        self._checked_at = float("-inf")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _counted(self, compute: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        async def run() -> T:
            value = await compute()
            self.computed += 1
            return value

        return run

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        await self._fresh()
        return await self._exact.get(key, self._counted(compute))

    async def current(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        await self._fresh()
        return await self._current.get(key, self._counted(compute))

    async def latest(
        self, key: Hashable, token: Hashable, compute: Callable[[], Awaitable[T]]
    ) -> T:
        """The result of ``compute`` for now and ``token`` (the minute it is for, say),
        served stale while a newer one is computed: see the class."""
        await self._fresh()
        if (key, token) in self._current:
            return cast(T, self._current.peek((key, token)))
        if key not in self._shown:
            return await self._show(key, token, compute)
        if key not in self._refreshing:
            self._refreshing.add(key)
            task = asyncio.create_task(self._refresh(key, token, compute))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._shown.move_to_end(key)
        return cast(T, self._shown[key])

    async def _show(self, key: Hashable, token: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        forgotten = self._forgotten
        value = await self._current.get((key, token), self._counted(compute))
        if forgotten == self._forgotten:  # not read before an opt-out
            self._shown[key] = value
            self._shown.move_to_end(key)
            if len(self._shown) > self._size:
                self._shown.popitem(last=False)
        return value

    async def _refresh(
        self, key: Hashable, token: Hashable, compute: Callable[[], Awaitable[Any]]
    ) -> None:
        try:
            async with self._refresh_turn:
                await self._show(key, token, compute)
        except Exception as exc:  # the stale result stays; the next request tries again
            log.warning("recomputing %r failed: %s", key, exc)
        finally:
            self._refreshing.discard(key)


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


class Views:
    """Each page's and endpoint's data, as the models in ``web/models.py``.

    ``as_of``: an exact moment, or None for now (the start of the current minute, figures
    of the cache's current generation: see :class:`ResultCache`). Reads run on a thread of
    their own (:class:`ReadThread`); :meth:`close` ends it.
    """

    def __init__(
        self, db: Database, settings: Settings, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.settings = settings
        self.now = now
        self.cache = ResultCache(db, min_age=settings.web_refresh_seconds)
        self.reads = ReadThread(db.url, name="clanpulse-web-reads")

    async def close(self) -> None:
        await self.cache.close()
        await self.reads.close()

    def as_of(self, requested: datetime | None) -> datetime:
        if requested is None:
            return minute_of(self.now())
        if requested.tzinfo is None:
            requested = requested.replace(tzinfo=UTC)
        return requested.astimezone(UTC)

    async def figure(
        self,
        as_of: datetime | None,
        key: tuple[Any, ...],
        compute: Callable[[datetime], Awaitable[T]],
    ) -> T:
        """``compute(moment)``, cached: for an exact moment while the data stay the same,
        for now (None) for the cache's current generation."""
        moment = self.as_of(as_of)
        if as_of is None:
            return await self.cache.current((*key, moment), lambda: compute(moment))
        return await self.cache.get((*key, moment), lambda: compute(moment))

    def _read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> Awaitable[T]:
        return self.reads.read(work)

    async def report(self, as_of: datetime | None) -> ClanReport:
        days = self.settings.inactive_days
        return await self.figure(
            as_of, ("report", days), lambda t: self._read(lambda c: clan_report(c, t, days))
        )

    # -- members ---------------------------------------------------------------------

    async def members(
        self,
        as_of: datetime | None,
        window: m.Window = "30d",
        status: m.Status | None = None,
        role: str | None = None,
        q: str | None = None,
        sort: str = "messages",
        order: Literal["asc", "desc"] = "desc",
        offset: int = 0,
        limit: int = 100,
    ) -> m.MemberPage:
        report = await self.report(as_of)
        rows = [member_row(r, window) for r in report.rows]
        if status is not None:
            rows = [r for r in rows if r.status == status]
        if role is not None:
            rows = [r for r in rows if (r.role or "").casefold() == role.casefold()]
        if q:
            needle = q.casefold()
            rows = [r for r in rows if needle in r.name.casefold()]
        rows = sort_rows(rows, sort, order)
        return m.MemberPage(
            as_of=report.as_of,
            window=window,
            total=len(rows),
            offset=offset,
            limit=limit,
            members=rows[offset : offset + limit],
        )

    async def member(
        self, member_id: int, as_of: datetime | None, window: m.Window
    ) -> m.MemberDetail:
        report = await self.report(as_of)
        row = next((r for r in report.rows if r.member_id == member_id), None)

        async def compute(conn: AsyncConnection, moment: datetime) -> m.MemberDetail:
            person = next(iter(await people(conn, member_id)), None)
            if person is None:
                raise NotFound(f"no member #{member_id}")
            accounts = await conn.execute(
                select(
                    account.c.platform,
                    account.c.external_id,
                    account_display_name().label("name"),
                    account.c.role,
                    account.c.joined_at,
                    account.c.left_at,
                )
                .where(account.c.member_id == member_id)
                .order_by(account.c.platform, account.c.id)
            )
            renames = await conn.execute(
                select(name_change.c.old_name, name_change.c.new_name, name_change.c.resolved_at)
                .where(name_change.c.account_id.in_(person.account_ids))
                .order_by(name_change.c.resolved_at)
            )
            shown = member_row(row, window) if row is not None else None
            return m.MemberDetail(
                as_of=moment,
                member_id=member_id,
                name=row.name if row is not None else person.name,
                current=row is not None,
                row=shown,
                accounts=[
                    m.AccountOut(
                        platform=a.platform,
                        id=a.external_id,
                        name=a.name,
                        clan_role=a.role,
                        joined_at=a.joined_at,
                        left_at=a.left_at,
                    )
                    for a in accounts
                ],
                renames=[m.RenameOut(old_name=o, new_name=n, at=at) for o, n, at in renames],
                last_seen_at=shown.last_seen_at if shown is not None else None,
                days=[day_out(d) for d in days.of(member_id)],
            )

        days = await self.days(as_of, window)
        return await self.figure(
            as_of,
            ("member", member_id, window),
            lambda t: self._read(lambda c: compute(c, report.as_of)),
        )

    # -- the clan ----------------------------------------------------------------------

    def day_range(self, as_of: datetime, window: m.Window) -> tuple[datetime, datetime]:
        """The window itself, cut into local days (the first and last partial), so the
        days add up to the window's figures in the report."""
        return as_of - timedelta(days=WINDOW_DAYS[window]), as_of

    async def days(self, as_of: datetime | None, window: m.Window) -> MemberDays:
        """Every member's messages and XP per day: for profiles and the clan's chart."""

        async def compute(moment: datetime) -> MemberDays:
            start, end = self.day_range(moment, window)
            zone = self.settings.zone
            return await self._read(lambda c: daily_by_member(c, start, end, zone))

        return await self.figure(as_of, ("days", window), compute)

    async def activity(self, as_of: datetime | None, window: m.Window) -> m.Activity:
        """The current members' days added up (so they add up to the report's figures)."""

        async def compute(_: datetime) -> m.Activity:
            report = await self.report(as_of)
            days = await self.days(as_of, window)
            return m.Activity(
                as_of=report.as_of,
                window=window,
                zone=self.settings.timezone,
                days=[day_out(d) for d in days.total([r.member_id for r in report.rows])],
            )

        return await self.figure(as_of, ("activity", window), compute)

    async def leaderboard(
        self, as_of: datetime | None, metric: str, window: m.Window, limit: int
    ) -> m.Leaderboard:
        report = await self.report(as_of)

        async def compute(conn: AsyncConnection) -> m.Leaderboard:
            found = await leaderboards.leaderboard(conn, report, metric, window, limit)
            return m.Leaderboard(
                as_of=report.as_of,
                metric=metric,
                window=window,
                standings=[standing(s) for s in found],
            )

        return await self.figure(
            as_of, ("leaderboard", metric, window, limit), lambda _: self._read(compute)
        )

    async def roster(self, as_of: datetime | None, window: m.Window) -> m.Roster:
        async def compute(conn: AsyncConnection, moment: datetime) -> m.Roster:
            since = moment - timedelta(days=WINDOW_DAYS[window])
            joined, left, renames = await roster_changes(conn, await people(conn), since, moment)
            return m.Roster(
                as_of=moment,
                window=window,
                joined=[m.RosterEvent(name=c.name, at=c.at) for c in joined],
                left=[m.RosterEvent(name=c.name, at=c.at) for c in left],
                renames=[
                    m.RenameOut(old_name=r.old_name, new_name=r.new_name, at=r.at) for r in renames
                ],
            )

        return await self.figure(
            as_of, ("roster", window), lambda t: self._read(lambda c: compute(c, t))
        )

    async def overview(self, as_of: datetime | None, window: m.Window) -> m.Overview:
        report = await self.report(as_of)
        roster = await self.roster(as_of, window)
        top_messages = await self.leaderboard(as_of, "messages", window, TOP)
        top_xp = await self.leaderboard(as_of, "xp", window, TOP)
        rows = report.rows
        return m.Overview(
            as_of=report.as_of,
            window=window,
            members=len(rows),
            by_status={s: sum(1 for r in rows if r.status == s) for s in STATUSES},
            messages=sum(r.messages[window] for r in rows),
            xp_gained=sum(r.xp[window] or 0 for r in rows),
            top_messages=top_messages.standings,
            top_xp=top_xp.standings,
            joined=roster.joined,
            left=roster.left,
        )

    async def inactive(self, as_of: datetime | None) -> m.Inactive:
        report = await self.report(as_of)
        return m.Inactive(
            as_of=report.as_of,
            inactive_days=report.inactive_days,
            members=[
                m.InactiveMember(
                    member_id=r.member_id,
                    name=r.name,
                    role=r.role,
                    joined_at=r.joined_at,
                    last_message_at=r.last_message_at,
                    last_xp_change_at=r.last_xp_change_at,
                    reasons=inactive_reasons(r, report.inactive_days, report.as_of),
                )
                for r in sorted(
                    (r for r in report.rows if r.status == "inactive"),
                    key=lambda r: (last_seen(r) or EPOCH, r.name.casefold()),
                )
            ],
        )

    # -- operations: about now, so kept for a second at most ------------------------------

    async def health(self) -> m.Health:
        # ~20 small queries: under load, one computation a second serves every caller, who
        # gets the previous one meanwhile (as for the latest results)
        # (job runs are bookkeeping, not data: the clock's second, not the data version,
        # ages it)
        second = int(time.monotonic())
        return await self.cache.latest(("health",), second, self._compute_health)

    async def _compute_health(self) -> m.Health:
        now = self.now()
        status = await self._read(lambda conn: service_status(conn, self.settings, now))
        jobs = [
            m.JobOut(
                job=j.name,
                schedule=j.schedule,
                disabled=j.disabled,
                last_started_at=j.history.last_started_at,
                last_finished_at=j.history.last_finished_at,
                last_status=j.history.last_status,
                last_items=j.history.last_items,
                last_error=j.history.last_error,
                last_ok_at=j.history.last_ok_at,
                failures_in_a_row=j.history.failures_in_a_row,
                next_run=j.next_run,
            )
            for j in status.jobs
        ]
        failing = any(j.failures_in_a_row for j in jobs)
        return m.Health(
            status="degraded" if status.open_alerts or failing else "ok",
            now=now,
            zone=self.settings.timezone,
            latest_message_at=status.latest_message_at,
            jobs=jobs,
            open_alerts=status.open_alerts,
        )

    async def jobs(self) -> m.Jobs:
        health = await self.health()
        runs = await self._read(lambda conn: recent_runs(conn, RUNS_SHOWN))
        return m.Jobs(health=health, runs=[m.RunOut.model_validate(r) for r in runs])


EPOCH = datetime.min.replace(tzinfo=UTC)


def last_seen(r: ClanRow) -> datetime | None:
    """The last counted message or XP change, whichever is later."""
    return max((t for t in (r.last_message_at, r.last_xp_change_at) if t is not None), default=None)


def member_row(r: ClanRow, window: m.Window) -> m.MemberRow:
    return m.MemberRow(
        member_id=r.member_id,
        name=r.name,
        role=r.role,
        joined_at=r.joined_at,
        status=cast(m.Status, r.status),
        messages=r.messages[window],
        xp_gained=r.xp[window],
        ehp_gained=_round(r.ehp[window]),
        ehb_gained=_round(r.ehb[window]),
        boss_kills_gained=r.boss_kills[window],
        last_message_at=r.last_message_at,
        last_xp_change_at=r.last_xp_change_at,
        last_seen_at=last_seen(r),
    )


def _round(value: float | None) -> float | None:
    # as the CLI's JSON and sheets show them
    return None if value is None else round(value, 2)


def sort_rows(rows: list[m.MemberRow], column: str, order: str) -> list[m.MemberRow]:
    """Sorted by ``column``; members without a value always last, ties by name."""
    if column not in MEMBER_SORTS:
        raise ValueError(f"cannot sort by {column!r}")
    known = [r for r in rows if getattr(r, column) is not None]
    unknown = [r for r in rows if getattr(r, column) is None]
    by_name = sorted(known, key=lambda r: (r.name.casefold(), r.member_id))

    def key(r: m.MemberRow) -> Any:
        value = getattr(r, column)
        return value.casefold() if isinstance(value, str) else value

    ordered = sorted(by_name, key=key, reverse=order == "desc")
    return ordered + sorted(unknown, key=lambda r: (r.name.casefold(), r.member_id))


def day_out(d: DayTotals) -> m.DayOut:
    return m.DayOut(day=d.day, start=d.start, end=d.end, messages=d.messages, xp_gained=d.xp)


def standing(s: leaderboards.Standing) -> m.Standing:
    return m.Standing(rank=s.rank, member_id=s.member_id, name=s.name, value=round(s.value, 2))


def inactive_reasons(r: ClanRow, inactive_days: int, as_of: datetime) -> list[str]:
    def since(moment: datetime | None, what: str) -> str:
        if moment is None:
            return f"no {what} on record"
        return f"no {what} for {(as_of - moment).days} days"

    return [since(r.last_message_at, "counted message"), since(r.last_xp_change_at, "XP change")]
