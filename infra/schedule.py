"""A stack's schedule: the weekly hours it serves, in its own timezone, and the instants it wakes and sleeps.

`activeHours` grammar (README "Schedules"): windows separated by `;`, each `DAYS TIMES`:
  DAYS   a day (`Mon` … `Sun`), a range (`Mon-Fri`, `Fri-Mon` wraps past Sunday), or a list of those (`Mon,Wed,Fri-Sat`)
  TIMES  `HH:MM-HH:MM` (00:00 to 24:00, end after start), or a list of them (`08:00-12:00,13:00-18:00`)
e.g. `Mon-Fri 08:00-20:00; Sat 10:00-14:00`. Times are wall-clock times in the IANA `timezone` (zoneinfo),
so a window keeps its local hours across daylight-saving changes; a wall-clock time the spring change
skips happens as the clock shows it an hour later (02:30 → 03:30), one the autumn change repeats the first time. Windows that touch
(`Mon 20:00-24:00; Tue 00:00-08:00`) are one stretch: the stack stays up across them.

Pure functions of the schedule and an instant: no clock is read here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from infra.errors import BadInput

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
HOURS_PER_WEEK = 7 * 24
TIME = r"(\d{2}):(\d{2})"
WINDOW = re.compile(r"(?P<days>[A-Za-z,-]+)\s+(?P<times>[\d:,\s-]+)")
TIMES = re.compile(rf"{TIME}-{TIME}")
# The host an awake load balancer's asleep rule matches: .invalid never resolves (RFC 2606), so no request names it.
NO_REQUEST_HOST = "asleep.invalid"


class ScheduleError(BadInput):
    """An activeHours text or timezone the grammar refuses; the message says what and where (config names the field)."""


@dataclass(frozen=True)
class Stretch:
    """Time the stack serves without a break: minutes from Monday 00:00 (wall clock) to where it stops; `end`
    may pass MINUTES_PER_WEEK when it runs on into the next week."""

    start: int
    end: int


@dataclass(frozen=True)
class Schedule:
    """`schedule: {timezone, activeHours}` parsed: the zone and the week's serving stretches, in order."""

    timezone: str
    active_hours: str  # as written
    stretches: tuple[Stretch, ...]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def always(self) -> bool:
        return self.stretches == (Stretch(0, MINUTES_PER_WEEK),)

    @property
    def weekly_hours(self) -> float:
        """Wall-clock hours a week it serves (a week with a daylight-saving change is an hour off)."""
        return sum(s.end - s.start for s in self.stretches) / 60

    def active_at(self, instant: datetime) -> bool:
        minute = _week_minute(instant.astimezone(self.zone))
        return any(s.start <= m < s.end for s in self.stretches for m in (minute, minute + MINUTES_PER_WEEK))

    def next_wake(self, instant: datetime) -> datetime | None:
        """The first instant (UTC) after `instant` at which it starts serving (None: it never sleeps)."""
        return None if self.always else self._next(instant, [s.start for s in self.stretches])

    def next_sleep(self, instant: datetime) -> datetime | None:
        """The first instant (UTC) after `instant` at which it stops serving (None: it never sleeps)."""
        return None if self.always else self._next(instant, [s.end % MINUTES_PER_WEEK for s in self.stretches])

    def _next(self, instant: datetime, minutes: list[int]) -> datetime:
        local = instant.astimezone(self.zone)
        monday = local.date() - timedelta(days=local.weekday())
        candidates = (_wall_clock(monday + timedelta(weeks=week), minute, self.zone)
                      for week in (0, 1, 2) for minute in sorted(minutes))
        return next(c for c in candidates if c > instant)

    def active_hours_between(self, start: datetime, end: datetime) -> float:
        """Real hours (daylight-saving changes counted) it serves between two instants."""
        total = timedelta()
        cursor, end = start.astimezone(UTC), end.astimezone(UTC)
        while cursor < end:
            if self.active_at(cursor):
                stop = min(self.next_sleep(cursor) or end, end)
                total += stop - cursor
            else:
                stop = min(self.next_wake(cursor) or end, end)
            cursor = stop
        return total.total_seconds() / 3600

    def active_hours_in_month(self, year: int, month: int) -> float:
        """Real hours it serves in a calendar month of its timezone."""
        first = datetime(year, month, 1, tzinfo=self.zone)
        after = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=self.zone)
        return self.active_hours_between(first, after)

    def transitions(self) -> tuple[tuple[str, tuple[str, ...], time], ...]:
        """(\"wake\" | \"sleep\", days, wall-clock time) of each weekly change, days grouped by equal times: what
        the clouds' schedulers take as cron-like recurrences in the stack's timezone."""
        changes: dict[tuple[str, time], list[str]] = {}
        for stretch in self.stretches:
            for kind, minute in (("wake", stretch.start), ("sleep", stretch.end)):
                day, at = _day_and_time(minute)
                changes.setdefault((kind, at), []).append(day)
        return tuple((kind, tuple(days), at) for (kind, at), days in sorted(changes.items(), key=lambda c: (c[0][0] == "sleep",
                                                                                                                  c[0][1])))

    def offset_change_after(self, instant: datetime, within: timedelta = timedelta(days=366)) -> datetime | None:
        """The first instant after `instant` at which the zone's UTC offset changes (daylight saving), to the minute;
        None when it keeps its offset that long."""
        zone, start = self.zone, instant.astimezone(UTC)
        offset = start.astimezone(zone).utcoffset()
        hour = next((h for h in range(1, int(within.total_seconds() // 3600) + 1)
                     if (start + timedelta(hours=h)).astimezone(zone).utcoffset() != offset), None)
        if hour is None:
            return None
        low, high = start + timedelta(hours=hour - 1), start + timedelta(hours=hour)  # the change lies in (low, high]
        while high - low > timedelta(minutes=1):
            middle = low + (high - low) / 2
            low, high = (low, middle) if middle.astimezone(zone).utcoffset() != offset else (middle, high)
        return high.replace(second=0, microsecond=0)

    def utc_transitions(self, instant: datetime) -> tuple[tuple[str, tuple[str, ...], time], ...]:
        """`transitions` moved to UTC at the zone's offset at `instant` (for schedulers that take UTC only): a change
        that crosses midnight in UTC falls on the neighbouring days."""
        offset = int(instant.astimezone(self.zone).utcoffset().total_seconds() // 60)
        out = []
        for kind, days, at in self.transitions():
            minutes = [(DAYS.index(d) * MINUTES_PER_DAY + at.hour * 60 + at.minute - offset) % MINUTES_PER_WEEK for d in days]
            out.append((kind, tuple(_day_and_time(m)[0] for m in minutes), _day_and_time(minutes[0])[1]))
        return tuple(out)

    def wake_after(self, stretch: Stretch) -> tuple[str, time]:
        """(day, wall-clock time) of the wake that follows a stretch's end: the next stretch's start, round the week."""
        following = self.stretches[(self.stretches.index(stretch) + 1) % len(self.stretches)]
        return _day_and_time(following.start)

    def asleep_switches(self) -> tuple[tuple[str, tuple[str, ...], time, Stretch | None], ...]:
        """When a load balancer's asleep rule changes, as (\"wake\" | \"sleep\", days, wall-clock time, stretch): each
        wake (days grouped by equal times, stretch None) turns it off; each stretch's end turns it on with the answer
        of the wake after that stretch (one day each, as the answers differ)."""
        wakes = [("wake", days, at, None) for kind, days, at in self.transitions() if kind == "wake"]
        sleeps = []
        for stretch in self.stretches:
            day, at = _day_and_time(stretch.end)
            sleeps.append(("sleep", (day,), at, stretch))
        return (*wakes, *sleeps)

    def sleeping_after(self, instant: datetime) -> Stretch | None:
        """The stretch whose end began the sleep `instant` is in (its asleep answer is the one due then); None awake."""
        if self.active_at(instant):
            return None
        minute = _week_minute(instant.astimezone(self.zone))
        return min(self.stretches, key=lambda s: (minute - s.end) % MINUTES_PER_WEEK)

    def asleep_answer(self, stretch: Stretch) -> dict[str, str]:
        """The JSON a load balancer answers (503) from a stretch's end until the next wake: when, in the stack's zone."""
        day, at = self.wake_after(stretch)
        wakes = f"{day} {at:%H:%M}"
        return {"error": "asleep", "message": f"outside its active hours; it wakes up {wakes} {self.timezone}", "wakes_at": wakes,
                "timezone": self.timezone, "active_hours": self.active_hours}


def unix_cron(days: Sequence[str], at: time) -> str:
    """A weekly recurrence in Unix cron (minute hour day month weekday, Sunday 0): EC2 Auto Scaling's scheduled
    actions and ESS's scheduled tasks take this form."""
    return f"{at.minute} {at.hour} * * {','.join(str((DAYS.index(d) + 1) % 7) for d in days)}"


def quartz_days(days: tuple[str, ...] | list[str]) -> str:
    """The day-of-week field of Quartz-style crons (EventBridge Scheduler, Alibaba OOS): MON,TUE,..."""
    return ",".join(day.upper() for day in days)


def _day_and_time(week_minute: int) -> tuple[str, time]:
    """The day and wall-clock time of a minute of the week (Monday 00:00 is 0; past the week's end wraps round)."""
    day, minute = divmod(week_minute % MINUTES_PER_WEEK, MINUTES_PER_DAY)
    return DAYS[day], time(minute // 60, minute % 60)


def _week_minute(local: datetime) -> int:
    return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute


def _wall_clock(monday: date, minute: int, zone: ZoneInfo) -> datetime:
    """The instant (in UTC) a week's wall-clock minute happens in `zone`: a time the spring change skips as
    the clock shows it an hour later (02:30 → 03:30), a time the autumn change repeats the first time."""
    local = (datetime.combine(monday, time()) + timedelta(minutes=minute)).replace(tzinfo=zone)
    return local.astimezone(UTC)


def _days(text: str) -> list[int]:
    days: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            start = _day(first)
            stop = _day(last) if last else start
        except ScheduleError:
            raise ScheduleError(f"{part!r}: days are {', '.join(DAYS)}, a range (Mon-Fri) or a list (Mon,Wed)") from None
        days += [(start + i) % 7 for i in range((stop - start) % 7 + 1)]
    return days


def _day(text: str) -> int:
    for index, day in enumerate(DAYS):
        if text.strip().lower() == day.lower():
            return index
    raise ScheduleError(text)


def _minute(hours: str, minutes: str, window: str) -> int:
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > MINUTES_PER_DAY:
        raise ScheduleError(f"{window!r}: {hours}:{minutes} is not a time of day (00:00 to 24:00)")
    return value


def parse_active_hours(text: str) -> tuple[Stretch, ...]:
    """The week's stretches of `text` (grammar: the module's docstring). Raises ScheduleError."""
    spans: list[tuple[int, int]] = []
    windows = [w.strip() for w in text.split(";") if w.strip()]
    if not windows:
        raise ScheduleError("no window: write e.g. 'Mon-Fri 08:00-20:00'")
    for window in windows:
        match = WINDOW.fullmatch(window)
        if not match:
            raise ScheduleError(f"{window!r}: a window is DAYS HH:MM-HH:MM, e.g. 'Mon-Fri 08:00-20:00'")
        days = _days(match["days"])
        for part in (p.strip() for p in match["times"].split(",")):
            times = TIMES.fullmatch(part)
            if not times:
                raise ScheduleError(f"{window!r}: {part!r} is not HH:MM-HH:MM")
            start, end = _minute(times[1], times[2], window), _minute(times[3], times[4], window)
            if end <= start:
                raise ScheduleError(f"{window!r}: {part} ends before it starts; a night is two windows "
                                    "('Fri 22:00-24:00; Sat 00:00-02:00')")
            spans += [(day * MINUTES_PER_DAY + start, day * MINUTES_PER_DAY + end) for day in days]
    return _merged(spans)


def _merged(spans: list[tuple[int, int]]) -> tuple[Stretch, ...]:
    """Overlapping or touching spans as one stretch, Sunday night running on into Monday morning."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if len(merged) > 1 and merged[-1][1] == MINUTES_PER_WEEK and merged[0][0] == 0:
        first = merged.pop(0)
        merged[-1][1] = MINUTES_PER_WEEK + first[1]
    return tuple(Stretch(start, end) for start, end in merged)


def zone_of(timezone: str) -> ZoneInfo:
    """The IANA zone of this name (zoneinfo: the system's tz database, /usr/share/zoneinfo). Raises ScheduleError."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{timezone!r} is not an IANA timezone (e.g. Europe/Berlin, America/New_York, UTC)") from None


def parse_schedule(timezone: str, active_hours: str) -> Schedule:
    """Raises ScheduleError for an unknown zone or activeHours outside the grammar."""
    zone_of(timezone)
    return Schedule(timezone, active_hours, parse_active_hours(active_hours))
