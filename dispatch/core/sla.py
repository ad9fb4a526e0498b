"""SLA arithmetic: when a ticket must be responded to and resolved, and how its clock stands.

Pure. The terms (tier, targets, calendar) come from the client's contract (dispatch.core.contracts);
the due and warning instants are computed once, in the calendar's open time, and carried by the
ticket, so the server's clock tick and the board compare instants instead of redoing calendar
arithmetic for every ticket every second. How much time is *left* is open time: on a business
calendar a ticket stands still overnight, and its row says when the calendar opens again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from dispatch.core.calendars import ALWAYS_OPEN, Calendar
from dispatch.core.contracts import Terms
from dispatch.core.models import Ticket, TicketStatus

__all__ = ["SlaReading", "SlaState", "WARNING_FRACTION", "clock_fields", "current_target", "read_clock"]

# The warning comes when this much of a target's open time is used.
WARNING_FRACTION = 0.75


def clock_fields(terms: Terms, start: datetime, paused: timedelta = timedelta(0)) -> dict[str, Any]:
    """A ticket's clock under `terms`, started at `start` and stood still for `paused` (open time)
    since: its tier and calendar names and its due and warning instants (Ticket fields)."""
    calendar, target = terms.calendar, terms.target
    return {
        "sla_tier": terms.tier,
        "calendar": calendar.name,
        "respond_by": calendar.add(start, target.respond + paused),
        "resolve_by": calendar.add(start, target.resolve + paused),
        "respond_warn_at": calendar.add(start, target.respond * WARNING_FRACTION + paused),
        "resolve_warn_at": calendar.add(start, target.resolve * WARNING_FRACTION + paused),
    }


class SlaState(StrEnum):
    FINE = "fine"
    WARNING = "warning"  # 75 % of the target used
    BREACHED = "breached"
    STOPPED = "stopped"  # resolved or cancelled: the clock no longer runs


@dataclass(frozen=True)
class SlaReading:
    """Which clock counts for a ticket right now, and how it stands."""

    target: str  # "respond" or "resolve"
    due: datetime
    # Open time left (negative once breached); it does not move while the calendar is closed.
    left: timedelta
    state: SlaState
    # When the ticket's calendar opens again, while it is closed (None while open, or always open).
    opens_at: datetime | None = None
    # How much of the target is used, 0 to 1 (more once breached).
    used: float = 0.0


def current_target(ticket: Ticket) -> tuple[str, datetime]:
    """Respond-by counts until someone takes the ticket, resolve-by after that."""
    if ticket.responded_at is None and ticket.status is TicketStatus.NEW:
        return "respond", ticket.respond_by
    return "resolve", ticket.resolve_by


def warning_at(ticket: Ticket) -> tuple[str, datetime, datetime]:
    """(target, due, warning instant) of the clock that counts now."""
    target, due = current_target(ticket)
    warn = ticket.respond_warn_at if target == "respond" else ticket.resolve_warn_at
    if warn is None:
        # A ticket stored before warning instants were: three quarters of its (wall) span.
        span = due - ticket.created_at - timedelta(seconds=ticket.paused_seconds)
        warn = due - span * (1 - WARNING_FRACTION)
    return target, due, warn


def alert_state(ticket: Ticket, now: datetime) -> tuple[str, datetime, SlaState]:
    """(target, due, state) by instants only: what the server's clock tick needs, cheaply."""
    target, due, warn = warning_at(ticket)
    if not ticket.is_open:
        return target, due, SlaState.STOPPED
    at = ticket.paused_at or now  # on hold the clock stands where it was paused
    if at >= due:
        return target, due, SlaState.BREACHED
    return target, due, SlaState.WARNING if at >= warn else SlaState.FINE


def read_clock(ticket: Ticket, now: datetime, calendar: Calendar = ALWAYS_OPEN) -> SlaReading:
    """Which clock counts for `ticket` at `now`, the open time left and its state; `calendar` is the
    ticket's own (by its `calendar` name)."""
    target, due, state = alert_state(ticket, now)
    at = ticket.paused_at or now
    left = calendar.open_between(at, due)
    whole = calendar.open_between(ticket.created_at, due) - timedelta(seconds=ticket.paused_seconds)
    used = 1.0 - left / whole if whole > timedelta(0) else 1.0
    opens_at = None
    if state is not SlaState.STOPPED and ticket.paused_at is None and not calendar.is_open(now):
        opens_at = calendar.next_opening(now)
    return SlaReading(target, due, left, state, opens_at, used)
