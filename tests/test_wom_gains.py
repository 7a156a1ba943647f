"""Gains between two snapshots follow Wise Old Man's own rules, ``-1`` included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import sample

from clanpulse.analytics.wom_gains import (
    HeadlineColumn,
    MetricGain,
    metric_gains,
    total_boss_kills,
    value_gain,
)
from clanpulse.sources.wom_api import parse_player_gained

GAINED = json.loads(sample("wom/player-gained.json").read_text(encoding="utf-8"))
PLAYER = json.loads(sample("wom/player.json").read_text(encoding="utf-8"))

VALUE_FIELDS = {
    "skills": "experience",
    "bosses": "kills",
    "activities": "score",
    "computed": "value",
}


def snapshot_data_from_gained(side: str) -> dict[str, Any]:
    """A snapshot ``data`` object holding the ``start`` or ``end`` value of every sample delta."""
    return {
        section: {
            metric: {"metric": metric, field: deltas[field][side]}
            for metric, deltas in GAINED["data"][section].items()
        }
        for section, field in VALUE_FIELDS.items()
    }


def data(
    skills: dict[str, int] | None = None,
    bosses: dict[str, int] | None = None,
    activities: dict[str, int] | None = None,
    ehp: float | None = None,
    ehb: float | None = None,
) -> dict[str, Any]:
    """A snapshot ``data`` object with only the values the gain rules read."""
    computed = {
        name: {"value": value} for name, value in (("ehp", ehp), ("ehb", ehb)) if value is not None
    }
    return {
        "skills": {name: {"experience": xp} for name, xp in (skills or {}).items()},
        "bosses": {name: {"kills": kills} for name, kills in (bosses or {}).items()},
        "activities": {name: {"score": score} for name, score in (activities or {}).items()},
        "computed": computed,
    }


# --- the sample /gained response ---


def test_the_sample_gains_are_reproduced_from_its_start_and_end_values() -> None:
    reported = parse_player_gained(GAINED, "GET /players/fern%20whistle/gained").gains
    computed = metric_gains(snapshot_data_from_gained("start"), snapshot_data_from_gained("end"))
    assert list(computed) == list(reported)
    for metric, gain in reported.items():
        assert computed[metric].start == gain.start, metric
        assert computed[metric].end == gain.end, metric
        assert computed[metric].gained == pytest.approx(gain.gained, abs=1e-9), metric


def test_the_sample_end_is_the_players_latest_snapshot() -> None:
    # The sample window ends at the sample player's latest snapshot, so gains from the real
    # snapshot object (ranks, levels and all) are the reported ones.
    latest = PLAYER["latestSnapshot"]["data"]
    computed = metric_gains(snapshot_data_from_gained("start"), latest)
    reported = parse_player_gained(GAINED, "GET /players/fern%20whistle/gained").gains
    assert {metric: gain.end for metric, gain in computed.items()} == {
        metric: gain.end for metric, gain in reported.items()
    }
    assert computed["overall"] == MetricGain(gained=1540073, start=170638121, end=172178194)
    assert computed["callisto"] == MetricGain(gained=52, start=-1, end=52)
    assert computed["zulrah"] == MetricGain(gained=0, start=-1, end=-1)
    assert computed["sailing"] == MetricGain(gained=0, start=-1, end=-1)
    assert computed["ehb"].gained == pytest.approx(2.5)


# --- each rule ---


def test_kills_from_unranked_count_from_zero() -> None:
    gains = metric_gains(data(bosses={"callisto": -1}), data(bosses={"callisto": 52}))
    assert gains["callisto"] == MetricGain(gained=52, start=-1, end=52)


def test_a_value_falling_off_the_hiscores_gains_nothing() -> None:
    gains = metric_gains(
        data(activities={"soul_wars_zeal": 455}), data(activities={"soul_wars_zeal": -1})
    )
    assert gains["soul_wars_zeal"] == MetricGain(gained=0, start=455, end=-1)


def test_unranked_at_both_ends_gains_nothing() -> None:
    gains = metric_gains(data(bosses={"zulrah": -1}), data(bosses={"zulrah": -1}))
    assert gains["zulrah"].gained == 0


def test_a_falling_value_gains_nothing() -> None:
    # A hiscores reset or a correction lowers a score; WOM never reports a negative gain.
    gains = metric_gains(data(activities={"lms": 40}), data(activities={"lms": 31}))
    assert gains["lms"].gained == 0


def test_overall_experience_from_unranked_gains_nothing() -> None:
    gains = metric_gains(data(skills={"overall": -1}), data(skills={"overall": 5_120_777}))
    assert gains["overall"] == MetricGain(gained=0, start=-1, end=5_120_777)


def test_a_skill_other_than_overall_from_unranked_counts_from_zero() -> None:
    gains = metric_gains(data(skills={"sailing": -1}), data(skills={"sailing": 8_200}))
    assert gains["sailing"].gained == 8_200


def test_efficiency_hours_gain_the_difference_and_never_fall() -> None:
    rising = metric_gains(data(ehp=663.74315, ehb=12.5), data(ehp=668.89846, ehb=12.5))
    assert rising["ehp"].gained == pytest.approx(5.15531)
    assert rising["ehb"].gained == 0
    # WOM's efficiency rates get revised, which can lower a player's total.
    falling = metric_gains(data(ehp=100.0), data(ehp=98.5))
    assert falling["ehp"] == MetricGain(gained=0.0, start=100.0, end=98.5)


def test_a_metric_only_in_the_end_snapshot_starts_unranked() -> None:
    gains = metric_gains(data(bosses={}), data(bosses={"brutus": 7}, ehp=1.5))
    assert gains["brutus"] == MetricGain(gained=7, start=-1, end=7)
    assert gains["ehp"] == MetricGain(gained=1.5, start=0.0, end=1.5)


def test_gains_cover_metrics_of_either_snapshot_then_ehp_and_ehb() -> None:
    gains = metric_gains(
        data(skills={"overall": 10}, bosses={"obor": 1}),
        data(skills={"overall": 12, "attack": 2}, activities={"pvp_arena": 3}),
    )
    assert list(gains) == ["overall", "attack", "obor", "pvp_arena", "ehp", "ehb"]
    assert gains["obor"] == MetricGain(gained=0, start=1, end=-1)


def test_identical_snapshots_gain_nothing() -> None:
    latest = PLAYER["latestSnapshot"]["data"]
    assert all(gain.gained == 0 for gain in metric_gains(latest, latest).values())


# --- the headline columns ---


@pytest.mark.parametrize(
    ("kind", "start", "end", "gained"),
    [
        ("overall_xp", 170_638_121, 172_178_194, 1_540_073),
        ("overall_xp", -1, 172_178_194, 0),
        ("overall_xp", 172_178_194, -1, 0),
        ("boss_kills", 0, 1011, 1011),
        ("boss_kills", 1011, 1000, 0),
        ("ehp", 663.5, 668.75, 5.25),
        ("ehp", 668.75, 663.5, 0.0),
        ("ehb", 0.0, 0.9, 0.9),
    ],
)
def test_a_headline_column_gains_by_the_same_rules(
    kind: Any, start: float, end: float, gained: float
) -> None:
    assert value_gain(kind, start, end) == pytest.approx(gained)


def test_an_unknown_headline_column_is_refused() -> None:
    with pytest.raises(ValueError, match="not a headline snapshot column: 'exp'"):
        value_gain("exp", 1, 2)  # type: ignore[arg-type]


def test_total_boss_kills_leaves_out_unranked_bosses() -> None:
    assert total_boss_kills(PLAYER["latestSnapshot"]["data"]) == 52 + 231 + 88 + 640
    assert total_boss_kills(data(bosses={"zulrah": -1, "obor": -1})) == 0
    assert total_boss_kills({}) == 0


# --- properties ---

HISCORES_VALUES = st.one_of(st.just(-1), st.integers(min_value=0, max_value=5 * 10**9))
SECTIONS = st.sampled_from([("skills", "overall"), ("skills", "attack"), ("bosses", "vorkath")])


@settings(max_examples=300)
@given(SECTIONS, HISCORES_VALUES, HISCORES_VALUES)
def test_a_value_gain_is_never_negative_and_never_counts_minus_one(
    where: tuple[str, str], start: int, end: int
) -> None:
    section, metric = where
    field = {"skills": "experience", "bosses": "kills"}[section]
    before = {section: {metric: {field: start}}}
    after = {section: {metric: {field: end}}}
    gained = metric_gains(before, after)[metric].gained
    assert gained >= 0
    if end == -1:
        assert gained == 0
    elif start == -1:
        # Unranked is "unknown": it neither adds to nor takes from the gain.
        assert gained == (0 if metric == "overall" else end)
    else:
        assert gained == max(0, end - start)
    # The headline columns follow the same rules as the metric they total.
    headline: dict[str, HeadlineColumn] = {"overall": "overall_xp", "vorkath": "boss_kills"}
    if metric in headline:
        assert value_gain(headline[metric], start, end) == gained


@settings(max_examples=200)
@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_an_efficiency_gain_is_never_negative(start: float, end: float) -> None:
    gain = metric_gains(data(ehb=start), data(ehb=end))["ehb"]
    assert gain.gained >= 0
    assert gain.gained == max(0.0, end - start)
