"""The activity report's numbers: exact half-open windows, every message counted once."""

from __future__ import annotations

from datetime import timedelta

from clanpulse.analytics.activity import activity_report
from clanpulse.records import MessageKind
from clanpulse.store.database import Database
from clanpulse.store.ingest import ingest_batch
from tests.factories import BRIDGE, at, batch, chat, user

FERN = user(574204114108547089, "fernwhistle", global_name="Fern")
QUILL = user(806060084428931093, "quill_osrs")


async def write(db: Database, *messages):  # type: ignore[no-untyped-def]
    async with db.write() as conn:
        return await ingest_batch(conn, batch(*messages))


def by_name(report):  # type: ignore[no-untyped-def]
    return {m.name: m for m in report.members}


async def test_windows_are_half_open_at_the_exact_instant(db: Database) -> None:
    await write(
        db,
        chat(FERN, "2026-03-22 12:00:00"),  # exactly as_of - 7d: inside 7d
        chat(FERN, "2026-03-22 11:59:59.999"),  # a millisecond earlier: outside 7d
        chat(FERN, "2026-03-29 11:59:59.999"),  # just before as_of: inside
        chat(FERN, "2026-03-29 12:00:00"),  # exactly as_of: outside every window
    )
    report = await _report(db, "2026-03-29 12:00:00")
    fern = by_name(report)["Fern"]
    assert fern.messages == {"7d": 2, "30d": 3, "90d": 3, "all": 3}
    assert fern.last_message_at == at("2026-03-29 11:59:59.999")


async def _report(db: Database, when: str):  # type: ignore[no-untyped-def]
    async with db.read() as conn:
        return await activity_report(conn, at(when))


async def test_counts_are_exact_for_any_as_of_not_rounded_to_days(db: Database) -> None:
    # one message per hour over 40 days; every window must count exactly its hours
    start = at("2026-02-01 00:30")
    messages = [
        chat(FERN, str((start + timedelta(hours=h)).replace(tzinfo=None))) for h in range(40 * 24)
    ]
    await write(db, *messages)
    for as_of in ("2026-03-10 00:00", "2026-03-10 07:45", "2026-03-02 23:59:59"):
        report = await _report(db, as_of)
        moment = at(as_of)
        expected = {
            w: sum(1 for m in messages if moment - timedelta(days=d) <= m.message.sent_at < moment)
            for w, d in (("7d", 7), ("30d", 30), ("90d", 90), ("all", 100000))
        }
        assert by_name(report)["Fern"].messages == expected, as_of


async def test_a_message_counts_once_however_often_it_is_written(db: Database) -> None:
    first = chat(FERN, "2026-03-28 10:00")
    await write(db, first, chat(QUILL, "2026-03-28 11:00"))
    again = await write(db, first)
    assert again.inserted == 0
    edited = chat(
        FERN,
        "2026-03-28 10:00",
        edited="2026-03-28 10:05",
        content="edited",
        msg_id=first.message.id,
    )
    result = await write(db, edited)
    assert (result.inserted, result.edited) == (0, 1)
    report = await _report(db, "2026-03-29 00:00")
    assert by_name(report)["Fern"].messages["all"] == 1


async def test_system_bot_and_unattributed_messages_count_for_nobody(db: Database) -> None:
    bot = user(1187831925964931098, "HeronBot", is_bot=True)
    await write(
        db,
        chat(FERN, "2026-03-28 10:00", kind=MessageKind.SYSTEM, msg_type=7),
        chat(bot, "2026-03-28 10:01", kind=MessageKind.BOT),
        chat(bot, "2026-03-28 10:02", kind=MessageKind.APP, msg_type=20),
        chat(BRIDGE, "2026-03-28 10:03", kind=MessageKind.BRIDGE_BROADCAST),
        chat(BRIDGE, "2026-03-28 10:04", kind=MessageKind.BRIDGE_UNKNOWN),
        chat(QUILL, "2026-03-28 10:05"),
    )
    report = await _report(db, "2026-03-29 00:00")
    names = by_name(report)
    assert names["Fern"].messages["all"] == 0  # a person who only joined is listed, with zero
    assert names["quill_osrs"].messages["all"] == 1
    assert "HeronBot" not in names and "Clan Chat" not in names  # bots are not members


async def test_bridge_lines_count_for_the_in_game_account(db: Database) -> None:
    await write(
        db,
        chat(BRIDGE, "2026-03-28 10:00", kind=MessageKind.BRIDGE_CHAT, speaker="Tide Pool"),
        chat(BRIDGE, "2026-03-28 10:01", kind=MessageKind.BRIDGE_CHAT, speaker="Tide Pool"),
        chat(BRIDGE, "2026-03-28 10:02", kind=MessageKind.BRIDGE_CHAT, speaker="Tidepool"),
    )
    report = await _report(db, "2026-03-29 00:00")
    names = by_name(report)
    assert names["Tide Pool"].messages["all"] == 2
    assert names["Tidepool"].messages["all"] == 1  # a different account, never merged
    assert names["Tide Pool"].accounts[0].platform == "osrs"
    assert names["Tide Pool"].accounts[0].id is None


async def test_display_name_is_the_most_recently_seen(db: Database) -> None:
    await write(db, chat(user(5, "sealark", global_name="Sea Lark"), "2026-03-28 10:00"))
    await write(db, chat(user(5, "sealark", nickname="Lark (Deputy)"), "2026-03-28 12:00"))
    # an older observation arriving later (an old export) does not win
    await write(db, chat(user(5, "sealark", nickname="Old Nick"), "2026-01-01 10:00"))
    report = await _report(db, "2026-03-29 00:00")
    (member,) = report.members
    assert member.name == "Lark (Deputy)"
    assert member.messages["all"] == 3


async def test_members_sort_by_30_day_messages_then_name(db: Database) -> None:
    a, b, c = user(1, "bravo"), user(2, "alpha"), user(3, "charlie")
    await write(
        db,
        chat(a, "2026-03-20 10:00"),
        chat(a, "2026-03-20 11:00"),
        chat(b, "2026-03-20 10:00"),
        chat(c, "2026-03-20 10:00"),
        chat(c, "2025-01-01 10:00"),
        chat(c, "2025-01-02 10:00"),  # old: only in "all"
    )
    report = await _report(db, "2026-03-29 00:00")
    assert [m.name for m in report.members] == ["bravo", "alpha", "charlie"]


async def test_opted_out_members_are_absent(db: Database) -> None:
    from sqlalchemy import update

    from clanpulse.store.schema import member

    await write(db, chat(FERN, "2026-03-28 10:00"), chat(QUILL, "2026-03-28 11:00"))
    async with db.write() as conn:
        await conn.execute(update(member).where(member.c.id == 1).values(opted_out=True))
    report = await _report(db, "2026-03-29 00:00")
    assert [m.member_id for m in report.members] == [2]
