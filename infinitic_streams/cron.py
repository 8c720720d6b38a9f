"""Cron expressions of schedules (pure): checked, and their next firing computed, with croniter
in the schedule's time zone (zoneinfo), so daylight-saving changes follow croniter's rules.

Two forms: 5 fields `minute hour day month weekday`, or 6 fields with the seconds FIRST
(`second minute hour day month weekday`, as Quartz and Spring write it): `*/2 * * * * *` fires
every 2 seconds. Times are kept as epoch milliseconds; a firing's time is a whole second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

OVERLAPS = ("skip", "allow")


def check(cron: str, timezone: str, overlap: str = "skip") -> None:
    """ValueError naming what is wrong with a schedule's cron, time zone or overlap policy."""
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron expression {cron!r} has {len(fields)} fields: give 5 (minute hour day month "
            "weekday) or 6 with the seconds first (second minute hour day month weekday)"
        )
    try:
        croniter(cron, datetime.now(UTC), second_at_beginning=len(fields) == 6)
    except (ValueError, KeyError) as error:  # croniter's errors are ValueErrors
        raise ValueError(f"bad cron expression {cron!r}: {error}") from None
    zone(timezone)
    if overlap not in OVERLAPS:
        raise ValueError(f"unknown overlap policy {overlap!r}: use one of {', '.join(OVERLAPS)}")


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r}: give an IANA name like 'UTC' or 'Europe/Paris'"
        ) from None


def next_fire_ms(cron: str, timezone: str, after_ms: int) -> int:
    """The first firing strictly after `after_ms`."""
    base = datetime.fromtimestamp(after_ms / 1000, zone(timezone))
    six = len(cron.split()) == 6
    fire: datetime = croniter(cron, base, second_at_beginning=six).get_next(datetime)
    return int(fire.timestamp()) * 1000


def iso(at_ms: int) -> str:
    """`2026-01-01T00:00:02Z`: a firing's time in UTC, to the second."""
    return datetime.fromtimestamp(at_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def firing_id(schedule_id: str, fire_ms: int) -> str:
    """The id of the workflow a firing starts: the same if that firing is ever redone."""
    return f"{schedule_id}@{iso(fire_ms)}"
