"""Open-time arithmetic and SLA contracts: pure, table-driven and property tests, no server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.core.calendars import ALWAYS_OPEN, Calendar
from dispatch.core.config import ConfigError
from dispatch.core.contracts import BUILT_IN_TARGETS, Contracts
from dispatch.core.models import HoldReason, Priority

OFFICE = ((9 * 60, 17 * 60 + 30),)
UK = Calendar(
    "uk-office",
    "Europe/London",
    (OFFICE, OFFICE, OFFICE, OFFICE, ((9 * 60, 17 * 60),), (), ()),
    frozenset({date(2026, 12, 25), date(2026, 12, 28)}),
)
NEW_YORK = Calendar("ny", "America/New_York", ((( 8 * 60, 12 * 60), (13 * 60, 17 * 60)),) * 5 + ((), ()))  # fmt: skip
ALL_WEEK = Calendar("all-week", "Europe/London", (((0, 24 * 60),),) * 7)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("calendar", "start", "target", "due"),
    [
        # 1h asked at 17:00 on a 09:00-17:30 calendar: 30 min today, 30 min tomorrow.
        (UK, utc(2026, 12, 3, 17, 0), timedelta(hours=1), utc(2026, 12, 4, 9, 30)),
        # A Friday-evening P2 (Friday closes at 17:00) is due on Monday morning.
        (UK, utc(2026, 12, 4, 18, 0), timedelta(hours=1), utc(2026, 12, 7, 10, 0)),
        # Runs out exactly at closing time: due at closing time, not the next morning.
        (UK, utc(2026, 12, 3, 17, 0), timedelta(minutes=30), utc(2026, 12, 3, 17, 30)),
        # Asked before opening: counted from the opening.
        (UK, utc(2026, 12, 3, 6, 0), timedelta(hours=1), utc(2026, 12, 3, 10, 0)),
        # Christmas: Thu 24th 16:00 + 2h -> 1h30 that day, the 25th and the weekend and the 28th closed.
        (UK, utc(2026, 12, 24, 16, 0), timedelta(hours=2), utc(2026, 12, 29, 9, 30)),
        # British Summer Time: 09:00 local is 08:00 UTC.
        (UK, utc(2026, 7, 1, 7, 0), timedelta(hours=1), utc(2026, 7, 1, 9, 0)),
        # The Sunday the clocks go forward (29 March 2026), all week open: the local day is 23 hours.
        (ALL_WEEK, utc(2026, 3, 28, 23, 0), timedelta(hours=24), utc(2026, 3, 29, 23, 0)),
        # America/New_York springs forward on 8 March 2026: Friday 16:00 EST + 2h -> Monday 09:00 EDT.
        (NEW_YORK, utc(2026, 3, 6, 21, 0), timedelta(hours=2), utc(2026, 3, 9, 13, 0)),
        # The lunch break is closed.
        (NEW_YORK, utc(2026, 3, 10, 15, 30), timedelta(hours=1), utc(2026, 3, 10, 17, 30)),
        # 24x7: wall time.
        (ALWAYS_OPEN, utc(2026, 12, 4, 18, 0), timedelta(hours=8), utc(2026, 12, 5, 2, 0)),
    ],
)
def test_due_times_count_open_time(calendar: Calendar, start: datetime, target: timedelta, due: datetime) -> None:
    assert calendar.add(start, target) == due
    assert calendar.open_between(start, due) == target


def test_a_closed_calendar_says_when_it_opens() -> None:
    friday_evening = utc(2026, 12, 4, 18, 0)
    assert not UK.is_open(friday_evening)
    assert UK.next_opening(friday_evening) == utc(2026, 12, 7, 9, 0)
    assert UK.is_open(utc(2026, 12, 7, 9, 0)) and UK.next_opening(utc(2026, 12, 7, 9, 0)) == utc(2026, 12, 7, 9, 0)
    assert not UK.is_open(utc(2026, 12, 25, 12, 0))  # a holiday


instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
targets = st.integers(min_value=1, max_value=60 * 24 * 6).map(lambda m: timedelta(minutes=m))


@settings(max_examples=200, deadline=None)
@given(start=instants, target=targets, calendar=st.sampled_from([UK, NEW_YORK, ALL_WEEK]))
def test_adding_a_target_then_walking_back_gives_the_start(
    start: datetime, target: timedelta, calendar: Calendar
) -> None:
    due = calendar.add(start, target)
    assert calendar.open_between(start, due) == target
    # A due time never falls in closed time (closing time itself counts as the end of open time).
    assert calendar.is_open(due) or calendar.is_open(due - timedelta(seconds=1))


@settings(max_examples=100, deadline=None)
@given(start=instants, target=targets)
def test_a_calendar_open_all_week_gives_the_24x7_result(start: datetime, target: timedelta) -> None:
    assert ALL_WEEK.add(start, target) == ALWAYS_OPEN.add(start, target) == start + target


SLA_FILE = """
default_tier = "standard"

