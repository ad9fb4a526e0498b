"""A ticket's detail: every field, and its history (who assigned whom, when, why).

The SLA part says which terms the clock runs on (tier, calendar), when each target is due in the
client's time zone and in the dispatcher's own, and whether the clock stands (calendar closed, or
stopped by the hold's reason) or runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dispatch.core.calendars import Calendar
from dispatch.core.durations import format_left
from dispatch.core.models import HoldReason, Ticket, TicketStatus
from dispatch.core.protocol import Event, TicketEvent
from dispatch.core.sla import SlaReading, SlaState
from dispatch.model import HOLD_REASON_WORDS, opens_label
from dispatch.session import BoardSession


class TicketDetail(ModalScreen[None]):
    """Every field of one ticket, then its history as the server tells it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "dismiss(None)", "Close"),
    ]

    def __init__(self, session: BoardSession, ticket: Ticket) -> None:
        super().__init__(classes="picker")
        self.session = session
        self.ticket = ticket

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide"):
            yield Label(Text(f"{self.ticket.id}  {self.ticket.title}"), classes="dialog-title")
            yield Static(self._fields(), id="fields")
            yield Label("History", classes="section")
            yield Static("loading…", id="history", classes="dim")
            yield Label("Esc close", classes="dim")

    def _fields(self) -> Table:
        t = self.ticket
        model, now = self.session.model, self.session.now()
        reading = model.clock(t, now)
        calendar = model.calendar(t.calendar)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        status = t.status.value.replace("_", " ")
        if t.status is TicketStatus.ON_HOLD:
            status += f": {HOLD_REASON_WORDS[t.hold_reason or HoldReason.OTHER]}"
        rows = [
            ("client", t.client),
            ("site", t.site or "-"),
            ("category", t.category.value),
            ("priority", t.priority.value),
            ("status", status),
            ("assignee", t.assignee or "unassigned"),
            ("skills", ", ".join(t.skills) or "-"),
            ("incident", t.incident_id or "-"),
            ("created", _local(t.created_at)),
            ("SLA tier", t.sla_tier),
            ("calendar", _describe_calendar(calendar)),
            ("respond by", _in_both_zones(t.respond_by, calendar)),
            ("resolve by", _in_both_zones(t.resolve_by, calendar)),
            ("SLA", _describe_sla(reading, calendar)),
            ("clock", _describe_clock(t, reading, calendar, now)),
            ("version", str(t.version)),
        ]
        for name, value in rows:
            table.add_row(name, Text(value))
        return table

    def on_mount(self) -> None:
        self.load_history()

    @work(exclusive=True, group="history", exit_on_error=False)
    async def load_history(self) -> None:
        events = await self.session.ticket_history(self.ticket.id)
        widget = self.query_one("#history", Static)
        if events is None:
            widget.update("history unavailable (not connected)")
            return
        widget.remove_class("dim")
        widget.update(describe_history(events))


def _describe_calendar(calendar: Calendar) -> str:
    if calendar.always_open:
        return f"{calendar.name} (always open, UTC)"
    return f"{calendar.name} (business hours, {calendar.timezone})"


def _in_both_zones(at: datetime, calendar: Calendar) -> str:
    """`at` in the client's calendar time zone and in the dispatcher's, once when they read the same."""
    theirs, yours = calendar.local(at), at.astimezone()
    if theirs.utcoffset() == yours.utcoffset() and theirs.tzname() == yours.tzname():
        return f"{theirs:%Y-%m-%d %H:%M %Z} (the client's time and yours)"
    return f"{theirs:%Y-%m-%d %H:%M %Z} the client's time · {yours:%Y-%m-%d %H:%M %Z} yours"


def _describe_sla(reading: SlaReading, calendar: Calendar) -> str:
    if reading.state is SlaState.STOPPED:
        return "stopped (closed)"
    # On a business calendar the countdown is open time, which is not what a wall clock says.
    unit = "" if calendar.always_open else " of open time"
    if reading.state is SlaState.BREACHED:
        return f"{reading.target} target breached, {format_left(-reading.left)}{unit} over"
    at_risk = " (75 % of the target used)" if reading.state is SlaState.WARNING else ""
    return f"{format_left(reading.left)}{unit} left to {reading.target}{at_risk}"


def _describe_clock(ticket: Ticket, reading: SlaReading, calendar: Calendar, now: datetime) -> str:
    """Whether the SLA clock runs or stands, and why."""
    if reading.state is SlaState.STOPPED:
        return "stopped: the ticket is closed"
    if ticket.paused_at is not None:
        reason = HOLD_REASON_WORDS[ticket.hold_reason or HoldReason.OTHER]
        since = ticket.paused_at.astimezone().strftime("%Y-%m-%d %H:%M")
        return f"standing since {since} your time: on hold, {reason}\n(the due times move on by the time it stands)"
    if reading.opens_at is not None:
        yours = opens_label(reading.opens_at, now)
        theirs = opens_label(reading.opens_at, now, calendar.local(reading.opens_at).tzinfo)
        return f"standing: {calendar.name} is closed until {yours} your time ({theirs} theirs)"
    if ticket.status is TicketStatus.ON_HOLD:
        reason = HOLD_REASON_WORDS[ticket.hold_reason or HoldReason.OTHER]
        return f"running: on hold, {reason}, which the client's contract does not stop the clock for"
    return "running" if calendar.always_open else f"running: {calendar.name} is open"


def describe_history(events: list[Event]) -> Text:
    text = Text()
    for event in events:
        text.append(f"{_local(event.ts)}  ", style="dim")
        text.append(f"{event.actor:<10} ", style="bold")
        text.append(describe_event(event) + "\n")
    return text


def describe_event(event: Event) -> str:
    if not isinstance(event, TicketEvent):
        return event.kind.replace("_", " ")
    t = event.ticket
    match event.kind:
        case "ticket_created":
            return f"created as {t.priority} for {t.client}"
        case "ticket_assigned":
            source = f" (from {event.previous_assignee})" if event.previous_assignee else ""
            why = f", {event.reason}" if event.reason else ""
            return f"assigned to {t.assignee}{source}{why}"
        case "ticket_unassigned":
            return f"unassigned from {event.previous_assignee}"
        case "priority_changed":
            return f"priority {event.previous_priority} -> {t.priority}"
        case "status_changed":
            previous = event.previous_status.value if event.previous_status else "?"
            why = f" ({HOLD_REASON_WORDS[t.hold_reason]})" if t.status is TicketStatus.ON_HOLD and t.hold_reason else ""
            return f"status {previous} -> {t.status.value}".replace("_", " ") + why
        case "note_added":
            return f"note: {event.note}"
        case "ticket_linked":
            return f"linked to incident {t.incident_id}"
        case "ticket_merged":
            return f"merged into {t.merged_into}: {event.reason}"
        case "ticket_duplicated":
            return f"reported again ({t.duplicates} duplicates)"
        case "client_updated":
            return f"client update: {event.note} ({event.reason})"
    return event.kind


def _local(value: datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
