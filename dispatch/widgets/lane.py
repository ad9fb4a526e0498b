"""A priority lane: open tickets, most urgent first, each with its SLA counting down.

The countdown is open time on the ticket's own calendar, so it tells the truth about business hours:
while the calendar is closed the clock stands, and the row says when it opens instead of counting
down (`⏸Mon 09:00`, the dispatcher's local time); a ticket whose clock a hold stopped shows the time
left at the pause, marked `⏸` the same way. Colours and order come from the server's due and warning
instants (`BoardModel.clock`, `BoardModel.lane`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from functools import cache
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style

from dispatch.core.durations import format_age, format_left
from dispatch.core.models import PRIORITY_LABELS, Priority, Ticket, TicketStatus
from dispatch.core.sla import SlaReading, SlaState
from dispatch.model import BoardModel, opens_label
from dispatch.widgets.row_list import RowList, pad

# After the assignee: started, or waiting on something.
WORK_MARK = {TicketStatus.IN_PROGRESS: " ▶", TicketStatus.ON_HOLD: " ⏸"}
# The clock stands: the calendar is closed, or a hold stopped it.
STANDING = "⏸"
# Column widths, each with its gap; the title takes what is left. The countdown column holds the
# longest thing it says, a breached ticket on a closed calendar (`!⏸Mon09:00`), so it is never cut:
# two cells more than a countdown needs, rather than the seven `opens Mon 09:00` would take from every
# title for a state most rows are never in.
MARK, ID, CLIENT, AGE, SLA, ASSIGNEE, INCIDENT = 2, 9, 14, 7, 11, 12, 8
# A narrow lane drops columns, least needed first, before its titles get shorter than MIN_TITLE; the
# mark, the id and the countdown always stay.
GIVE_WAY = (("incident", INCIDENT), ("age", AGE), ("client", CLIENT), ("assignee", ASSIGNEE))
MIN_TITLE = 12


@cache
def columns(width: int) -> tuple[frozenset[str], int]:
    """The optional columns a lane `width` cells wide shows, and the width left to the title."""
    shown = list(GIVE_WAY)
    room = width - MARK - ID - SLA
    while shown and room - sum(size for _, size in shown) < MIN_TITLE:
        shown.pop(0)
    return frozenset(name for name, _ in shown), max(room - sum(size for _, size in shown), 0)


def countdown(reading: SlaReading, ticket: Ticket, now: datetime) -> str:
    """What the countdown column says: the open time left (`!` once breached), `⏸` before it while a
    hold stops the clock, or `⏸` and when the calendar opens while it is closed."""
    breached = "!" if reading.state is SlaState.BREACHED else ""
    if reading.opens_at is not None:
        opens = opens_label(reading.opens_at, now)
        return f"!{STANDING}{opens.replace(' ', '')}" if breached else STANDING + opens
    standing = STANDING if ticket.paused_at is not None else ""
    return breached + standing + format_left(reading.left)


class Lane(RowList[Ticket]):
    """One lane of the board (P1..P4), or a technician's own lane (priority None)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "lane--fine",
        "lane--warning",
        "lane--breached",
        "lane--standing",
        "lane--dim",
        "lane--cursor",
        "lane--marked",
        "lane--pending",
        "lane--priority",
    }

    ROW_BASE_CLASSES: ClassVar[frozenset[str]] = frozenset({"lane--cursor", "lane--marked"})

    def __init__(
        self, model: BoardModel, priority: Priority | None, now: Callable[[], datetime], *, id: str | None = None
    ) -> None:
        super().__init__(id=id, classes="lane")
        self.model = model
        self.priority = priority
        self.now = now
        self.marked: set[str] = set()

    @property
    def title(self) -> str:
        if self.priority is None:
            return "My tickets"
        return f"{self.priority.value} {PRIORITY_LABELS[self.priority]}"

    def on_mount(self) -> None:
        self.border_title = self.title

    def update_title(self, shown: int, total: int) -> None:
        count = f"{shown}" if shown == total else f"{shown} of {total}"
        self.border_title = f"{self.title} · {count}"

    # --- RowList -------------------------------------------------------------------------------------

    def row_key(self, row: Ticket) -> Hashable:
        return row.id

    def row_signature(self, row: Ticket) -> Hashable:
        # The countdown as it reads (it holds the "opens" text, which changes when the calendar opens
        # or closes without the ticket changing), not the reading: a standing clock redraws nothing.
        now = self.now()
        reading = self.model.clock(row, now)
        return (row.version, countdown(reading, row, now), reading.state, row.id in self.marked,
                self.model.is_pending(row.id), format_age(row.created_at, now))  # fmt: skip

    def render_row(self, row: Ticket, width: int, selected: bool) -> list[Segment]:
        now = self.now()
        reading = self.model.clock(row, now)
        styles = self.styles_for_rows
        base = styles["base"]
        if selected:
            base = styles["lane--cursor"]
        elif row.id in self.marked:
            base = styles["lane--marked"]
        state_class = {SlaState.BREACHED: "lane--breached", SlaState.WARNING: "lane--warning"}.get(
            reading.state, "lane--fine"
        )
        sla_style = base + styles.get(state_class, Style())
        if reading.opens_at is not None or row.paused_at is not None:
            sla_style += styles.get("lane--standing", Style())
        dim = base + styles.get("lane--dim", Style())
        pending = self.model.is_pending(row.id)
        mark = ("●" if row.id in self.marked else " ") + ("…" if pending else " ")
        shown, title_width = columns(width)
        title = f"{row.priority.value} {row.title}" if self.priority is None else row.title
        if self.priority is None:  # a technician's own lane: every row is theirs, so show where it stands
            assignee = row.status.value.replace("_", " ")
        else:
            assignee = (row.assignee or "unassigned") + WORK_MARK.get(row.status, "")
        segments = [
            pad(mark, MARK, base + styles.get("lane--pending", Style()) if pending else base),
            pad(row.id, ID, dim),
            pad(title, title_width - 1, base),
            Segment(" " if title_width else "", base),
        ]
        if "client" in shown:
            segments += [pad(row.client, CLIENT - 1, dim), Segment(" ", base)]
        if "age" in shown:
            segments.append(pad(format_age(row.created_at, now), AGE, dim))
        segments.append(pad(countdown(reading, row, now).rjust(SLA - 1), SLA, sla_style))
        if "assignee" in shown:
            segments.append(pad(assignee, ASSIGNEE, dim if row.assignee is None else base))
        if "incident" in shown:
            segments.append(pad(row.incident_id or "", INCIDENT, dim))
        return segments
