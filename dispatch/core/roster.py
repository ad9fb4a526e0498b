"""People's time: shifts, on-call windows and rotations, fatigue rules and the call-out ladder.

Pure. `Roster.parse` reads the roster file's text (`serve --roster FILE`); the server asks it which
shift edges fell between two ticks, who is on call now and in which order to call them, and
(with a technician's `WorkLog`) whether a rule of rest would be broken by giving them work.

Day specs: a single day (`wed`), a range (`mon-fri`, `sat-sun`) or a list (`sat,sun`). Times are local
wall-clock in the technician's (or rotation's) IANA time zone; a range that ends at or before it starts
(`18:00-08:00`) ends the next day; `00:00-24:00` is the whole day.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatch.core.calendars import DAY_NAMES, MINUTES_PER_DAY
from dispatch.core.config import ConfigError, load_toml
from dispatch.core.durations import Duration, parse_duration

__all__ = ["Fatigue", "Roster", "Schedule", "Window", "WorkLog", "parse_window"]

_WINDOW = re.compile(r"([a-z,\-]+)\s+(\d\d):(\d\d)-(\d\d):(\d\d)")
# Turns of a rotation are counted from its first handoff on or after this day (any fixed day works:
# only the order of turns matters, and it must not change between restarts).
_ROTATION_EPOCH = date(2024, 1, 1)


# --- windows and schedules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Some days of the week, from `start` to `end` minutes after local midnight (an end at or before
    the start is on the next day)."""

    days: frozenset[int]
    start: int
    end: int

    @property
    def length(self) -> int:
        """Minutes from start to end."""
        return self.end - self.start if self.end > self.start else MINUTES_PER_DAY - self.start + self.end


def _days(spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"{spec!r}: days are mon..sun, a range (mon-fri) or a list (sat,sun)")
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _minute(hours: str, minutes: str, text: str) -> int:
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > MINUTES_PER_DAY:
        raise ValueError(f"{text!r}: {hours}:{minutes} is not a time of day (00:00 to 24:00)")
    return value


def parse_window(text: str) -> Window:
    """`mon-fri 08:00-16:00` -> Window; a ValueError in words for anything else."""
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'{text!r} is not a window: write e.g. "mon-fri 08:00-16:00"')
    start, end = _minute(match[2], match[3], text), _minute(match[4], match[5], text)
    if start == MINUTES_PER_DAY or (start == end and not (start, end) == (0, 0)):
        raise ValueError(f"{text!r} has no length")
    if (start, end) == (0, 0):
        end = MINUTES_PER_DAY
    return Window(_days(match[1]), start, end)


