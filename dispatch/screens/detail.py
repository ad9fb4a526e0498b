"""A ticket's detail: every field, and its history (who assigned whom, when, why)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from dispatch.core.durations import format_left
from dispatch.core.models import Ticket
from dispatch.core.protocol import Event, TicketEvent
from dispatch.core.sla import SlaReading, SlaState
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
        reading = self.session.model.clock(t, self.session.now())
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        rows = [
            ("client", t.client),
            ("site", t.site or "-"),
            ("category", t.category.value),
            ("priority", t.priority.value),
            ("status", t.status.value.replace("_", " ")),
            ("assignee", t.assignee or "unassigned"),
            ("skills", ", ".join(t.skills) or "-"),
            ("incident", t.incident_id or "-"),
            ("created", _local(t.created_at)),
            ("respond by", _local(t.respond_by)),
            ("resolve by", _local(t.resolve_by)),
            ("SLA", _describe_sla(reading)),
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


def _describe_sla(reading: SlaReading) -> str:
    if reading.state is SlaState.STOPPED:
        return "stopped (closed)"
    if reading.state is SlaState.BREACHED:
        return f"{reading.target} target breached {format_left(-reading.left)} ago"
    at_risk = " (75 % of the target used)" if reading.state is SlaState.WARNING else ""
    return f"{format_left(reading.left)} left to {reading.target}{at_risk}"


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
            return f"status {previous} -> {t.status.value}".replace("_", " ")
        case "note_added":
            return f"note: {event.note}"
        case "ticket_linked":
            return f"linked to incident {t.incident_id}"
        case "ticket_merged":
            return f"merged into {t.merged_into}: {event.reason}"
        case "ticket_duplicated":
            return f"reported again ({t.duplicates} duplicates)"
    return event.kind


def _local(value: object) -> str:
    from datetime import datetime

    assert isinstance(value, datetime)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
