"""A priority lane: open tickets, most urgent first, each with its SLA counting down."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style

from dispatch.core.durations import format_age, format_left
from dispatch.core.models import PRIORITY_LABELS, Priority, Ticket, TicketStatus
from dispatch.core.sla import SlaState
from dispatch.model import BoardModel
from dispatch.widgets.row_list import RowList, pad

# After the assignee: started, or waiting on something.
WORK_MARK = {TicketStatus.IN_PROGRESS: " ▶", TicketStatus.ON_HOLD: " ⏸"}
# Fixed column widths; the title takes what is left.
MARK, ID, CLIENT, AGE, SLA, ASSIGNEE, INCIDENT = 2, 9, 14, 7, 9, 12, 8


class Lane(RowList[Ticket]):
    """One lane of the board (P1..P4), or a technician's own lane (priority None)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "lane--fine",
        "lane--warning",
        "lane--breached",
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
        reading = self.model.clock(row, self.now())
        return (row.version, format_left(reading.left), reading.state, row.id in self.marked,
                self.model.is_pending(row.id), format_age(row.created_at, self.now()))  # fmt: skip

    def render_row(self, row: Ticket, width: int, selected: bool) -> list[Segment]:
        now = self.now()
        reading = self.model.clock(row, now)
        styles = self.styles_for_rows
        base = styles["base"]
        if selected:
            base = styles["lane--cursor"]
        elif row.id in self.marked:
            base = styles["lane--marked"]
        sla_style = base + styles.get(
            {SlaState.BREACHED: "lane--breached", SlaState.WARNING: "lane--warning"}.get(reading.state, "lane--fine"),
            Style(),
        )
        dim = base + styles.get("lane--dim", Style())
        pending = self.model.is_pending(row.id)
        mark = ("●" if row.id in self.marked else " ") + ("…" if pending else " ")
        title_width = max(width - (MARK + ID + CLIENT + AGE + SLA + ASSIGNEE + INCIDENT) - 1, 8)
        show_priority = self.priority is None
        title = f"{row.priority.value} {row.title}" if show_priority else row.title
        countdown = format_left(reading.left)
        if reading.state is SlaState.BREACHED:
            countdown = f"!{countdown}"
        if self.priority is None:  # a technician's own lane: every row is theirs, so show where it stands
            assignee = row.status.value.replace("_", " ")
        else:
            assignee = (row.assignee or "unassigned") + WORK_MARK.get(row.status, "")
        return [
            pad(mark, MARK, base + styles.get("lane--pending", Style()) if pending else base),
            pad(row.id, ID, dim),
            pad(title, title_width, base),
            Segment(" ", base),
            pad(row.client, CLIENT - 1, dim),
            Segment(" ", base),
            pad(format_age(row.created_at, now), AGE, dim),
            pad(countdown.rjust(SLA - 1), SLA, sla_style),
            pad(assignee, ASSIGNEE, dim if row.assignee is None else base),
            pad(row.incident_id or "", INCIDENT, dim),
        ]
