"""Identity: exact names only, chat lines follow players through renames, links by rule or hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clanpulse.analytics.activity import activity_report
from clanpulse.identity import (
    IdentityError,
    auto_link,
    find_accounts,
    move_account,
    one_account,
    one_member,
    set_opted_out,
    unlink,
)
from clanpulse.records import MessageKind
from clanpulse.store.database import Database
from clanpulse.store.ingest import ingest_batch
from clanpulse.store.wom_ingest import store_name_changes, upsert_players
from tests.factories import BRIDGE, at, batch, chat, user
from tests.harvest_support import rollup_matches_messages
from tests.wom_factories import player, rename

AS_OF = at("2026-03-29 12:00")


def said(name: str, when: str = "2026-03-28 10:00"):  # type: ignore[no-untyped-def]
    return chat(BRIDGE, when, kind=MessageKind.BRIDGE_CHAT, speaker=name)


async def report_by_name(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        report = await activity_report(conn, AS_OF)
    return {m.name: m.messages["all"] for m in report.members}


async def test_chat_lines_under_a_name_move_to_the_player_who_has_it(db: Database) -> None:
    async with db.write() as conn:
        await ingest_batch(conn, batch(said("Tide Pool"), said("Tide Pool"), said("Tidepool")))
        await upsert_players(conn, [player(705, "Tide Pool")], AS_OF)
        await ingest_batch(conn, batch(said("Tide_Pool", "2026-03-28 11:00")))  # same player
    counts = await report_by_name(db)
    assert counts["Tide Pool"] == 3
    assert counts["Tidepool"] == 1  # another account: spaces are never removed
    assert await rollup_matches_messages(db) == (4, 4)
    async with db.read() as conn:
        (tide,) = await find_accounts(conn, "osrs:tide pool")
    assert tide.external_id == "705"


async def test_lines_said_under_an_old_name_follow_the_rename(db: Database) -> None:
    async with db.write() as conn:
        await ingest_batch(conn, batch(said("Sea Larkk"), said("Sea Larkk")))
        accounts = await upsert_players(conn, [player(704, "Sea_Lark")], AS_OF)
        await store_name_changes(
            conn, [rename(88123, 704, "Sea Larkk", "Sea_Lark", AS_OF - timedelta(days=9))], accounts
        )
        await ingest_batch(conn, batch(said("Sea Larkk", "2026-03-28 12:00")))  # old name again
    counts = await report_by_name(db)
    assert counts == {"Sea_Lark": 3}


async def test_names_match_exactly_never_by_substring(db: Database) -> None:
    async with db.write() as conn:
        await ingest_batch(conn, batch(said("Rookie Ned"), said("Rook")))
    async with db.read() as conn:
        assert [a.name for a in await find_accounts(conn, "rook")] == ["Rook"]
        with pytest.raises(IdentityError, match="no account matches 'roo'"):
            await one_account(conn, "roo")


async def test_auto_link_joins_discord_and_in_game_accounts_only_when_unambiguous(
    db: Database,
) -> None:
    async with db.write() as conn:
        await ingest_batch(
            conn,
            batch(
                chat(user(1, "ironrook", nickname="Iron Rook"), "2026-03-28 09:00"),
                said("Iron Rook"),
                # two Discord people could be "Maple Field": neither is linked
                chat(user(2, "maple1", global_name="Maple Field"), "2026-03-28 09:00"),
                chat(user(3, "maple2", nickname="Maple_Field"), "2026-03-28 09:00"),
                said("Maple Field"),
            ),
        )
        assert await auto_link(conn) == 1
        assert await auto_link(conn) == 0  # nothing more to do
    async with db.read() as conn:
        report = await activity_report(conn, AS_OF)
    linked = [m for m in report.members if len(m.accounts) == 2]
    assert len(linked) == 1
    assert {a.platform for a in linked[0].accounts} == {"discord", "osrs"}
    assert linked[0].messages["all"] == 2


async def test_a_hand_made_unlink_is_never_undone_by_auto_link(db: Database) -> None:
    async with db.write() as conn:
        await ingest_batch(
            conn,
            batch(
                chat(user(1, "ironrook", nickname="Iron Rook"), "2026-03-28 09:00"),
                said("Iron Rook"),
            ),
        )
        assert await auto_link(conn) == 1
        osrs = await one_account(conn, "osrs:Iron Rook")
        await unlink(conn, osrs.account_id)
        assert await auto_link(conn) == 0
    async with db.read() as conn:
        report = await activity_report(conn, AS_OF)
    assert sorted(len(m.accounts) for m in report.members) == [1, 1]  # two people again


async def test_link_by_hand_survives_renames(db: Database) -> None:
    async with db.write() as conn:
        await ingest_batch(
            conn, batch(chat(user(1, "fern"), "2026-03-28 09:00"), said("Fern Whistle"))
        )
        accounts = await upsert_players(conn, [player(701, "Fern Whistle")], AS_OF)
        fern = await one_member(conn, "discord:fern")
        await move_account(conn, accounts[701], fern, locked=True)
        # the player renames in game; the link is by account, not by name
        await upsert_players(conn, [player(701, "Fern Gully")], AS_OF)
    async with db.read() as conn:
        report = await activity_report(conn, AS_OF)
    (member,) = report.members
    assert {a.name for a in member.accounts} == {"fern", "Fern Gully"}
    assert member.messages["all"] == 2


async def test_opted_out_members_vanish_from_reports_by_name_and_number(db: Database) -> None:
    async with db.write() as conn:
        await ingest_batch(conn, batch(chat(user(1, "quiet"), "2026-03-28 09:00"), said("Rook")))
        await set_opted_out(conn, await one_member(conn, "discord:quiet"))
    counts = await report_by_name(db)
    assert counts == {"Rook": 1}
