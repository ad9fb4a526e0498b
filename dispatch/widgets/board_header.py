"""The header: connection state, open count per lane, SLA risk, and the arrival rate as a sparkline."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from dispatch.client import LinkState
from dispatch.core.models import Priority
from dispatch.model import BoardModel


class BoardHeader(Horizontal):
    """One line that tells the dispatcher whether the board can be trusted and how bad things are."""

    def __init__(self, server_url: str) -> None:
        super().__init__(id="header")
        self.server_url = server_url
        self.link = LinkState(connected=False, detail="connecting")
        self.offline_since: datetime | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="connection")
        yield Static(id="who")  # apart, so that a narrow board can drop it before the counts
        yield Static(id="counts")
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
            if self.offline_since is not None:
                connection.append(
                    f" · offline since {self.offline_since.astimezone().strftime('%H:%M:%S')}", style="bold"
                )
        self.query_one("#connection", Static).update(connection)
        self.query_one("#who", Static).update(who)

        counts = Text()
        lanes = model.lane_counts()
        for priority in Priority:
            counts.append(f"{priority.value} ", style="bold")
            counts.append(f"{lanes.get(priority, 0):<4}")
        at_risk, breached = model.sla_counts(now)
        counts.append(" at risk ", style="bold")  # 75 % of the SLA target used
        counts.append(f"{at_risk:<4}", style="yellow" if at_risk else "")
        counts.append("breached ", style="bold")
        counts.append(f"{breached:<4}", style="bold red" if breached else "")
        self.query_one("#counts", Static).update(counts)
        self.query_one("#arrivals", Sparkline).data = model.arrivals_per_minute(now)
