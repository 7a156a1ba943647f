"""What the JSON API returns (and the pages render): the OpenAPI schema is made of these.

Times are UTC (ISO 8601 with ``Z``); pages show them in CLANPULSE_TIMEZONE. Gains are
``null`` where the report has no data (no reading in the window), never a made-up 0.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Window = Literal["7d", "30d", "90d"]
Status = Literal["new", "active", "inactive"]


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class MemberRow(Out):
    member_id: int
    name: str
    role: str | None
    joined_at: datetime | None
    status: Status
    messages: int = Field(description="Counted messages in the window")
    xp_gained: int | None
    ehp_gained: float | None
    ehb_gained: float | None
    boss_kills_gained: int | None
    last_message_at: datetime | None
    last_xp_change_at: datetime | None
    last_seen_at: datetime | None = Field(description="The later of the two above")


class MemberPage(Out):
    as_of: datetime
    window: Window
    total: int = Field(description="Members matching the filters, before paging")
    offset: int
    limit: int
    members: list[MemberRow]


class AccountOut(Out):
    platform: str
    id: str | None
    name: str
    clan_role: str | None
    joined_at: datetime | None
    left_at: datetime | None


class RenameOut(Out):
    old_name: str
    new_name: str
    at: datetime


class DayOut(Out):
    day: date = Field(description="Local date in the configured time zone")
    start: datetime
    end: datetime
    messages: int
    xp_gained: int | None


class MemberDetail(Out):
    as_of: datetime
    member_id: int
    name: str
    current: bool = Field(description="On the clan roster now (or no roster is kept)")
    row: MemberRow | None = Field(description="The member's clan report row, for the window")
    accounts: list[AccountOut]
    renames: list[RenameOut]
    last_seen_at: datetime | None
    days: list[DayOut]


class Standing(Out):
    rank: int
    member_id: int
    name: str
    value: float


class Leaderboard(Out):
    as_of: datetime
    metric: str
    window: Window
    standings: list[Standing]


class Activity(Out):
    as_of: datetime
    window: Window
    zone: str
    days: list[DayOut]


class RosterEvent(Out):
    name: str
    at: datetime


class Roster(Out):
    as_of: datetime
    window: Window
    joined: list[RosterEvent]
    left: list[RosterEvent]
    renames: list[RenameOut]


class Overview(Out):
    as_of: datetime
    window: Window
    members: int
    by_status: dict[str, int]
    messages: int
    xp_gained: int
    top_messages: list[Standing]
    top_xp: list[Standing]
    joined: list[RosterEvent]
    left: list[RosterEvent]


class InactiveMember(Out):
    member_id: int
    name: str
    role: str | None
    joined_at: datetime | None
    last_message_at: datetime | None
    last_xp_change_at: datetime | None
    reasons: list[str]


class Inactive(Out):
    as_of: datetime
    inactive_days: int
    members: list[InactiveMember]


class JobOut(Out):
    job: str
    schedule: str
    disabled: str | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None
    last_items: int
    last_error: str | None
    last_ok_at: datetime | None
    failures_in_a_row: int
    next_run: datetime | None


class RunOut(Out):
    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    items: int
    error: str | None


class Health(Out):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: an alert is open or a job failed its last run"
    )
    now: datetime
    zone: str
    latest_message_at: datetime | None
    jobs: list[JobOut]
    open_alerts: list[str]


class Jobs(Out):
    health: Health
    runs: list[RunOut]


class Problem(Out):
    detail: str


class Done(Out):
    detail: str