@dataclass(frozen=True)
class Schedule:
    """Windows in one time zone: a technician's shifts, their on-call times, a rotation's hours."""

    windows: tuple[Window, ...] = ()
    timezone: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    def spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The concrete periods (UTC instants) that overlap [start, end), in order; touching periods of
        consecutive days (00:00-24:00 every day) are joined."""
        joined: list[tuple[datetime, datetime]] = []
        for opens, closes in self.periods(start, end):
            if joined and opens <= joined[-1][1]:
                joined[-1] = (joined[-1][0], max(joined[-1][1], closes))
            else:
                joined.append((opens, closes))
        return joined

    def periods(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Each window's periods that overlap [start, end), in order, not joined."""
        spans: list[tuple[datetime, datetime]] = []
        day = start.astimezone(self._zone).date() - timedelta(days=1)  # last night's shift may still run
        last = end.astimezone(self._zone).date()
        while day <= last:
            for window in self.windows:
                if day.weekday() in window.days:
                    opens = self._instant(day, window.start)
                    closes = self._instant(day, window.start + window.length)
                    if closes > start and opens < end and closes > opens:
                        spans.append((opens, closes))
            day += timedelta(days=1)
        return sorted(spans)

    def span_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The period that covers `at`, if any."""
        for opens, closes in self.spans(at, at + timedelta(seconds=1)):
            if opens <= at < closes:
                return opens, closes
        return None

    def covers(self, at: datetime) -> bool:
        return self.span_at(at) is not None

    def edges(self, after: datetime, until: datetime) -> list[tuple[datetime, bool]]:
        """Starts (True) and ends (False) of periods in (after, until], in time order."""
        found = []
        for opens, closes in self.spans(after, until + timedelta(seconds=1)):
            if after < opens <= until:
                found.append((opens, True))
            if after < closes <= until:
                found.append((closes, False))
        return sorted(found)

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self._zone)

    def _instant(self, day: date, minute: int) -> datetime:
        extra, minute = divmod(minute, MINUTES_PER_DAY)
        local = datetime.combine(day + timedelta(days=extra), time(minute // 60, minute % 60), tzinfo=self._zone)
        return local.astimezone(UTC)


def _overlapping(windows: Iterable[Window], timezone: str) -> bool:
    """Whether any two windows overlap in some week (a sample fortnight shows every weekday twice)."""
    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, no DST change near it
    periods = Schedule(tuple(windows), timezone).periods(start, start + timedelta(days=14))
    return any(later[0] < earlier[1] for earlier, later in zip(periods, periods[1:], strict=False))


# --- rotations ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """Members take turns being on call within `hours`, one at a time, handing off every `length_days`."""

    name: str
    members: tuple[str, ...]
    hours: Schedule
    handoff_day: int
    handoff_minute: int
    length_days: int

    def on_turn(self, at: datetime) -> str:
        """The member whose turn it is at `at` (whether or not the rota's hours cover `at`)."""
        local = self.hours.local(at)
        epoch = _ROTATION_EPOCH + timedelta(days=(self.handoff_day - _ROTATION_EPOCH.weekday()) % 7)
        days = (local.date() - epoch).days
        if local.hour * 60 + local.minute < self.handoff_minute:
            days -= 1
        return self.members[(days // self.length_days) % len(self.members)]


# --- fatigue and work --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fatigue:
    """Rules of rest; a rule left out of the file is not enforced."""

    max_hours_per_day: float | None = None
    min_rest_hours: float | None = None
    night: Window | None = None
    max_night_callouts_per_week: int | None = None


@dataclass
class WorkLog:
    """When one technician was on the clock (any status but off shift or on a break), and when they
    accepted call-outs: what the fatigue rules are judged on. Kept for the last eight days."""

    periods: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    callouts: list[datetime] = field(default_factory=list)

    @property
    def working(self) -> bool:
        return bool(self.periods) and self.periods[-1][1] is None

    def started(self, at: datetime) -> None:
        if not self.working:
            self.periods.append((at, None))

    def stopped(self, at: datetime) -> None:
        if self.working:
            self.periods[-1] = (self.periods[-1][0], at)
        keep_from = at - timedelta(days=8)
        self.periods = [p for p in self.periods if p[1] is None or p[1] >= keep_from]
        self.callouts = [c for c in self.callouts if c >= keep_from]

    def hours(self, since: datetime, now: datetime) -> timedelta:
        """Time on the clock between `since` and `now`."""
        total = timedelta(0)
        for start, end in self.periods:
            total += max(min(end or now, now) - max(start, since), timedelta(0))
        return total

    def last_end(self) -> datetime | None:
        ended = [end for _, end in self.periods if end is not None]
        return ended[-1] if ended and not self.working else None


# --- the roster file ---------------------------------------------------------------------------------------


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/London") from None
    return name


def _windows(texts: list[str]) -> list[str]:
    for text in texts:
        parse_window(text)
    return texts


class TechnicianTable(_File):
    timezone: str = "UTC"
    shifts: list[str] = []
    on_call: list[str] = []

    _check_zone = field_validator("timezone")(_zone)
    _check_windows = field_validator("shifts", "on_call")(_windows)


class RotationTable(_File):
    members: Annotated[list[str], Field(min_length=1)]
    hours: list[str] = ["mon-sun 00:00-24:00"]
    handoff: str = "mon 09:00"
    length: Duration = parse_duration("1w")
    timezone: str = "UTC"

    _check_zone = field_validator("timezone")(_zone)
    _check_windows = field_validator("hours")(_windows)

    @field_validator("handoff")
    @classmethod
    def _handoff(cls, text: str) -> str:
        day, _, clock = text.strip().partition(" ")
        if day not in DAY_NAMES or re.fullmatch(r"\d\d:\d\d", clock) is None:
            raise ValueError(f'{text!r} is not a handoff: write e.g. "mon 09:00"')
        _minute(clock[:2], clock[3:], text)
        return text

    @field_validator("length")
    @classmethod
    def _whole_days(cls, length: timedelta) -> timedelta:
        if length % timedelta(days=1):
            raise ValueError("a turn lasts whole days: write e.g. 1d, 7d or 1w")
        return length


class FatigueTable(_File):
    max_hours_per_day: Annotated[float, Field(gt=0, le=24, strict=False)] | None = None
    min_rest_hours: Annotated[float, Field(ge=0, le=48, strict=False)] | None = None
    night: str | None = None
    max_night_callouts_per_week: Annotated[int, Field(ge=0, le=50)] | None = None

    @field_validator("night")
    @classmethod
    def _night(cls, text: str | None) -> str | None:
        if text is not None:
            parse_window(f"mon-sun {text}")
        return text


class CalloutsTable(_File):
    after: Duration = parse_duration("5m")
    answer_within: Duration = parse_duration("5m")


class RosterFile(_File):
    technicians: dict[str, TechnicianTable] = {}
    rotations: dict[str, RotationTable] = {}
    fatigue: FatigueTable = FatigueTable()
    callouts: CalloutsTable = CalloutsTable()


@dataclass(frozen=True)
class Person:
    """One technician's time as the roster gives it."""

    shifts: Schedule
    on_call: Schedule


@dataclass(frozen=True)
class Roster:
    """The whole roster. `Roster()` is the world without a file: nobody's status changes by itself."""

    people: dict[str, Person] = field(default_factory=dict)
    rotations: tuple[Rotation, ...] = ()
    fatigue: Fatigue = Fatigue()
    callout_after: timedelta = timedelta(minutes=5)
    answer_within: timedelta = timedelta(minutes=5)

    @classmethod
    def parse(cls, text: str, source: str) -> Roster:
        """The roster of a file's `text`; a ConfigError in one line naming `source`, the table and the key."""
        roster = load_toml(RosterFile, text, source)
        people = {}
        for tech_id, table in roster.technicians.items():
            shifts = [parse_window(t) for t in table.shifts]
            if _overlapping(shifts, table.timezone):
                shown = json.dumps(table.shifts, ensure_ascii=False)
                raise ConfigError(f"{source}: [technicians.{tech_id}] shifts = {shown}: shifts overlap")
            people[tech_id] = Person(
                Schedule(tuple(shifts), table.timezone),
                Schedule(tuple(parse_window(t) for t in table.on_call), table.timezone),
            )
        rotations = []
        for name, rota in roster.rotations.items():
            for index, member in enumerate(rota.members):
                if member not in roster.technicians:
                    raise ConfigError(
                        f'{source}: [rotations.{name}] members[{index}] = "{member}": unknown technician '
                        f"(no [technicians.{member}] table in this file)"
                    )
            day, _, clock = rota.handoff.partition(" ")
            rotations.append(
                Rotation(
                    name,
                    tuple(rota.members),
                    Schedule(tuple(parse_window(t) for t in rota.hours), rota.timezone),
                    DAY_NAMES.index(day),
                    int(clock[:2]) * 60 + int(clock[3:]),
                    rota.length.days,
                )
            )
        rules = roster.fatigue
        fatigue = Fatigue(
            rules.max_hours_per_day,
            rules.min_rest_hours,
            parse_window(f"mon-sun {rules.night}") if rules.night else None,
            rules.max_night_callouts_per_week,
        )
        return cls(people, tuple(rotations), fatigue, roster.callouts.after, roster.callouts.answer_within)

    # --- questions ---------------------------------------------------------------------------------------

    def shift_edges(self, after: datetime, until: datetime) -> list[tuple[datetime, str, bool]]:
        """(instant, technician, starts) for every shift start and end in (after, until], in time order."""
        found = [
            (at, tech_id, starts)
            for tech_id, person in self.people.items()
            for at, starts in person.shifts.edges(after, until)
        ]
        return sorted(found)

    def on_shift_until(self, tech_id: str, at: datetime) -> datetime | None:
        """The end of the shift `tech_id` is on at `at`, if they are on one."""
        person = self.people.get(tech_id)
        span = person.shifts.span_at(at) if person else None
        return span[1] if span else None

    def on_call(self, tech_id: str, at: datetime) -> bool:
        """Whether `tech_id` may be called out at `at`: their own on-call window, or their rotation's turn."""
        person = self.people.get(tech_id)
        if person is not None and person.on_call.covers(at):
            return True
        return any(r.hours.covers(at) and r.on_turn(at) == tech_id for r in self.rotations)

    def ladder(self, at: datetime) -> list[str]:
        """Whom to call out at `at`, in order: each rotation's member on turn (rotations whose hours
        cover `at`, in the file's order), then technicians whose on-call window covers `at`."""
        order: list[str] = []
        for rotation in self.rotations:
            if rotation.hours.covers(at):
                member = rotation.on_turn(at)
                if member not in order:
                    order.append(member)
        for tech_id, person in self.people.items():
            if person.on_call.covers(at) and tech_id not in order:
                order.append(tech_id)
        return order

    def is_night(self, tech_id: str, at: datetime) -> bool:
        """Whether `at` is inside the fatigue rules' night, in the technician's own time zone."""
        night = self.fatigue.night
        if night is None:
            return False
        person = self.people.get(tech_id)
        zone = person.shifts.timezone if person else "UTC"
        return Schedule((night,), zone).covers(at)

    def fatigue_block(self, tech_id: str, work: WorkLog | None, now: datetime, *, callout: bool = False) -> str | None:
        """The rule giving `tech_id` more work at `now` would break, in words; None when none would.
        `callout`: the work would be a call-out (the rest and night rules then apply too)."""
        rules = self.fatigue
        work = work or WorkLog()
        if rules.max_hours_per_day is not None:
            worked = work.hours(now - timedelta(days=1), now)
            if worked >= timedelta(hours=rules.max_hours_per_day):
                return f"worked {_hours(worked)} in the last 24 h (limit {rules.max_hours_per_day:g}h)"
        last_end = work.last_end()
        if rules.min_rest_hours is not None and last_end is not None:
            rested_at = last_end + timedelta(hours=rules.min_rest_hours)
            if now < rested_at:
                person = self.people.get(tech_id)
                local = person.shifts.local(rested_at) if person else rested_at
                return f"resting until {local:%a %H:%M}"
        if callout and rules.max_night_callouts_per_week is not None and self.is_night(tech_id, now):
            nights = [c for c in work.callouts if c >= now - timedelta(days=7) and self.is_night(tech_id, c)]
            if len(nights) >= rules.max_night_callouts_per_week:
                return f"{len(nights)} night call-outs in the last 7 days (limit {rules.max_night_callouts_per_week})"
        return None


def _hours(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}"
