"""SLA arithmetic: when a ticket must be responded to and resolved, and how much of that time is used."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from dispatch.core.models import Priority, Ticket, TicketStatus


@dataclass(frozen=True)
class SlaTarget:
    respond: timedelta
    resolve: timedelta


def _default_targets() -> dict[Priority, SlaTarget]:
    return {
        Priority.P1: SlaTarget(timedelta(minutes=15), timedelta(hours=4)),
        Priority.P2: SlaTarget(timedelta(hours=1), timedelta(hours=8)),
        Priority.P3: SlaTarget(timedelta(hours=4), timedelta(days=2)),
        Priority.P4: SlaTarget(timedelta(days=1), timedelta(days=5)),
    }


@dataclass(frozen=True)
class SlaPolicy:
    """Response and resolution targets per priority (DESIGN.md's defaults)."""

    targets: dict[Priority, SlaTarget] = field(default_factory=_default_targets)
    warning_fraction: float = 0.75

    def due_times(
        self, priority: Priority, start: datetime, paused: timedelta = timedelta(0)
    ) -> tuple[datetime, datetime]:
        """Return (respond_by, resolve_by) for a ticket of `priority` whose clock started at `start`
        and has stood still for `paused` since."""
        target = self.targets[priority]
        return start + target.respond + paused, start + target.resolve + paused


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
    left: timedelta
    state: SlaState


def current_target(ticket: Ticket) -> tuple[str, datetime]:
    """Respond-by counts until someone takes the ticket, resolve-by after that."""
    if ticket.responded_at is None and ticket.status is TicketStatus.NEW:
        return "respond", ticket.respond_by
    return "resolve", ticket.resolve_by


def read_clock(ticket: Ticket, now: datetime, policy: SlaPolicy) -> SlaReading:
    """Which clock counts for `ticket` at `now`, the time left and its state."""
    target, due = current_target(ticket)
    spans = policy.targets[ticket.priority]
    span = spans.respond if target == "respond" else spans.resolve
    # On hold the clock stands still where it was paused.
    left = due - (ticket.paused_at or now)
    if not ticket.is_open:
        state = SlaState.STOPPED
    elif left <= timedelta(0):
        state = SlaState.BREACHED
    elif left <= span * (1 - policy.warning_fraction):
        state = SlaState.WARNING
    else:
        state = SlaState.FINE
    return SlaReading(target, due, left, state)


def format_left(left: timedelta) -> str:
    """A compact countdown: `12m05s`, `3h20m`, `2d04h`, negative as `-4m10s` (overdue)."""
    seconds = int(left.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m{secs:02d}s"
