"""The one duration parser and the formatters (dispatch/core/durations.py), rule by rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.durations import (
    DurationError,
    format_age,
    format_ago,
    format_duration,
    format_left,
    format_span,
    parse_duration,
)

EXAMPLES = "use e.g. 30m, 2h, 1d"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("90m", timedelta(minutes=90)),
        ("6h", timedelta(hours=6)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d04h", timedelta(days=2, hours=4)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("0m05s", timedelta(seconds=5)),  # a zero part is fine when the whole is not
        (" 10m ", timedelta(minutes=10)),  # surrounding spaces, as a shell or a TOML string may leave
        ("007m", timedelta(minutes=7)),
    ],
)
def test_durations_that_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5x", f"'5x' is not a duration: {EXAMPLES}"),
        ("6", f"'6' is not a duration: {EXAMPLES}"),  # a unit is always written
        ("h", f"'h' is not a duration: {EXAMPLES}"),
        ("", f"'' is not a duration: {EXAMPLES}"),
        ("-6h", f"'-6h' is not a duration: {EXAMPLES}"),
        ("1.5h", f"'1.5h' is not a duration: {EXAMPLES}"),  # whole numbers: write 90m
        ("6H", f"'6H' is not a duration: {EXAMPLES}"),
        ("6 h", f"'6 h' is not a duration: {EXAMPLES}"),
        ("30m1h", f"'30m1h' is not a duration: {EXAMPLES}"),  # largest unit first
        ("1h1h", f"'1h1h' is not a duration: {EXAMPLES}"),
        ("inf", f"'inf' is not a duration: {EXAMPLES}"),
        ("1e3s", f"'1e3s' is not a duration: {EXAMPLES}"),
        ("0m", f"'0m' is not a duration: it must be more than zero ({EXAMPLES})"),
        ("0h0m", f"'0h0m' is not a duration: it must be more than zero ({EXAMPLES})"),
        ("999999999999999w", "'999999999999999w' is too long a duration"),
        ("9" * 5000 + "s", None),  # no ValueError from int() about its digits: ours, in one line
    ],
)
def test_durations_that_do_not_parse(text: str, message: str | None) -> None:
    with pytest.raises(DurationError) as refused:
        parse_duration(text)
    assert "\n" not in str(refused.value)
    if message is not None:
        assert str(refused.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=6), "6h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=7), "1w"),
        (timedelta(days=14), "2w"),
        (timedelta(days=10), "10d"),
        (timedelta(hours=1, seconds=1), "3601s"),
    ],
)
def test_format_duration_is_read_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (timedelta(minutes=12, seconds=5), "12m05s"),
        (timedelta(seconds=59, milliseconds=900), "0m59s"),  # a countdown drops the part second
        (timedelta(hours=3, minutes=20, seconds=59), "3h20m"),
        (timedelta(days=2, hours=4, minutes=30), "2d04h"),
        (timedelta(0), "0m00s"),
        (-timedelta(minutes=4, seconds=10), "-4m10s"),
        (-timedelta(days=1, hours=2), "-1d02h"),
    ],
)
def test_format_left(left: timedelta, text: str) -> None:
    assert format_left(left) == text


@pytest.mark.parametrize(
    ("left", "text"),
    [(timedelta(minutes=12, seconds=5), "12m05s"), (timedelta(hours=3, minutes=20), "3h20m"),
     (timedelta(days=2, hours=4), "2d04h")],
)  # fmt: skip
def test_a_countdown_reads_back_as_a_duration(left: timedelta, text: str) -> None:
    assert parse_duration(format_left(left)) == left


def test_format_age_is_never_negative() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert format_age(now - timedelta(hours=3, minutes=20), now) == "3h20m"
    assert format_age(now + timedelta(minutes=2), now) == "2m00s"  # a clock a little ahead


@pytest.mark.parametrize(
    ("delta", "text"),
    [(timedelta(seconds=12), "12 s"), (timedelta(minutes=5, seconds=59), "5 min"), (timedelta(hours=3), "3 h"),
     (-timedelta(seconds=3), "0 s")],
)  # fmt: skip
def test_format_ago(delta: timedelta, text: str) -> None:
    assert format_ago(delta) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=44.6), "45s"),  # a report rounds
        (timedelta(minutes=4, seconds=5), "4m 05s"),
        (timedelta(hours=1, minutes=5), "1h 05m"),
        (timedelta(days=2, hours=3), "2d 03h"),
        (-timedelta(seconds=45), "-45s"),
    ],
)
def test_format_span(value: timedelta, text: str) -> None:
    assert format_span(value) == text
