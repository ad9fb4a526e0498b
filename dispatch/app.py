"""The Textual app: one worker owns the websocket; a 10 Hz flush applies events to the screen.

The worker never touches widgets. Welcome and link changes arrive as messages; snapshot and event
frames go to an inbox that `_flush_inbox` applies in one batch at most ten times a second, so a burst
of events costs one redraw, not one per event, and typing stays responsive. Replies to commands
resolve futures that the sending action awaits.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from dispatch.client import AccessRefused, LinkState, ServerLink, new_command_id
from dispatch.core.models import Role, Ticket
from dispatch.core.protocol import (
    Ack,
    BurstEvent,
    Command,
    Error,
    Event,
    EventFrame,
    GetHistory,
    History,
    Plan,
    PlanMove,
    Rebalance,
    ServerFrame,
    SlaEvent,
    Snapshot,
    Suggest,
    Suggestions,
    Welcome,
)
from dispatch.model import Applied, BoardModel, PendingCommand, changed_technicians, changed_tickets
from dispatch.screens.board import BoardScreen
from dispatch.screens.pickers import Candidate

FLUSH_INTERVAL_S = 0.1  # at most ten screen updates a second, however fast events come
REPLY_TIMEOUT_S = 15.0
EXIT_REFUSED = 3

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ConnectingScreen(Screen[None]):
    """Shown until the server says who we are."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def compose(self) -> ComposeResult:
        yield Static(f"Connecting to {self.url} …", id="connecting")

    def show(self, link: LinkState) -> None:
        text = f"Connecting to {self.url} …"
        if not link.connected and link.attempt:
            text = f"Cannot reach {self.url}: {link.detail}\nretrying, attempt {link.attempt} (Ctrl+Q quits)"
        self.query_one("#connecting", Static).update(text)


