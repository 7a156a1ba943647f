"""Wise Old Man API v2 payloads turned into typed records.

Pure parsing, like :mod:`clanpulse.sources.discord_api`: the WOM client fetches and decodes
the JSON, this module validates it and maps it to :mod:`clanpulse.records`. Fields we do not
read are ignored, and any metric key is accepted in a snapshot, because WOM adds bosses and
activities as the game does; ``-1`` ("not on the hiscores") is a valid value wherever WOM
uses it. A payload without the shape we read raises :class:`ApiPayloadError` naming the
endpoint and the field path.

A snapshot's ``data`` object is kept as sent (after validation), so the store holds WOM's full
reading and per-metric gains can be recomputed from it with
:mod:`clanpulse.analytics.wom_gains`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    TypeAdapter,
    model_validator,
    with_config,
)
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict

from clanpulse.analytics.wom_gains import MetricGain, total_boss_kills
from clanpulse.names import normalize_osrs_name
from clanpulse.records import GroupEvent, GroupMembership, NameChange, Snapshot, WomPlayer
from clanpulse.sources.discord_api import ApiPayloadError, Timestamp, _validate

__all__ = [
    "ApiPayloadError",
    "PlayerGained",
    "parse_bulk_hiscores",
    "parse_group",
    "parse_group_activity",
    "parse_name_changes",
    "parse_player",
    "parse_player_gained",
    "parse_snapshots",
    "snapshot_from_data",
]

# Ids and hiscores numbers end up in signed 64-bit columns.
_INT64_LIMIT = 2**63

WomId = Annotated[int, Field(ge=1, lt=_INT64_LIMIT)]
# Experience, kills, score or rank; -1 means "not on the hiscores".
HiscoresNumber = Annotated[int, Field(ge=-1, lt=_INT64_LIMIT)]
Name = Annotated[str, Field(min_length=1)]


class _Payload(BaseModel):
    # Strict: WOM sends real JSON types, so a "52" where a number belongs means the payload is
    # not what we think it is. NaN and infinities are not JSON and never a real value.
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        alias_generator=to_camel,
    )


def _same_player(expected: int, found: int, where: str) -> None:
    # Records are keyed by player id; a payload whose parts disagree would file one player's
    # data under another.
    if expected != found:
        raise ValueError(f"{where} {found} is not player {expected}")


class ApiPlayer(_Payload):
    id: WomId
    username: Name
    display_name: Name
    type: str
    build: str
    status: str
    exp: HiscoresNumber
    ehp: float
    ehb: float
    registered_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    last_changed_at: Timestamp | None = None

    def to_record(self) -> WomPlayer:
        return WomPlayer(
            id=self.id,
            # Already WOM's key; normalized again so every OSRS name in clanpulse meets on
            # exactly the same rule.
            username=normalize_osrs_name(self.username),
            display_name=self.display_name,
            type=self.type,
            build=self.build,
            status=self.status,
            exp=self.exp,
            ehp=self.ehp,
            ehb=self.ehb,
            registered_at=self.registered_at,
            updated_at=self.updated_at,
            last_changed_at=self.last_changed_at,
        )


# The entries of a snapshot are checked as typed dicts, not models: a backfill validates
# hundreds of thousands of them, and building a model object per entry cost more than
# everything else the harvest does.
_ENTRY = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")


@with_config(_ENTRY)
class ApiSkill(TypedDict):
    experience: HiscoresNumber
    rank: HiscoresNumber
    level: int
    ehp: float


@with_config(_ENTRY)
class ApiBoss(TypedDict):
    kills: HiscoresNumber
    rank: HiscoresNumber
    ehb: float


@with_config(_ENTRY)
class ApiActivity(TypedDict):
    score: HiscoresNumber
    rank: HiscoresNumber


@with_config(_ENTRY)
class ApiComputedMetric(TypedDict):
    value: float
    rank: HiscoresNumber


@with_config(_ENTRY)
class ApiComputed(TypedDict):
    ehp: ApiComputedMetric
    ehb: ApiComputedMetric


def _with_overall(skills: dict[str, ApiSkill]) -> dict[str, ApiSkill]:
    if "overall" not in skills:
        raise ValueError("no 'overall' skill")
    return skills


class ApiSnapshotData(_Payload):
    skills: Annotated[dict[str, ApiSkill], AfterValidator(_with_overall)]
    bosses: dict[str, ApiBoss]
    activities: dict[str, ApiActivity]
    computed: ApiComputed


class ApiSnapshot(_Payload):
    player_id: WomId
    created_at: Timestamp
    data: ApiSnapshotData
    _sent_data: Mapping[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_sent_data(
        cls, value: object, handler: ModelWrapValidatorHandler[ApiSnapshot]
    ) -> ApiSnapshot:
        # The validated model drops fields it does not declare; the record keeps WOM's reading
        # whole, so the ``data`` object is taken as sent once it is known to be valid.
        snapshot = handler(value)
        if isinstance(value, dict):
            snapshot._sent_data = value["data"]
        return snapshot

    def to_record(self) -> Snapshot:
        return snapshot_from_data(self.player_id, self.created_at, self._sent_data)


class ApiMembership(_Payload):
    player_id: WomId
    role: str | None = None
    created_at: Timestamp
    client_sync_joined_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    player: ApiPlayer

    @model_validator(mode="after")
    def _one_player(self) -> ApiMembership:
        _same_player(self.player_id, self.player.id, "player.id")
        return self

    def to_record(self) -> GroupMembership:
        # WOM's createdAt is when the member was added to the WOM group; the in-game join date
        # synced by the RuneLite plugin is the truer one when WOM has it.
        joined_at = self.client_sync_joined_at or self.created_at
        return GroupMembership(
            player=self.player.to_record(),
            role=self.role,
            joined_at=joined_at,
            updated_at=self.updated_at,
        )


class ApiGroup(_Payload):
    id: WomId
    name: Name
    memberships: list[ApiMembership]


class ApiPlayerDetails(ApiPlayer):
    latest_snapshot: ApiSnapshot | None

    @model_validator(mode="after")
    def _one_player(self) -> ApiPlayerDetails:
        if self.latest_snapshot is not None:
            _same_player(self.id, self.latest_snapshot.player_id, "latestSnapshot.playerId")
        return self


class ApiMemberHiscores(_Payload):
    player: ApiPlayer
    data: ApiSnapshot

    @model_validator(mode="after")
    def _one_player(self) -> ApiMemberHiscores:
        _same_player(self.player.id, self.data.player_id, "data.playerId")
        return self


class ApiNameChange(_Payload):
    id: WomId
    player_id: WomId
    old_name: Name
    new_name: Name
    status: str
    resolved_at: Timestamp | None = None
    updated_at: Timestamp

    @property
    def is_approved(self) -> bool:
        return self.status == "approved"

    def to_record(self) -> NameChange:
        # resolvedAt is when WOM approved the change; should it be missing, the change's last
        # update is the closest time WOM gives.
        return NameChange(
            id=self.id,
            player_id=self.player_id,
            old_name=self.old_name,
            new_name=self.new_name,
            resolved_at=self.resolved_at or self.updated_at,
        )


class ApiGroupEvent(_Payload):
    player_id: WomId
    # WOM has exactly these; anything else means the payload is not the one we think it is,
    # and a misread join or leave would corrupt membership history.
    type: Literal["joined", "left", "changed_role"]
    role: str | None = None
    previous_role: str | None = None
    created_at: Timestamp
    player: ApiPlayer | None = None

    @model_validator(mode="after")
    def _one_player(self) -> ApiGroupEvent:
        if self.player is not None:
            _same_player(self.player_id, self.player.id, "player.id")
        return self

    def to_record(self) -> GroupEvent:
        return GroupEvent(
            player_id=self.player_id,
            type=self.type,
            role=self.role,
            previous_role=self.previous_role,
            at=self.created_at,
            player=None if self.player is None else self.player.to_record(),
        )


class ApiDelta(_Payload):
    gained: float
    start: float
    end: float

    def to_gain(self) -> MetricGain:
        return MetricGain(gained=self.gained, start=self.start, end=self.end)


class ApiSkillGain(_Payload):
    experience: ApiDelta


class ApiBossGain(_Payload):
    kills: ApiDelta


class ApiActivityGain(_Payload):
    score: ApiDelta


class ApiComputedGain(_Payload):
    value: ApiDelta


class ApiGainedData(_Payload):
    skills: dict[str, ApiSkillGain]
    bosses: dict[str, ApiBossGain]
    activities: dict[str, ApiActivityGain]
    computed: dict[str, ApiComputedGain]


class ApiPlayerGained(_Payload):
    # Null, with all-zero deltas, when the player was not updated inside the window.
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    data: ApiGainedData


@dataclass(frozen=True, slots=True)
class PlayerGained:
    """One player's gains as WOM computed them (``GET /players/{username}/gained``).

    ``starts_at``/``ends_at`` are the snapshots WOM actually compared, which can be well inside
    the asked window. ``gains`` holds the value delta of each metric (skill experience, boss
    kills, activity score, computed ``ehp``/``ehb`` value) keyed like
    :func:`clanpulse.analytics.wom_gains.metric_gains`, so the two compare directly.
    """

    starts_at: datetime | None
    ends_at: datetime | None
    gains: dict[str, MetricGain]


_GROUP = TypeAdapter(ApiGroup)
_PLAYER_DETAILS = TypeAdapter(ApiPlayerDetails)
_SNAPSHOTS = TypeAdapter(list[ApiSnapshot])
_BULK_HISCORES = TypeAdapter(list[ApiMemberHiscores])
_NAME_CHANGES = TypeAdapter(list[ApiNameChange])
_GROUP_ACTIVITY = TypeAdapter(list[ApiGroupEvent])
_PLAYER_GAINED = TypeAdapter(ApiPlayerGained)


def snapshot_from_data(player_id: int, created_at: datetime, data: Mapping[str, Any]) -> Snapshot:
    """A snapshot record from WOM's snapshot ``data`` object, with its headline columns.

    ``data`` must have the shape the parsers here validate. It is kept as given, not copied:
    it comes straight from a freshly decoded response that nothing else holds (copying every
    reading dominated the cost of a backfill).
    """
    return Snapshot(
        player_id=player_id,
        taken_at=created_at,
        overall_xp=data["skills"]["overall"]["experience"],
        ehp=float(data["computed"]["ehp"]["value"]),
        ehb=float(data["computed"]["ehb"]["value"]),
        boss_kills=total_boss_kills(data),
        data=dict(data),
    )


def parse_group(payload: object, endpoint: str) -> tuple[str, list[GroupMembership]]:
    """Group details (``GET /groups/{id}``): the group's name and every membership."""
    group = _validate(_GROUP, payload, endpoint)
    return group.name, [membership.to_record() for membership in group.memberships]


