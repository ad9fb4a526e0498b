"""Open-time arithmetic: when a target counted in a calendar's open hours runs out.

Pure. A calendar is a week of opening hours in one IANA time zone, with whole-day holidays. SLA targets
are open time: `1h` asked at 17:00 on a 09:00-17:30 calendar is due at 09:30 on the next open day.
Opening hours are local wall-clock times, so a day when the clocks change is simply shorter or longer
in real time (DST-correct); the built-in `24x7` calendar is open always and costs nothing to compute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dispatch.core.protocol import CalendarHours

__all__ = ["ALWAYS_OPEN", "Calendar", "DAY_NAMES", "MINUTES_PER_DAY", "OpenHours"]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
# How far ahead a target is counted before the calendar is taken for one that never opens: longer than
# any sane target (5 open days on a calendar open one hour a week is 120 weeks) and still bounded.
_HORIZON_DAYS = 3 * 366

# One day's opening hours: (start, end) in minutes after local midnight, sorted, not overlapping; an end
# of 1440 is midnight at the end of the day.
OpenHours = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Calendar:
    """Opening hours per weekday (Monday first) in `timezone`, closed on `holidays` (local dates)."""

    name: str
    timezone: str = "UTC"
    week: tuple[OpenHours, ...] = ((( 0, MINUTES_PER_DAY),),) * 7  # fmt: skip
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError("a week has seven days")
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))
        if not any(self.week):
            raise ValueError(f"calendar {self.name!r} is never open")

    @property
    def always_open(self) -> bool:
        """Open round the clock every day of the year: open time is wall time."""
        return not self.holidays and all(day == ((0, MINUTES_PER_DAY),) for day in self.week)

    # --- the questions the SLA clock asks ---------------------------------------------------------------

    def add(self, start: datetime, open_time: timedelta) -> datetime:
        """The instant at which `open_time` of open time has passed since `start`. A target that runs
        out exactly at a closing time is due at that closing time."""
        if self.always_open or open_time <= timedelta(0):
            return start + max(open_time, timedelta(0))
        left = open_time
        for opens, closes in self._spans_from(start):
            begin = max(opens, start)
            if left <= closes - begin:
                return begin + left
            left -= closes - begin
        raise ValueError(f"calendar {self.name!r} does not open within {_HORIZON_DAYS} days of {start:%Y-%m-%d}")

    def open_between(self, start: datetime, end: datetime) -> timedelta:
        """How much open time lies between `start` and `end` (negative when `end` comes first)."""
        if end < start:
            return -self.open_between(end, start)
        if self.always_open:
            return end - start
        total = timedelta(0)
        for opens, closes in self._spans_from(start):
            if opens >= end:
                break
            total += min(closes, end) - max(opens, start)
        return total

    def is_open(self, at: datetime) -> bool:
        if self.always_open:
            return True
        opens, _ = next(self._spans_from(at))
        return opens <= at

    def next_opening(self, at: datetime) -> datetime:
        """When the calendar next opens at or after `at` (`at` itself while open)."""
        if self.always_open:
            return at
        opens, _ = next(self._spans_from(at))
        return max(opens, at)

    def local(self, at: datetime) -> datetime:
        """`at` in the calendar's own time zone."""
        return at.astimezone(self._zone)

    # --- on the wire -------------------------------------------------------------------------------------

    def hours(self) -> CalendarHours:
        """This calendar as boards receive it."""
        week = {
            day: [f"{_clock(start)}-{_clock(end)}" for start, end in spans]
            for day, spans in zip(DAY_NAMES, self.week, strict=True)
            if spans
        }
        return CalendarHours(name=self.name, timezone=self.timezone, week=week, holidays=sorted(self.holidays))

    @classmethod
    def from_hours(cls, hours: CalendarHours) -> Calendar:
        week = tuple(tuple(_span(text) for text in hours.week.get(day, [])) for day in DAY_NAMES)
        return cls(hours.name, hours.timezone, week, frozenset(hours.holidays))

    # --- spans ---------------------------------------------------------------------------------------------

    def _spans_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open spans (UTC instants) that end after `at`, in order; adjacent spans (a day open until
        24:00 and the next from 00:00) are joined."""
        day = at.astimezone(self._zone).date() - timedelta(days=1)  # a span of the day before may still run
        pending: tuple[datetime, datetime] | None = None
        for _ in range(_HORIZON_DAYS):
            for opens, closes in self._day_spans(day):
                if pending is not None and pending[1] == opens:
                    pending = (pending[0], closes)
                    continue
                if pending is not None and pending[1] > at:
                    yield pending
                pending = (opens, closes)
            day += timedelta(days=1)
        if pending is not None and pending[1] > at:
            yield pending

    def _day_spans(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        spans = []
        for start, end in self.week[day.weekday()]:
            opens = self._instant(day, start)
            closes = self._instant(day, end)
            if closes > opens:  # a span wholly inside a spring-forward gap has no length
                spans.append((opens, closes))
        return spans

    def _instant(self, day: date, minute: int) -> datetime:
        """Local wall-clock `minute` of `day` as a UTC instant (24:00 is the next day's midnight)."""
        if minute >= MINUTES_PER_DAY:
            day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self._zone)
        return local.astimezone(UTC)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _span(text: str) -> tuple[int, int]:
    """ "09:00-17:30" -> (540, 1050)."""
    start, _, end = text.partition("-")
    return int(start[:2]) * 60 + int(start[3:]), int(end[:2]) * 60 + int(end[3:])


ALWAYS_OPEN = Calendar("24x7")
