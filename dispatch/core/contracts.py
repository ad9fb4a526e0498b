"""SLA contracts: which targets, on which calendar, each client's tickets get (`serve --sla FILE`).

Pure: `Contracts.parse` reads the TOML text (the caller reads the file); `Contracts.terms` answers for
one client and priority. Without a file every client is on the `standard` tier: the built-in targets
on the `24x7` calendar, as before contracts existed.

Which calendar a ticket's clock runs on: the priority's own `calendar` in its tier if given, else the
client's `calendar`, else the tier's, else `24x7`. A priority left out of a tier takes
`[tiers.standard]`'s target if the file defines one, else the built-in default. Durations are open
time (`d` is 24 hours of open time, so business calendars write hours: `resolve = "16h"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dispatch.core.calendars import ALWAYS_OPEN, DAY_NAMES, MINUTES_PER_DAY, Calendar, OpenHours
from dispatch.core.config import ConfigError, load_toml
from dispatch.core.durations import parse_duration
from dispatch.core.models import HoldReason, NotifyUrl, Priority

__all__ = ["BUILT_IN_TARGETS", "Contracts", "Target", "Terms"]

STANDARD = "standard"


@dataclass(frozen=True)
class Target:
    """How long a ticket may wait for a response, and for its resolution, in open time."""

    respond: timedelta
    resolve: timedelta


BUILT_IN_TARGETS = {
    Priority.P1: Target(timedelta(minutes=15), timedelta(hours=4)),
    Priority.P2: Target(timedelta(hours=1), timedelta(hours=8)),
    Priority.P3: Target(timedelta(hours=4), timedelta(days=2)),
    Priority.P4: Target(timedelta(days=1), timedelta(days=5)),
}


@dataclass(frozen=True)
class Terms:
    """The terms one ticket's clock runs on."""

    tier: str
    calendar: Calendar
    target: Target


# --- the file --------------------------------------------------------------------------------------------

_RANGE = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")


def _minutes(hours: str, minutes: str, end: bool) -> int:
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > MINUTES_PER_DAY or (value == MINUTES_PER_DAY and not end):
        raise ValueError(f"{hours}:{minutes} is not a time of day (00:00 to 24:00)")
    return value


def _open_hours(spec: str | list[str]) -> OpenHours:
    ranges = [spec] if isinstance(spec, str) else spec
    hours = []
    for text in ranges:
        match = _RANGE.fullmatch(text.strip())
        if match is None:
            raise ValueError(f'{text!r} is not a range of hours: write e.g. "09:00-17:30"')
        start = _minutes(match[1], match[2], end=False)
        end = _minutes(match[3], match[4], end=True)
        if end <= start:
            raise ValueError(f"{text!r} ends before it starts")
        hours.append((start, end))
    hours.sort()
    for (_, first_end), (second_start, _) in zip(hours, hours[1:], strict=False):
        if second_start < first_end:
            raise ValueError(f"ranges {ranges} overlap")
    return tuple(hours)


Hours = str | list[str]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CalendarTable(_File):
    timezone: str = "UTC"
    mon: Hours | None = None
    tue: Hours | None = None
    wed: Hours | None = None
    thu: Hours | None = None
    fri: Hours | None = None
    sat: Hours | None = None
    sun: Hours | None = None
    # TOML dates (2026-12-25) or strings ("2026-12-25").
    holidays: list[Annotated[date, Field(strict=False)]] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/London") from None
        return name

    @field_validator(*DAY_NAMES)
    @classmethod
    def _hours(cls, spec: Hours | None) -> Hours | None:
        if spec is not None:
            _open_hours(spec)
        return spec

    def calendar(self, name: str) -> Calendar:
        week = tuple(_open_hours(spec) if spec is not None else () for spec in (getattr(self, d) for d in DAY_NAMES))
        if not any(week):
            raise ValueError("it is never open: give at least one day's hours")
        return Calendar(name, self.timezone, week, frozenset(self.holidays))


class TargetTable(_File):
    respond: str
    resolve: str
    calendar: str | None = None

    @field_validator("respond", "resolve")
    @classmethod
    def _duration(cls, text: str) -> str:
        parse_duration(text)
        return text

    def target(self) -> Target:
        return Target(parse_duration(self.respond), parse_duration(self.resolve))


class TierTable(_File):
    calendar: str = ALWAYS_OPEN.name
    pause_on: list[Annotated[HoldReason, Field(strict=False)]] | None = None
    P1: TargetTable | None = None
    P2: TargetTable | None = None
    P3: TargetTable | None = None
    P4: TargetTable | None = None

    def for_priority(self, priority: Priority) -> TargetTable | None:
        table: TargetTable | None = getattr(self, priority.value)
        return table


