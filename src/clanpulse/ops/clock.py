"""Time for the scheduler and its jobs: real, or scaled to run days of schedule in minutes.

Under a :class:`ScaledClock` every span of virtual time is shorter in real time by the
same factor: cron fires, the misfire grace, and the request windows of rate limits
that are fixed by the API rather than announced per response (Wise Old Man's).
"""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def to_virtual(self, real: datetime) -> datetime:
        return real

    def to_real(self, virtual: datetime) -> datetime:
        return virtual

    def seconds(self, virtual_seconds: float) -> float:
        """Real seconds for a span of virtual time."""
        return virtual_seconds

    def anchor(self) -> None:
        """Called when the schedule starts; a scaled clock starts counting from here."""


class ScaledClock(Clock):
    """Virtual time that starts at ``start`` and runs ``scale`` times faster than real time."""

    def __init__(self, start: datetime, scale: float) -> None:
        self.real_origin = datetime.now(UTC)
        self.virtual_origin = start.astimezone(UTC)
        self.scale = scale

    def now(self) -> datetime:
        return self.to_virtual(datetime.now(UTC))

    def to_virtual(self, real: datetime) -> datetime:
        return self.virtual_origin + (real - self.real_origin) * self.scale

    def to_real(self, virtual: datetime) -> datetime:
        return self.real_origin + (virtual - self.virtual_origin) / self.scale

    def seconds(self, virtual_seconds: float) -> float:
        return virtual_seconds / self.scale

    def anchor(self) -> None:
        # the virtual start is the moment the schedule starts, however long opening the
        # database took: at 3600x a second of start-up would otherwise skip an hour of it
        self.real_origin = datetime.now(UTC)
