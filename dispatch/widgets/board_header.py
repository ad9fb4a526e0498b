"""The header: connection state, open count per lane, SLA risk, and the arrival rate as a sparkline."""

from __future__ import annotations

from datetime import datetime

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from dispatch.client import LinkState
from dispatch.core.models import Priority
from dispatch.model import BoardModel
from dispatch.widgets.fitted_line import show_words

# The margins board.tcss gives the SLA risk (right) and the lane counts (left), in cells.
RISK_MARGIN, COUNTS_MARGIN = 2, 2


class BoardHeader(Horizontal):
    """One line that tells the dispatcher whether the board can be trusted and how bad things are."""

    def __init__(self, server_url: str) -> None:
        super().__init__(id="header")
        self.server_url = server_url
        self.link = LinkState(connected=False, detail="connecting")
        self.offline_since: datetime | None = None

    def compose(self) -> ComposeResult:
        # Apart, so that each gives way on its own: the connection and the SLA risk never, the lane
        # counts piece by piece (the lanes' titles say them too), who and the arrivals on a narrow board.
        yield Static(id="connection")
        yield Static(id="who")
        yield LaneCounts(id="lane-counts")
        yield Static(id="risk")
        yield Static("arrivals/30 min ", id="arrivals-label")
        yield Sparkline([0] * 30, id="arrivals")

    def show_link(self, link: LinkState, now: datetime) -> None:
        if link.connected:
            self.offline_since = None
        elif self.offline_since is None:
            self.offline_since = now
        self.link = link

    def refresh_from(self, model: BoardModel, now: datetime) -> None:
        connection = Text()
        who = ""
        if self.link.connected:
            connection.append(
                f"● connected to {self.link.node}" if self.link.node else "● connected", style="bold green"
            )
            name = f" as {model.user}" if model.user else ""
            role = f" ({model.role.value})" if model.role else ""
            who = f"{name}{role}"
        else:
            connection.append("◌ reconnecting", style="bold yellow")
            if self.link.attempt:
                connection.append(f" #{self.link.attempt}")
            if self.link.reason:
                # The server's own words say why and what to do: "the database cannot be reached: try
                # again later" is not the same outage as a server that is gone. Before the time, which
                # gives way first in a narrow header.
                connection.append(f" · {self.link.reason}")
            if self.offline_since is not None:
                connection.append(
                    f" · offline since {self.offline_since.astimezone().strftime('%H:%M:%S')}", style="bold"
                )
        show_words(self.query_one("#who", Static), who)

        lanes = model.lane_counts()
        self.query_one(LaneCounts).show([(priority.value, lanes.get(priority, 0)) for priority in Priority])
        risk = Text()
        at_risk, breached = model.sla_counts(now)
        risk.append("at risk ", style="bold")  # 75 % of the SLA target used
        risk.append(f"{at_risk}", style="yellow" if at_risk else "")
        risk.append("  breached ", style="bold")
        risk.append(f"{breached}", style="bold red" if breached else "")
        show_words(self.query_one("#risk", Static), risk)
        room = self._connection_room(who, risk)
        if 0 < room < connection.cell_len:
            # A long node name gives way, never the SLA counts after it; a name is one word: its end goes.
            connection.truncate(room, overflow="ellipsis")
        show_words(self.query_one("#connection", Static), connection)
        self.query_one("#arrivals", Sparkline).data = model.arrivals_per_minute(now)

    def _connection_room(self, who: str, risk: Text) -> int:
        """The cells the connection state may take: the header's width less the SLA risk, and whatever
        else shows at this width (who, the arrivals), with their margins; 0 before the first layout."""
        width = self.content_region.width
        if not width:
            return 0
        taken = risk.cell_len + RISK_MARGIN + COUNTS_MARGIN
        if self.query_one("#who").display:
            taken += cell_len(who)
        for part in ("#arrivals-label", "#arrivals"):
            widget = self.query_one(part)
            if widget.display:
                taken += widget.outer_size.width
        return max(width - taken, 1)


class LaneCounts(Widget):
    """`P1 9  P2 7  P3 6  P4 0`, as many lanes as fit, whole: never `P3 6  P`."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.counts: list[tuple[str, int]] = []

    def show(self, counts: list[tuple[str, int]]) -> None:
        if counts != self.counts:
            self.counts = counts
            self.refresh()

    def render(self) -> Content:
        room = self.content_region.width
        parts: list[Content] = []
        for lane, count in self.counts:
            piece = Content.assemble((lane, "bold"), f" {count:<3}", " ")
            if piece.cell_length > room:
                break
            parts.append(piece)
            room -= piece.cell_length
        return Content("").join(parts)
