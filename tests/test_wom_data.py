"""The synthetic Wise Old Man group and the gains rules, without a server."""

from __future__ import annotations

import itertools
import json
import re
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clanpulse.demo.wom_data import (
    WomGroup,
    compute_gained,
    generate_wom_group,
    level_for_xp,
    metric_delta,
    parse_wom_time,
    wom_iso,
    xp_for_level,
)
from clanpulse.names import is_valid_osrs_name, normalize_osrs_name
from clanpulse.wom_metrics import ACTIVITIES, BOSSES, SKILLS
from tests.samples import sample

END = datetime(2026, 3, 29, tzinfo=UTC)
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def group() -> WomGroup:
    return generate_wom_group(seed=11, members=60, days=240, end=END)


# -- game numbers ---------------------------------------------------------------------


def test_metric_lists_and_xp_curve() -> None:
    assert len(SKILLS) == 25 and SKILLS[0] == "overall" and SKILLS[-1] == "sailing"
    assert len(BOSSES) == 71 and len(ACTIVITIES) == 15
    assert xp_for_level(1) == 0 and xp_for_level(2) == 83
    assert xp_for_level(92) == 6_517_253 and xp_for_level(99) == 13_034_431
    assert level_for_xp(-1) == 1 and level_for_xp(82) == 1 and level_for_xp(83) == 2
    assert level_for_xp(13_034_430) == 98 and level_for_xp(200_000_000) == 99
    assert wom_iso(1_774_807_330_330) == "2026-03-29T18:02:10.330Z"
    assert parse_wom_time("2026-03-29T18:02:10.330Z") == datetime(
        2026, 3, 29, 18, 2, 10, 330_000, tzinfo=UTC
    )


# -- roster -----------------------------------------------------------------------------


def test_generation_is_deterministic(group: WomGroup) -> None:
    again = generate_wom_group(seed=11, members=60, days=240, end=END)
    assert again.group_json() == group.group_json()
    assert again.activity() == group.activity()
    assert again.name_changes() == group.name_changes()
    pid = group.members()[5].id
    assert again.snapshot_page(pid, limit=50) == group.snapshot_page(pid, limit=50)
    other = generate_wom_group(seed=12, members=60, days=240, end=END)
    assert other.snapshot_page(pid, limit=5) != group.snapshot_page(pid, limit=5)


def test_generated_names_are_valid_and_tricky(group: WomGroup) -> None:
    names = [p.display_name for p in group.players()]
    for name in names:
        assert 1 <= len(name) <= 12 and re.fullmatch(r"[A-Za-z0-9 _-]+", name), name
        assert is_valid_osrs_name(normalize_osrs_name(name)), name
    keys = [p.username for p in group.players()]
    assert len(set(keys)) == len(keys)
    assert {"tide pool", "tidepool", "rook", "rookie ned"} <= set(keys)
    spaced, joined = group.player_by_username("Tide_Pool"), group.player_by_username("Tidepool")
    assert spaced is not None and joined is not None and spaced.id != joined.id


def test_players_and_memberships(group: WomGroup) -> None:
    types = {p.type for p in group.players()}
    assert "regular" in types and types & {"ironman", "hardcore", "ultimate"}
    memberships = group.memberships()
    assert [m["role"] for m in memberships].count("owner") == 1
    member_ids = {m["playerId"] for m in memberships}
    assert member_ids == {p.id for p in group.members()}
    left = [p for p in group.players() if not p.is_member]
    assert left, "the generated history should include former members"
    events = group.activity()
    assert [e["createdAt"] for e in events] == sorted(
        (e["createdAt"] for e in events), reverse=True
    )
    assert {e["type"] for e in events} <= {"joined", "left", "changed_role"}
    for player in left:
        mine = [e for e in events if e["playerId"] == player.id]
        assert mine[0]["type"] == "left" and mine[0]["player"]["id"] == player.id
        assert player.id not in member_ids
    for event in events:
        if event["type"] == "changed_role":
            assert event["previousRole"] and event["previousRole"] != event["role"]
        else:
            assert event["previousRole"] is None


