"""People's time, pure: schedule arithmetic, rotation turns, fatigue rules, the call-out ladder, and a
roster file's mistakes in one line. No server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.config import ConfigError
from dispatch.core.roster import Roster, Schedule, WorkLog, parse_window

ROSTER = """
[technicians.alice]
timezone = "Europe/London"
shifts = ["mon-fri 08:00-16:00"]
on_call = ["sat-sun 00:00-24:00"]

[technicians.bob]
timezone = "Europe/London"
shifts = ["mon-fri 10:00-18:00"]

[technicians.frank]
timezone = "Europe/London"

[technicians.ivan]
timezone = "America/New_York"
shifts = ["sat,sun 22:00-06:00"]

[rotations.network-nights]
members = ["bob", "frank", "ivan"]
hours = ["mon-sun 18:00-08:00"]
handoff = "mon 09:00"
length = "1w"
timezone = "Europe/London"

[fatigue]
max_hours_per_day = 10
min_rest_hours = 11
night = "22:00-07:00"
max_night_callouts_per_week = 2

[callouts]
after = "5m"
answer_within = "10m"
"""


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("mon-fri 08:00-16:00", {0, 1, 2, 3, 4}, 480, 960),
        ("sat,sun 00:00-24:00", {5, 6}, 0, 1440),
        ("wed 09:00-12:00", {2}, 540, 720),
        ("fri-mon 18:00-08:00", {4, 5, 6, 0}, 1080, 480),  # a range past sunday, past midnight
        ("mon 00:00-00:00", {0}, 0, 1440),  # the whole day
    ],
)
def test_windows(text: str, days: set[int], start: int, end: int) -> None:
    window = parse_window(text)
    assert (set(window.days), window.start, window.end) == (days, start, end)


def test_a_range_past_midnight_ends_the_next_day_and_dst_is_local_time() -> None:
    nights = Schedule((parse_window("mon-sun 18:00-08:00"),), "Europe/London")
    # Summer time: 18:00 BST is 17:00 UTC; the night ends at 08:00 BST the next day.
    assert nights.span_at(utc(7, 1, 20)) == (utc(7, 1, 17), utc(7, 2, 7))
    # The night the clocks go back (25 October 2026): 18:00 BST to 08:00 GMT is 15 hours.
    opens, closes = nights.span_at(utc(10, 24, 23)) or (utc(1, 1), utc(1, 1))
    assert closes - opens == timedelta(hours=15)
    shift = Schedule((parse_window("mon-fri 08:00-16:00"),), "Europe/London")
    assert shift.edges(utc(12, 4, 7), utc(12, 4, 17)) == [(utc(12, 4, 8), True), (utc(12, 4, 16), False)]
    assert shift.edges(utc(12, 5, 7), utc(12, 5, 17)) == []  # saturday


def test_rotation_turns_change_at_the_handoff() -> None:
    roster = Roster.parse(ROSTER, "roster.toml")
    (rota,) = roster.rotations
    monday = utc(12, 7, 9)  # a handoff: 09:00 London on a Monday
    turns = [rota.on_turn(monday + timedelta(weeks=w)) for w in range(4)]
    assert set(turns[:3]) == {"bob", "frank", "ivan"} and turns[3] == turns[0]  # each in turn, then again
    # A minute before the handoff it is still last week's member.
    assert rota.on_turn(monday + timedelta(weeks=1) - timedelta(minutes=1)) == turns[0]
    assert rota.on_turn(monday + timedelta(weeks=1)) == turns[1]


def test_the_ladder_is_the_member_on_turn_then_on_call_windows() -> None:
    roster = Roster.parse(ROSTER, "roster.toml")
    (rota,) = roster.rotations
    saturday_night = utc(12, 5, 23)
    assert roster.ladder(saturday_night) == [rota.on_turn(saturday_night), "alice"]
    assert roster.ladder(utc(12, 8, 12)) == []  # a tuesday noon: no rota hours, no on-call window
    assert roster.on_call("alice", saturday_night) and not roster.on_call("alice", utc(12, 8, 12))


@pytest.mark.parametrize(
    ("periods", "callouts", "now", "callout", "rule"),
    [
        ([(utc(12, 4, 6), None)], [], utc(12, 4, 15), False, None),  # 9 h worked
        ([(utc(12, 4, 6), None)], [], utc(12, 4, 16, 10), False, "worked 10h10 in the last 24 h (limit 10h)"),
        ([(utc(12, 4, 6), utc(12, 4, 12))], [], utc(12, 4, 20), True, "resting until Fri 23:00"),
        ([(utc(12, 4, 6), utc(12, 4, 12))], [], utc(12, 4, 23), True, None),  # 11 h rested
        # Two night call-outs this week: a third at night is refused, one by day is not.
        ([(utc(12, 1, 6), utc(12, 1, 8))], [utc(12, 1, 23), utc(12, 2, 23)], utc(12, 4, 23), True,
         "2 night call-outs in the last 7 days (limit 2)"),
        ([(utc(12, 1, 6), utc(12, 1, 8))], [utc(12, 1, 23), utc(12, 2, 23)], utc(12, 4, 12), True, None),
    ],
)  # fmt: skip
def test_fatigue_rules(
    periods: list[tuple[datetime, datetime | None]],
    callouts: list[datetime],
    now: datetime,
    callout: bool,
    rule: str | None,
) -> None:
    roster = Roster.parse(ROSTER, "roster.toml")
    assert roster.fatigue_block("alice", WorkLog(list(periods), list(callouts)), now, callout=callout) == rule


def test_without_a_file_nothing_is_enforced() -> None:
    assert Roster().fatigue_block("alice", WorkLog([(utc(12, 1, 0), None)]), utc(12, 4)) is None
    assert Roster().ladder(utc(12, 4)) == [] and Roster().shift_edges(utc(12, 1), utc(12, 8)) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('"bob", "frank"', '"bob", "fran"'), 'roster.toml: [rotations.network-nights] members[1] = "fran": unknown'),
        (("08:00-16:00", "08:00-25:00"),
         "roster.toml: [technicians.alice] shifts = [\"mon-fri 08:00-25:00\"]: 'mon-fri 08:00-25:00': 25:00 is not"),
        (('shifts = ["mon-fri 10:00-18:00"]', 'shifts = ["mon-fri 10:00-18:00", "fri 17:00-19:00"]'),
         'roster.toml: [technicians.bob] shifts = ["mon-fri 10:00-18:00", "fri 17:00-19:00"]: shifts overlap'),
        (('timezone = "America/New_York"', 'timezone = "America/Nowhere"'),
         'roster.toml: [technicians.ivan] timezone = "America/Nowhere": unknown time zone'),
        (('length = "1w"', 'length = "36h"'), 'roster.toml: [rotations.network-nights] length = "36h": a turn lasts'),
        (("max_hours_per_day = 10", "max_hours_per_day = 30"), "roster.toml: [fatigue] max_hours_per_day = 30"),
        (("[callouts]", "[call_outs]"), "roster.toml: [call_outs]: unknown table"),
    ],
)  # fmt: skip
def test_a_mistake_in_the_roster_is_one_line(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Roster.parse(ROSTER.replace(*change, 1), "roster.toml")
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)
