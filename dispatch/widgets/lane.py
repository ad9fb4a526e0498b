"""A priority lane: open tickets, most urgent first, each with its SLA counting down.

The countdown is open time on the ticket's own calendar, so it tells the truth about business hours:
while the calendar is closed the clock stands, and the row says when it opens instead of counting
down (`⏸Mon 09:00`, the dispatcher's local time); a ticket whose clock a hold stopped shows the time
left at the pause, marked `⏸` the same way. Colours and order come from the server's due and warning
instants (`BoardModel.clock`, `BoardModel.lane`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from typing import ClassVar

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region

from dispatch.core.durations import format_age, format_left
from dispatch.core.models import OPEN_STATUSES, PRIORITY_LABELS, Priority, Ticket, TicketStatus
from dispatch.core.sla import SlaReading, SlaState
from dispatch.model import BoardModel, lane_order, opens_label
from dispatch.widgets.columns import Column, cells, cut_words, fit_columns
from dispatch.widgets.row_list import RowList, pad

# After the assignee: started, or waiting on something.
WORK_MARK = {TicketStatus.IN_PROGRESS: " ▶", TicketStatus.ON_HOLD: " ⏸"}
# The clock stands: the calendar is closed, or a hold stopped it.
STANDING = "⏸"
# The countdown column holds the longest thing it says, a breached ticket on a closed calendar
# (`!⏸Mon09:00`), so it is never cut: it is what the board exists to show.
SLA = 10
MARK = 2  # marked for a bulk move, and a command pending
AGE = 6  # `12m05s`, `3h20m`, `2d04h`
MIN_TITLE = 12
READABLE_TITLE = 36  # what a title grows to before the age, the incident and the site get room
CLIENT_CAP, ASSIGNEE_CAP, SITE_CAP, INCIDENT_CAP = 24, 16, 16, 10
# Left to right on screen; which of them show is decided by importance (`lane_columns`).
ON_SCREEN = ("id", "title", "client", "site", "age", "sla", "assignee", "incident")


def assignee_words(ticket: Ticket, own_lane: bool) -> str:
    """The assignee column: who has it and whether it is started or waiting; in a technician's own
    lane (every row is theirs) where it stands instead."""
    if own_lane:
        return ticket.status.value.replace("_", " ")
    return (ticket.assignee or "unassigned") + WORK_MARK.get(ticket.status, "")


def title_words(ticket: Ticket, own_lane: bool) -> str:
    """The title column: in a technician's own lane, where every priority mixes, with the priority."""
    return f"{ticket.priority.value} {ticket.title}" if own_lane else ticket.title


def lane_columns(tickets: Sequence[Ticket], own_lane: bool) -> tuple[Column, ...]:
    """A lane's columns, most important first, as wide as these tickets need (`LaneWidths`)."""
    widths = LaneWidths(own_lane)
    widths.fill(tickets)
    return widths.columns()


# What a ticket asks of each column (`LaneWidths.measure`): id, title, then what it shares with many
# others: assignee, client (and its first word), site (and its first word), incident.
_MEASURED = 8
_SHARED_KEPT = 10_000  # different (assignee, status, client, site, incident) measured before starting over


