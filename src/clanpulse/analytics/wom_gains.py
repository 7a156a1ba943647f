"""Gains between two Wise Old Man snapshots, by Wise Old Man's own rules.

Pure arithmetic on snapshot ``data`` objects (as kept in :class:`clanpulse.records.Snapshot`),
so that gains computed from stored snapshots are the numbers WOM's ``/gained`` endpoints would
report for the same two snapshots. The rules:

- a value (skill experience, boss kills, activity score):
  ``gained = max(0, end - max(start, 0))``. ``-1`` means "not on the hiscores" and is never
  subtracted: ``-1 -> 52`` kills gains 52, and an end of ``-1`` gains nothing;
- overall experience with a ``-1`` start gains 0, because an account appearing on the overall
  hiscores is not progress made inside the window;
- EHP and EHB totals: ``gained = max(0, end - start)``.

A metric missing from one snapshot (a boss added to the hiscores after that snapshot was
taken) reads as WOM's default for it: ``-1`` for a value, ``0`` for EHP and EHB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

UNRANKED: Final = -1

# Snapshot data section -> the field of each entry that holds its value.
VALUE_FIELDS: Final = (("skills", "experience"), ("bosses", "kills"), ("activities", "score"))
EFFICIENCY_METRICS: Final = ("ehp", "ehb")

HeadlineColumn = Literal["overall_xp", "ehp", "ehb", "boss_kills"]


@dataclass(frozen=True, slots=True)
class MetricGain:
    """One metric over a window, as WOM reports each delta: ``{gained, start, end}``.

    ``start`` and ``end`` are the snapshot values as read (``-1`` included); experience,
    kills and score are whole numbers, EHP and EHB are hours.
    """

    gained: float
    start: float
    end: float


def _value_gained(start: float, end: float) -> float:
    return max(0, end - max(start, 0))


def _overall_gained(start: float, end: float) -> float:
    return 0 if start < 0 else _value_gained(start, end)


def _efficiency_gained(start: float, end: float) -> float:
    return max(0.0, end - start)


def value_gain(kind: HeadlineColumn, start: float, end: float) -> float:
    """The gain of one headline snapshot column (``Snapshot.overall_xp`` and so on)."""
    if kind == "overall_xp":
        return _overall_gained(start, end)
    if kind == "boss_kills":
        return _value_gained(start, end)
    if kind in EFFICIENCY_METRICS:
        return _efficiency_gained(start, end)
    raise ValueError(f"not a headline snapshot column: {kind!r}")


def _read(section: Mapping[str, Any], metric: str, field: str, default: float) -> float:
    entry = section.get(metric)
    if entry is None:
        return default
    value: float = entry.get(field, default)
    return value


def metric_gains(start: Mapping[str, Any], end: Mapping[str, Any]) -> dict[str, MetricGain]:
    """Every metric's gain from the ``start`` snapshot data to the ``end`` one.

    Keys are WOM metric names: each skill, boss and activity present in either snapshot (in
    that order), then ``ehp`` and ``ehb``.
    """
    gains: dict[str, MetricGain] = {}
    for section, field in VALUE_FIELDS:
        before: Mapping[str, Any] = start.get(section, {})
        after: Mapping[str, Any] = end.get(section, {})
        for metric in dict.fromkeys([*before, *after]):
            first = _read(before, metric, field, UNRANKED)
            last = _read(after, metric, field, UNRANKED)
            is_overall = section == "skills" and metric == "overall"
            gained = _overall_gained(first, last) if is_overall else _value_gained(first, last)
            gains[metric] = MetricGain(gained, first, last)
    before = start.get("computed", {})
    after = end.get("computed", {})
    for metric in EFFICIENCY_METRICS:
        first = _read(before, metric, "value", 0.0)
        last = _read(after, metric, "value", 0.0)
        gains[metric] = MetricGain(_efficiency_gained(first, last), first, last)
    return gains


def total_boss_kills(data: Mapping[str, Any]) -> int:
    """Kills summed over the bosses with a kill count (``-1``, off the hiscores, adds nothing)."""
    bosses: Mapping[str, Any] = data.get("bosses", {})
    kills = (boss.get("kills", UNRANKED) for boss in bosses.values())
    return sum(count for count in kills if count > 0)