def test_given_players_are_used_exactly() -> None:
    start = END - timedelta(days=90)
    specs = [
        ("Fern Whistle", "Owner", None, None),
        ("Tide Pool", "Saviour", None, None),
        ("Tidepool", "Recruit", start + timedelta(days=80), None),
        ("Old Crow", "Zenyte", None, start + timedelta(days=30)),
        ("Rookie Ned", "Slayer", start + timedelta(days=10), None),
    ]
    group = generate_wom_group(seed=5, players=specs, days=90, end=END, name_changes=1)
    players = group.players()
    assert [p.display_name for p in players] == [s[0] for s in specs]
    assert [p.role for p in players] == ["owner", "saviour", "recruit", "zenyte", "slayer"]
    crow = group.player_by_username("old crow")
    assert crow is not None and not crow.is_member and crow.left_at is not None
    assert crow.left_at >= start + timedelta(days=30)
    assert "Old Crow" not in {m["player"]["displayName"] for m in group.memberships()}
    ned = group.player_by_username("rookie ned")
    assert ned is not None and ned.member_since >= start + timedelta(days=10)
    ned_events = [e for e in group.activity() if e["playerId"] == ned.id]
    assert ned_events[-1]["type"] == "joined"
    assert ned_events[0]["role"] == "slayer"
    tidepool = group.player_by_username("tidepool")
    assert tidepool is not None and tidepool.client_sync_joined_at in (
        None,
        datetime(2026, 3, 19, tzinfo=UTC),
    )


# -- histories --------------------------------------------------------------------------


def _check_history(group: WomGroup, pid: int) -> list[dict[str, Any]]:
    snapshots = group.snapshots(pid)
    created = [s["createdAt"] for s in snapshots]
    assert created == sorted(created) and len(set(created)) == len(created)
    previous: dict[str, Any] | None = None
    for snap in snapshots:
        assert snap["id"] == -1 and snap["playerId"] == pid and snap["importedAt"] is None
        assert ISO_MS_Z.match(snap["createdAt"])
        at = parse_wom_time(snap["createdAt"])
        assert group.start <= at < group.end
        data = snap["data"]
        skills = data["skills"]
        assert list(skills) == list(SKILLS)
        assert list(data["bosses"]) == list(BOSSES)
        assert list(data["activities"]) == list(ACTIVITIES)
        ranked = [s["experience"] for k, s in skills.items() if k != "overall" and s["rank"] > 0]
        assert skills["overall"]["experience"] == sum(ranked)
        assert skills["overall"]["level"] == sum(
            s["level"] for k, s in skills.items() if k != "overall"
        )
        for name, entry in skills.items():
            if name != "overall":
                assert entry["level"] == level_for_xp(entry["experience"])
            assert (entry["experience"] == -1) == (entry["rank"] == -1)
        assert data["computed"]["ehp"]["value"] == skills["overall"]["ehp"]
        if previous is not None:
            for section, field in (("skills", "experience"), ("bosses", "kills")):
                for name, entry in data[section].items():
                    assert entry[field] >= previous[section][name][field], (section, name)
            for name, entry in data["activities"].items():
                assert entry["score"] >= previous["activities"][name]["score"], name
            assert data["computed"]["ehp"]["value"] >= previous["computed"]["ehp"]["value"]
        previous = data
    return snapshots


def test_histories_are_monotone_and_consistent(group: WomGroup) -> None:
    members = group.members()
    for player in members[:3] + members[-3:]:
        _check_history(group, player.id)


def test_histories_look_like_real_tracking(group: WomGroup) -> None:
    members = group.members()
    latest = {p.id: group.updated_ms(p.id) for p in members}
    end_ms = int(group.end.timestamp() * 1000)
    stale = [pid for pid, at in latest.items() if at is not None and at < end_ms - 40 * 86_400_000]
    assert stale, "a few members should have stopped being updated 40+ days ago"
    gaps = 0
    unranked_sailing = ranked_boss_after_unranked = 0
    for player in members[:25]:
        times = group.snapshot_times(player.id)
        steps = [b - a for a, b in itertools.pairwise(times)]
        gaps += any(step >= timedelta(days=7) for step in steps)
        latest_snap = group.latest_snapshot(player.id)
        assert latest_snap is not None
        unranked_sailing += latest_snap["data"]["skills"]["sailing"]["experience"] == -1
        first = group.snapshot_page(player.id, offset=len(times) - 1, limit=1)[0]
        for boss, entry in latest_snap["data"]["bosses"].items():
            if entry["kills"] > 0 and first["data"]["bosses"][boss]["kills"] == -1:
                ranked_boss_after_unranked += 1
    assert gaps, "some histories should have gaps of weeks"
    assert 0 < unranked_sailing < 25
    assert ranked_boss_after_unranked > 0
    player_json = group.player_json(members[0].id)
    assert player_json["updatedAt"] is not None and player_json["lastChangedAt"] is not None
    assert player_json["lastChangedAt"] <= player_json["updatedAt"]


