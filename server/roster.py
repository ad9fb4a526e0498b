"""The roster for the server (`serve --roster FILE`): read it, and say which technicians it names that
are not added yet (their entries apply once they are)."""

from __future__ import annotations

from collections.abc import Iterable

from dispatch.core.roster import Roster
from server.settings import read_config_file

__all__ = ["load_roster", "pending_technicians"]


def load_roster(path: str | None) -> Roster:
    """The roster in the file at `path` (none: nobody's status changes by itself); a one-line
    ConfigError if the file cannot be read or has a mistake."""
    if path is None:
        return Roster()
    return Roster.parse(read_config_file(path), path)


def pending_technicians(roster: Roster, known: Iterable[str]) -> list[str]:
    """Technicians the roster names who are not on the team yet."""
    return sorted(set(roster.people) - set(known))
