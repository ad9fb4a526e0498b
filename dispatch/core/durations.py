"""Durations, read and written one way everywhere.

Reading: `parse_duration` is the one parser behind every option and setting that takes a length of
time (`report --since`, `decisions --since`, `simulate --duration`, and the configuration files to
come: SLA targets, shift lengths such as `length = "1w"`). The rule:

- a whole number followed by a unit: `s` seconds, `m` minutes, `h` hours, `d` days (24 hours), `w`
  weeks (7 days); lower case, no spaces inside (`30m`, `2h`, `1d`, `1w`);
- several of them, largest unit first, each unit at most once, also read as their sum (`1h30m`,
  `2d04h`), so every countdown the board shows reads back;
- the total is more than zero. A length of nothing is never what was meant (`--since 0m` would be an
  empty report, `--duration 0s` a simulation that sends nothing, `length = "0d"` a shift that never
  starts), so it is refused everywhere rather than accepted in some places.

Anything else is a `DurationError` (a `ValueError`) whose message is one line naming the text, e.g.
`'5x' is not a duration: use e.g. 30m, 2h, 1d`; callers prefix it with the option or key. In a
configuration file's pydantic model, a field typed `Duration` reads the same text.

Writing: `format_left` (the board's SLA countdown, `12m05s`), `format_age` (how old a ticket is, the
same shape), `format_ago` (in a sentence: `5 min`), `format_span` (a report's figures: `4m 05s`) and
`format_duration` (the shortest text `parse_duration` reads back: `90m`, `6h`, `1w`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = [
    "Duration",
    "DurationError",
    "UNITS",
    "format_age",
    "format_ago",
    "format_duration",
    "format_left",
    "format_span",
    "parse_duration",
]

# Seconds per unit, largest first: the order the parts of a duration are written in.
UNITS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile("".join(rf"(?:(\d{{1,15}}){unit})?" for unit in UNITS))
_EXAMPLES = "use e.g. 30m, 2h, 1d"


class DurationError(ValueError):
    """A text that is not a duration; the message is one line naming the text."""


def parse_duration(text: str) -> timedelta:
    """`30m`, `2h`, `1d`, `1w`, `1h30m` -> a timedelta of more than zero; see the module's rule."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groups()):
        raise DurationError(f"{text!r} is not a duration: {_EXAMPLES}")
    seconds = sum(int(count) * size for count, size in zip(match.groups(), UNITS.values(), strict=True) if count)
    if seconds == 0:
        raise DurationError(f"{text!r} is not a duration: it must be more than zero ({_EXAMPLES})")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise DurationError(f"{text!r} is too long a duration") from None


def _from_text(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise DurationError('must be a duration in quotes, e.g. "30m", "2h", "1d"')
    return parse_duration(value)


# A field of a configuration file that holds a duration (`respond = "15m"`, `length = "1w"`).
Duration = Annotated[timedelta, BeforeValidator(_from_text)]


def format_duration(value: timedelta) -> str:
    """The shortest text in one unit that `parse_duration` reads back: `90m`, `6h`, `2d`, `1w`, `45s`.

    Whole seconds only (a fraction is dropped); for the labels of options and reports."""
    seconds = int(value.total_seconds())
    for unit, size in UNITS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parts(seconds: int) -> tuple[str, int, int, int, int]:
    """Sign, days, hours, minutes, seconds of a whole number of seconds."""
    sign = "-" if seconds < 0 else ""
    days, rest = divmod(abs(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    return sign, days, hours, minutes, secs


def format_left(left: timedelta) -> str:
    """A compact countdown: `12m05s`, `3h20m`, `2d04h`, negative as `-4m10s` (overdue).

    Two units, the second zero-padded, so a lane's column keeps its shape; a part second is dropped
    (a countdown shows 0m59s until the whole second has gone)."""
    sign, days, hours, minutes, secs = _parts(int(left.total_seconds()))
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m{secs:02d}s"


def format_age(created: datetime, now: datetime) -> str:
    """How long ago `created` was, as a countdown is written (`3h20m`); never negative."""
    return format_left(now - created).lstrip("-")


def format_ago(delta: timedelta) -> str:
    """A rough age for a sentence ("changed by ana 5 min ago"): `12 s`, `5 min`, `3 h`; never negative."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3_600:
        return f"{seconds // 60} min"
    return f"{seconds // 3_600} h"


def format_span(value: timedelta) -> str:
    """A measured length for a report: `45s`, `4m 05s`, `1h 05m`, `2d 03h`; rounded to the second."""
    sign, days, hours, minutes, secs = _parts(round(value.total_seconds()))
    if days:
        return f"{sign}{days}d {hours:02d}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"
