"""Wise Old Man API payloads: what the records say, and what a malformed payload reports."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import sample

from clanpulse.records import GroupEvent, NameChange, Snapshot, WomPlayer
from clanpulse.sources.wom_api import (
    ApiPayloadError,
    PlayerGained,
    parse_bulk_hiscores,
    parse_group,
    parse_group_activity,
    parse_name_changes,
    parse_player,
    parse_player_gained,
    parse_snapshots,
    snapshot_from_data,
)

GROUP_ENDPOINT = "GET /groups/4242"
PLAYER_ENDPOINT = "GET /players/fern%20whistle"


def load(name: str) -> Any:
    return json.loads(sample(f"wom/{name}").read_text(encoding="utf-8"))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, milli: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=UTC)


def player_json(player_id: int, username: str, display_name: str, **fields: Any) -> dict[str, Any]:
    """A WOM player object as the API sends it."""
    return {
        "id": player_id,
        "username": username,
        "displayName": display_name,
        "type": "regular",
        "build": "main",
        "status": "active",
        "country": None,
        "patron": False,
        "exp": 1000,
        "ehp": 1.5,
        "ehb": 0,
        "ttm": 1200.0,
        "tt200m": 13500.0,
        "registeredAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2026-03-01T00:00:00.000Z",
        "lastChangedAt": None,
        "lastImportedAt": None,
        **fields,
    }


# The spec's /players/{username}/snapshots example, one snapshot of Tide Pool.
TIDE_POOL_SNAPSHOT: dict[str, Any] = {
    "id": -1,
    "playerId": 701105,
    "createdAt": "2026-03-27T18:22:41.004Z",
    "importedAt": None,
    "data": {
        "skills": {
            # not in the spec's shortened example; every real snapshot has it
            "overall": {
                "metric": "overall",
                "experience": 52310002,
                "rank": 310002,
                "level": 1702,
                "ehp": 240.51902,
            },
            "slayer": {
                "metric": "slayer",
                "experience": 3258594,
                "rank": 200331,
                "level": 85,
                "ehp": 40.2,
            },
        },
        "bosses": {
            "vorkath": {"metric": "vorkath", "kills": 12, "rank": 310220, "ehb": 3.75},
            "zulrah": {"metric": "zulrah", "kills": -1, "rank": -1, "ehb": 0},
        },
        "activities": {
            "collections_logged": {
                "metric": "collections_logged",
                "score": 310,
                "rank": 301554,
            }
        },
        "computed": {
            "ehp": {"metric": "ehp", "value": 240.51902, "rank": 180311},
            "ehb": {"metric": "ehb", "value": 40.72001, "rank": 170022},
        },
    },
}

# The spec's /groups/{id}/bulk-hiscores example, one member (Rook).
BULK_HISCORES: list[dict[str, Any]] = [
    {
        "player": player_json(
            701107,
            "rook",
            "Rook",
            type="hardcore",
            country="CA",
            exp=33455120,
            ehp=402.11088,
            ehb=21.90001,
            registeredAt="2021-12-24T00:01:02.003Z",
            updatedAt="2026-03-29T12:12:12.121Z",
            lastChangedAt="2026-03-29T12:12:12.121Z",
        ),
        "data": {
            "id": -1,
            "playerId": 701107,
            "createdAt": "2026-03-29T12:12:12.121Z",
            "importedAt": None,
            "data": {
                "skills": {
                    "overall": {
                        "metric": "overall",
                        "experience": 33455120,
                        "rank": 612004,
                        "level": 1788,
                        "ehp": 402.11088,
                    }
                },
                "bosses": {"zulrah": {"metric": "zulrah", "kills": 140, "rank": 98110, "ehb": 6.1}},
                "activities": {
                    "clue_scrolls_all": {"metric": "clue_scrolls_all", "score": -1, "rank": -1}
                },
                "computed": {
                    "ehp": {"metric": "ehp", "value": 402.11088, "rank": 150221},
                    "ehb": {"metric": "ehb", "value": 21.90001, "rank": 200144},
                },
            },
        },
    }
]


def error_of(parser: Callable[[object, str], object], payload: object, endpoint: str) -> str:
    with pytest.raises(ApiPayloadError) as caught:
        parser(payload, endpoint)
    assert caught.value.endpoint == endpoint
    return str(caught.value)


# --- GET /groups/{id} ---


def test_the_sample_group_has_its_name_and_every_member_in_order() -> None:
    name, members = parse_group(load("group.json"), GROUP_ENDPOINT)
    assert name == "Grey Heron"
    assert [m.player.id for m in members] == list(range(701101, 701110))
    assert [m.player.username for m in members] == [
        "fern whistle",
        "marrow gate",
        "iron quill",
        "sea lark",
        "tide pool",
        "tidepool",
        "rook",
        "rookie ned",
        "bramble knot",
    ]
    assert [m.role for m in members] == [
        "owner",
        "deputy_owner",
        "zenyte",
        "saviour",
        "slayer",
        "slayer",
        "zenyte",
        "prospector",
        "recruit",
    ]


def test_a_member_joined_in_game_when_the_plugin_synced_it_else_when_added_to_wom() -> None:
    _, members = parse_group(load("group.json"), GROUP_ENDPOINT)
    joined = {m.player.id: m.joined_at for m in members}
    # clientSyncJoinedAt, the in-game join date
    assert joined[701101] == utc(2024, 11, 30)
    assert joined[701109] == utc(2026, 3, 27)
    # null clientSyncJoinedAt: WOM's createdAt
    assert joined[701103] == utc(2025, 2, 15, 9, 31, 22, 540)
    assert joined[701108] == utc(2026, 1, 5, 19, 30, 0, 12)


def test_a_member_keeps_the_player_fields_and_the_membership_update_time() -> None:
    _, members = parse_group(load("group.json"), GROUP_ENDPOINT)
    ned = members[7]
    assert ned.updated_at == utc(2026, 3, 25, 20, 14, 9, 301)
    assert ned.player == WomPlayer(
        id=701108,
        username="rookie ned",
        display_name="Rookie Ned",
        type="regular",
        build="main",
        status="active",
        exp=2210050,
        ehp=9.00033,
        ehb=0.0,
        registered_at=utc(2025, 11, 30, 18, 45, 0, 500),
        updated_at=utc(2026, 3, 25, 21, 0, 0, 900),
        last_changed_at=utc(2026, 3, 25, 21, 0, 0, 900),
    )
    assert members[3].player.display_name == "Sea_Lark"
    assert members[3].player.username == "sea lark"
    assert members[2].player.type == "ironman"
    assert members[6].player.type == "hardcore"


def test_a_group_from_before_the_plugin_sync_joins_at_created_at() -> None:
    payload = load("group.json")
    for membership in payload["memberships"]:
        del membership["clientSyncJoinedAt"]
    _, members = parse_group(payload, GROUP_ENDPOINT)
    assert members[0].joined_at == utc(2025, 2, 14, 18)


def test_a_member_without_a_role_has_none() -> None:
    payload = load("group.json")
    payload["memberships"][0]["role"] = None
    del payload["memberships"][1]["role"]
    _, members = parse_group(payload, GROUP_ENDPOINT)
    assert members[0].role is None
    assert members[1].role is None


def test_a_membership_of_another_player_is_reported() -> None:
    payload = load("group.json")
    payload["memberships"][2]["playerId"] = 701104
    assert error_of(parse_group, payload, GROUP_ENDPOINT) == (
        "GET /groups/4242: memberships[2]: player.id 701103 is not player 701104"
    )


def test_a_membership_without_created_at_is_reported() -> None:
    payload = load("group.json")
    del payload["memberships"][4]["createdAt"]
    assert error_of(parse_group, payload, GROUP_ENDPOINT) == (
        "GET /groups/4242: memberships[4].createdAt: Field required"
    )


def test_a_group_without_memberships_is_reported() -> None:
    payload = load("group.json")
    del payload["memberships"]
    assert error_of(parse_group, payload, GROUP_ENDPOINT) == (
        "GET /groups/4242: memberships: Field required"
    )


# --- GET /players/{username} ---


def test_the_sample_player_has_its_details() -> None:
    player, _ = parse_player(load("player.json"), PLAYER_ENDPOINT)
    assert player == WomPlayer(
        id=701101,
        username="fern whistle",
        display_name="Fern Whistle",
        type="regular",
        build="main",
        status="active",
        exp=172178194,
        ehp=668.89846,
        ehb=301.55862,
        registered_at=utc(2020, 6, 14, 19, 22, 41, 812),
        updated_at=utc(2026, 3, 29, 18, 2, 10, 330),
        last_changed_at=utc(2026, 3, 29, 18, 2, 10, 330),
    )


def test_the_sample_players_latest_snapshot_has_its_headline_columns() -> None:
    payload = load("player.json")
    _, snapshot = parse_player(payload, PLAYER_ENDPOINT)
    assert snapshot is not None
    assert snapshot.player_id == 701101
    assert snapshot.taken_at == utc(2026, 3, 29, 18, 2, 10, 330)
    assert snapshot.overall_xp == 172178194
    assert snapshot.ehp == 668.89846
    assert snapshot.ehb == 301.55862
    # callisto, chambers_of_xeric, tombs_of_amascut, vorkath; abyssal_sire and zulrah are -1
    assert snapshot.boss_kills == 52 + 231 + 88 + 640
    assert snapshot.data == payload["latestSnapshot"]["data"]


def test_a_snapshot_keeps_its_data_whole() -> None:
    payload = load("player.json")
    payload["latestSnapshot"]["data"]["skills"]["overall"]["futureField"] = "kept"
    _, snapshot = parse_player(payload, PLAYER_ENDPOINT)
    assert snapshot is not None
    assert snapshot.data["skills"]["overall"]["futureField"] == "kept"
    assert snapshot.data["bosses"]["callisto"]["kills"] == 52


def test_a_player_never_tracked_has_no_snapshot() -> None:
    payload = load("player.json")
    payload["latestSnapshot"] = None
    player, snapshot = parse_player(payload, PLAYER_ENDPOINT)
    assert player.id == 701101
    assert snapshot is None


def test_unknown_metrics_and_fields_are_accepted() -> None:
    payload = load("player.json")
    data = payload["latestSnapshot"]["data"]
    data["bosses"]["a_boss_added_next_year"] = {"kills": 7, "rank": 5, "ehb": 0}
    data["activities"]["an_activity_added_next_year"] = {"score": -1, "rank": -1}
    data["computed"]["ehx"] = {"value": 1.0, "rank": 1}
    data["somethingNew"] = {"x": 1}
    payload["flags"] = ["new"]
    _, snapshot = parse_player(payload, PLAYER_ENDPOINT)
    assert snapshot is not None
    assert snapshot.boss_kills == 1011 + 7


def test_a_snapshot_of_another_player_is_reported() -> None:
    payload = load("player.json")
    payload["latestSnapshot"]["playerId"] = 701102
    assert error_of(parse_player, payload, PLAYER_ENDPOINT) == (
        "GET /players/fern%20whistle: (root): latestSnapshot.playerId 701102 is not player 701101"
    )


def test_a_player_object_without_latest_snapshot_is_reported() -> None:
    payload = load("player.json")
    del payload["latestSnapshot"]
    assert error_of(parse_player, payload, PLAYER_ENDPOINT) == (
        "GET /players/fern%20whistle: latestSnapshot: Field required"
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["skills"].pop("overall"),
            "latestSnapshot.data.skills: no 'overall' skill",
        ),
        (
            lambda d: d["bosses"]["callisto"].update(kills="52"),
            "latestSnapshot.data.bosses.callisto.kills: Input should be a valid integer",
        ),
        (
            lambda d: d["bosses"]["callisto"].update(kills=-2),
            "latestSnapshot.data.bosses.callisto.kills: "
            "Input should be greater than or equal to -1",
        ),
        (
            lambda d: d["skills"]["attack"].update(experience=True),
            "latestSnapshot.data.skills.attack.experience: Input should be a valid integer",
        ),
        (
            lambda d: d["activities"]["soul_wars_zeal"].pop("score"),
            "latestSnapshot.data.activities.soul_wars_zeal.score: Field required",
        ),
        (
            lambda d: d["computed"].pop("ehb"),
            "latestSnapshot.data.computed.ehb: Field required",
        ),
        (
            lambda d: d["computed"]["ehp"].update(value=float("nan")),
            "latestSnapshot.data.computed.ehp.value: Input should be a finite number",
        ),
        (
            lambda d: d.pop("bosses"),
            "latestSnapshot.data.bosses: Field required",
        ),
    ],
)
def test_a_malformed_snapshot_names_the_field(edit: Callable[[Any], object], message: str) -> None:
    payload = load("player.json")
    edit(payload["latestSnapshot"]["data"])
    assert error_of(parse_player, payload, PLAYER_ENDPOINT) == f"{PLAYER_ENDPOINT}: {message}"


def test_a_timestamp_without_an_offset_is_reported() -> None:
    payload = load("player.json")
    payload["latestSnapshot"]["createdAt"] = "2026-03-29T18:02:10.330"
    assert error_of(parse_player, payload, PLAYER_ENDPOINT) == (
        "GET /players/fern%20whistle: latestSnapshot.createdAt: "
        "timestamp without a UTC offset: '2026-03-29T18:02:10.330'"
    )


def test_a_player_id_must_be_a_positive_number() -> None:
    payload = load("player.json")
    payload["id"] = "701101"
    assert error_of(parse_player, payload, PLAYER_ENDPOINT) == (
        "GET /players/fern%20whistle: id: Input should be a valid integer"
    )


# --- GET /players/{username}/snapshots ---


def test_a_snapshot_page_keeps_its_order_and_computes_each_snapshot() -> None:
    older = copy.deepcopy(TIDE_POOL_SNAPSHOT)
    older["createdAt"] = "2026-03-20T09:00:00.000Z"
    older["data"]["bosses"]["vorkath"]["kills"] = 9
    endpoint = "GET /players/tide%20pool/snapshots"
    snapshots = parse_snapshots([TIDE_POOL_SNAPSHOT, older], endpoint)
    assert [s.taken_at for s in snapshots] == [
        utc(2026, 3, 27, 18, 22, 41, 4),
        utc(2026, 3, 20, 9),
    ]
    assert snapshots[0] == Snapshot(
        player_id=701105,
        taken_at=utc(2026, 3, 27, 18, 22, 41, 4),
        overall_xp=52310002,
        ehp=240.51902,
        ehb=40.72001,
        boss_kills=12,
        data=TIDE_POOL_SNAPSHOT["data"],
    )
    assert snapshots[1].boss_kills == 9


def test_an_empty_snapshot_page_is_empty() -> None:
    assert parse_snapshots([], "GET /players/x/snapshots") == []


def test_a_snapshot_page_that_is_not_a_list_is_reported() -> None:
    assert error_of(parse_snapshots, {"message": "x"}, "GET /s") == (
        "GET /s: (root): Input should be a valid list"
    )


def test_snapshot_from_data_computes_the_headline_columns() -> None:
    data = load("player.json")["latestSnapshot"]["data"]
    snapshot = snapshot_from_data(701101, utc(2026, 3, 29), data)
    assert (snapshot.overall_xp, snapshot.ehp, snapshot.ehb, snapshot.boss_kills) == (
        172178194,
        668.89846,
        301.55862,
        1011,
    )
    assert snapshot.data == data
    assert snapshot.data is not data


# --- GET /groups/{id}/bulk-hiscores ---


def test_bulk_hiscores_pair_each_member_with_a_snapshot() -> None:
    [(player, snapshot)] = parse_bulk_hiscores(BULK_HISCORES, "GET /groups/4242/bulk-hiscores")
    assert (player.id, player.username, player.type, player.exp) == (
        701107,
        "rook",
        "hardcore",
        33455120,
    )
    assert snapshot.player_id == 701107
    assert snapshot.taken_at == utc(2026, 3, 29, 12, 12, 12, 121)
    assert (snapshot.overall_xp, snapshot.ehp, snapshot.ehb, snapshot.boss_kills) == (
        33455120,
        402.11088,
        21.90001,
        140,
    )
    assert snapshot.data["activities"]["clue_scrolls_all"]["score"] == -1


def test_bulk_hiscores_of_mismatched_players_are_reported() -> None:
    payload = copy.deepcopy(BULK_HISCORES)
    payload[0]["data"]["playerId"] = 1
    endpoint = "GET /groups/4242/bulk-hiscores"
    assert error_of(parse_bulk_hiscores, payload, endpoint) == (
        f"{endpoint}: [0]: data.playerId 1 is not player 701107"
    )


# --- GET /groups/{id}/name-changes ---


def test_the_sample_name_changes_are_read_in_order() -> None:
    changes = parse_name_changes(load("group-name-changes.json"), "GET /groups/4242/name-changes")
    assert changes == [
        NameChange(88123, 701104, "Sea Larkk", "Sea_Lark", utc(2026, 3, 20, 8, 15, 2, 771)),
        NameChange(87001, 701109, "Bramble_K", "Bramble Knot", utc(2026, 3, 2, 12, 5, 10, 500)),
        NameChange(80555, 701106, "Lil Tide", "Tidepool", utc(2025, 12, 30, 22, 40, 0, 9)),
    ]


def test_only_approved_name_changes_are_returned() -> None:
    payload = load("group-name-changes.json")
    payload[0]["status"] = "pending"
    payload[0]["resolvedAt"] = None
    payload[2]["status"] = "denied"
    changes = parse_name_changes(payload, "GET /groups/4242/name-changes")
    assert [c.id for c in changes] == [87001]


def test_an_approved_change_without_resolved_at_resolves_at_its_last_update() -> None:
    payload = load("group-name-changes.json")
    payload[1]["resolvedAt"] = None
    changes = parse_name_changes(payload, "GET /groups/4242/name-changes")
    assert changes[1].resolved_at == utc(2026, 3, 2, 12, 5, 10, 500)


def test_a_name_change_without_a_new_name_is_reported() -> None:
    payload = load("group-name-changes.json")
    payload[2]["newName"] = ""
    endpoint = "GET /groups/4242/name-changes"
    assert error_of(parse_name_changes, payload, endpoint) == (
        f"{endpoint}: [2].newName: String should have at least 1 character"
    )


# --- GET /groups/{id}/activity ---


def test_the_sample_activity_has_its_events_in_order() -> None:
    events = parse_group_activity(load("group-activity.json"), "GET /groups/4242/activity")
    assert [(e.player_id, e.type, e.role, e.previous_role, e.at) for e in events] == [
        (701109, "joined", "recruit", None, utc(2026, 3, 27, 17, 50, 31, 448)),
        (701108, "changed_role", "prospector", "recruit", utc(2026, 3, 25, 20, 14, 9, 301)),
        (701110, "left", "saviour", None, utc(2026, 3, 22, 11, 3, 44, 870)),
        (701108, "joined", "recruit", None, utc(2026, 1, 5, 19, 30, 0, 12)),
    ]


def test_an_event_carries_the_player_even_after_they_left() -> None:
    events = parse_group_activity(load("group-activity.json"), "GET /groups/4242/activity")
    left = events[2]
    assert left.player is not None
    assert (left.player.username, left.player.display_name, left.player.exp) == (
        "old crow",
        "Old Crow",
        120455801,
    )


def test_an_event_without_a_player_is_read() -> None:
    payload = load("group-activity.json")[:1]
    del payload[0]["player"]
    assert parse_group_activity(payload, "GET /a") == [
        GroupEvent(701109, "joined", "recruit", None, utc(2026, 3, 27, 17, 50, 31, 448))
    ]


def test_an_unknown_event_type_is_reported() -> None:
    payload = load("group-activity.json")
    payload[1]["type"] = "member_joined"
    assert error_of(parse_group_activity, payload, "GET /a") == (
        "GET /a: [1].type: Input should be 'joined', 'left' or 'changed_role'"
    )


# --- GET /players/{username}/gained ---


def test_the_sample_gains_have_their_window_and_deltas() -> None:
    gained = parse_player_gained(load("player-gained.json"), "GET /players/fern%20whistle/gained")
    assert gained.starts_at == utc(2026, 3, 22, 19, 40, 51, 94)
    assert gained.ends_at == utc(2026, 3, 29, 18, 2, 10, 330)
    assert len(gained.gains) == 25 + 6 + 5 + 2
    gains = gained.gains
    assert (gains["overall"].gained, gains["overall"].start, gains["overall"].end) == (
        1540073,
        170638121,
        172178194,
    )
    assert (gains["callisto"].gained, gains["callisto"].start) == (52, -1)
    assert gains["clue_scrolls_all"].gained == 3
    assert gains["ehp"].gained == 5.15531
    assert gains["ehb"].end == 301.55862


def test_gains_of_a_player_not_updated_in_the_window_have_no_window() -> None:
    payload: dict[str, Any] = {
        "startsAt": None,
        "endsAt": None,
        "data": {"skills": {}, "bosses": {}, "activities": {}, "computed": {}},
    }
    assert parse_player_gained(payload, "GET /g") == PlayerGained(None, None, {})


def test_gains_without_a_delta_are_reported() -> None:
    payload = load("player-gained.json")
    del payload["data"]["bosses"]["vorkath"]["kills"]["end"]
    assert error_of(parse_player_gained, payload, "GET /g") == (
        "GET /g: data.bosses.vorkath.kills.end: Field required"
    )


# --- garbage in, a payload error out ---

PARSERS: list[Callable[[object, str], object]] = [
    parse_group,
    parse_player,
    parse_snapshots,
    parse_bulk_hiscores,
    parse_name_changes,
    parse_group_activity,
    parse_player_gained,
]

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([-1, 0, 1, 701101])
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["2026-03-29T18:02:10.330Z", "approved", "joined", "overall"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["id", "playerId", "player", "data", "skills", "overall", "kills", "x"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200)
@given(JSON_VALUES, st.sampled_from(PARSERS))
def test_any_json_value_parses_or_raises_a_payload_error(
    payload: object, parser: Callable[[object, str], object]
) -> None:
    try:
        parser(payload, "GET /garbage")
    except ApiPayloadError as exc:
        assert str(exc).startswith("GET /garbage: ")
        assert "\n" not in str(exc)


SAMPLES: list[tuple[Any, Callable[[object, str], object]]] = [
    (load("group.json"), parse_group),
    (load("player.json"), parse_player),
    ([TIDE_POOL_SNAPSHOT], parse_snapshots),
    (BULK_HISCORES, parse_bulk_hiscores),
    (load("group-name-changes.json"), parse_name_changes),
    (load("group-activity.json"), parse_group_activity),
    (load("player-gained.json"), parse_player_gained),
]


@st.composite
def mutated_samples(draw: st.DrawFn) -> tuple[Any, Callable[[object, str], object]]:
    """A sample payload with one value somewhere inside replaced or removed."""
    original, parser = draw(st.sampled_from(SAMPLES))
    payload: Any = copy.deepcopy(original)
    node = payload
    for _ in range(draw(st.integers(min_value=0, max_value=7))):
        keys = node.keys() if isinstance(node, dict) else range(len(node))
        inner = [key for key in keys if isinstance(node[key], dict | list) and node[key]]
        if not inner:
            break
        node = node[draw(st.sampled_from(inner))]
    key = draw(st.sampled_from(list(node.keys()) if isinstance(node, dict) else range(len(node))))
    if draw(st.booleans()):
        del node[key]
    else:
        node[key] = draw(JSON_VALUES)
    return payload, parser


@settings(max_examples=300)
@given(mutated_samples())
def test_a_sample_with_one_value_changed_parses_or_raises_a_payload_error(
    mutated: tuple[Any, Callable[[object, str], object]],
) -> None:
    payload, parser = mutated
    try:
        parser(payload, "GET /mutated")
    except ApiPayloadError as exc:
        assert str(exc).startswith("GET /mutated: ")
        assert "\n" not in str(exc)