class LaneWidths:
    """How wide a lane's columns must be for the tickets it holds, kept up as tickets come, change and
    go: a lane of thousands of tickets under a stream re-measures only the changed ones (measuring all
    of them on every flush cost more than the rest of the flush together).

    Each ticket's own widths are kept, so a ticket that changes or leaves takes back exactly what it
    asked for; per column, how many tickets ask for each width, so the widest is at hand."""

    def __init__(self, own_lane: bool) -> None:
        self.own_lane = own_lane
        self._asks: dict[str, tuple[int, ...]] = {}
        self._counts: list[Counter[int]] = [Counter() for _ in range(_MEASURED)]
        # A queue has a few clients, sites and technicians: what they ask is measured once, not once a
        # ticket (a third of measuring a snapshot's thousands).
        self._shared: dict[tuple[object, ...], tuple[int, ...]] = {}

    def measure(self, ticket: Ticket) -> tuple[int, ...]:
        own_lane = self.own_lane
        key = (ticket.assignee, ticket.status, ticket.client, ticket.site, ticket.incident_id)
        shared = self._shared.get(key)
        if shared is None:
            if len(self._shared) >= _SHARED_KEPT:
                self._shared.clear()
            client, site = ticket.client, ticket.site
            shared = self._shared[key] = (
                cells(assignee_words(ticket, own_lane), ASSIGNEE_CAP), cells(client, CLIENT_CAP),
                cells(client.partition(" ")[0], CLIENT_CAP - 1), cells(site, SITE_CAP),
                cells(site.partition(" ")[0], SITE_CAP - 1), cells(ticket.incident_id or "", INCIDENT_CAP),
            )  # fmt: skip
        return (cells(ticket.id, 12), cells(title_words(ticket, own_lane), READABLE_TITLE)) + shared

    def put(self, ticket: Ticket) -> None:
        """The lane holds `ticket` (new, or changed: measured again)."""
        self.drop(ticket.id)
        asks = self._asks[ticket.id] = self.measure(ticket)
        for counts, width in zip(self._counts, asks, strict=True):
            counts[width] += 1

    def fill(self, tickets: Iterable[Ticket]) -> None:
        """Hold exactly `tickets` (a snapshot's thousands: counted column by column, not ticket by ticket)."""
        self._asks = {ticket.id: self.measure(ticket) for ticket in tickets}
        by_column = list(zip(*self._asks.values(), strict=True)) or [()] * _MEASURED
        for counts, widths in zip(self._counts, by_column, strict=True):
            counts.clear()
            counts.update(widths)

    def drop(self, ticket_id: str) -> None:
        """The lane no longer holds this ticket."""
        asks = self._asks.pop(ticket_id, None)
        if asks is None:
            return
        for counts, width in zip(self._counts, asks, strict=True):
            counts[width] -= 1
            if not counts[width]:
                del counts[width]

    def clear(self) -> None:
        self._asks.clear()
        for counts in self._counts:
            counts.clear()

    def columns(self) -> tuple[Column, ...]:
        """The columns, most important first: the id and the countdown always; then who has it, the
        title (at least MIN_TITLE), the client (up to its real length), more of the title (up to
        READABLE_TITLE), the age, the incident and the site; the title takes the rest."""
        ids, titles, assignees, clients, client_words, sites, site_words, incidents = (
            max(counts, default=0) for counts in self._counts
        )
        return (
            Column("id", max(ids, 8), always=True),
            Column("sla", SLA, always=True),
            Column("assignee", assignees),
            Column("title", MIN_TITLE, least=MIN_TITLE, fills=True),
            Column("client", clients, least=client_words + 1),
            Column("title", max(titles - MIN_TITLE, 0), least=1, gap=0),
            Column("age", AGE),
            Column("incident", incidents),
            Column("site", sites, least=site_words + 1),
        )


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
        self._count = "0"
        self._note = ""
        self._titled = ""  # the title as last set
        self._widths = LaneWidths(priority is None)
        self.content_columns: tuple[Column, ...] = self._widths.columns()
        """The columns as this lane's own tickets ask for them."""
        self.column_specs = self.content_columns
        """The columns it draws with (`use_columns`)."""

    @property
    def title(self) -> str:
        if self.priority is None:
            return "My tickets"
        return f"{self.priority.value} {PRIORITY_LABELS[self.priority]}"

    def on_mount(self) -> None:
        self.border_title = self._titled = self.title

    def set_rows(
        self, rows: Sequence[Ticket], *, follow: bool = True, words: bool = False, changed: set[str] | None = None
    ) -> None:
        """Replace the rows; `changed`: the ids of the tickets that changed since the last call, the
        only ones measured again for the columns (None: measure them all)."""
        super().set_rows(rows, follow=follow, words=words)
        if changed is None:
            self._widths.fill(rows)
        elif changed:
            tickets = self.model.state.tickets
            for ticket_id in changed:
                now = tickets.get(ticket_id)
                # Only a ticket of this lane's priority can be in it (a technician's own lane takes any).
                if now is not None and self.priority in (None, now.priority) and self.position(ticket_id) is not None:
                    self._widths.put(now)
                else:
                    self._widths.drop(ticket_id)
        self.content_columns = self._widths.columns()

    def use_columns(self, columns: tuple[Column, ...]) -> None:
        """Draw with these columns (the board's lanes share one set, so that their columns line up).
        Widths follow the content: when they change (a longer client arrived), every strip is stale."""
        if columns != self.column_specs:
            self.column_specs = columns
            self._strips.clear()
            self.refresh()

    def update_title(self, shown: int, total: int) -> None:
        self._count = f"{shown}" if shown == total else f"{shown} of {total}"
        self._retitle()

    def set_note(self, note: str) -> None:
        """A word after the count in the title (the focus view says how to see a folded lane again)."""
        if note != self._note:
            self._note = note
            self._retitle()

    def _retitle(self) -> None:
        title = f"{self.title} · {self._count}{self._note}"
        if title == self._titled:
            return
        self._titled = title
        if not self.is_mounted or not self.size:
            self.border_title = title
            return
        # Setting `border_title` repaints the whole lane, and the count moves on most flushes of a
        # busy board: set the title as Textual's own setter does (pinned) and repaint only the top
        # border line it sits on. (Regions are given relative to the content, inside the border.)
        self._border_title = self.render_str(title).expand_tabs(4).split()[0]
        offset = self.content_offset
        self.refresh(Region(-offset.x, -offset.y, self.outer_size.width, 1))

    # --- RowList -------------------------------------------------------------------------------------

    def position(self, key: Hashable) -> int | None:
        # The rows are in lane order (`lane_order`, filtered or not): where the ticket as it is now
        # would stand is a bisection, not a look through thousands of rows on every flush.
        ticket = self.model.state.tickets.get(key) if isinstance(key, str) else None
        if ticket is None or ticket.status not in OPEN_STATUSES:
            return None
        index = bisect_left(self.rows, lane_order(ticket), key=lane_order)
        return index if index < len(self.rows) and self.rows[index].id == key else None

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
        widths = dict(fit_columns(width - MARK, self.column_specs))
        own_lane = self.priority is None
        texts = {
            "id": (row.id, dim),
            "title": (title_words(row, own_lane), base),
            "client": (row.client, dim),
            "site": (row.site, dim),
            "age": (format_age(row.created_at, now), dim),
            "sla": (countdown(reading, row, now).rjust(SLA), sla_style),
            "assignee": (assignee_words(row, own_lane), dim if row.assignee is None and not own_lane else base),
            "incident": (row.incident_id or "", dim),
        }
        segments = [pad(mark, MARK, base + styles.get("lane--pending", Style()) if pending else base)]
        for name in ON_SCREEN:
            size = widths.get(name)
            if size is None:
                continue
            text, style = texts[name]
            segments += [Segment(set_cell_size(cut_words(text, size), size), style), Segment(" ", base)]
        return segments
