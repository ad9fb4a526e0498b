"""The board's session: what the screens work with, apart from their own widgets.

It owns the board's copy of the state (`BoardModel`), the link to the server, the replies awaited per
command, and the questions the screens put to the server (a ranking, a rebalance plan, a ticket's
history). The App creates one and hands it to each screen it opens; screens call it and never reach
into the App.

No Textual here, on purpose: the session is plain asyncio, so it can be tested without a terminal and
the import arrows stay one way (app -> screens -> widgets -> session -> model). It tells the UI the two
things it has to say through callables its owner passes in, `notify` (a sentence for the user) and
`rows_changed` (these tickets' pending marks changed): that is the whole surface, so a callback per
need is simpler than posting Textual messages, which would tie this module to a message pump.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from dispatch.client import LinkState, ServerLink, new_command_id
from dispatch.core.models import Callout, Ticket
from dispatch.core.protocol import (
    Ack,
    AnswerCallout,
    CalloutCommand,
    Command,
    Error,
    Event,
    Forecast,
    ForecastAnswer,
    GetHistory,
    History,
    Plan,
    PlanMove,
    Rebalance,
    ServerFrame,
    Suggest,
    Suggestions,
    Undo,
    WhatIfTechnician,
)
from dispatch.core.state import UNDO_WINDOW, UNDOABLE
from dispatch.model import BoardModel, PendingCommand, Severity

__all__ = [
    "BoardSession",
    "Clock",
    "ForecastSchedule",
    "Notify",
    "RecentChange",
    "TechnicianChoice",
    "WhatIf",
    "utc_now",
]

REPLY_TIMEOUT_S = 15.0
# The header's forecast is asked for again this often, and after a batch of changes at most this often:
# the server runs the whole queue through its model for each answer.
FORECAST_EVERY_S = 30.0
FORECAST_AFTER_CHANGES_S = 5.0
# The frames that answer one command (by its command_id); the rest are the stream of events.
REPLIES = (Ack, Error, Suggestions, History, Plan, ForecastAnswer)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Notify(Protocol):
    """Say something to the user (Textual's `App.notify` fits)."""

    def __call__(self, message: str, *, title: str = "", severity: Severity = "information") -> None: ...


@dataclass(frozen=True)
class TechnicianChoice:
    """One row of the assign picker: a technician, as the server ranked them or as a manual override."""

    tech_id: str
    label: str
    ranked: bool  # in the server's ranking; False: left out of it (busy, lacks skills), offered anyway
    blocked: str | None = None  # the fatigue rule giving them the ticket would break (an override)


@dataclass(frozen=True)
class RecentChange:
    """A change this dispatcher made and the server acked: what `z` can take back (within 15 minutes)."""

    command_id: str
    what: str  # in words, as the change was labelled: "13 moves of the rebalance"
    at: datetime
    ticket_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class WhatIf:
    """The forecast's what-if: technicians who are not there (their skills and capacity, and in words,
    e.g. "+1 network", "call out judy"), and technicians left out."""

    extra: tuple[tuple[str, tuple[str, ...], int], ...] = ()  # (words, skills, capacity)
    without: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.extra and not self.without

    def words(self) -> str:
        """`+1 network · call out judy · without bob`."""
        return " · ".join([w for w, _, _ in self.extra] + [f"without {t}" for t in self.without])


@dataclass
class ForecastSchedule:
    """When the header's forecast is asked for again: every `every` seconds, and after a batch of
    changes once `after_changes` seconds have passed since the last ask; never while one is in flight.
    Times are monotonic seconds, so a fixed board clock (tests, screenshots) does not stop it."""

    every: float = FORECAST_EVERY_S
    after_changes: float = FORECAST_AFTER_CHANGES_S
    asked_at: float | None = None
    in_flight: bool = False
    changed_since: bool = False

    def changed(self) -> None:
        """A batch of changes was applied: the forecast may be out of date."""
        self.changed_since = True

    def due(self, now: float) -> bool:
        if self.in_flight:
            return False
        if self.asked_at is None:
            return True
        since = now - self.asked_at
        return since >= self.every or (self.changed_since and since >= self.after_changes)

    def started(self, now: float) -> None:
        self.asked_at, self.in_flight, self.changed_since = now, True, False

    def finished(self) -> None:
        self.in_flight = False


class BoardSession:
    """One board's connection to the server and its copy of the state, shared by its screens."""

    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        notify: Notify,
        rows_changed: Callable[[tuple[str, ...]], None],
        clock: Clock = utc_now,
        tls: ssl.SSLContext | None = None,
        link: ServerLink | None = None,
    ) -> None:
        self.server_url = server_url
        self.model = BoardModel()
        self.link = link or ServerLink(server_url, token, ssl_context=tls)
        self.now = clock
        self.link_state = LinkState(connected=False, detail="connecting")
        self._notify = notify
        self._rows_changed = rows_changed
        self._replies: dict[str, asyncio.Future[ServerFrame]] = {}
        # This dispatcher's acked changes of the last 15 minutes, oldest first: what `z` can take back.
        self.recent: list[RecentChange] = []

    # --- the link ------------------------------------------------------------------------------------

    def last_seq(self) -> int | None:
        """Where to resume: the last event the model applied (frames not yet applied do not count)."""
        return self.model.state.seq if self.model.has_snapshot else None

    def take_reply(self, frame: ServerFrame) -> bool:
        """True when `frame` answers a command awaited here (and hands it to its sender)."""
        if not isinstance(frame, REPLIES) or frame.command_id is None:
            return False
        future = self._replies.pop(frame.command_id, None)
        if future is None:
            return False
        if not future.done():
            future.set_result(frame)
        return True

    def link_changed(self, link: LinkState) -> None:
        self.link_state = link
        if not link.connected:
            # Commands that were in flight will never be answered on this connection.
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection lost"))
            self._replies.clear()

    # --- talking to the server -----------------------------------------------------------------------

    def new_id(self) -> str:
        return new_command_id()

    async def request(self, frame: Command) -> ServerFrame | None:
        """Send a command and wait for its answer; None if we are not connected."""
        command_id = frame.command_id
        future: asyncio.Future[ServerFrame] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        try:
            if not await self.link.send(frame):
                return None
            return await asyncio.wait_for(future, REPLY_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            return None
        finally:
            # Also when the asker was cancelled (a what-if replaced by the next): no reply waits here.
            self._replies.pop(command_id, None)

    async def send_command(self, frame: Command, label: str, ticket_ids: Iterable[str] = ()) -> ServerFrame | None:
        """Send a change: its rows show it pending until the answer, and a refusal is said in words.

        Returns the answer (None when it could not be sent or was lost with the connection)."""
        ids = tuple(ticket_ids)
        command_id = frame.command_id
        self.model.pending[command_id] = PendingCommand(label, ids)
        self._pending_changed(ids)
        try:
            reply = await self.request(frame)
        finally:
            self.model.pending.pop(command_id, None)
            self._pending_changed(ids)
        if reply is None:
            self._notify(f"Not sent: {label} (not connected). Try again once reconnected.", severity="warning")
        elif isinstance(reply, Error):
            titles = {"conflict": "Conflict", "forbidden": "Not allowed", "unavailable": "Not saved: try again"}
            title = titles.get(reply.code, "Refused")
            words = self.model.explain_refusal(reply, self.now())
            if reply.code == "unavailable":
                # The server's words are for scripts ("resend it (same command_id)"); a person presses the
                # key again.
                words = f"{label}: the database cannot be reached, nothing was changed. Try again in a moment."
            self._notify(words, title=title, severity="warning")
        elif isinstance(reply, Ack):
            if reply.override:
                self._notify(f"{label}, against a fatigue rule: {reply.override}. The decision log records it.",
                             title="Override", severity="warning")  # fmt: skip
            if frame.type in UNDOABLE and frame.type != "undo":
                self.recent.append(RecentChange(command_id, label, self.now(), ids))
        return reply

    def _pending_changed(self, ticket_ids: tuple[str, ...]) -> None:
        if ticket_ids:
            self._rows_changed(ticket_ids)

    async def rank_candidates(self, ticket: Ticket) -> list[TechnicianChoice]:
        """The server's ranking for `ticket`, then everyone else it left out (for a manual override)."""
        reply = await self.request(Suggest(command_id=self.new_id(), ticket_id=ticket.id))
        ranked: list[TechnicianChoice] = []
        if isinstance(reply, Suggestions):
            # Someone a fatigue rule holds back is offered for an override, with the rule, never as the best.
            ranked = [
                TechnicianChoice(c.tech_id, f"{c.tech_id:<12} {c.score:>5.2f}  {c.reason}", True)
                if c.blocked is None
                else TechnicianChoice(c.tech_id, f"{c.tech_id:<12}        ⚠ {c.blocked}", False, c.blocked)
                for c in reply.candidates
            ]
        elif isinstance(reply, Error):
            self._notify(reply.message, severity="warning")
        named = {c.tech_id for c in ranked}
        loads = self.model.loads()
        others = []
        for tech in self.model.technicians():
            if tech.id in named or tech.id == ticket.assignee:
                continue
            missing = sorted(set(ticket.skills) - set(tech.skills))
            status = tech.status.value.replace("_", " ")
            label = f"{tech.id:<12}        {status}, load {loads.get(tech.id, 0)}/{tech.capacity}"
            lacks = f", lacks {', '.join(missing)}" if missing else ""
            others.append(TechnicianChoice(tech.id, label + lacks, False))
        return ranked + others

    async def rebalance_plan(self) -> list[PlanMove] | None:
        """The server's rebalance plan; None (and a notification) when it cannot be had."""
        reply = await self.request(Rebalance(command_id=self.new_id()))
        if isinstance(reply, Plan):
            return reply.moves
        self._notify(reply.message if isinstance(reply, Error) else "Not connected.", severity="warning")
        return None

    async def ticket_history(self, ticket_id: str) -> list[Event] | None:
        """Every event about the ticket, oldest first; None when not connected."""
        reply = await self.request(GetHistory(command_id=self.new_id(), ticket_id=ticket_id))
        return reply.events if isinstance(reply, History) else None

    # --- people's time -------------------------------------------------------------------------------

    async def call_out(self, tech_id: str, reason: str) -> Ack | None:
        """Call `tech_id` in (a dispatcher); says the call-out's id, or the refusal, in words."""
        reply = await self.send_command(
            CalloutCommand(command_id=self.new_id(), tech_id=tech_id, reason=reason), f"call out {tech_id}"
        )
        if not isinstance(reply, Ack):
            return None
        self._notify(f"Call-out {reply.callout_id} sent to {tech_id}: they answer on their board.", title="Call-out")
        return reply

    async def answer_callout(self, callout: Callout, accept: bool) -> Ack | None:
        """A technician's answer to a call-out sent to them."""
        verb = "accept" if accept else "decline"
        reply = await self.send_command(
            AnswerCallout(command_id=self.new_id(), callout_id=callout.id, accept=accept), f"{verb} {callout.id}"
        )
        if not isinstance(reply, Ack):
            return None
        said = "accepted: you are available" if accept else "declined: the next on the ladder is asked"
        self._notify(f"{callout.id} {said}.", title="Call-out")
        return reply

    # --- the forecast --------------------------------------------------------------------------------

    async def forecast(self, what_if: WhatIf = WhatIf()) -> ForecastAnswer | None:
        """The server's breach forecast, with `what_if`'s changes to the team; None when it cannot be had.
        The plain one (no what-if) is also kept in the model, for the header."""
        frame = Forecast(
            command_id=self.new_id(),
            extra=[WhatIfTechnician(skills=list(skills), capacity=capacity) for _, skills, capacity in what_if.extra],
            without=list(what_if.without),
        )
        reply = await self.request(frame)
        if not isinstance(reply, ForecastAnswer):
            return None
        if what_if.empty:
            self.model.forecast = reply
        return reply

    # --- undo ----------------------------------------------------------------------------------------

    def last_change(self) -> RecentChange | None:
        """The latest change of ours the server can still take back (it keeps them 15 minutes)."""
        now = self.now()
        self.recent = [change for change in self.recent if now - change.at < UNDO_WINDOW]
        return self.recent[-1] if self.recent else None

    async def undo(self, change: RecentChange) -> bool:
        """Take `change` back, all or nothing; a refusal is said in words (what changed since, and who).
        Either way an answered undo leaves the list, so the next `z` offers the change before it."""
        reply = await self.send_command(
            Undo(command_id=self.new_id(), of=change.command_id), f"undo {change.what}", change.ticket_ids
        )
        if reply is None:
            return False
        if change in self.recent:
            self.recent.remove(change)
        if isinstance(reply, Ack):
            self._notify(f"Undone: {change.what} (at {change.at.astimezone():%H:%M}).", title="Undo")
            return True
        return False
