"""Builders of Wise Old Man records for tests that drive the store directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clanpulse.names import normalize_osrs_name
from clanpulse.records import GroupMembership, NameChange, Snapshot, WomPlayer
from clanpulse.sources.wom_api import snapshot_from_data


def player(pid: int, name: str) -> WomPlayer:
    return WomPlayer(id=pid, username=normalize_osrs_name(name), display_name=name)


def membership(p: WomPlayer, role: str, joined: datetime) -> GroupMembership:
    return GroupMembership(player=p, role=role, joined_at=joined)


def data(
    xp: int, *, ehp: float = 10.0, ehb: float = 1.0, zulrah: int = -1, slayer: int = 0
) -> dict[str, Any]:
    return {
        "skills": {
            "overall": {
                "metric": "overall",
                "experience": xp,
                "rank": 1000,
                "level": 1000,
                "ehp": ehp,
            },
            "slayer": {
                "metric": "slayer",
                "experience": slayer,
                "rank": 500,
                "level": 50,
                "ehp": 1.0,
            },
        },
        "bosses": {"zulrah": {"metric": "zulrah", "kills": zulrah, "rank": -1, "ehb": 0.0}},
        "activities": {},
        "computed": {
            "ehp": {"metric": "ehp", "value": ehp, "rank": 1},
            "ehb": {"metric": "ehb", "value": ehb, "rank": 1},
        },
    }


def snap(pid: int, when: datetime, xp: int, **kwargs: Any) -> Snapshot:
    return snapshot_from_data(pid, when, data(xp, **kwargs))


def rename(change_id: int, pid: int, old: str, new: str, when: datetime) -> NameChange:
    return NameChange(id=change_id, player_id=pid, old_name=old, new_name=new, resolved_at=when)
