"""A deterministic synthetic Wise Old Man group: roster, hiscores history, renames, activity.

``generate_wom_group`` builds the group a clan would have on Wise Old Man (WOM): members with
roles and join dates, former members, approved name changes, membership events, and for
every player a history of hiscores snapshots over the generated period, shaped exactly like
WOM API v2 objects so the fake WOM server can serve them and tests can compute what a correct
harvest must find.

Snapshot histories are never stored. Each player's game progress is a pure function of time
(cumulative play hours per activity stream, fixed per week), and the times WOM read the
hiscores are derived slot by slot from a hash of (seed, player id, slot). Any snapshot, the
first one after a moment or the last one before it, is computed on demand, so a group of 500
players over two years costs a few megabytes, and only the requests that need a whole history
pay for it. The same arguments always produce the same group.

``compute_gained`` implements WOM's gains ("deltas") rules on snapshot dicts; the fake
server's gained endpoints use it, and tests compare the real client's own gains against it.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from clanpulse.demo.community import NAME_WORDS_A, NAME_WORDS_B
from clanpulse.names import is_valid_osrs_name, normalize_osrs_name
from clanpulse.wom_metrics import ACTIVITIES, BOSSES, COMPUTED, SKILLS

JSONDict = dict[str, Any]
_K = TypeVar("_K")
_V = TypeVar("_V")

# --------------------------------------------------------------------------------------
# metrics

_SKILL_SET = frozenset(SKILLS)
_BOSS_SET = frozenset(BOSSES)
_ACTIVITY_SET = frozenset(ACTIVITIES)


def metric_kind(metric: str) -> str | None:
    """``skill``, ``boss``, ``activity`` or ``computed``; None for an unknown metric."""
    if metric in _SKILL_SET:
        return "skill"
    if metric in _BOSS_SET:
        return "boss"
    if metric in _ACTIVITY_SET:
        return "activity"
    if metric in COMPUTED:
        return "computed"
    return None


def metric_value_field(metric: str) -> str:
    """The snapshot field holding a metric's value: experience, kills, score or value."""
    return {"skill": "experience", "boss": "kills", "activity": "score"}.get(
        metric_kind(metric) or "", "value"
    )


ROLE_ORDER: tuple[str, ...] = (
    "owner",
    "deputy_owner",
    "administrator",
    "organiser",
    "coordinator",
    "zenyte",
    "onyx",
    "dragonstone",
    "saviour",
    "slayer",
    "prospector",
    "short_green_guy",
    "recruit",
)

# --------------------------------------------------------------------------------------
# time

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
YEAR_MS = 31_556_926_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Sailing opened on 19 November 2025: nobody has sailing experience before that day.
SAILING_RELEASE_MS = 1_763_510_400_000
# Ranks drift upwards (worse) as the rest of the game progresses; this is their zero point.
_RANK_DRIFT_REF_MS = 1_704_067_200_000  # 2024-01-01


