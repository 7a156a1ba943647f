"""Time at the edges: parsing what people type, formatting what they read. Inside, all is UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_as_of(text: str | None, zone: ZoneInfo, *, now: datetime | None = None) -> datetime:
    """Parse ``--as-of``.

    A date means midnight at its start in ``zone``; a datetime without offset is in ``zone``.
    """
    if text is None:
        return (now or datetime.now(UTC)).astimezone(UTC)
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--as-of {text!r} is not a date (2026-03-29) or date and time (2026-03-29T18:30)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``; microseconds only when there are any."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return f"{text}Z"


def utc_midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time(0), tzinfo=UTC)


def next_utc_midnight(moment: datetime) -> datetime:
    """The first UTC midnight at or after ``moment``."""
    floor = utc_midnight(moment)
    return floor if floor == moment else floor + timedelta(days=1)