def test_efficient_gains_match_the_plain_rules(group: WomGroup) -> None:
    for player in group.members()[:6]:
        history = group.snapshots(player.id)
        for days_back, length in ((7, None), (30, 10), (200, 120), (1000, None)):
            start = group.end - timedelta(days=days_back)
            end = None if length is None else start + timedelta(days=length)
            assert group.gained(player.id, start, end) == compute_gained(history, start, end)


def test_name_changes_resolve_to_the_same_player(group: WomGroup) -> None:
    changes = group.name_changes()
    assert len(changes) == 3
    assert [c["resolvedAt"] for c in changes] == sorted(
        (c["resolvedAt"] for c in changes), reverse=True
    )
    for change in changes:
        old = group.player_by_username(normalize_osrs_name(change["oldName"]))
        new = group.player_by_username(change["newName"])
        assert old is not None and new is not None and old.id == new.id == change["playerId"]
        assert group.player_by_username(change["oldName"], current_only=True) is None
        resolved = parse_wom_time(change["resolvedAt"])
        times = group.snapshot_times(change["playerId"])
        assert times[0] < resolved < times[-1], "the history spans both names"


def test_add_snapshot_and_rename() -> None:
    group = generate_wom_group(seed=2, members=12, days=30, end=END)
    player = group.members()[1]
    before = group.latest_snapshot(player.id)
    assert before is not None
    count = group.snapshot_count(player.id)
    with pytest.raises(ValueError):
        group.add_snapshot(player.id, parse_wom_time(before["createdAt"]))
    at = END + timedelta(hours=2)
    added = group.add_snapshot(player.id, at)
    assert group.latest_snapshot(player.id) == added
    assert group.snapshot_count(player.id) == count + 1
    old_xp = before["data"]["skills"]["overall"]["experience"]
    assert added["data"]["skills"]["overall"]["experience"] > old_xp
    for name, entry in added["data"]["skills"].items():
        assert entry["experience"] >= before["data"]["skills"][name]["experience"]
    assert group.player_json(player.id)["lastChangedAt"] == wom_iso(int(at.timestamp() * 1000))
    idle = group.add_snapshot(player.id, at + timedelta(hours=1), progress=False)
    for section, field in (("skills", "experience"), ("bosses", "kills")):
        for name, entry in idle["data"][section].items():
            assert entry[field] == added["data"][section][name][field]
    summary = group.player_json(player.id)
    assert (
        summary["updatedAt"] == idle["createdAt"] and summary["lastChangedAt"] == added["createdAt"]
    )
    week = compute_gained(group.snapshots(player.id), at - timedelta(minutes=1))
    assert week["startsAt"] == added["createdAt"] and week["endsAt"] == idle["createdAt"]

    old_name = player.display_name
    change = group.rename(player.id, "New_Name 1", at + timedelta(hours=3))
    assert change["oldName"] == old_name and change["newName"] == "New_Name 1"
    assert change["player"]["username"] == "new name 1"
    assert group.player_by_username(old_name) is player
    assert group.player_by_username("new name 1", current_only=True) is player
    other = group.members()[2]
    with pytest.raises(ValueError):
        group.rename(other.id, old_name, at + timedelta(hours=4))
    with pytest.raises(ValueError):
        group.rename(other.id, "far too long a name", at)


def test_large_group_is_fast_and_light() -> None:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        group = generate_wom_group(seed=7, members=500, days=730, end=END)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(group.players()) == 500
    assert elapsed < 2.0
    assert peak < 20_000_000, f"generation peaked at {peak / 1e6:.1f} MB"
    started = time.perf_counter()
    history = group.snapshots(group.members()[0].id)
    assert len(history) > 500
    assert time.perf_counter() - started < 2.0