def parse_player(payload: object, endpoint: str) -> tuple[WomPlayer, Snapshot | None]:
    """Player details (``GET /players/{username}``) and the latest snapshot, if ever tracked."""
    details = _validate(_PLAYER_DETAILS, payload, endpoint)
    latest = details.latest_snapshot
    return details.to_record(), None if latest is None else latest.to_record()


def parse_snapshots(payload: object, endpoint: str) -> list[Snapshot]:
    """A page of ``GET /players/{username}/snapshots``, in the order sent (newest first)."""
    return [snapshot.to_record() for snapshot in _validate(_SNAPSHOTS, payload, endpoint)]


def parse_bulk_hiscores(payload: object, endpoint: str) -> list[tuple[WomPlayer, Snapshot]]:
    """``GET /groups/{id}/bulk-hiscores``: each member with a snapshot, and the latest one."""
    members = _validate(_BULK_HISCORES, payload, endpoint)
    return [(member.player.to_record(), member.data.to_record()) for member in members]


def parse_name_changes(payload: object, endpoint: str) -> list[NameChange]:
    """A page of ``GET /groups/{id}/name-changes``: the approved changes, in the order sent.

    Every entry is validated, but only approved ones are returned: a pending or denied change
    says nothing about who the player is.
    """
    changes = _validate(_NAME_CHANGES, payload, endpoint)
    return [change.to_record() for change in changes if change.is_approved]


def parse_group_activity(payload: object, endpoint: str) -> list[GroupEvent]:
    """A page of ``GET /groups/{id}/activity`` (membership events), in the order sent."""
    return [event.to_record() for event in _validate(_GROUP_ACTIVITY, payload, endpoint)]


def parse_player_gained(payload: object, endpoint: str) -> PlayerGained:
    """``GET /players/{username}/gained``: the compared window and each metric's value delta."""
    gained = _validate(_PLAYER_GAINED, payload, endpoint)
    data = gained.data
    gains = {name: skill.experience.to_gain() for name, skill in data.skills.items()}
    gains.update((name, boss.kills.to_gain()) for name, boss in data.bosses.items())
    gains.update((name, activity.score.to_gain()) for name, activity in data.activities.items())
    gains.update((name, metric.value.to_gain()) for name, metric in data.computed.items())
    return PlayerGained(starts_at=gained.starts_at, ends_at=gained.ends_at, gains=gains)
