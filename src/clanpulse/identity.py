"""Who is who: members (people), their platform accounts, renames, linking and opt-out.

Every account starts as its own member. Accounts of one person are linked into one member
automatically only when it is unambiguous (the normalized names are equal and there is
exactly one candidate on each side), or by hand with ``clanpulse member link``; a link or
unlink made by hand is never undone automatically. Names are compared only after Wise Old
Man normalization, by equality: never by substring, never with spaces removed.

All writes here happen inside the caller's write transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.names import is_valid_osrs_name, normalize_osrs_name
from clanpulse.records import Platform
from clanpulse.store.archive_schema import archived_message, archived_snapshot, has_archive
from clanpulse.store.schema import (
    account,
    group_event,
    member,
    message,
    message_rollup,
    name_change,
    snapshot,
    utcnow,
)


class IdentityError(ValueError):
    """A name that matches no one, or more than one; the message lists the candidates."""


def account_display_name() -> Any:
    """Guild nickname, else global display name, else username ("" means known absent)."""
    return func.coalesce(
        func.nullif(account.c.nickname, ""),
        func.nullif(account.c.global_name, ""),
        account.c.username,
    )


async def resolve_osrs_names(conn: AsyncConnection, names: set[str]) -> dict[str, int]:
    """Map normalized in-game names to known player accounts, exactly.

    A current name wins; otherwise an old name (from approved renames) counts when exactly
    one player ever had it. Names that resolve to nobody are left out: the caller keeps
    them on an unattributed account of their own until a later sync can place them.
    """
    if not names:
        return {}
    found: dict[str, int] = {}
    current = await conn.execute(
        select(account.c.normalized_name, account.c.id).where(
            account.c.platform == Platform.OSRS.value,
            account.c.external_id.is_not(None),
            account.c.normalized_name.in_(names),
        )
    )
    for name, account_id in current:
        found[name] = account_id
    rest = names - found.keys()
    if rest:
        old = await conn.execute(
            select(name_change.c.old_normalized, name_change.c.account_id)
            .where(name_change.c.old_normalized.in_(rest))
            .distinct()
        )
        owners: dict[str, set[int]] = defaultdict(set)
        for name, account_id in old:
            owners[name].add(account_id)
        for name, ids in owners.items():
            if len(ids) == 1:  # a name two players have held is not guessed
                found[name] = ids.pop()
    return found


async def merge_accounts(conn: AsyncConnection, source_id: int, target_id: int) -> None:
    """Move everything of ``source`` onto ``target`` and drop ``source`` (same real account).

    Used when an in-game name seen in relayed chat turns out to be a tracked player (or a
    player's old name). The rollup is re-summed so reports stay exact.
    """
    if source_id == target_id:
        return
    # archived rows move with the account too: none may point at the account dropped below
    archive = has_archive(conn)
    messages = (message, archived_message) if archive else (message,)
    snapshots = (snapshot, archived_snapshot) if archive else (snapshot,)
    for table in messages:
        await conn.execute(
            update(table)
            .where(table.c.credited_account_id == source_id)
            .values(credited_account_id=target_id)
        )
        await conn.execute(
            update(table)
            .where(table.c.author_account_id == source_id)
            .values(author_account_id=target_id)
        )
    rows = (
        await conn.execute(
            select(
                message_rollup.c.day,
                message_rollup.c.channel_id,
                message_rollup.c.messages,
                message_rollup.c.last_sent_at,
            ).where(message_rollup.c.account_id == source_id)
        )
    ).all()
    await conn.execute(delete(message_rollup).where(message_rollup.c.account_id == source_id))
    if rows:
        from clanpulse.store.ingest import add_rollup_rows

        await add_rollup_rows(
            conn,
            [
                {
                    "day": r.day,
                    "account_id": target_id,
                    "channel_id": r.channel_id,
                    "messages": r.messages,
                    "last_sent_at": r.last_sent_at,
                }
                for r in rows
            ],
        )
    for keyed in (*snapshots, name_change, group_event):
        # the source never has rows the target also has (it was only a chat name)
        await conn.execute(
            update(keyed).where(keyed.c.account_id == source_id).values(account_id=target_id)
        )
    old_member = (
        await conn.execute(select(account.c.member_id).where(account.c.id == source_id))
    ).scalar_one_or_none()
    await conn.execute(delete(account).where(account.c.id == source_id))
    await _drop_if_empty(conn, old_member)


async def _drop_if_empty(conn: AsyncConnection, member_id: int | None) -> None:
    if member_id is None:
        return
    await conn.execute(
        delete(member).where(
            member.c.id == member_id,
            ~exists().where(account.c.member_id == member_id),
        )
    )


async def move_account(
    conn: AsyncConnection, account_id: int, member_id: int, *, locked: bool
) -> None:
    """Make ``account_id`` belong to ``member_id`` (its old member goes if left empty)."""
    old = (
        await conn.execute(select(account.c.member_id).where(account.c.id == account_id))
    ).scalar_one()
    await conn.execute(
        update(account)
        .where(account.c.id == account_id)
        .values(member_id=member_id, link_locked=locked or account.c.link_locked)
    )
    if old != member_id:
        await _drop_if_empty(conn, old)


async def unlink(conn: AsyncConnection, account_id: int) -> int:
    """Give the account a member of its own again; returns the new member id."""
    created = await conn.execute(
        member.insert().values(created_at=utcnow(), opted_out=False).returning(member.c.id)
    )
    new_member = int(created.scalar_one())
    old = (
        await conn.execute(select(account.c.member_id).where(account.c.id == account_id))
    ).scalar_one()
    await conn.execute(
        update(account)
        .where(account.c.id == account_id)
        .values(member_id=new_member, link_locked=True)
    )
    await _drop_if_empty(conn, old)
    return new_member


async def auto_link(conn: AsyncConnection) -> int:
    """Link a Discord account to an in-game account when their names say so unambiguously.

    The Discord name used is the one shown (nickname, else display name, else username),
    normalized like an in-game name. Both sides must have exactly one candidate, neither may
    have been linked or unlinked by hand, and the in-game account must still be alone.
    """
    discord_rows = await conn.execute(
        select(account.c.id, account.c.member_id, account_display_name().label("name")).where(
            account.c.platform == Platform.DISCORD.value,
            account.c.is_bot.is_(False),
            account.c.link_locked.is_(False),
            account.c.member_id.is_not(None),
        )
    )
    by_name: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for account_id, member_id, name in discord_rows:
        normalized = normalize_osrs_name(name)
        if is_valid_osrs_name(normalized):
            by_name[normalized].append((account_id, member_id))
    if not by_name:
        return 0
    others = account.alias("others")
    osrs_rows = await conn.execute(
        select(account.c.id, account.c.member_id, account.c.normalized_name).where(
            account.c.platform == Platform.OSRS.value,
            account.c.link_locked.is_(False),
            account.c.normalized_name.in_(list(by_name)),
            # still alone in its member: not linked to anyone yet
            ~exists().where(
                and_(others.c.member_id == account.c.member_id, others.c.id != account.c.id)
            ),
        )
    )
    osrs_by_name: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for account_id, member_id, name in osrs_rows:
        osrs_by_name[name].append((account_id, member_id))
    linked = 0
    for name, osrs_candidates in osrs_by_name.items():
        discord_candidates = by_name[name]
        if len(osrs_candidates) != 1 or len(discord_candidates) != 1:
            continue
        osrs_account, _ = osrs_candidates[0]
        _, discord_member = discord_candidates[0]
        await move_account(conn, osrs_account, discord_member, locked=False)
        linked += 1
    return linked


@dataclass(frozen=True, slots=True)
class AccountMatch:
    account_id: int
    member_id: int | None
    platform: str
    external_id: str | None
    name: str


async def find_accounts(conn: AsyncConnection, query: str) -> list[AccountMatch]:
    """The accounts a person means by ``query``.

    Forms: ``discord:<id|name>``, ``osrs:<name>``, ``#<member id>``, or a bare name. Names
    match exactly: case-insensitively for Discord, after normalization for in-game names.
    """
    platform: str | None = None
    text = query.strip()
    if ":" in text and text.split(":", 1)[0].lower() in {p.value for p in Platform}:
        platform, text = text.split(":", 1)
        platform = platform.lower()
    conditions = []
    if text.startswith("#") and text[1:].isdigit():
        conditions.append(account.c.member_id == int(text[1:]))
    else:
        shown = account_display_name()
        lowered = text.casefold()
        normalized = normalize_osrs_name(text)
        discord_match = (account.c.platform == Platform.DISCORD.value) & (
            (account.c.external_id == text)
            | (func.lower(shown) == lowered)
            | (func.lower(account.c.username) == lowered)
        )
        osrs_match = (account.c.platform == Platform.OSRS.value) & (
            (account.c.normalized_name == normalized)
            | account.c.id.in_(
                select(name_change.c.account_id).where(name_change.c.old_normalized == normalized)
            )
        )
        if platform == Platform.DISCORD.value:
            conditions.append(discord_match)
        elif platform == Platform.OSRS.value:
            conditions.append(osrs_match)
        else:
            conditions.append(discord_match | osrs_match)
    rows = await conn.execute(
        select(
            account.c.id,
            account.c.member_id,
            account.c.platform,
            account.c.external_id,
            account_display_name().label("name"),
        )
        .where(*conditions)
        .order_by(account.c.id)
    )
    return [AccountMatch(*row) for row in rows]


async def one_account(conn: AsyncConnection, query: str) -> AccountMatch:
    matches = await find_accounts(conn, query)
    if not matches:
        raise IdentityError(f"no account matches {query!r}")
    if len(matches) > 1:
        listed = ", ".join(f"{m.platform}:{m.name} (member #{m.member_id})" for m in matches)
        raise IdentityError(
            f"{query!r} matches {len(matches)} accounts: {listed}; be more specific"
        )
    return matches[0]


async def one_member(conn: AsyncConnection, query: str) -> int:
    """The member a name, account or ``#id`` refers to, or a clear error."""
    if query.strip().startswith("#") and query.strip()[1:].isdigit():
        member_id = int(query.strip()[1:])
        found = await conn.execute(select(member.c.id).where(member.c.id == member_id))
        if found.first() is None:
            raise IdentityError(f"no member #{member_id}")
        return member_id
    matches = await find_accounts(conn, query)
    members = sorted({m.member_id for m in matches if m.member_id is not None})
    if not members:
        raise IdentityError(f"no member matches {query!r}")
    if len(members) > 1:
        listed = ", ".join(f"{m.platform}:{m.name} (member #{m.member_id})" for m in matches)
        raise IdentityError(f"{query!r} matches {len(members)} members: {listed}; use #<id>")
    return members[0]


async def set_opted_out(conn: AsyncConnection, member_id: int, opted_out: bool = True) -> None:
    await conn.execute(update(member).where(member.c.id == member_id).values(opted_out=opted_out))


async def member_listing(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every member (opted-out ones too, marked: this is the admin's view) with accounts."""
    rows = await conn.execute(
        select(
            member.c.id,
            member.c.opted_out,
            account.c.platform,
            account.c.external_id,
            account_display_name().label("name"),
            account.c.names_seen_at,
        )
        .join(account, account.c.member_id == member.c.id)
        .order_by(member.c.id, account.c.platform, account.c.id)
    )
    listing: dict[int, dict[str, Any]] = {}
    freshest: dict[int, Any] = {}
    for row in rows:
        entry = listing.setdefault(
            row.id,
            {"member_id": row.id, "name": row.name, "opted_out": row.opted_out, "accounts": []},
        )
        entry["accounts"].append(
            {"platform": row.platform, "id": row.external_id, "name": row.name}
        )
        if row.id not in freshest or row.names_seen_at > freshest[row.id]:
            freshest[row.id] = row.names_seen_at
            entry["name"] = row.name
    return list(listing.values())


async def member_details(conn: AsyncConnection, member_id: int) -> dict[str, Any]:
    """Everything about one member that ``clanpulse member show`` prints."""
    from clanpulse.analytics.activity import message_counts
    from clanpulse.timeutil import iso_utc

    entry = next(m for m in await member_listing(conn) if m["member_id"] == member_id)
    accounts = await conn.execute(
        select(
            account.c.id,
            account.c.platform,
            account.c.external_id,
            account_display_name().label("name"),
            account.c.role,
            account.c.joined_at,
            account.c.left_at,
            account.c.link_locked,
        )
        .where(account.c.member_id == member_id)
        .order_by(account.c.platform, account.c.id)
    )
    rows = accounts.all()
    ids = [r.id for r in rows]
    renames = await conn.execute(
        select(name_change.c.old_name, name_change.c.new_name, name_change.c.resolved_at)
        .where(name_change.c.account_id.in_(ids))
        .order_by(name_change.c.resolved_at)
    )
    counts, last = await message_counts(conn, utcnow())
    return {
        "member_id": member_id,
        "name": entry["name"],
        "opted_out": entry["opted_out"],
        "accounts": [
            {
                "platform": r.platform,
                "id": r.external_id,
                "name": r.name,
                "clan_role": r.role,
                "joined_at": iso_utc(r.joined_at),
                "left_at": iso_utc(r.left_at),
                "linked_by_hand": r.link_locked,
            }
            for r in rows
        ],
        "renames": [
            {"old_name": old, "new_name": new, "at": iso_utc(at)} for old, new, at in renames
        ],
        "messages": {w: sum(counts[a][w] for a in ids) for w in ("7d", "30d", "90d", "all")},
        "last_message_at": iso_utc(max((last[a] for a in ids if a in last), default=None)),
    }