# -- gains rules --------------------------------------------------------------------------


def _snap(at: str, **values: Any) -> dict[str, Any]:
    """A snapshot with a few metrics: overall/attack/sailing, zulrah/callisto, clues, computed."""
    defaults: dict[str, Any] = {
        "overall": (1000, 500, 40, 10.0),
        "attack": (1000, 300, 9, 3.0),
        "sailing": (-1, -1, 1, 0),
        "zulrah": (-1, -1, 0),
        "callisto": (10, 900, 1.0),
        "clue_scrolls_all": (5, 7000),
        "ehp": (10.0, 100),
        "ehb": (1.0, 200),
    }
    defaults.update(values)
    skills = {
        name: dict(zip(("experience", "rank", "level", "ehp"), defaults[name], strict=True))
        | {"metric": name}
        for name in ("overall", "attack", "sailing")
    }
    bosses = {
        name: dict(zip(("kills", "rank", "ehb"), defaults[name], strict=True)) | {"metric": name}
        for name in ("zulrah", "callisto")
    }
    activities = {
        "clue_scrolls_all": {
            "metric": "clue_scrolls_all",
            "score": defaults["clue_scrolls_all"][0],
            "rank": defaults["clue_scrolls_all"][1],
        }
    }
    computed = {
        name: {"metric": name, "value": defaults[name][0], "rank": defaults[name][1]}
        for name in ("ehp", "ehb")
    }
    return {
        "id": -1,
        "playerId": 1,
        "createdAt": at,
        "importedAt": None,
        "data": {
            "skills": skills,
            "bosses": bosses,
            "activities": activities,
            "computed": computed,
        },
    }


T1, T2, T3 = "2026-03-01T10:00:00.000Z", "2026-03-05T10:00:00.000Z", "2026-03-09T10:00:00.000Z"


def _at(text: str) -> datetime:
    return parse_wom_time(text)


def test_gains_minus_one_rules() -> None:
    start = _snap(
        T1,
        overall=(-1, -1, 30, 8.0),
        attack=(-1, -1, 1, 0),
        zulrah=(-1, -1, 0),
        callisto=(-1, -1, 0),
        ehb=(5.0, 150),
    )
    end = _snap(
        T2,
        overall=(2000, 400, 45, 12.5),
        attack=(500, 250, 4, 1.5),
        sailing=(-1, -1, 1, 0),
        zulrah=(-1, -1, 0),
        callisto=(52, 41233, 0.9),
        clue_scrolls_all=(3, 7100),
        ehb=(4.0, 190),
    )
    data = compute_gained([end, start])["data"]
    skills, bosses = data["skills"], data["bosses"]
    # an unranked overall start says nothing about what is new
    assert skills["overall"]["experience"] == {"gained": 0, "start": -1, "end": 2000}
    assert skills["overall"]["rank"] == {"gained": 0, "start": -1, "end": 400}
    assert skills["overall"]["level"]["gained"] == 15
    assert skills["overall"]["ehp"] == {"gained": 4.5, "start": 8.0, "end": 12.5}
    # other skills count from 0
    assert skills["attack"]["experience"] == {"gained": 500, "start": -1, "end": 500}
    assert skills["attack"]["rank"]["gained"] == 0
    assert skills["sailing"]["experience"]["gained"] == 0
    assert skills["sailing"]["rank"] == {"gained": 0, "start": -1, "end": -1}
    assert bosses["callisto"]["kills"] == {"gained": 52, "start": -1, "end": 52}
    assert bosses["callisto"]["rank"] == {"gained": 41233, "start": -1, "end": 41233}
    assert bosses["callisto"]["ehb"] == {"gained": 0.9, "start": 0, "end": 0.9}
    assert bosses["zulrah"]["rank"] == {"gained": -1, "start": -1, "end": -1}
    assert bosses["zulrah"]["kills"]["gained"] == 0
    clues = data["activities"]["clue_scrolls_all"]
    assert clues["score"] == {"gained": 0, "start": 5, "end": 3}  # never negative
    assert clues["rank"]["gained"] == 100
    # totals are clamped, ranks are not
    assert data["computed"]["ehb"]["value"] == {"gained": 0, "start": 5.0, "end": 4.0}
    assert data["computed"]["ehb"]["rank"]["gained"] == 40
    assert data["computed"]["ehp"]["value"]["gained"] == 0