class DispatchApp(App[None]):
    """`dispatch board`: the dispatcher's board, a technician's lane, or a read-only wallboard."""

    CSS_PATH = "board.tcss"
    TITLE = "Dispatch board"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    @dataclass
    class Welcomed(Message):
        """The server accepted our token and said who we are."""

        welcome: Welcome

    @dataclass
    class LinkChanged(Message):
        """Connected, or lost and retrying."""

        link: LinkState

    def __init__(
        self, server_url: str, token: str, *, clock: Clock = utc_now, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__()
        self.server_url = server_url
        self.model = BoardModel()
        self.link = ServerLink(server_url, token, ssl_context=tls)
        self.now = clock
        self._inbox: list[Snapshot | Event] = []
        self._replies: dict[str, asyncio.Future[ServerFrame]] = {}
        # Set once the board is mounted: before that its widgets may not exist yet (a flush or a tick
        # in between would find no header). Until then the model keeps up, and the board's mount
        # draws everything from it.
        self._board: BoardScreen | None = None
        self._board_opening = False
        self._burst_for_board: BurstEvent | None = None  # reported while the board was being mounted
        self._froze_gc = False
        self.link_state = LinkState(connected=False, detail="connecting")

    def on_mount(self) -> None:
        self.push_screen(ConnectingScreen(self.server_url))
        self.set_interval(FLUSH_INTERVAL_S, self._flush_inbox)
        self.set_interval(1.0, self._tick)
        self.connection_worker()

    # --- the connection worker -----------------------------------------------------------------------

    @work(exclusive=True, group="connection", exit_on_error=False)
    async def connection_worker(self) -> None:
        try:
            await self.link.run(self._last_seq, self._receive, self._post_link_change)
        except AccessRefused as refused:
            self.exit(return_code=EXIT_REFUSED, message=f"dispatch board: the server refused the token ({refused})")

    def _post_link_change(self, link: LinkState) -> None:
        self.post_message(self.LinkChanged(link))

    def _last_seq(self) -> int | None:
        # Events still in the inbox are not applied yet: resume from what the model holds.
        return self.model.state.seq if self.model.has_snapshot else None

    def _receive(self, frame: ServerFrame) -> None:
        match frame:
            case Welcome():
                self.post_message(self.Welcomed(frame))
            case Snapshot():
                self._inbox.append(frame)
            case EventFrame():
                self._inbox.append(frame.event)
            case Ack() | Error() | Suggestions() | History() | Plan() if frame.command_id in self._replies:
                future = self._replies.pop(frame.command_id)
                if not future.done():
                    future.set_result(frame)
            case Error():
                self.notify(frame.message, title="Server", severity="error")

    # --- applying what arrived -----------------------------------------------------------------------

    @on(Welcomed)
    def _welcomed(self, message: Welcomed) -> None:
        self.model.welcome(message.welcome)
        if self._board is None and not self._board_opening:
            self._board_opening = True
            self.switch_screen(BoardScreen(message.welcome.role))

    def board_mounted(self, board: BoardScreen) -> None:
        self._board = board
        board.set_class(not self.link_state.connected, "-stale")
        if self._burst_for_board is not None:
            board.show_burst(self._burst_for_board)
            self._burst_for_board = None

    @property
    def board(self) -> BoardScreen | None:
        """The board once it is mounted and showing the model; None while connecting."""
        return self._board

    @on(LinkChanged)
    def _link_changed(self, message: LinkChanged) -> None:
        link = self.link_state = message.link
        screen = self.screen
        if isinstance(screen, ConnectingScreen):
            screen.show(link)
        if self._board is not None:
            self._board.query_one("BoardHeader").show_link(link, self.now())  # type: ignore[attr-defined]
            self._board.set_class(not link.connected, "-stale")
            self._board.refresh_header()
        if not link.connected:
            # Commands that were in flight will never be answered on this connection.
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection lost"))
            self._replies.clear()

    def _flush_inbox(self) -> None:
        if not self._inbox:
            return
        frames, self._inbox = self._inbox, []
        changed: set[str] | None = set()
        applied: list[Event] = []
        for frame in frames:
            if isinstance(frame, Snapshot):
                self.model.load_snapshot(frame)
                changed = None
                applied.clear()
                continue
            outcome = self.model.apply(frame)
            if outcome is Applied.GAP:
                # Something was lost between us and the server: drop the rest and reconnect, the
                # server then sends everything after the last seq we applied.
                self.run_worker(self.link.resync(), group="resync")
                break
            if outcome is Applied.APPLIED:
                applied.append(frame)
        if changed is not None:
            changed |= changed_tickets(applied)
        self._announce_alerts(applied)
        bursts = [e for e in applied if isinstance(e, BurstEvent)]
        if bursts and self._board is not None:
            self._board.show_burst(bursts[-1])
        elif bursts:
            self._burst_for_board = bursts[-1]
        if self._board is not None and (changed is None or applied):
            with self.batch_update():
                self._board.refresh_board(changed, changed is None or changed_technicians(applied))
        if changed is None and not self._froze_gc:
            # The first snapshot is most of what this process will ever hold: move it out of the way
            # of the collector, which otherwise pauses the board to scan it again and again.
            gc.freeze()
            self._froze_gc = True

    def _announce_alerts(self, events: list[Event]) -> None:
        """Breaches and escalations in words, one notification per kind per batch (a burst of forty
        breaches is one message, not forty)."""
        if self.model.role is Role.VIEWER:
            return
        for kind, title, severity in (
            ("sla_breached", "SLA breached", "error"),
            ("escalation", "Escalation", "warning"),
        ):
            hits = [e for e in events if isinstance(e, SlaEvent) and e.kind == kind]
            if not hits:
                continue
            names = ", ".join(
                f"{e.ticket_id} ({e.target})" if kind == "sla_breached" else e.ticket_id for e in hits[:4]
            )
            more = f" and {len(hits) - 4} more" if len(hits) > 4 else ""
            what = "breached" if kind == "sla_breached" else "P1 still unassigned"
            self.notify(f"{what}: {names}{more}", title=title, severity=severity)  # type: ignore[arg-type]

    def _tick(self) -> None:
        if self._board is not None and self.screen is self._board:
            self._board.tick()

    # --- talking to the server -----------------------------------------------------------------------

    def new_id(self) -> str:
        return new_command_id()

    async def request(self, frame: Command) -> ServerFrame | None:
        """Send a command and wait for its answer; None if we are not connected."""
        command_id = frame.command_id
        future: asyncio.Future[ServerFrame] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        if not await self.link.send(frame):
            self._replies.pop(command_id, None)
            return None
        try:
            return await asyncio.wait_for(future, REPLY_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            self._replies.pop(command_id, None)
            return None

    def send_command(self, frame: Command, label: str, ticket_ids: Iterable[str] = ()) -> None:
        """Send a change; its rows show it pending until the ack, and a refusal is said in words."""
        self.run_worker(self._command(frame, label, tuple(ticket_ids)), group="commands")

    async def _command(self, frame: Command, label: str, ticket_ids: tuple[str, ...]) -> None:
        command_id = frame.command_id
        self.model.pending[command_id] = PendingCommand(label, ticket_ids)
        if self._board is not None:
            self._board.acted_on.update(ticket_ids)
        self._refresh_rows(ticket_ids)
        try:
            reply = await self.request(frame)
        finally:
            self.model.pending.pop(command_id, None)
            self._refresh_rows(ticket_ids)
        if reply is None:
            self.notify(f"Not sent: {label} (not connected). Try again once reconnected.", severity="warning")
        elif isinstance(reply, Error):
            title = {"conflict": "Conflict", "forbidden": "Not allowed"}.get(reply.code, "Refused")
            self.notify(self.model.explain_refusal(reply, self.now()), title=title, severity="warning")

    def _refresh_rows(self, ticket_ids: tuple[str, ...]) -> None:
        if self._board is not None and ticket_ids:
            for lane in self._board.lanes:
                lane.forget(set(ticket_ids))
                lane.refresh()

    async def rank_candidates(self, ticket: Ticket) -> list[Candidate]:
        """The server's ranking for `ticket`, then everyone else it left out (for a manual override)."""
        reply = await self.request(Suggest(type="suggest", command_id=self.new_id(), ticket_id=ticket.id))
        ranked: list[Candidate] = []
        if isinstance(reply, Suggestions):
            ranked = [
                Candidate(c.tech_id, f"{c.tech_id:<12} {c.score:>5.2f}  {c.reason}", True) for c in reply.candidates
            ]
        elif isinstance(reply, Error):
            self.notify(reply.message, severity="warning")
        named = {c.tech_id for c in ranked}
        loads = self.model.loads()
        others = []
        for tech in self.model.technicians():
            if tech.id in named or tech.id == ticket.assignee:
                continue
            missing = sorted(set(ticket.skills) - set(tech.skills))
            status = tech.status.value.replace("_", " ")
            label = f"{tech.id:<12}        {status}, load {loads.get(tech.id, 0)}/{tech.capacity}"
            others.append(Candidate(tech.id, label + (f", lacks {', '.join(missing)}" if missing else ""), False))
        return ranked + others

    async def rebalance_plan(self) -> list[PlanMove] | None:
        """The server's rebalance plan; None (and a notification) when it cannot be had."""
        reply = await self.request(Rebalance(type="rebalance", command_id=self.new_id()))
        if isinstance(reply, Plan):
            return reply.moves
        self.notify(reply.message if isinstance(reply, Error) else "Not connected.", severity="warning")
        return None

    async def ticket_history(self, ticket_id: str) -> list[Event] | None:
        reply = await self.request(GetHistory(type="history", command_id=self.new_id(), ticket_id=ticket_id))
        return reply.events if isinstance(reply, History) else None

    # --- command palette -----------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, BoardScreen):
            for binding in screen._bindings_for_role():
                yield SystemCommand(
                    binding.description, f"key: {binding.key}", partial(screen.run_action, binding.action)
                )