class ClientTable(_File):
    tier: str | None = None
    calendar: str | None = None
    # Apprise URLs that hear of this client's incidents (`update_clients`).
    contacts: list[NotifyUrl] = []


class SlaFile(_File):
    default_tier: str = STANDARD
    calendars: dict[str, CalendarTable] = {}
    tiers: dict[str, TierTable] = {}
    clients: dict[str, ClientTable] = {}


# --- the contracts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contracts:
    """Every client's terms. `Contracts()` is the world without a file."""

    default_tier: str = STANDARD
    calendars: dict[str, Calendar] = field(default_factory=lambda: {ALWAYS_OPEN.name: ALWAYS_OPEN})
    tiers: dict[str, TierTable] = field(default_factory=dict)
    # Client names folded to lower case: "ACME corp" is "Acme Corp".
    clients: dict[str, ClientTable] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str) -> Contracts:
        """The contracts of an SLA file's `text`; a ConfigError in one line naming `source`, the table
        and the key for any mistake (an unknown key, a tier or calendar that does not exist, `25:00`,
        overlapping ranges, an unknown time zone)."""
        sla = load_toml(SlaFile, text, source)
        calendars = {ALWAYS_OPEN.name: ALWAYS_OPEN}
        for name, table in sla.calendars.items():
            if name == ALWAYS_OPEN.name:
                raise ConfigError(f"{source}: [calendars.{name}]: 24x7 is built in and cannot be redefined")
            try:
                calendars[name] = table.calendar(name)
            except ValueError as exc:
                raise ConfigError(f"{source}: [calendars.{name}]: {exc}") from None

        def known_calendar(where: str, name: str | None) -> None:
            if name is not None and name not in calendars:
                defined = ", ".join(sorted(calendars))
                raise ConfigError(f'{source}: {where} calendar = "{name}": no such calendar; defined: {defined}')

        tier_names = sorted({*sla.tiers, STANDARD})
        if sla.default_tier not in tier_names:
            raise ConfigError(
                f'{source}: default_tier = "{sla.default_tier}": no such tier; defined: {", ".join(tier_names)}'
            )
        for name, tier in sla.tiers.items():
            known_calendar(f"[tiers.{name}]", tier.calendar)
            for priority in Priority:
                target = tier.for_priority(priority)
                if target is not None:
                    known_calendar(f"[tiers.{name}] {priority.value}", target.calendar)
        clients: dict[str, ClientTable] = {}
        for client, entry in sla.clients.items():
            where = f'[clients."{client}"]'
            if entry.tier is not None and entry.tier not in tier_names:
                raise ConfigError(
                    f'{source}: {where} tier = "{entry.tier}": no such tier; defined: {", ".join(tier_names)}'
                )
            known_calendar(where, entry.calendar)
            if client.casefold() in clients:
                raise ConfigError(f"{source}: {where}: the same client as another table (names ignore case)")
            clients[client.casefold()] = entry
        return cls(sla.default_tier, calendars, dict(sla.tiers), clients)

    def terms(self, client: str, priority: Priority) -> Terms:
        """The terms a new ticket of `client` at `priority` gets."""
        listed = self.clients.get(client.casefold())
        tier_name = (listed.tier if listed else None) or self.default_tier
        tier = self.tiers.get(tier_name, TierTable())
        own = tier.for_priority(priority)
        standard = self.tiers.get(STANDARD)
        fallback = standard.for_priority(priority) if standard is not None and tier_name != STANDARD else None
        target = own.target() if own else fallback.target() if fallback else BUILT_IN_TARGETS[priority]
        calendar = (own.calendar if own else None) or (listed.calendar if listed else None) or tier.calendar
        return Terms(tier_name, self.calendars[calendar], target)

    def pauses(self, tier: str, reason: HoldReason | None) -> bool:
        """Whether a hold for `reason` stops the clock of a ticket on `tier` (every hold does when the
        tier names no `pause_on`, or no longer exists)."""
        table = self.tiers.get(tier)
        if table is None or table.pause_on is None:
            return True
        return (reason or HoldReason.OTHER) in table.pause_on

    def calendar(self, name: str) -> Calendar:
        """A calendar by name; one no longer defined (the file changed) counts as 24x7."""
        return self.calendars.get(name, ALWAYS_OPEN)

    def contacts(self, client: str) -> list[str]:
        """Where `client` hears of its incidents: the apprise URLs of its `contacts` (none if not listed)."""
        listed = self.clients.get(client.casefold())
        return list(listed.contacts) if listed else []