def test_gains_levels_ranks_and_ehp_per_skill() -> None:
    start = _snap(T1, attack=(2000, 300, 12, 3.0))
    end = _snap(T2, attack=(2500, 280, 11, 2.5))  # a rate revision can lower ehp
    attack = compute_gained([start, end])["data"]["skills"]["attack"]
    assert attack["level"]["gained"] == 0
    assert attack["rank"]["gained"] == -20
    assert attack["ehp"]["gained"] == -0.5
    assert attack["experience"]["gained"] == 500


def test_gains_window_picks_first_after_start_and_last_before_end() -> None:
    s1 = _snap(T1, attack=(1000, 300, 9, 3.0))
    s2 = _snap(T2, attack=(1500, 300, 9, 3.0))
    s3 = _snap(T3, attack=(4000, 300, 9, 3.0))
    history = [s3, s1, s2]
    # the window starts after s1: the baseline is s2, not s1
    gained = compute_gained(history, _at("2026-03-02T00:00:00Z"))
    assert (gained["startsAt"], gained["endsAt"]) == (T2, T3)
    assert gained["data"]["skills"]["attack"]["experience"]["gained"] == 2500
    bounded = compute_gained(history, _at(T1), _at("2026-03-08T00:00:00Z"))
    assert (bounded["startsAt"], bounded["endsAt"]) == (T1, T2)
    assert metric_delta(bounded, "attack") == {"gained": 500, "start": 1000, "end": 1500}
    # bounds are inclusive
    exact = compute_gained(history, _at(T2), _at(T3))
    assert (exact["startsAt"], exact["endsAt"]) == (T2, T3)
    # one snapshot in the window: real dates, zero gains
    single = compute_gained(history, _at("2026-03-08T00:00:00Z"))
    assert (single["startsAt"], single["endsAt"]) == (T3, T3)
    assert metric_delta(single, "attack")["gained"] == 0


def test_gains_without_snapshots_in_window_are_zeros() -> None:
    history = [_snap(T1), _snap(T2)]
    empty = compute_gained(history, _at("2026-03-06T00:00:00Z"), _at("2026-03-07T00:00:00Z"))
    assert empty["startsAt"] is None and empty["endsAt"] is None
    for section in ("skills", "bosses", "activities", "computed"):
        for entry in empty["data"][section].values():
            for key, delta in entry.items():
                if key != "metric":
                    assert delta == {"gained": 0, "start": 0, "end": 0}
    nothing = compute_gained([])
    assert nothing["startsAt"] is None
    assert set(nothing["data"]["skills"]) == set(SKILLS)
    assert set(nothing["data"]["bosses"]) == set(BOSSES)


def test_gains_reproduce_the_sample() -> None:
    """Rebuild both snapshots of the sample gains and recompute every delta from them."""
    expected = json.loads(sample("wom/player-gained.json").read_text())
    fields = {
        "skills": ("experience", "rank", "level", "ehp"),
        "bosses": ("kills", "rank", "ehb"),
        "activities": ("score", "rank"),
        "computed": ("value", "rank"),
    }
    snaps: dict[str, dict[str, Any]] = {}
    for side, at in (("start", expected["startsAt"]), ("end", expected["endsAt"])):
        data = {
            section: {
                metric: {"metric": metric}
                | {field: entry[field][side] for field in fields[section]}
                for metric, entry in expected["data"][section].items()
            }
            for section in fields
        }
        snaps[side] = {"id": -1, "playerId": 701101, "createdAt": at, "data": data}
    got = compute_gained([snaps["end"], snaps["start"]])
    assert got["startsAt"] == expected["startsAt"] and got["endsAt"] == expected["endsAt"]
    for section in fields:
        assert list(got["data"][section]) == list(expected["data"][section])
        for metric, entry in expected["data"][section].items():
            mine = got["data"][section][metric]
            assert list(mine) == list(entry)
            for field in fields[section]:
                assert mine[field]["gained"] == pytest.approx(entry[field]["gained"]), (
                    section,
                    metric,
                    field,
                )
