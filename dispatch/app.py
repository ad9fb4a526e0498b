"""The Textual app: one worker owns the websocket; a 10 Hz flush applies events to the screen.

The worker never touches widgets. Welcome and link changes arrive as messages; snapshot and event
frames go to an inbox that `_flush_inbox` applies in one batch at most ten times a second, so a burst
of events costs one redraw, not one per event, and typing stays responsive (a snapshot is applied as
soon as it comes). Replies to commands go to
the `BoardSession`, which the screens are given and use to send commands and ask the server things.
"""

from __future__ import annotations

import gc
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from dispatch.client import AccessRefused, LinkState
from dispatch.core.protocol import BurstEvent, Error, Event, EventFrame, ServerFrame, Snapshot, Welcome
from dispatch.model import BoardModel
from dispatch.screens.board import BoardScreen
from dispatch.screens.connecting import ConnectingScreen
from dispatch.session import BoardSession, Clock, utc_now

FLUSH_INTERVAL_S = 0.1  # at most ten screen updates a second, however fast events come
# A server that answers within this shows the board straight away; drawing "Connecting…" first cost the
# board's first paint several full-screen frames. A failed attempt shows it at once.
CONNECTING_AFTER_S = 0.5
EXIT_REFUSED = 3


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
        """Connected (welcomed), or lost and retrying."""

        link: LinkState

    def __init__(
        self, server_url: str, token: str, *, clock: Clock = utc_now, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__()
        self.session = BoardSession(
            server_url, token, notify=self.notify, rows_changed=self._rows_changed, clock=clock, tls=tls
        )
        self._inbox: list[Snapshot | Event] = []
        # Set once the board is mounted: before that its widgets may not exist yet (a flush or a tick
        # in between would find no header). Until then the model keeps up, and the board's mount
        # draws everything from it.
        self._board: BoardScreen | None = None
        self._board_opening = False
        self._burst_for_board: BurstEvent | None = None  # reported while the board was being mounted
        self._froze_gc = False

    @property
    def model(self) -> BoardModel:
        """The board's copy of the state (the session's)."""
        return self.session.model

    @property
    def link_state(self) -> LinkState:
        """The connection as the header shows it."""
        return self.session.link_state

    @property
    def board(self) -> BoardScreen | None:
        """The board once it is mounted and showing the model; None while connecting."""
        return self._board

    def on_load(self) -> None:
        # Before the stylesheet is parsed and the first screen drawn: the server checks the token and
        # prepares the snapshot while this process is still busy starting up.
        self.connection_worker()

    def on_mount(self) -> None:
        self.set_timer(CONNECTING_AFTER_S, self._show_connecting)
        self.set_interval(FLUSH_INTERVAL_S, self._flush_inbox)
        self.set_interval(1.0, self._tick)

    # --- the connection worker -----------------------------------------------------------------------

    @work(exclusive=True, group="connection", exit_on_error=False)
    async def connection_worker(self) -> None:
        try:
            await self.session.link.run(self.session.last_seq, self._receive, self._post_link_change)
        except AccessRefused as refused:
            self.exit(return_code=EXIT_REFUSED, message=f"dispatch board: the server refused the token ({refused})")

    def _post_link_change(self, link: LinkState) -> None:
        self.post_message(self.LinkChanged(link))

    def _receive(self, frame: ServerFrame) -> None:
        if self.session.take_reply(frame):
            return
        match frame:
            case Welcome():
                self.post_message(self.Welcomed(frame))
            case Snapshot():
                # Applied now rather than at the next flush: a board connecting (or coming back) waits
                # for it, while the flush's pace is for the stream of events. Before the board is
                # mounted that touches only the model, so it happens right here and the board's mount
                # draws it (instead of drawing an empty board first); after, from the message loop.
                self._inbox.append(frame)
                if self._board is None:
                    self._flush_inbox()
                else:
                    self.call_next(self._flush_inbox)
            case EventFrame():
                self._inbox.append(frame.event)
            case Error():
                self.notify(frame.message, title="Server", severity="error")

    # --- applying what arrived -----------------------------------------------------------------------

    def _show_connecting(self) -> None:
        if not self._board_opening and not isinstance(self.screen, ConnectingScreen):
            self.push_screen(ConnectingScreen(self.session.server_url))

    @on(Welcomed)
    def _welcomed(self, message: Welcomed) -> None:
        self.model.welcome(message.welcome)
        if self._board is None and not self._board_opening:
            self._board_opening = True
            board = BoardScreen(self.session, message.welcome.role)
            if isinstance(self.screen, ConnectingScreen):
                self.switch_screen(board)
            else:
                self.push_screen(board)

    @on(BoardScreen.Ready)
    def _board_ready(self, message: BoardScreen.Ready) -> None:
        board = self._board = message.board
        # The board drew itself from the session on mount; catch up on what was applied or what the
        # link did between that and this message (which tickets changed meanwhile is not kept: if any
        # did, everything is drawn again).
        board.refresh_board(set() if board.drawn_seq == self.model.state.seq else None)
        board.show_link(self.session.link_state)
        if self._burst_for_board is not None:
            board.show_burst(self._burst_for_board)
            self._burst_for_board = None

    @on(LinkChanged)
    def _link_changed(self, message: LinkChanged) -> None:
        link = message.link
        self.session.link_changed(link)
        if not link.connected:
            self._show_connecting()
        screen = self.screen
        if isinstance(screen, ConnectingScreen):
            screen.show(link)
        if self._board is not None:
            self._board.show_link(link)

    def _flush_inbox(self) -> None:
        if not self._inbox:
            return
        frames, self._inbox = self._inbox, []
        if not self._froze_gc and any(isinstance(frame, Snapshot) for frame in frames):
            # The decoded snapshot (thousands of tickets) goes out of the collector's way before it is
            # indexed: otherwise the collector scans it again and again while the board is built.
            gc.freeze()
        batch = self.model.apply_batch(frames, self.session.now())
        if batch.gap:
            # Something was lost between us and the server: reconnect, and the server then sends
            # everything after the last seq we applied.
            self.run_worker(self.session.link.resync(), group="resync")
        for alert in self.model.alerts(batch.events):
            self.notify(alert.message, title=alert.title, severity=alert.severity)
        burst = batch.burst
        if burst is not None and self._board is not None:
            self._board.show_burst(burst)
        elif burst is not None:
            self._burst_for_board = burst
        if self._board is not None and batch.redraw:
            with self.batch_update():
                self._board.refresh_board(batch.changed, batch.technicians_changed)
        if batch.changed is None and not self._froze_gc:
            # The first snapshot is most of what this process will ever hold: move it out of the way
            # of the collector, which otherwise pauses the board to scan it again and again.
            gc.freeze()
            self._froze_gc = True

    def _rows_changed(self, ticket_ids: tuple[str, ...]) -> None:
        # A command's pending mark came or went: the session says which rows, the board redraws them.
        if self._board is not None:
            self._board.refresh_rows(ticket_ids)

    def _tick(self) -> None:
        if self._board is not None and self._board.shows(self.screen):
            self._board.tick()

    # --- command palette -----------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, BoardScreen):
            for binding in screen._bindings_for_role():
                yield SystemCommand(
                    binding.description, f"key: {binding.key}", partial(screen.run_action, binding.action)
                )