def to_ms(moment: datetime) -> int:
    """Unix milliseconds of an aware datetime (integer arithmetic, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(unix_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=unix_ms)


def wom_iso(unix_ms: int) -> str:
    """WOM's timestamp format: UTC, milliseconds, ``Z``."""
    moment = from_ms(unix_ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{unix_ms % 1000:03d}Z"


def parse_wom_time(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; without an offset it is taken as UTC."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso_or_none(unix_ms: int | None) -> str | None:
    return None if unix_ms is None else wom_iso(unix_ms)


# --------------------------------------------------------------------------------------
# game numbers


def _build_xp_table() -> tuple[int, ...]:
    # The OSRS experience curve: level L needs floor(sum_{n<L} floor(n + 300 * 2^(n/7)) / 4).
    table = [0]
    points = 0
    for level in range(1, 99):
        points += math.floor(level + 300 * 2 ** (level / 7))
        table.append(points // 4)
    return tuple(table)


_XP_TABLE = _build_xp_table()
MAX_XP = 200_000_000
_XP_99 = _XP_TABLE[98]


def xp_for_level(level: int) -> int:
    """Experience needed for a level from 1 to 99."""
    if not 1 <= level <= 99:
        raise ValueError(f"level {level} is outside 1..99")
    return _XP_TABLE[level - 1]


def level_for_xp(experience: int) -> int:
    """The level (1..99) for an experience value; ``-1`` (unranked) is level 1."""
    if experience <= 0:
        return 1
    return bisect.bisect_right(_XP_TABLE, experience)


def combat_level(levels: Mapping[str, int]) -> int:
    """The OSRS combat level from skill levels."""
    base = 0.25 * (levels["defence"] + levels["hitpoints"] + levels["prayer"] // 2)
    melee = 0.325 * (levels["attack"] + levels["strength"])
    ranged = 0.325 * (levels["ranged"] * 3 // 2)
    magic = 0.325 * (levels["magic"] * 3 // 2)
    return math.floor(base + max(melee, ranged, magic))


# Activity streams a player's weekly hours are split into.
_COMBAT, _GATHER, _ARTISAN, _BOSSING = range(4)

# skill -> (stream, efficient xp/h used for EHP and as the base of generated rates (0: none),
# members-only)
_SKILL_INFO: dict[str, tuple[int, int, bool]] = {
    "attack": (_COMBAT, 260_000, False),
    "defence": (_COMBAT, 260_000, False),
    "strength": (_COMBAT, 260_000, False),
    "hitpoints": (_COMBAT, 0, False),
    "ranged": (_COMBAT, 420_000, False),
    "prayer": (_ARTISAN, 650_000, False),
    "magic": (_COMBAT, 300_000, False),
    "cooking": (_ARTISAN, 450_000, False),
    "woodcutting": (_GATHER, 110_000, False),
    "fletching": (_ARTISAN, 480_000, True),
    "fishing": (_GATHER, 95_000, False),
    "firemaking": (_ARTISAN, 420_000, False),
    "crafting": (_ARTISAN, 320_000, False),
    "smithing": (_ARTISAN, 330_000, False),
    "mining": (_GATHER, 85_000, False),
    "herblore": (_ARTISAN, 380_000, True),
    "agility": (_GATHER, 65_000, True),
    "thieving": (_GATHER, 220_000, True),
    "slayer": (_COMBAT, 55_000, True),
    "farming": (_GATHER, 300_000, True),
    "runecrafting": (_ARTISAN, 45_000, False),
    "hunter": (_GATHER, 150_000, True),
    "construction": (_ARTISAN, 700_000, True),
    "sailing": (_GATHER, 110_000, True),
}
_PLAIN_SKILLS = SKILLS[1:]  # every skill but overall, in snapshot order
_N_SKILLS = len(_PLAIN_SKILLS)
_SAILING = _PLAIN_SKILLS.index("sailing")
_HITPOINTS = _PLAIN_SKILLS.index("hitpoints")
_DEFENCE = _PLAIN_SKILLS.index("defence")
_ZERKER_DEFENCE_CAP = xp_for_level(45)
_IRON_RATE = 0.6  # ironmen earn experience and kills slower

# boss -> (kills per efficient hour, counts for EHB, relative popularity)
_BOSS_INFO: dict[str, tuple[float, bool, float]] = {
    "abyssal_sire": (45, True, 2),
    "alchemical_hydra": (30, True, 4),
    "amoxliatl": (40, True, 1),
    "araxxor": (35, True, 2),
    "artio": (60, True, 2),
    "barrows_chests": (20, False, 6),
    "brutus": (40, True, 1),
    "bryophyta": (20, False, 2),
    "callisto": (40, True, 2),
    "calvarion": (45, True, 2),
    "cerberus": (55, True, 3),
    "chambers_of_xeric": (3.5, True, 6),
    "chambers_of_xeric_challenge_mode": (2.2, True, 1),
    "chaos_elemental": (45, True, 1),
    "chaos_fanatic": (80, True, 1),
    "commander_zilyana": (40, True, 2),
    "corporeal_beast": (7, True, 1),
    "crazy_archaeologist": (75, True, 1),
    "dagannoth_prime": (90, True, 2),
    "dagannoth_rex": (90, True, 2),
    "dagannoth_supreme": (90, True, 2),
    "deranged_archaeologist": (70, True, 1),
    "doom_of_mokhaiotl": (12, True, 1),
    "duke_sucellus": (30, True, 3),
    "general_graardor": (40, True, 2),
    "giant_mole": (90, True, 3),
    "grotesque_guardians": (31, True, 2),
    "hespori": (30, False, 2),
    "kalphite_queen": (50, True, 1),
    "king_black_dragon": (120, True, 2),
    "kraken": (100, True, 2),
    "kreearra": (30, True, 1),
    "kril_tsutsaroth": (65, True, 1),
    "lunar_chests": (14, True, 2),
    "mad_angel": (25, True, 0.5),
    "maggot_king": (30, True, 0.5),
    "mimic": (4, False, 1),
    "nex": (12, True, 2),
    "nightmare": (14, True, 1),
    "phosanis_nightmare": (8, True, 1),
    "obor": (20, False, 1),
    "phantom_muspah": (25, True, 2),
    "sarachnis": (60, True, 2),
    "scorpia": (110, True, 1),
    "scurrius": (45, True, 3),
    "shellbane_gryphon": (40, True, 0.5),
    "skotizo": (45, True, 1),
    "sol_heredit": (1.2, True, 0.5),
    "spindel": (50, True, 1),
    "tempoross": (10, False, 4),
    "the_gauntlet": (10, True, 2),
    "the_corrupted_gauntlet": (7, True, 3),
    "the_hueycoatl": (20, True, 2),
    "the_leviathan": (28, True, 2),
    "the_royal_titans": (40, True, 2),
    "the_whisperer": (22, True, 2),
    "theatre_of_blood": (3.0, True, 3),
    "theatre_of_blood_hard_mode": (2.2, True, 1),
    "thermonuclear_smoke_devil": (100, True, 1),
    "tombs_of_amascut": (3.0, True, 5),
    "tombs_of_amascut_expert": (2.5, True, 3),
    "tzkal_zuk": (0.8, True, 0.5),
    "tztok_jad": (2.0, True, 2),
    "vardorvis": (38, True, 3),
    "venenatis": (45, True, 1),
    "vetion": (35, True, 1),
    "vorkath": (32, True, 5),
    "wintertodt": (12, False, 4),
    "yama": (10, True, 1),
    "zalcano": (20, False, 2),
    "zulrah": (38, True, 5),
}
_F2P_BOSSES = ("obor", "bryophyta")
_BOSS_MIN = 5  # the hiscores list a boss only from this kill count on
_CLUE_TIERS = tuple(
    ACTIVITIES.index(f"clue_scrolls_{tier}")
    for tier in ("beginner", "easy", "medium", "hard", "elite", "master")
)
_CLUE_ALL = ACTIVITIES.index("clue_scrolls_all")
# the hiscores minimum of each activity, in ACTIVITIES order
_ACTIVITY_MIN: tuple[int, ...] = (2, 2, 1, 1, 1, 1, 1, 1, 1, 500, 2525, 200, 50, 300, 1)


def _metric_factor(index: int) -> float:
    # fixed per metric, so rank scales differ between metrics but never between players
    return 0.7 + 0.6 * ((index * 2_654_435_761) % 1000) / 1000


def _rank(value: float, population: float, half: float, power: float, drift: float) -> int:
    """A plausible hiscores rank: ``population / 2`` at ``half``, better as value grows."""
    return max(1, int(population * drift / (1.0 + (value / half) ** power)))


def _drift(unix_ms: int) -> float:
    return max(0.5, 1.0 + 0.025 * (unix_ms - _RANK_DRIFT_REF_MS) / YEAR_MS)


# --------------------------------------------------------------------------------------
# hashing and caches

_MASK = (1 << 64) - 1


def _mix(*parts: int) -> int:
    """A stable 64-bit hash of integers (splitmix64 steps); never Python's salted hash."""
    value = 0x243F6A8885A308D3
    for part in parts:
        value = (value + (part & _MASK) + 0x9E3779B97F4A7C15) & _MASK
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
        value ^= value >> 31
    return value


class _Lru(Generic[_K, _V]):
    """A small bounded mapping that forgets the least recently used entry."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: _K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------------------
# gains


def _num(entry: Mapping[str, Any] | None, key: str, default: float) -> Any:
    if entry is None:
        return default
    value = entry.get(key, default)
    return default if value is None else value


def _delta(gained: Any, start: Any, end: Any) -> JSONDict:
    return {"gained": gained, "start": start, "end": end}


def _skill_delta(metric: str, start: Mapping[str, Any] | None, end: Mapping[str, Any]) -> JSONDict:
    s_xp, e_xp = _num(start, "experience", -1), _num(end, "experience", -1)
    s_rank, e_rank = _num(start, "rank", -1), _num(end, "rank", -1)
    s_level, e_level = _num(start, "level", 1), _num(end, "level", 1)
    s_ehp, e_ehp = _num(start, "ehp", 0), _num(end, "ehp", 0)
    # -1 is "not on the hiscores": never subtracted. An unranked overall total says nothing
    # about how much of the end total is new, hence 0 rather than the whole end value.
    xp_gained = 0 if metric == "overall" and s_xp == -1 else max(0, e_xp - max(s_xp, 0))
    rank_gained = 0 if s_rank == -1 else e_rank - max(0, s_rank)
    return {
        "metric": metric,
        "experience": _delta(xp_gained, s_xp, e_xp),
        "ehp": _delta(e_ehp - s_ehp, s_ehp, e_ehp),
        "rank": _delta(rank_gained, s_rank, e_rank),
        "level": _delta(max(0, e_level - s_level), s_level, e_level),
    }


def _boss_delta(metric: str, start: Mapping[str, Any] | None, end: Mapping[str, Any]) -> JSONDict:
    s_kills, e_kills = _num(start, "kills", -1), _num(end, "kills", -1)
    s_rank, e_rank = _num(start, "rank", -1), _num(end, "rank", -1)
    s_ehb, e_ehb = _num(start, "ehb", 0), _num(end, "ehb", 0)
    return {
        "metric": metric,
        "ehb": _delta(e_ehb - s_ehb, s_ehb, e_ehb),
        "rank": _delta(e_rank - max(0, s_rank), s_rank, e_rank),
        "kills": _delta(max(0, e_kills - max(s_kills, 0)), s_kills, e_kills),
    }


def _activity_delta(
    metric: str, start: Mapping[str, Any] | None, end: Mapping[str, Any]
) -> JSONDict:
    s_score, e_score = _num(start, "score", -1), _num(end, "score", -1)
    s_rank, e_rank = _num(start, "rank", -1), _num(end, "rank", -1)
    return {
        "metric": metric,
        "rank": _delta(e_rank - max(0, s_rank), s_rank, e_rank),
        "score": _delta(max(0, e_score - max(s_score, 0)), s_score, e_score),
    }


def _computed_delta(
    metric: str, start: Mapping[str, Any] | None, end: Mapping[str, Any]
) -> JSONDict:
    s_value, e_value = _num(start, "value", 0), _num(end, "value", 0)
    s_rank, e_rank = _num(start, "rank", -1), _num(end, "rank", -1)
    return {
        "metric": metric,
        # totals never go down, even when an efficiency rate was revised in between
        "value": _delta(max(0, e_value - s_value), s_value, e_value),
        "rank": _delta(e_rank - max(0, s_rank), s_rank, e_rank),
    }


_DeltaBuilder = Callable[[str, Mapping[str, Any] | None, Mapping[str, Any]], JSONDict]
_SECTIONS: tuple[tuple[str, tuple[str, ...], _DeltaBuilder], ...] = (
    ("skills", SKILLS, _skill_delta),
    ("bosses", BOSSES, _boss_delta),
    ("activities", ACTIVITIES, _activity_delta),
    ("computed", COMPUTED, _computed_delta),
)
_EMPTY_FIELDS = {
    "skills": ("experience", "ehp", "rank", "level"),
    "bosses": ("ehb", "rank", "kills"),
    "activities": ("rank", "score"),
    "computed": ("value", "rank"),
}


def _deltas(start: Mapping[str, Any], end: Mapping[str, Any]) -> JSONDict:
    out: JSONDict = {}
    start_data = start.get("data") or {}
    end_data = end.get("data") or {}
    for section, _, build in _SECTIONS:
        before = start_data.get(section) or {}
        # metrics the end snapshot has; one missing at the start counts as unranked
        out[section] = {
            metric: build(metric, before.get(metric), entry)
            for metric, entry in (end_data.get(section) or {}).items()
        }
    return out


def _empty_deltas(keys_from: Mapping[str, Any] | None) -> JSONDict:
    data = (keys_from or {}).get("data") or {}
    out: JSONDict = {}
    for section, standard, _ in _SECTIONS:
        metrics = list((data.get(section) or {}).keys()) or list(standard)
        out[section] = {
            metric: {"metric": metric, **{f: _delta(0, 0, 0) for f in _EMPTY_FIELDS[section]}}
            for metric in metrics
        }
    return out


def _created_ms(snapshot: Mapping[str, Any]) -> int:
    return to_ms(parse_wom_time(str(snapshot["createdAt"])))


def compute_gained(
    snapshots: Sequence[Mapping[str, Any]],
    start: datetime | None = None,
    end: datetime | None = None,
) -> JSONDict:
    """A player's gains over a window, by WOM's rules, as ``{startsAt, endsAt, data}``.

    The start snapshot is the first one with ``createdAt >= start`` (not the last before it),
    the end snapshot the latest with ``createdAt <= end``; ``start``/``end`` of None leave that
    side open (the period form: end = latest snapshot). Both come from inside the window, so
    one snapshot in the window gives all zeros with real dates, and none gives all zeros with
    ``startsAt``/``endsAt`` null. Snapshots may come in any order.
    """
    lo = None if start is None else to_ms(start)
    hi = None if end is None else to_ms(end)
    inside: list[tuple[int, Mapping[str, Any]]] = []
    for snapshot in snapshots:
        at = _created_ms(snapshot)
        if (lo is None or at >= lo) and (hi is None or at <= hi):
            inside.append((at, snapshot))
    if not inside:
        return {
            "startsAt": None,
            "endsAt": None,
            "data": _empty_deltas(snapshots[-1] if snapshots else None),
        }
    first = min(inside, key=lambda item: item[0])[1]
    last = max(inside, key=lambda item: item[0])[1]
    return {
        "startsAt": first["createdAt"],
        "endsAt": last["createdAt"],
        "data": _deltas(first, last),
    }


def metric_delta(gained: Mapping[str, Any], metric: str) -> JSONDict:
    """One metric's main ``{gained, start, end}`` out of a ``compute_gained`` result."""
    kind = metric_kind(metric)
    section = {"skill": "skills", "boss": "bosses", "activity": "activities"}.get(
        kind or "", "computed"
    )
    entry = gained["data"][section].get(metric)
    if entry is None:
        return _delta(0, 0, 0)
    delta: JSONDict = entry[metric_value_field(metric)]
    return delta


# --------------------------------------------------------------------------------------
# public model


@dataclass(slots=True)
class WomPlayer:
    """One player WOM knows through the group: current and former members alike."""

    id: int
    display_name: str
    type: str  # regular, ironman, hardcore, ultimate
    build: str  # main, f2p, zerker, def1
    status: str
    country: str | None
    registered_at: datetime
    role: str  # current role, or the role held when leaving
    member_since: datetime  # membership createdAt: added to the WOM group
    client_sync_joined_at: datetime | None  # in-game join date from the plugin sync
    left_at: datetime | None = None  # the "left" event; None while a member
    role_changed_at: datetime | None = None
    previous_role: str | None = None
    last_imported_at: datetime | None = None
    # WOM read this player's hiscores in [track_from_ms, track_until_ms) (minus gaps)
    track_from_ms: int = 0
    track_until_ms: int = 0
    quit_ms: int | None = None  # stopped playing at this moment (no progress after it)

    @property
    def username(self) -> str:
        """The normalized name WOM keys the player by."""
        return normalize_osrs_name(self.display_name)

    @property
    def is_member(self) -> bool:
        return self.left_at is None

    @property
    def is_iron(self) -> bool:
        """Any ironman type: slower rates, so more EHP for the same experience."""
        return self.type != "regular"


@dataclass(frozen=True, slots=True)
class _NameChange:
    id: int
    player_id: int
    old_name: str
    new_name: str
    created_ms: int
    resolved_ms: int


@dataclass(frozen=True, slots=True)
class _Event:
    at_ms: int
    player_id: int
    type: str  # joined, left, changed_role
    role: str
    previous_role: str | None


@dataclass(slots=True)
class _Model:
    """A player's game progress as a function of time, and when WOM read it."""

    cum: tuple[array[float], ...]  # per stream: cumulative hours at each week boundary
    skill_stream: tuple[int, ...]
    skill_base: tuple[float, ...]  # -1 marks a skill this account never trains
    skill_coef: tuple[float, ...]  # xp per hour of the skill's stream
    skill_cap: tuple[int, ...]
    sailing_start_ms: int | None
    sailing_coef: float
    sailing_hours0: float  # gathering hours at the sailing start
    boss_terms: tuple[tuple[int, float, float], ...]  # (boss index, base, kills per hour)
    activity_terms: tuple[tuple[int, float, tuple[float, ...]], ...]
    shares: tuple[float, ...]
    segments: tuple[tuple[int, int], ...]  # tracked [from, until) ranges, ascending
    stride: int
    phase: int
    skip: float
    slot_key: int


RawState = tuple[int, ...]  # skills (no overall), bosses, activities: raw game values


@dataclass(slots=True)
class _Summary:
    latest_ms: int | None
    latest_raw: RawState | None
    changed_ms: int | None
    stats: tuple[int, float, float, float, float]  # exp, ehp, ehb, ttm, tt200m


# --------------------------------------------------------------------------------------
# the group


class WomGroup:
    """A generated WOM group. Histories are computed on demand; safe to use from threads.

    Dicts returned are fresh JSON-shaped objects, exactly as the WOM API v2 returns them.
    """

    def __init__(
        self,
        *,
        seed: int,
        group_id: int,
        name: str,
        start_ms: int,
        end_ms: int,
        interval_ms: int,
        created_ms: int,
        players: list[WomPlayer],
        name_changes: list[_NameChange],
        events: list[_Event],
    ) -> None:
        self.seed = seed
        self.id = group_id
        self.name = name
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.interval_ms = interval_ms
        self.created_ms = created_ms
        self._players = {p.id: p for p in players}
        self._order = sorted(self._players)
        self._name_changes = sorted(name_changes, key=lambda c: (c.resolved_ms, c.id))
        self._events = sorted(events, key=lambda e: (e.at_ms, e.player_id))
        self._lock = threading.RLock()
        self._models: _Lru[int, _Model] = _Lru(1024)
        self._timelines: _Lru[int, list[int]] = _Lru(16)
        self._summaries: dict[int, _Summary] = {}
        self._extras: dict[int, list[tuple[int, RawState]]] = {}
        self._names: dict[str, int] = {}
        for player in players:
            self._names[player.username] = player.id
        for change in self._name_changes:
            self._names.setdefault(normalize_osrs_name(change.old_name), change.player_id)

    # -- basic facts --------------------------------------------------------------

    @property
    def start(self) -> datetime:
        """Start of the generated history (inclusive)."""
        return from_ms(self.start_ms)

    @property
    def end(self) -> datetime:
        """End of the generated history (exclusive); ``add_snapshot`` may go beyond it."""
        return from_ms(self.end_ms)

    def players(self) -> list[WomPlayer]:
        """Every player, members and former members, by id."""
        return [self._players[pid] for pid in self._order]

    def members(self) -> list[WomPlayer]:
        """Current members, by id."""
        return [p for p in self.players() if p.is_member]

    def player(self, player_id: int) -> WomPlayer:
        """The player with this id (KeyError if none)."""
        return self._players[player_id]

    def player_by_username(self, username: str, *, current_only: bool = False) -> WomPlayer | None:
        """Find a player by name (normalized here); old names resolve unless ``current_only``."""
        key = normalize_osrs_name(username)
        with self._lock:
            pid = self._names.get(key)
            if pid is None:
                return None
            player = self._players[pid]
            if current_only and player.username != key:
                return None
            return player

    # -- progress model -------------------------------------------------------------

    def _model(self, pid: int) -> _Model:
        with self._lock:
            model = self._models.get(pid)
            if model is None:
                model = _build_model(self, self._players[pid])
                self._models.put(pid, model)
            return model

    def _model_state(self, model: _Model, at_ms: int) -> RawState:
        hours = [_cum_at(cum, self.start_ms, at_ms) for cum in model.cum]
        values: list[int] = []
        for index in range(_N_SKILLS):
            base = model.skill_base[index]
            if base < 0:
                values.append(-1)
            elif index == _SAILING:
                if model.sailing_start_ms is None or at_ms <= model.sailing_start_ms:
                    values.append(0)
                else:
                    trained = max(0.0, hours[_GATHER] - model.sailing_hours0)
                    values.append(min(MAX_XP, int(model.sailing_coef * trained)))
            else:
                xp = base + model.skill_coef[index] * hours[model.skill_stream[index]]
                values.append(min(model.skill_cap[index], int(xp)))
        bosses = [0] * len(BOSSES)
        for boss, base, coef in model.boss_terms:
            bosses[boss] = int(base + coef * hours[_BOSSING])
        activities = [0] * len(ACTIVITIES)
        for activity, base, coefs in model.activity_terms:
            activities[activity] = int(base + sum(c * h for c, h in zip(coefs, hours, strict=True)))
        activities[_CLUE_ALL] = sum(activities[tier] for tier in _CLUE_TIERS)
        return (*values, *bosses, *activities)

    # -- when WOM read the hiscores -------------------------------------------------

    def _slot_time(self, model: _Model, slot: int) -> int | None:
        if (slot - model.phase) % model.stride:
            return None
        bits = _mix(model.slot_key, slot)
        if (bits & 0xFFFFFFFF) / 4_294_967_296 < model.skip:
            return None
        # jitter stays below one interval, so slot times are strictly increasing
        jitter = int((bits >> 32) / 4_294_967_296 * self.interval_ms * 0.9)
        return self.start_ms + slot * self.interval_ms + jitter

    def _base_desc(self, model: _Model, hi: int) -> Iterator[int]:
        """Base snapshot times <= hi, newest first."""
        for seg_from, seg_until in reversed(model.segments):
            top = min(hi, seg_until - 1)
            if top < seg_from:
                continue
            slot = (top - self.start_ms) // self.interval_ms
            low_slot = (seg_from - self.start_ms) // self.interval_ms
            while slot >= low_slot:
                at = self._slot_time(model, slot)
                if at is not None and seg_from <= at <= top:
                    yield at
                slot -= 1

    def _base_asc(self, model: _Model, lo: int) -> Iterator[int]:
        """Base snapshot times >= lo, oldest first."""
        for seg_from, seg_until in model.segments:
            bottom = max(lo, seg_from)
            if bottom >= seg_until:
                continue
            slot = (bottom - self.start_ms) // self.interval_ms
            high_slot = (seg_until - 1 - self.start_ms) // self.interval_ms
            while slot <= high_slot:
                at = self._slot_time(model, slot)
                if at is not None and bottom <= at < seg_until:
                    yield at
                slot += 1

    def _timeline(self, pid: int) -> list[int]:
        """Every snapshot time of a player, ascending (bounded cache)."""
        with self._lock:
            times = self._timelines.get(pid)
            if times is None:
                times = list(self._base_asc(self._model(pid), self.start_ms))
                times.extend(at for at, _ in self._extras.get(pid, ()))
                self._timelines.put(pid, times)
            return times

    def _times_desc(self, pid: int, hi: int | None = None) -> Iterator[int]:
        extras = self._extras.get(pid, [])
        for at, _ in reversed(extras):
            if hi is None or at <= hi:
                yield at
        yield from self._base_desc(self._model(pid), self.end_ms - 1 if hi is None else hi)

    def _first_at_or_after(self, pid: int, lo: int) -> int | None:
        found = next(self._base_asc(self._model(pid), lo), None)
        if found is not None:
            return found
        return next((at for at, _ in self._extras.get(pid, ()) if at >= lo), None)

    def _last_at_or_before(self, pid: int, hi: int | None) -> int | None:
        return next(self._times_desc(pid, hi), None)

    def _raw(self, pid: int, at_ms: int) -> RawState:
        for at, raw in self._extras.get(pid, ()):
            if at == at_ms:
                return raw
        return self._model_state(self._model(pid), at_ms)

    # -- snapshots --------------------------------------------------------------------

    def _snapshot(self, pid: int, at_ms: int) -> JSONDict:
        return _snapshot_json(pid, at_ms, self._raw(pid, at_ms), self._players[pid].is_iron)

    def snapshot_count(self, player_id: int) -> int:
        return len(self._timeline(player_id))

    def snapshot_times(self, player_id: int) -> list[datetime]:
        """When WOM read this player's hiscores, ascending."""
        return [from_ms(at) for at in self._timeline(player_id)]

    def snapshots(
        self, player_id: int, start: datetime | None = None, end: datetime | None = None
    ) -> list[JSONDict]:
        """The player's snapshots with ``start <= createdAt <= end``, ascending.

        This builds every dict it returns (about 40 kB each): prefer ``snapshot_page`` or
        a window for long histories.
        """
        with self._lock:
            times = self._window(self._timeline(player_id), start, end)
            return [self._snapshot(player_id, at) for at in times]

    def snapshot_page(
        self,
        player_id: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> list[JSONDict]:
        """One page of the player's snapshots in a window, newest first (as WOM pages)."""
        with self._lock:
            times = self._window(self._timeline(player_id), start, end)
            times.reverse()
            return [self._snapshot(player_id, at) for at in times[offset : offset + limit]]

    @staticmethod
    def _window(times: list[int], start: datetime | None, end: datetime | None) -> list[int]:
        lo = 0 if start is None else bisect.bisect_left(times, to_ms(start))
        hi = len(times) if end is None else bisect.bisect_right(times, to_ms(end))
        return times[lo:hi]

    def latest_snapshot(self, player_id: int) -> JSONDict | None:
        with self._lock:
            summary = self._summary(player_id)
            if summary.latest_ms is None:
                return None
            return self._snapshot(player_id, summary.latest_ms)

    def gained(
        self, player_id: int, start: datetime | None = None, end: datetime | None = None
    ) -> JSONDict:
        """``compute_gained`` over the player's history without building all of it."""
        with self._lock:
            lo = self.start_ms - 1 if start is None else to_ms(start)
            hi = None if end is None else to_ms(end)
            first = self._first_at_or_after(player_id, lo)
            last = self._last_at_or_before(player_id, hi)
            if first is None or last is None or first > last:
                return compute_gained([], start, end)
            chosen = [self._snapshot(player_id, first)]
            if last != first:
                chosen.append(self._snapshot(player_id, last))
            return compute_gained(chosen)

    # -- player objects -----------------------------------------------------------------

    def _summary(self, pid: int) -> _Summary:
        summary = self._summaries.get(pid)
        if summary is not None:
            return summary
        times = self._times_desc(pid)
        latest = next(times, None)
        if latest is None:
            summary = _Summary(None, None, None, (0, 0.0, 0.0, 0.0, 0.0))
        else:
            raw = self._raw(pid, latest)
            changed = latest
            shown = _display(raw)
            # lastChangedAt: the newest snapshot whose values differ from the one before it
            for earlier in times:
                earlier_shown = _display(self._raw(pid, earlier))
                if earlier_shown != shown:
                    break
                changed = earlier
            stats = _player_stats(raw, self._players[pid].is_iron)
            summary = _Summary(latest, raw, changed, stats)
        self._summaries[pid] = summary
        return summary

    def player_json(self, player_id: int) -> JSONDict:
        """The WOM Player object (no snapshot)."""
        with self._lock:
            player = self._players[player_id]
            summary = self._summary(player_id)
            exp, ehp, ehb, ttm, tt200m = summary.stats
            return {
                "id": player.id,
                "username": player.username,
                "displayName": player.display_name,
                "type": player.type,
                "build": player.build,
                "status": player.status,
                "country": player.country,
                "patron": False,
                "exp": exp,
                "ehp": ehp,
                "ehb": ehb,
                "ttm": ttm,
                "tt200m": tt200m,
                "registeredAt": wom_iso(to_ms(player.registered_at)),
                "updatedAt": _iso_or_none(summary.latest_ms),
                "lastChangedAt": _iso_or_none(summary.changed_ms),
                "lastImportedAt": (
                    None
                    if player.last_imported_at is None
                    else wom_iso(to_ms(player.last_imported_at))
                ),
            }

    def player_details(self, player_id: int) -> JSONDict:
        """``GET /players/{username}``: the Player plus combat level and latest snapshot."""
        with self._lock:
            details = self.player_json(player_id)
            latest = self.latest_snapshot(player_id)
            levels = {name: 1 for name in SKILLS}
            levels["hitpoints"] = 10
            if latest is not None:
                levels = {k: v["level"] for k, v in latest["data"]["skills"].items()}
            details.update(
                combatLevel=combat_level(levels),
                archive=None,
                annotations=[],
                latestSnapshot=latest,
            )
            return details

    def updated_ms(self, player_id: int) -> int | None:
        """When WOM last read this player's hiscores (unix ms), None if never."""
        with self._lock:
            return self._summary(player_id).latest_ms

    # -- group objects --------------------------------------------------------------------

    def _role_orders(self) -> list[str]:
        used = {p.role for p in self._players.values()}
        used |= {p.previous_role for p in self._players.values() if p.previous_role}
        known = [role for role in ROLE_ORDER if role in used]
        return known + sorted(used - set(known))

    def memberships(self) -> list[JSONDict]:
        """Current memberships with their Player, by role order then join time."""
        with self._lock:
            order = {role: index for index, role in enumerate(self._role_orders())}
            members = sorted(self.members(), key=lambda p: (order[p.role], p.member_since, p.id))
            out = []
            for player in members:
                since = to_ms(player.member_since)
                changed = player.role_changed_at
                sync = player.client_sync_joined_at
                out.append(
                    {
                        "playerId": player.id,
                        "groupId": self.id,
                        "role": player.role,
                        "clientSyncJoinedAt": None if sync is None else wom_iso(to_ms(sync)),
                        "createdAt": wom_iso(since),
                        "updatedAt": wom_iso(since if changed is None else to_ms(changed)),
                        "player": self.player_json(player.id),
                    }
                )
            return out

    def group_json(self) -> JSONDict:
        """``GET /groups/{id}``: the group with roleOrders and every membership."""
        with self._lock:
            memberships = self.memberships()
            updated = max([self.created_ms, *(e.at_ms for e in self._events)])
            return {
                "id": self.id,
                "name": self.name,
                "clanChat": self.name,
                "description": "Casual PvM clan. Raids Saturdays, events Sundays.",
                "homeworld": 330,
                "verified": True,
                "patron": False,
                "visible": True,
                "profileImage": None,
                "bannerImage": None,
                "score": 120,
                "createdAt": wom_iso(self.created_ms),
                "updatedAt": wom_iso(updated),
                "memberCount": len(memberships),
                "socialLinks": {
                    "website": None,
                    "discord": None,
                    "twitter": None,
                    "youtube": None,
                    "twitch": None,
                },
                "roleOrders": [
                    {"groupId": self.id, "role": role, "index": index}
                    for index, role in enumerate(self._role_orders())
                ],
                "memberships": memberships,
            }

    def name_changes(self) -> list[JSONDict]:
        """Approved name changes of current members, newest first."""
        with self._lock:
            out = []
            for change in reversed(self._name_changes):
                if not self._players[change.player_id].is_member:
                    continue
                out.append(
                    {
                        "id": change.id,
                        "playerId": change.player_id,
                        "oldName": change.old_name,
                        "newName": change.new_name,
                        "status": "approved",
                        "reviewContext": None,
                        "resolvedAt": wom_iso(change.resolved_ms),
                        "createdAt": wom_iso(change.created_ms),
                        "updatedAt": wom_iso(change.resolved_ms),
                        "player": self.player_json(change.player_id),
                    }
                )
            return out

    def activity(self) -> list[JSONDict]:
        """Membership events (joined, left, changed_role), newest first."""
        with self._lock:
            return [
                {
                    "groupId": self.id,
                    "playerId": event.player_id,
                    "type": event.type,
                    "role": event.role,
                    "previousRole": event.previous_role,
                    "createdAt": wom_iso(event.at_ms),
                    "player": self.player_json(event.player_id),
                }
                for event in reversed(self._events)
            ]

    # -- changes while running ------------------------------------------------------------

    def add_snapshot(self, player_id: int, at: datetime, *, progress: bool = True) -> JSONDict:
        """Record one more hiscores reading at ``at`` (after the latest) and return it.

        With ``progress`` the player has played since the latest reading (more experience,
        sometimes kills and clues); without it the values are unchanged, as for someone who
        stopped playing.
        """
        at_ms = to_ms(at)
        with self._lock:
            summary = self._summary(player_id)
            model = self._model(player_id)
            if summary.latest_ms is not None and at_ms <= summary.latest_ms:
                raise ValueError(
                    f"{wom_iso(at_ms)} is not after the latest snapshot "
                    f"{wom_iso(summary.latest_ms)}"
                )
            previous = summary.latest_raw
            if previous is None:
                previous = self._model_state(model, at_ms)
            extras = self._extras.setdefault(player_id, [])
            raw = previous
            if progress:
                rng = random.Random(_mix(self.seed, player_id, 0xE7, len(extras)))
                raw = _progress(model, previous, at_ms, rng)
            extras.append((at_ms, raw))
            self._timelines.pop(player_id)
            self._summaries.pop(player_id, None)
            return _snapshot_json(player_id, at_ms, raw, self._players[player_id].is_iron)

    def rename(self, player_id: int, new_display_name: str, at: datetime) -> JSONDict:
        """Approve a name change at ``at``; the old name keeps resolving to the same player."""
        key = normalize_osrs_name(new_display_name)
        if not _valid_display_name(new_display_name) or not is_valid_osrs_name(key):
            raise ValueError(f"{new_display_name!r} is not a valid OSRS name")
        at_ms = to_ms(at)
        with self._lock:
            player = self._players[player_id]
            owner = self._names.get(key)
            if owner is not None and owner != player_id:
                raise ValueError(f"{new_display_name!r} belongs to another player")
            next_id = 1 + max((c.id for c in self._name_changes), default=80_000)
            change = _NameChange(
                next_id,
                player_id,
                player.display_name,
                new_display_name,
                at_ms - 20_000,
                at_ms,
            )
            self._name_changes.append(change)
            self._name_changes.sort(key=lambda c: (c.resolved_ms, c.id))
            self._names.setdefault(player.username, player_id)
            player.display_name = new_display_name
            self._names[key] = player_id
            return next(c for c in self.name_changes() if c["id"] == next_id)


# --------------------------------------------------------------------------------------
# snapshot objects


def _display(raw: RawState) -> RawState:
    """What the hiscores show: -1 below each list's minimum."""
    skills = [v if v > 0 else -1 for v in raw[:_N_SKILLS]]
    bosses = [v if v >= _BOSS_MIN else -1 for v in raw[_N_SKILLS : _N_SKILLS + len(BOSSES)]]
    acts = raw[_N_SKILLS + len(BOSSES) :]
    activities = [v if v >= low else -1 for v, low in zip(acts, _ACTIVITY_MIN, strict=True)]
    return (*skills, *bosses, *activities)


def _skill_ehp(index: int, xp: int, iron: bool) -> float:
    rate = _SKILL_INFO[_PLAIN_SKILLS[index]][1]
    if rate == 0 or xp <= 0:
        return 0
    return round(xp / (rate * (_IRON_RATE if iron else 1.0)), 5)


def _boss_ehb(boss: str, kills: int, iron: bool) -> float:
    kph, counts, _ = _BOSS_INFO[boss]
    if not counts or kills <= 0:
        return 0
    return round(kills / (kph * (0.8 if iron else 1.0)), 5)


def _snapshot_json(pid: int, at_ms: int, raw: RawState, iron: bool) -> JSONDict:
    shown = _display(raw)
    drift = _drift(at_ms)
    skills: JSONDict = {}
    total_xp = 0
    total_level = 0
    total_ehp = 0.0
    for index, metric in enumerate(_PLAIN_SKILLS):
        xp = shown[index]
        level = level_for_xp(xp)
        ehp = _skill_ehp(index, xp, iron)
        total_level += level
        total_ehp += ehp
        rank = -1
        if xp > 0:
            total_xp += xp
            rank = _rank(xp, 2_300_000 * _metric_factor(index), 1_200_000, 1.0, drift)
        skills[metric] = {
            "metric": metric,
            "experience": xp,
            "rank": rank,
            "level": level,
            "ehp": ehp,
        }
    total_ehp = round(total_ehp, 5)
    overall_rank = _rank(total_xp, 2_400_000, 25_000_000, 1.3, drift) if total_xp > 0 else -1
    overall = {
        "metric": "overall",
        "experience": total_xp if total_xp > 0 else -1,
        "rank": overall_rank,
        "level": total_level,
        "ehp": total_ehp,
    }
    bosses: JSONDict = {}
    total_ehb = 0.0
    for index, metric in enumerate(BOSSES):
        kills = shown[_N_SKILLS + index]
        ehb = _boss_ehb(metric, kills, iron)
        total_ehb += ehb
        rank = -1
        if kills > 0:
            rank = _rank(kills, 220_000 * _metric_factor(index + 40), 90, 1.0, drift)
        bosses[metric] = {"metric": metric, "kills": kills, "rank": rank, "ehb": ehb}
    total_ehb = round(total_ehb, 5)
    activities: JSONDict = {}
    base = _N_SKILLS + len(BOSSES)
    for index, metric in enumerate(ACTIVITIES):
        score = shown[base + index]
        rank = -1
        if score > 0:
            half = 100 if _ACTIVITY_MIN[index] < 100 else 4 * _ACTIVITY_MIN[index]
            rank = _rank(score, 600_000 * _metric_factor(index + 120), half, 1.0, drift)
        activities[metric] = {"metric": metric, "score": score, "rank": rank}
    computed = {
        "ehp": {
            "metric": "ehp",
            "value": total_ehp,
            "rank": _rank(total_ehp, 2_000_000, 60, 1.2, drift) if total_ehp > 0 else -1,
        },
        "ehb": {
            "metric": "ehb",
            "value": total_ehb,
            "rank": _rank(total_ehb, 1_500_000, 20, 1.2, drift) if total_ehb > 0 else -1,
        },
    }
    return {
        "id": -1,
        "playerId": pid,
        "createdAt": wom_iso(at_ms),
        "importedAt": None,
        "data": {
            "skills": {"overall": overall, **skills},
            "bosses": bosses,
            "activities": activities,
            "computed": computed,
        },
    }


def _player_stats(raw: RawState, iron: bool) -> tuple[int, float, float, float, float]:
    """exp, ehp, ehb, ttm, tt200m of a state, as the Player object carries them."""
    shown = _display(raw)
    exp = sum(v for v in shown[:_N_SKILLS] if v > 0)
    ehp = round(sum(_skill_ehp(i, shown[i], iron) for i in range(_N_SKILLS)), 5)
    ehb = round(sum(_boss_ehb(b, shown[_N_SKILLS + i], iron) for i, b in enumerate(BOSSES)), 5)
    ttm = tt200m = 0.0
    for index, metric in enumerate(_PLAIN_SKILLS):
        rate = _SKILL_INFO[metric][1] * (_IRON_RATE if iron else 1.0)
        if rate == 0 or raw[index] < 0:
            continue
        xp = max(0, shown[index])
        ttm += max(0, _XP_99 - xp) / rate
        tt200m += max(0, MAX_XP - xp) / rate
    return exp, ehp, ehb, round(ttm, 5), round(tt200m, 5)


def _progress(model: _Model, raw: RawState, at_ms: int, rng: random.Random) -> RawState:
    """A later state: a few hours of play split over the player's streams."""
    played = rng.uniform(1.0, 6.0)
    hours = [played * share * rng.uniform(0.5, 1.5) for share in model.shares]
    values = list(raw)
    for index in range(_N_SKILLS):
        if values[index] < 0:
            continue
        if index == _SAILING:
            if model.sailing_start_ms is not None and at_ms > model.sailing_start_ms:
                gain = int(model.sailing_coef * hours[_GATHER])
                values[index] = min(MAX_XP, values[index] + gain)
            continue
        gain = int(model.skill_coef[index] * hours[model.skill_stream[index]])
        values[index] = min(model.skill_cap[index], values[index] + gain)
    for boss, _, coef in model.boss_terms:
        values[_N_SKILLS + boss] += int(coef * hours[_BOSSING] + rng.random())
    base = _N_SKILLS + len(BOSSES)
    for activity, _, coefs in model.activity_terms:
        earned = sum(c * h for c, h in zip(coefs, hours, strict=True))
        values[base + activity] += int(earned + rng.random())
    values[base + _CLUE_ALL] = sum(values[base + tier] for tier in _CLUE_TIERS)
    return tuple(values)


# --------------------------------------------------------------------------------------
# per-player model


def _build_model(group: WomGroup, player: WomPlayer) -> _Model:
    rng = random.Random(_mix(group.seed, player.id, 0x6D6F64))
    start, end = group.start_ms, group.end_ms
    weeks = max(1, -(-(end - start) // WEEK_MS))
    speed = _IRON_RATE if player.is_iron else 1.0
    # -- weekly play --------------------------------------------------------------
    weekly_mean = min(40.0, rng.lognormvariate(math.log(6.0), 0.7))
    idle = rng.uniform(0.05, 0.35)
    breaks: tuple[int, int] = (-1, -1)
    if rng.random() < 0.25 and weeks > 12:
        first = rng.randrange(weeks)
        breaks = (first, first + rng.randint(3, 10))
    raw_shares = (
        0.35 * rng.uniform(0.5, 1.5),
        0.2 * rng.uniform(0.3, 1.7),
        0.2 * rng.uniform(0.3, 1.7),
        0.25 * rng.uniform(0.0, 2.0),
    )
    shares = tuple(s / sum(raw_shares) for s in raw_shares)
    cums: list[list[float]] = [[0.0] for _ in range(4)]
    for week in range(weeks):
        week_start = start + week * WEEK_MS
        hours = 0.0
        quit_before = player.quit_ms is not None and week_start >= player.quit_ms
        if not quit_before and not breaks[0] <= week < breaks[1] and rng.random() >= idle:
            hours = weekly_mean * rng.lognormvariate(0.0, 0.6)
        for stream in range(4):
            cums[stream].append(cums[stream][-1] + hours * shares[stream] * rng.uniform(0.2, 1.8))
    # -- skills ---------------------------------------------------------------------
    efficiency = rng.uniform(0.25, 0.6)
    years_before = (start - to_ms(player.registered_at)) / YEAR_MS
    if years_before > 0 or rng.random() < 0.6:
        account_years = max(0.0, years_before) + rng.uniform(0.2, 3.0)
    else:
        account_years = rng.uniform(0.0, 0.4)  # a fresh account
    base_hours = account_years * 52 * weekly_mean * rng.uniform(0.15, 0.7)
    f2p = player.build == "f2p"
    weights = [rng.uniform(0.15, 1.0) ** 1.5 for _ in _PLAIN_SKILLS]
    stream_weight = [0.0] * 4
    for index, metric in enumerate(_PLAIN_SKILLS):
        stream, rate, members = _SKILL_INFO[metric]
        if rate and index != _SAILING and not (f2p and members):
            stream_weight[stream] += weights[index]
    stream_of: list[int] = []
    bases: list[float] = []
    coefs: list[float] = []
    caps: list[int] = []
    for index, metric in enumerate(_PLAIN_SKILLS):
        stream, rate, members = _SKILL_INFO[metric]
        stream_of.append(stream)
        caps.append(MAX_XP)
        if (f2p and members) or (index == _DEFENCE and player.build == "def1"):
            bases.append(-1.0)
            coefs.append(0.0)
            continue
        if index in (_SAILING, _HITPOINTS):
            bases.append(0.0)
            coefs.append(0.0)
            continue
        coef = rate * speed * efficiency * weights[index] / stream_weight[stream]
        coefs.append(coef)
        floor_xp = xp_for_level(rng.randint(1, 15))
        bases.append(floor_xp + base_hours * shares[stream] * coef * rng.uniform(0.6, 1.4))
    # hitpoints follows the combat skills: a third of their experience, from level 10
    melee = [_PLAIN_SKILLS.index(s) for s in ("attack", "strength", "defence", "ranged", "magic")]
    coefs[_HITPOINTS] = sum(max(0.0, coefs[i]) for i in melee) / 3
    bases[_HITPOINTS] = xp_for_level(10) + sum(max(0.0, bases[i]) for i in melee) / 3
    if player.build == "zerker":
        caps[_DEFENCE] = _ZERKER_DEFENCE_CAP
    sailing_start: int | None = None
    sailing_coef = 0.0
    sailing_hours0 = 0.0
    if not f2p and rng.random() < 0.55:
        sailing_start = SAILING_RELEASE_MS + int(rng.expovariate(1 / 20) * DAY_MS)
        sailing_coef = _SKILL_INFO["sailing"][1] * speed * efficiency * rng.uniform(0.3, 1.2)
        if sailing_start < end:
            sailing_hours0 = _cum_at(cums[_GATHER], start, sailing_start)
        else:
            sailing_start = None
    # -- bosses and activities --------------------------------------------------------------
    pool = list(_F2P_BOSSES) if f2p else list(BOSSES)
    wanted = min(len(pool), int(shares[_BOSSING] * 70 * rng.uniform(0.2, 1.0)))
    chosen: list[str] = []
    while len(chosen) < wanted:
        pick = rng.choices(pool, weights=[_BOSS_INFO[b][2] for b in pool])[0]
        pool.remove(pick)
        chosen.append(pick)
    boss_weights = [rng.uniform(0.05, 1.0) ** 2 for _ in chosen]
    total_weight = sum(boss_weights) or 1.0
    boss_base_hours = base_hours * shares[_BOSSING] * rng.uniform(0.2, 1.2)
    boss_terms = []
    for boss, weight in zip(chosen, boss_weights, strict=True):
        kph = _BOSS_INFO[boss][0] * speed * efficiency * weight / total_weight
        boss_terms.append((BOSSES.index(boss), boss_base_hours * kph * rng.uniform(0.3, 1.5), kph))
    clue_affinity = rng.random() ** 2
    activity_terms: list[tuple[int, float, tuple[float, ...]]] = []
    clue_rates = (0.15, 0.3, 0.35, 0.4, 0.12, 0.04)
    for tier, clue_rate in zip(_CLUE_TIERS, clue_rates, strict=True):
        per_hour = clue_rate * clue_affinity
        if f2p and tier not in _CLUE_TIERS[:3]:
            continue
        spread = (per_hour, 0.3 * per_hour, 0.3 * per_hour, per_hour)
        activity_terms.append((tier, base_hours * per_hour * rng.uniform(0.2, 0.8), spread))

    def maybe(name: str, chance: float, base: float, coefs: tuple[float, ...]) -> None:
        if rng.random() < chance:
            activity_terms.append((ACTIVITIES.index(name), base, coefs))

    maybe("last_man_standing", 0.12, 500 + rng.uniform(0, 2500), (8.0, 0, 0, 0))
    maybe("soul_wars_zeal", 0.25, rng.uniform(150, 5000), (12.0, 0, 0, 0))
    maybe("guardians_of_the_rift", 0.3, rng.uniform(0, 600), (0, 0, 1.5, 0))
    maybe("colosseum_glory", 0.06, rng.uniform(0, 20_000), (0, 0, 0, 40.0))
    maybe("bounty_hunter_hunter", 0.03, rng.uniform(0, 40), (0.2, 0, 0, 0))
    maybe("bounty_hunter_rogue", 0.03, rng.uniform(0, 20), (0.1, 0, 0, 0))
    maybe("pvp_arena", 0.03, 2525 + rng.uniform(0, 800), (0.5, 0, 0, 0))
    logged_base = min(900.0, 10 + base_hours * 0.12) * rng.uniform(0.5, 1.2)
    activity_terms.append(
        (ACTIVITIES.index("collections_logged"), logged_base, (0.05, 0.05, 0.05, 0.6))
    )
    # -- tracking -----------------------------------------------------------------------------
    track_from, track_until = player.track_from_ms, player.track_until_ms
    gaps: list[tuple[int, int]] = []
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            length = int(rng.uniform(7, 42) * DAY_MS)
            if track_until - track_from > length + 2 * DAY_MS:
                gap_from = rng.randrange(track_from + DAY_MS, track_until - length)
                gaps.append((gap_from, gap_from + length))
    segments: list[tuple[int, int]] = []
    cursor = track_from
    for gap_from, gap_until in sorted(gaps):
        if gap_from > cursor:
            segments.append((cursor, gap_from))
        cursor = max(cursor, gap_until)
    if cursor < track_until:
        segments.append((cursor, track_until))
    stride = rng.choices((1, 2, 4), weights=(55, 25, 20))[0]
    return _Model(
        cum=tuple(array("d", c) for c in cums),
        skill_stream=tuple(stream_of),
        skill_base=tuple(bases),
        skill_coef=tuple(coefs),
        skill_cap=tuple(caps),
        sailing_start_ms=sailing_start,
        sailing_coef=sailing_coef,
        sailing_hours0=sailing_hours0,
        boss_terms=tuple(boss_terms),
        activity_terms=tuple(activity_terms),
        shares=shares,
        segments=tuple(segments),
        stride=stride,
        phase=rng.randrange(stride),
        skip=rng.uniform(0.02, 0.35),
        slot_key=_mix(group.seed, player.id, 0x510),
    )


def _cum_at(cum: Sequence[float], start_ms: int, at_ms: int) -> float:
    offset = at_ms - start_ms
    if offset <= 0:
        return 0.0
    week, within = divmod(offset, WEEK_MS)
    if week >= len(cum) - 1:
        return cum[-1]
    return cum[week] + (cum[week + 1] - cum[week]) * within / WEEK_MS


# --------------------------------------------------------------------------------------
# roster generation


# the same name stock as the Discord community, so demo players read like its members
# pairs that only exact normalized matching keeps apart
_TRICKY_NAMES = (
    "Fern Whistle",
    "Marrow Gate",
    "Iron Quill",
    "Sea_Lark",
    "Tide Pool",
    "Tidepool",
    "Rook",
    "Rookie Ned",
    "Bramble Knot",
    "Sky-Fox",
    "Q",
    "Zezima Fan 1",
    "x_Bramble_x",
    "Sealark",
)
_RANKS = ("zenyte", "onyx", "dragonstone", "saviour", "slayer", "prospector", "short_green_guy")
_COUNTRIES = ("GB", "US", "NL", "CA", "DE", "AU", "SE", "FI", "BR", "PL", "NO", "BE", "IE")
_DISPLAY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-")


def _valid_display_name(name: str) -> bool:
    return 1 <= len(name) <= 12 and set(name) <= _DISPLAY_CHARS


def _invent_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        a, b = rng.choice(NAME_WORDS_A).capitalize(), rng.choice(NAME_WORDS_B).capitalize()
        style = rng.randrange(9)
        name = (
            f"{a} {b}",
            f"{a}{b}",
            f"{a}_{b}",
            f"{a}-{b}",
            f"{a}{rng.randrange(1, 999)}",
            f"Iron {a}",
            f"{a} {b.lower()}",
            f"Hc {a}",
            f"{a} btw",
        )[style]
        key = normalize_osrs_name(name)
        if _valid_display_name(name) and is_valid_osrs_name(key) and key not in taken:
            taken.add(key)
            return name


def _type_for(name: str, rng: random.Random) -> str:
    key = normalize_osrs_name(name)
    if key.startswith(("iron ", "im ")):
        return "ironman"
    if key.startswith("hc "):
        return "hardcore"
    if key.startswith("uim "):
        return "ultimate"
    return rng.choices(("regular", "ironman", "hardcore", "ultimate"), weights=(78, 14, 5, 3))[0]


PlayerSpec = tuple[str, str, datetime | None, datetime | None]


def _default_end() -> datetime:
    # floored to the UTC day, like the generated Discord community, so both line up
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def generate_wom_group(
    seed: int = 7,
    players: Sequence[PlayerSpec] | None = None,
    members: int = 500,
    days: int = 730,
    end: datetime | None = None,
    snapshot_every_hours: float = 6,
    group_id: int = 4242,
    *,
    name: str = "Grey Heron",
    name_changes: int = 3,
    first_player_id: int = 701101,
) -> WomGroup:
    """Generate a WOM group; the same arguments always give the same group.

    ``players`` lists ``(display_name, role, joined_at, left_at)``: ``joined_at`` None means a
    member since before the history, ``left_at`` set means a former member. Roles are stored
    lower-cased, as WOM spells them. Without ``players``, ``members`` names are invented. The
    history covers ``[end - days, end)``; ``end`` defaults to the start of the current UTC day.
    """
    if end is None:
        end = _default_end()
    elif end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    if days <= 0 or snapshot_every_hours <= 0:
        raise ValueError("days and snapshot_every_hours must be positive")
    end_ms = to_ms(end)
    start_ms = end_ms - days * DAY_MS
    rng = random.Random(_mix(seed, group_id, 0x67))
    pad = min(DAY_MS, (end_ms - start_ms) // 4)
    specs = list(players) if players is not None else _invent_roster(rng, members, start_ms, end_ms)
    taken = {normalize_osrs_name(spec[0]) for spec in specs}
    if len(taken) != len(specs):
        raise ValueError("player names must be distinct after normalization")
    created_ms = start_ms - int(rng.uniform(30, 400) * DAY_MS)
    roster: list[WomPlayer] = []
    events: list[_Event] = []
    for index, (display_name, raw_role, joined_at, left_at) in enumerate(specs):
        if not _valid_display_name(display_name):
            raise ValueError(f"{display_name!r} is not a valid OSRS display name")
        role = raw_role.lower()
        pid = first_player_id + index
        joined_ms = None if joined_at is None else to_ms(joined_at)
        left_ms = None if left_at is None else to_ms(left_at)
        if joined_ms is not None and left_ms is not None and left_ms <= joined_ms:
            raise ValueError(f"{display_name!r} leaves before joining")
        # -- membership ----------------------------------------------------------
        if joined_ms is None:
            if rng.random() < 0.6:  # the initial import when the group was made
                since = created_ms + rng.randrange(600_000)
            else:
                since = rng.randrange(created_ms, start_ms)
            sync = None
            if rng.random() < 0.5:
                sync = _floor_day(since - rng.randrange(700 * DAY_MS))
        else:
            since = joined_ms + rng.randrange(300_000, 36 * HOUR_MS)
            # never before the group existed, never after the history
            since = max(joined_ms, created_ms + 60_000, min(since, end_ms - 60_000))
            sync = _floor_day(joined_ms) if rng.random() < 0.75 else None
        limit_ms = end_ms - 60_000
        leave_event = None
        if left_ms is not None:
            leave_event = min(left_ms + rng.randrange(300_000, 36 * HOUR_MS), limit_ms)
            leave_event = max(leave_event, since + 60_000)
            limit_ms = leave_event - 60_000
        initial_role = role
        changed_ms: int | None = None
        previous: str | None = None
        promotable = role not in ("owner", "deputy_owner", "recruit")
        if joined_ms is not None and promotable:
            when = since + int(rng.uniform(1, 45) * DAY_MS)
            if when < limit_ms:
                initial_role, previous, changed_ms = "recruit", "recruit", when
        elif joined_ms is None and promotable and rng.random() < 0.12 and limit_ms > start_ms:
            previous = rng.choice([r for r in _RANKS if r != role])
            initial_role = previous
            changed_ms = rng.randrange(start_ms, limit_ms)
        events.append(_Event(since, pid, "joined", initial_role, None))
        if changed_ms is not None:
            events.append(_Event(changed_ms, pid, "changed_role", role, previous))
        if leave_event is not None:
            events.append(_Event(leave_event, pid, "left", role, None))
        # -- the account ---------------------------------------------------------
        if joined_ms is not None and rng.random() < 0.45:
            registered = since - rng.randrange(60_000, 2 * DAY_MS)  # new to WOM on joining
        else:
            registered = min(since, created_ms) - int(rng.uniform(0.05, 6) * YEAR_MS)
        registered = registered - registered % 1000 + rng.randrange(1000)  # any millisecond
        track_from = max(start_ms, registered)
        track_until = end_ms
        quit_ms = None
        if leave_event is not None and rng.random() < 0.5:
            # nobody in the clan updates them any more
            track_until = min(end_ms, leave_event + int(rng.uniform(0, 60) * DAY_MS))
        elif leave_event is None and index > 0 and days > 60 and rng.random() < 0.06:
            # quit the game: the last reading is 40+ days old
            back = rng.uniform(40, min(300, days - 10))
            candidate = end_ms - int(back * DAY_MS)
            if candidate > track_from + 2 * DAY_MS:
                track_until = candidate
                quit_ms = max(track_from, candidate - int(rng.uniform(0, 20) * DAY_MS))
        if track_until <= track_from:
            track_until = min(end_ms, track_from + 2 * DAY_MS)
        build = rng.choices(("main", "f2p", "zerker", "def1"), weights=(93, 3, 3, 1))[0]
        imported = None
        if rng.random() < 0.05:
            imported = from_ms(rng.randrange(min(registered, start_ms - 1), start_ms))
        roster.append(
            WomPlayer(
                id=pid,
                display_name=display_name,
                type=_type_for(display_name, rng),
                build=build,
                status="active",
                country=rng.choice(_COUNTRIES) if rng.random() < 0.5 else None,
                registered_at=from_ms(registered),
                role=role,
                member_since=from_ms(since),
                client_sync_joined_at=None if sync is None else from_ms(sync),
                left_at=None if leave_event is None else from_ms(leave_event),
                role_changed_at=None if changed_ms is None else from_ms(changed_ms),
                previous_role=previous,
                last_imported_at=imported,
                track_from_ms=track_from,
                track_until_ms=track_until,
                quit_ms=quit_ms,
            )
        )
    changes = _invent_name_changes(rng, roster, taken, name_changes, start_ms, end_ms, pad)
    return WomGroup(
        seed=seed,
        group_id=group_id,
        name=name,
        start_ms=start_ms,
        end_ms=end_ms,
        interval_ms=max(60_000, int(snapshot_every_hours * HOUR_MS)),
        created_ms=created_ms,
        players=roster,
        name_changes=changes,
        events=events,
    )


def _floor_day(unix_ms: int) -> int:
    return unix_ms - unix_ms % DAY_MS


def _invent_roster(rng: random.Random, count: int, start_ms: int, end_ms: int) -> list[PlayerSpec]:
    taken: set[str] = set()
    names: list[str] = []
    for tricky in _TRICKY_NAMES[:count]:
        taken.add(normalize_osrs_name(tricky))
        names.append(tricky)
    while len(names) < count:
        names.append(_invent_name(rng, taken))
    pad = min(DAY_MS, (end_ms - start_ms) // 4)
    specs: list[PlayerSpec] = []
    for index, display_name in enumerate(names):
        joined: int | None = None
        if index >= 6 and rng.random() < 0.25:
            joined = rng.randrange(start_ms + pad, end_ms - pad)
        left: int | None = None
        if index >= 6 and rng.random() < 0.08:
            low = (joined or start_ms) + pad
            if low < end_ms - pad:
                left = rng.randrange(low, end_ms - pad)
        if index == 0:
            role = "owner"
        elif index < 3:
            role = "deputy_owner"
        elif index < 6:
            role = "administrator"
        elif joined is not None and joined > end_ms - 30 * DAY_MS:
            role = "recruit"
        else:
            role = rng.choices((*_RANKS, "recruit"), weights=(4, 5, 6, 8, 8, 6, 3, 4))[0]
        specs.append(
            (
                display_name,
                role,
                None if joined is None else from_ms(joined),
                None if left is None else from_ms(left),
            )
        )
    return specs


def _invent_name_changes(
    rng: random.Random,
    roster: list[WomPlayer],
    taken: set[str],
    count: int,
    start_ms: int,
    end_ms: int,
    pad: int,
) -> list[_NameChange]:
    candidates = [p for p in roster if p.is_member and p.track_from_ms < end_ms - 2 * pad]
    chosen = rng.sample(candidates, k=min(count, len(candidates)))
    changes: list[_NameChange] = []
    for player in chosen:
        old_name = _invent_name(rng, taken)
        low = max(start_ms, player.track_from_ms) + pad
        resolved = rng.randrange(low, max(low + 1, end_ms - pad))
        created = resolved - rng.randrange(5_000, 3 * HOUR_MS)
        changes.append(_NameChange(0, player.id, old_name, player.display_name, created, resolved))
    changes.sort(key=lambda c: c.resolved_ms)
    # WOM ids grow with time, with other groups' changes in between
    next_id = 80_000 + rng.randrange(1, 9_000)
    numbered = []
    for change in changes:
        next_id += rng.randint(1, 40)
        numbered.append(
            _NameChange(
                next_id,
                change.player_id,
                change.old_name,
                change.new_name,
                change.created_ms,
                change.resolved_ms,
            )
        )
    return numbered