[calendars.uk-office]
timezone = "Europe/London"
mon = "09:00-17:30"
tue = "09:00-17:30"
wed = "09:00-17:30"
thu = "09:00-17:30"
fri = "09:00-17:00"
holidays = ["2026-12-25", "2026-12-28"]

[calendars.acme-hours]
timezone = "America/New_York"
mon = ["08:00-12:00", "13:00-17:00"]
tue = "08:00-17:00"

[tiers.standard]
calendar = "24x7"
P1 = { respond = "15m", resolve = "4h" }
P2 = { respond = "2h", resolve = "8h" }

[tiers.gold]
calendar = "uk-office"
pause_on = ["awaiting_client", "awaiting_parts"]
P1 = { respond = "30m", resolve = "4h", calendar = "24x7" }
P3 = { respond = "1h", resolve = "8h" }

[clients."Acme Corp"]
tier = "gold"
calendar = "acme-hours"

[clients.Globex]
tier = "gold"
"""


@pytest.mark.parametrize(
    ("client", "priority", "tier", "calendar", "respond"),
    [
        ("Acme Corp", Priority.P1, "gold", "24x7", timedelta(minutes=30)),  # the priority's own calendar
        ("Acme Corp", Priority.P3, "gold", "acme-hours", timedelta(hours=1)),  # the client's calendar
        ("ACME CORP", Priority.P3, "gold", "acme-hours", timedelta(hours=1)),  # names ignore case
        ("Globex", Priority.P3, "gold", "uk-office", timedelta(hours=1)),  # the tier's calendar
        ("Globex", Priority.P2, "gold", "uk-office", timedelta(hours=2)),  # left out: the standard target
        ("Globex", Priority.P4, "gold", "uk-office", BUILT_IN_TARGETS[Priority.P4].respond),  # ... or built in
        ("Initech", Priority.P2, "standard", "24x7", timedelta(hours=2)),  # not listed: the default tier
    ],
)
def test_which_terms_a_client_gets(
    client: str, priority: Priority, tier: str, calendar: str, respond: timedelta
) -> None:
    terms = Contracts.parse(SLA_FILE, "sla.toml").terms(client, priority)
    assert (terms.tier, terms.calendar.name, terms.target.respond) == (tier, calendar, respond)


def test_without_a_file_everyone_gets_the_built_in_targets_round_the_clock() -> None:
    for priority in Priority:
        terms = Contracts().terms("Anyone", priority)
        assert (terms.tier, terms.calendar, terms.target) == ("standard", ALWAYS_OPEN, BUILT_IN_TARGETS[priority])
        assert Contracts().pauses(terms.tier, HoldReason.AWAITING_THIRD_PARTY) and Contracts().pauses(terms.tier, None)


def test_hold_reasons_stop_the_clock_only_when_the_tier_says_so() -> None:
    contracts = Contracts.parse(SLA_FILE, "sla.toml")
    assert contracts.pauses("gold", HoldReason.AWAITING_CLIENT) and contracts.pauses("gold", HoldReason.AWAITING_PARTS)
    assert not contracts.pauses("gold", HoldReason.AWAITING_THIRD_PARTY)
    assert not contracts.pauses("gold", None)  # none given counts as "other"
    assert contracts.pauses("standard", HoldReason.AWAITING_THIRD_PARTY)  # no pause_on: every hold


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("09:00-17:30", "25:00-26:00"), 'sla.toml: [calendars.uk-office] mon = "25:00-26:00": 25:00 is not a time'),
        (('tier = "gold"', 'tier = "silver"'), 'sla.toml: [clients."Acme Corp"] tier = "silver": no such tier'),
        (("Europe/London", "Europe/Lndon"), 'sla.toml: [calendars.uk-office] timezone = "Europe/Lndon": unknown time'),
        (('"08:00-12:00", "13:00', '"08:00-12:00", "11:00'), 'sla.toml: [calendars.acme-hours] mon = ["08:00-12:00"'),
        (
            ('respond = "30m"', 'respond = "30x"'),
            "sla.toml: [tiers.gold.P1] respond = \"30x\": '30x' is not",
        ),
        (
            ('calendar = "acme-hours"', 'calendar = "acme"'),
            'sla.toml: [clients."Acme Corp"] calendar = "acme": no',
        ),
        (("pause_on = [", "pause_when = ["), "sla.toml: [tiers.gold] pause_when = "),
        (('"awaiting_client", ', '"waiting", '), 'sla.toml: [tiers.gold] pause_on[0] = "waiting"'),
        (('default_tier = "standard"', 'default_tier = "bronze"'), 'sla.toml: default_tier = "bronze": no such tier'),
        (("[tiers.gold]", "[tier.gold]"), "sla.toml: [tier]: unknown table"),
    ],
)
def test_a_mistake_in_the_file_is_one_line_naming_the_table_and_key(change: tuple[str, str], message: str) -> None:
    text = SLA_FILE.replace(*change, 1)
    with pytest.raises(ConfigError) as refused:
        Contracts.parse(text, "sla.toml")
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)
