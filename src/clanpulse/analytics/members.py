"""The people reports are about: members who have not opted out, with their accounts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.identity import account_display_name
from clanpulse.records import Platform
from clanpulse.store.schema import account, member


@dataclass(frozen=True, slots=True)
class AccountRef:
    platform: str
    id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class ClanSeat:
    """An in-game account's place in the clan roster."""

    account_id: int
    name: str
    role: str | None
    joined_at: datetime | None
    left_at: datetime | None


@dataclass(frozen=True, slots=True)
class Person:
    member_id: int
    name: str  # the most recently seen name of any of their accounts (or one set by hand)
    accounts: tuple[AccountRef, ...]
    account_ids: tuple[int, ...]
    seats: tuple[ClanSeat, ...]  # in-game accounts that were ever on the clan roster

    def current_seats(self, as_of: datetime) -> list[ClanSeat]:
        return [
            s
            for s in self.seats
            if s.joined_at is not None
            and s.joined_at < as_of
            and (s.left_at is None or s.left_at >= as_of)
        ]


async def people(conn: AsyncConnection, member_id: int | None = None) -> list[Person]:
    """Every member who has not opted out (or only ``member_id``), in member id order."""
    query = (
        select(
            member.c.id,
            member.c.display_name,
            account.c.id.label("account_id"),
            account.c.platform,
            account.c.external_id,
            account_display_name().label("name"),
            account.c.names_seen_at,
            account.c.role,
            account.c.joined_at,
            account.c.left_at,
        )
        .join(account, account.c.member_id == member.c.id)
        .where(member.c.opted_out.is_(False))
        .order_by(member.c.id, account.c.platform, account.c.id)
    )
    if member_id is not None:
        query = query.where(member.c.id == member_id)
    result = await conn.execute(query)
    grouped: dict[int, list[Any]] = defaultdict(list)
    chosen: dict[int, str | None] = {}
    for row in result:
        grouped[row.id].append(row)
        chosen.setdefault(row.id, row.display_name)
    found = []
    for member_id, rows in grouped.items():
        freshest = max(rows, key=lambda r: r.names_seen_at)
        found.append(
            Person(
                member_id=member_id,
                name=chosen[member_id] or freshest.name,
                # an in-game account's id is its Wise Old Man player id, once known
                accounts=tuple(AccountRef(r.platform, r.external_id, r.name) for r in rows),
                account_ids=tuple(r.account_id for r in rows),
                seats=tuple(
                    ClanSeat(r.account_id, r.name, r.role, r.joined_at, r.left_at)
                    for r in rows
                    if r.platform == Platform.OSRS.value and r.joined_at is not None
                ),
            )
        )
    return found
