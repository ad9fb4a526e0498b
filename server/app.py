"""The dispatch server: handshake, live event fan-out, and the group-committing writer.

One asyncio process. Connections read frames and queue write commands; a single writer task takes
whatever has queued up while its previous commit ran, applies it to the in-memory state, stores it in
one transaction, and only then broadcasts the events and sends the acks. A burst therefore costs one
fsync per batch, not per ticket, and no timer adds latency to a lone command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from pydantic_core import from_json
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from dispatch.core.allocation import Candidate as Ranked
from dispatch.core.allocation import Roster, rank
from dispatch.core.bursts import BurstMemory, detect_bursts
from dispatch.core.models import Priority, Role, Ticket, TicketStatus
from dispatch.core.protocol import (
    CLOSE_BAD_TOKEN,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_TOO_SLOW,
    HELLO_TIMEOUT_S,
    MAX_FRAME_BYTES,
    WRITE_COMMANDS,
    Assign,
    BulkAssign,
    Candidate,
    Error,
    ErrorCode,
    Event,
    GetHistory,
    Hello,
    History,
    IncidentEvent,
    Plan,
    Rebalance,
    Snapshot,
    Suggest,
    Suggestions,
    TicketEvent,
    Welcome,
    decode_client_frame,
    describe_validation_error,
    event_adapter,
)
from dispatch.core.rebalance import plan_rebalance
from dispatch.core.sla import current_target, read_clock
from dispatch.core.state import (
    Actor,
    DispatchState,
    Outcome,
    Refusal,
    WriteCommand,
    assign_with_reason,
    clock_alerts,
    execute,
    preempt,
    visible_to,
)
from server.limits import CommandAllowance, TakeTurns
from server.settings import ServerSettings
from server.storage import CommandRecord, Storage, TokenRecord

__all__ = ["DispatchServer", "install_stop_signals"]

log = logging.getLogger("dispatch.server")

# A board that cannot take the stream this far behind is closed (1013) and resumes with last_seq,
# rather than growing our memory or slowing everyone else.
SEND_BUFFER_LIMIT = 8 * 1024 * 1024
# Most commands one connection may have waiting for their ack; past it we stop reading its frames,
# which pushes back on the client through TCP instead of queueing without bound.
MAX_IN_FLIGHT = 256
# Catching up by events beyond this many is slower than a snapshot.
MAX_RESUME_EVENTS = 10_000
# Batches are bounded so one huge burst cannot hold a transaction (and everyone's acks) too long.
MAX_BATCH = 2_000
# A batch takes at most this many commands from one connection, so a flood makes batches (and so the
# wait of everyone else's next command) no longer than this many of its commands take to apply.
# Chosen with bench/fairness.py (one connection keeping 256 in flight): at 16 a neighbour's round trip is
# ~4x its quiet one at the median (at 64, ~13x) while the flood still gets ~3,000 commands/s through.
PER_CONNECTION_BATCH = 16
# Closed tickets created this recently stay in a snapshot, so a board can still show the day's work.
RECENTLY_CLOSED = timedelta(hours=24)
REVOCATION_POLL_S = 1.0
CLOSE_WAIT_S = 3.0
# The HTTP upgrade (and the TLS handshake before it) must be done this fast; the hello has its own 5 s.
HANDSHAKE_TIMEOUT_S = 5.0
# A connection refused this many frames in a row for going over its rate is not listening: close it.
RATE_LIMIT_STRIKES = 100

# The server's own changes (SLA alerts, auto-assignments) are made by this actor.
AUTO = Actor("auto", Role.DISPATCHER)


@dataclass(eq=False)
class Client:
    """One board or tool connected with a token."""

    ws: ServerConnection
    actor: Actor
    token_name: str
    allowance: CommandAllowance | None = None
    in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))
    # Live events (seq, frame) that arrive while the client is still catching up; sent right after,
    # in order, skipping those its snapshot or catch-up already covered.
    pending: list[tuple[int, str]] | None = field(default_factory=list)
    # The seq its snapshot or catch-up covered. A snapshot may already hold a batch that is still
    # committing, so that batch's events must not be sent again when they are published.
    covered_seq: int = 0

    def send(self, text: str) -> None:
        # broadcast() writes without awaiting, so the writer never waits on one slow socket; the
        # buffer it fills is checked after every batch (see DispatchServer._drop_slow_clients).
        broadcast([self.ws], text)


@dataclass
class _Queued:
    client: Client
    command: WriteCommand | Suggest | GetHistory | Rebalance


class _ClockTick:
    """Queued by the SLA clock: look for alerts due now (inside the writer, so they get seqs in order)."""


_TICK = _ClockTick()


class DispatchServer:
    """Holds the truth: the in-memory state, the storage, and every connected client."""

    def __init__(self, storage: Storage, state: DispatchState, settings: ServerSettings, event_log: IO[str]) -> None:
        self.storage = storage
        self.state = state
        self.settings = settings
        self.event_log = event_log
        self.clients: set[Client] = set()
        self._waiting: TakeTurns[Client | _ClockTick, _Queued | _ClockTick] = TakeTurns()
        # Auto-assign: which tickets it already failed to place, at which roster version; the version
        # moves whenever room may have appeared, so a queued ticket is retried only then.
        self._roster_version = 0
        self._tried: dict[str, int] = {}
        self._last_assigned: dict[str, datetime] = {}
        self._draining = False
        self._bursts = BurstMemory()
        self._ws_server: Server | None = None
        # The token an upgrade request's `Authorization: Bearer` header proved, until its hello.
        self._bearers: weakref.WeakKeyDictionary[ServerConnection, TokenRecord] = weakref.WeakKeyDictionary()
        self.fatal: BaseException | None = None
        # The in-memory state runs ahead of the disk while a batch commits; this is the last seq that
        # is committed and was broadcast, the only one a resuming client may be promised.
        self.published_seq = state.seq
        # The last decision written to the decision-log file, and whether the database knows it yet.
        self._decisions_in_file = 0
        self._decisions_in_file_stored = True

    @classmethod
    async def start(cls, storage: Storage, settings: ServerSettings, event_log: IO[str]) -> DispatchServer:
        state = await storage.load_state()
        server = cls(storage, state, settings, event_log)
        await server._repair_decision_log()
        return server

    # --- lifecycle -----------------------------------------------------------------------------------

    async def run(self, ready: Callable[[str], None], stop: asyncio.Event) -> None:
        """Serve until `stop` is set (SIGTERM/SIGINT), then drain: finish queued commands, close, return."""
        writer = asyncio.create_task(self._writer(), name="writer")
        watcher = asyncio.create_task(self._watch_revocations(), name="revocations")
        clock = asyncio.create_task(self._run_clock(), name="sla-clock")
        async with serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            max_size=MAX_FRAME_BYTES,
            process_request=self._check_request,
            ssl=self.settings.tls,
            open_timeout=HANDSHAKE_TIMEOUT_S,
            # None admits requests with no Origin header: those do not come from a browser page.
            origins=[None, *(Origin(o) for o in self.settings.allowed_origins)],
            compression=None,  # small JSON frames gain little; deflate doubles our CPU per delivery
            # A client that stopped reading must not hold a shutdown (or a slow-client close) for long.
            close_timeout=3,
        ) as ws_server:
            self._ws_server = ws_server
            host, port = next(iter(ws_server.sockets)).getsockname()[:2]
            scheme = "wss" if self.settings.tls is not None else "ws"
            ready(f"{scheme}://{host}:{port}")
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([stopped, writer], return_when=asyncio.FIRST_COMPLETED)
            # Stop accepting and stop reading; what is already queued is still committed and acked.
            self._draining = True
            ws_server.close(close_connections=False)
            self._waiting.close()
            try:
                await writer
            except Exception as exc:
                log.exception("the writer stopped")
                self.fatal = self.fatal or exc
            watcher.cancel()
            clock.cancel()
            stopped.cancel()
            if self.fatal is None and not self._decisions_in_file_stored:
                # So a log rotated before the next start is not given these lines again.
                await self.storage.apply_batch([], [], [], [], [], decision_log_through=self._decisions_in_file)
            await asyncio.gather(*(_close(c.ws, 1001, "server shutting down") for c in list(self.clients)))
        if self.fatal is not None:
            raise self.fatal

    async def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: /healthz, the connection cap, and a token sent as `Authorization: Bearer`.

        The Origin check comes right after this, in websockets itself (`origins=`)."""
        if request.path == "/healthz":
            status = HTTPStatus.OK if self.fatal is None and not self._draining else HTTPStatus.SERVICE_UNAVAILABLE
            body = f"{status.phrase.lower()} seq={self.state.seq} connections={len(self.clients)}\n".encode()
            return Response(status.value, status.phrase, Headers([("Content-Type", "text/plain")]), body)
        # Upgraded connections are counted (this one not yet); those still opening are bounded by the
        # handshake timeout instead.
        if self._ws_server is not None and len(self._ws_server.all_connections) >= self.settings.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections: try again later\n")
        bearer = _bearer_token(request)
        if bearer is not None:
            record = await self.storage.find_token(bearer)
            if record is None:
                response = connection.respond(HTTPStatus.UNAUTHORIZED, "bad or revoked token\n")
                response.headers["WWW-Authenticate"] = 'Bearer realm="dispatch"'
                return response
            self._bearers[connection] = record
        return None

    # --- one connection ------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        client = await self._handshake(ws)
        if client is None:
            return
        self.clients.add(client)
        try:
            await self._read_commands(client)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)

    async def _handshake(self, ws: ServerConnection) -> Client | None:
        """Check the hello; a bad or missing token gets close 4401 and nothing else."""
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                raw = await ws.recv()
            hello = decode_client_frame(raw)
        except (TimeoutError, ValidationError, ConnectionClosed):
            hello = None
        record = await self._token_of(ws, hello) if isinstance(hello, Hello) else None
        if record is None or not isinstance(hello, Hello):
            await ws.close(CLOSE_BAD_TOKEN, "bad or missing token")
            return None
        if sum(c.token_name == record.name for c in self.clients) >= self.settings.max_connections_per_token:
            await ws.close(CLOSE_TOO_MANY_CONNECTIONS, f"token {record.name!r} has too many open connections")
            return None
        client = Client(ws, Actor(record.name, record.role, record.tech_id), record.name)
        if self.settings.rate_limit > 0:
            client.allowance = CommandAllowance(self.settings.rate_limit, burst=max(1.0, 2 * self.settings.rate_limit))
        # Join the fan-out before reading the current seq: anything committed from here on lands in
        # `pending`, anything before is in the snapshot or the catch-up, so there is no gap.
        self.clients.add(client)
        try:
            await self._catch_up(client, hello.last_seq)
        except ConnectionClosed:
            self.clients.discard(client)
            return None
        return client

    async def _token_of(self, ws: ServerConnection, hello: Hello) -> TokenRecord | None:
        """The token from the upgrade request's Authorization header or else the hello; both must agree."""
        bearer = self._bearers.pop(ws, None)
        if bearer is not None:
            # A second, different token in the hello: trust neither.
            same = hello.token is None or (ws.request is not None and hello.token == _bearer_token(ws.request))
            return bearer if same else None
        return await self.storage.find_token(hello.token) if hello.token else None

    async def _catch_up(self, client: Client, last_seq: int | None) -> None:
        actor = client.actor
        # `base` is the seq the client is brought up to before it goes live. Both branches read it
        # with no await after joining the fan-out, so every later event is in `pending`.
        resume = (
            last_seq is not None
            and last_seq <= self.published_seq
            and (self.published_seq - last_seq <= MAX_RESUME_EVENTS)
        )
        if resume:
            base = self.published_seq  # committed: the log has every event up to it
            welcome = Welcome(role=actor.role, user=actor.user, tech_id=actor.tech_id, seq=base)
            await client.ws.send(welcome.model_dump_json())
            assert last_seq is not None
            for payload in await self.storage.events_after(last_seq, base):
                if actor.role is Role.TECHNICIAN and not visible_to(actor, event_adapter.validate_json(payload)):
                    continue
                await client.ws.send(_event_frame(payload))
        else:
            # The snapshot is built from memory, which may include a batch still committing; its events
            # are published right after the commit and skipped below as already covered.
            base = self.state.seq
            snapshot = self._snapshot_for(actor)
            welcome = Welcome(role=actor.role, user=actor.user, tech_id=actor.tech_id, seq=base)
            await client.ws.send(welcome.model_dump_json())
            await client.ws.send(snapshot)
        client.covered_seq = base
        # Flush what went live meanwhile; the last check and the switch to live happen without an
        # await in between, so nothing can slip past.
        while client.pending:
            waiting, client.pending = client.pending, []
            for seq, frame in waiting:
                if seq > base:
                    await client.ws.send(frame)
        client.pending = None

    def _snapshot_for(self, actor: Actor) -> str:
        horizon = self.settings.clock() - RECENTLY_CLOSED
        tickets = [
            t
            for t in self.state.tickets.values()
            if (t.is_open or t.created_at >= horizon)
            and (actor.role is not Role.TECHNICIAN or t.assignee == actor.tech_id)
        ]
        incidents = list(self.state.incidents.values())
        if actor.role is Role.TECHNICIAN:
            own = {t.id for t in tickets}
            incidents = [i for i in incidents if own.intersection(i.ticket_ids)]
        return Snapshot(
            seq=self.state.seq,
            tickets=tickets,
            technicians=list(self.state.technicians.values()),
            incidents=incidents,
        ).model_dump_json()

    async def _read_commands(self, client: Client) -> None:
        strikes = 0
        async for raw in client.ws:
            if self._draining:
                # Take no new commands (they were never acked; the client resends them after it
                # reconnects), but keep reading: a paused socket would hold up the closing handshake
                # behind unread frames. run() closes with 1001 once the queued commands are acked.
                continue
            # Every frame counts, garbage too: the limit is what keeps one connection from taking the
            # writer's time from everyone else.
            if client.allowance is not None and not client.allowance.take():
                strikes += 1
                if strikes >= RATE_LIMIT_STRIKES:
                    log.warning("closing %s: it went on sending past its rate limit", client.actor.user)
                    await _close(client.ws, CLOSE_RATE_LIMITED, "rate limit: reconnect and send more slowly")
                    return
                command_id = _command_id_of(raw) if isinstance(raw, str) else None
                message = f"over {self.settings.rate_limit:g} commands/s: not applied; resend it a little later"
                client.send(_error(command_id, ErrorCode.RATE_LIMITED, message))
                continue
            strikes = 0
            if isinstance(raw, bytes):
                client.send(_error(None, ErrorCode.INVALID, "binary frames are not part of the protocol"))
                continue
            try:
                frame = decode_client_frame(raw)
            except ValidationError as exc:
                client.send(_error(_command_id_of(raw), ErrorCode.INVALID, describe_validation_error(exc)))
                continue
            if isinstance(frame, Hello):
                client.send(_error(None, ErrorCode.INVALID, "hello is only the first frame of a connection"))
            else:
                # Reads go through the writer's queue too, so every connection gets its answers in the
                # order it asked: a `suggest` right after a `create_ticket` finds the new ticket.
                await client.in_flight.acquire()
                self._waiting.put(client, _Queued(client, frame))

    # --- reads answered from memory ------------------------------------------------------------------

    def _suggest(self, actor: Actor, command: Suggest) -> str:
        if actor.role is not Role.DISPATCHER:
            return _error(command.command_id, ErrorCode.FORBIDDEN, "only a dispatcher may ask for suggestions")
        ticket = self.state.tickets.get(command.ticket_id)
        if ticket is None:
            return _error(command.command_id, ErrorCode.NOT_FOUND, f"no ticket {command.ticket_id}")
        ranked = self._rank(ticket, self.settings.clock())
        return Suggestions(
            command_id=command.command_id,
            ticket_id=ticket.id,
            candidates=[Candidate(tech_id=r.tech_id, score=r.score, reason=r.reason) for r in ranked],
        ).model_dump_json()

    def _plan(self, actor: Actor, command: Rebalance, now: datetime) -> str:
        if actor.role is not Role.DISPATCHER:
            return _error(command.command_id, ErrorCode.FORBIDDEN, "only a dispatcher may ask for a rebalance plan")
        moves = plan_rebalance(self.state.tickets, self._roster(), self.settings.allocation, self.settings.policy, now)
        return Plan(command_id=command.command_id, moves=moves).model_dump_json()

    async def _history(self, actor: Actor, command: GetHistory) -> str:
        ticket = self.state.tickets.get(command.ticket_id)
        if ticket is None:
            return _error(command.command_id, ErrorCode.NOT_FOUND, f"no ticket {command.ticket_id}")
        if actor.role is Role.TECHNICIAN and ticket.assignee != actor.tech_id:
            return _error(command.command_id, ErrorCode.FORBIDDEN, f"{ticket.id} is not assigned to you")
        events = [event_adapter.validate_json(p) for p in await self.storage.ticket_history(ticket.id)]
        return History(command_id=command.command_id, ticket_id=ticket.id, events=events).model_dump_json()

    # --- the writer ----------------------------------------------------------------------------------

    async def _writer(self) -> None:
        # Group commit: take whatever queued up while the last commit ran, connections in turn; no timer.
        while (batch := await self._waiting.next_batch(MAX_BATCH, PER_CONNECTION_BATCH)) is not None:
            await self._commit(batch)

    async def _commit(self, batch: list[_Queued | _ClockTick]) -> None:
        now = self.settings.clock()
        known = await self.storage.find_replies(
            (q.client.actor.user, q.command.command_id)
            for q in batch
            if isinstance(q, _Queued) and isinstance(q.command, WRITE_COMMANDS)
        )
        replies: list[tuple[Client, str | GetHistory]] = []
        events: list[tuple[Event, str]] = []
        records: list[CommandRecord] = []
        decisions: list[dict[str, Any]] = []
        tick = False
        for queued in batch:
            if isinstance(queued, _ClockTick):
                tick = True
                continue
            if isinstance(queued.command, Suggest):
                replies.append((queued.client, self._suggest(queued.client.actor, queued.command)))
                continue
            if isinstance(queued.command, Rebalance):
                replies.append((queued.client, self._plan(queued.client.actor, queued.command, now)))
                continue
            if isinstance(queued.command, GetHistory):
                replies.append((queued.client, queued.command))  # answered after the commit, from disk
                continue
            key = (queued.client.actor.user, queued.command.command_id)
            if key in known:  # a re-sent command: its original answer, and nothing changes
                replies.append((queued.client, known[key]))
                continue
            considered = self._considered(queued.command, now)
            outcome = execute(
                self.state,
                queued.command,
                queued.client.actor,
                now,
                self.settings.policy,
                timedelta(minutes=self.settings.dedupe_window_minutes),
            )
            if isinstance(outcome, Refusal):
                replies.append((queued.client, _refusal_frame(queued.command.command_id, outcome)))
                continue
            reply = outcome.ack.model_dump_json()
            known[key] = reply
            replies.append((queued.client, reply))
            records.append(CommandRecord(key[0], key[1], outcome.ack.seq, reply))
            events.extend((e, e.model_dump_json()) for e in outcome.events)
            decisions.extend(self._decisions(outcome, considered, now))
        if events and any(e.kind != "ticket_created" for e, _ in events):
            self._roster_version += 1  # room may have appeared: queued tickets are worth a new look
        if tick:
            alerts = clock_alerts(self.state, now, self.settings.policy, self._escalate_after, AUTO)
            events.extend((e, e.model_dump_json()) for e in alerts)
            if any(e.kind == "escalation" for e in alerts):
                self._roster_version += 1  # an escalated P1 may now take a partial match
        if self.settings.burst_threshold > 0 and any(e.kind == "ticket_created" for e, _ in events):
            bursts = detect_bursts(
                self.state,
                now,
                self.settings.burst_threshold,
                timedelta(minutes=self.settings.burst_window_minutes),
                self._bursts,
                AUTO,
            )
            events.extend((e, e.model_dump_json()) for e in bursts)
        if self.settings.auto_assign and (events or tick):
            # A preemption puts the displaced ticket back in the queue: one more pass gives it its place
            # (or its logged reason) in the same batch.
            for _ in range(3):
                placed = self._auto_assign(now)
                for outcome, considered in placed:
                    events.extend((e, e.model_dump_json()) for e in outcome.events)
                    decisions.extend(self._decisions(outcome, considered, now))
                if not any(len(outcome.events) > 1 for outcome, _ in placed):
                    break
        decision_lines = [(r["seq"], json.dumps(r, separators=(",", ":"))) for r in decisions]
        if events or records:
            through = None if self._decisions_in_file_stored else self._decisions_in_file
            try:
                await self.storage.apply_batch(
                    events, *_changed_rows(self.state, [e for e, _ in events]), records, decision_lines, through
                )
                self._decisions_in_file_stored = True
            except BaseException as exc:
                # The in-memory state is now ahead of the disk and nothing here was acked: stop rather
                # than serve a truth we could not store. Clients resend with the same command_ids.
                log.critical("cannot store a batch of %d events, stopping: %s", len(events), exc)
                self.fatal = exc
                raise
        self._publish(events)
        self._log_decisions(decision_lines)
        for client, answer in replies:
            client.send(await self._history(client.actor, answer) if isinstance(answer, GetHistory) else answer)
            client.in_flight.release()
        self._drop_slow_clients()

    # --- allocation ----------------------------------------------------------------------------------

    @property
    def _escalate_after(self) -> timedelta:
        return timedelta(minutes=self.settings.allocation.escalate_after_minutes)

    def _roster(self) -> Roster:
        return Roster.build(self.state.technicians, self.state.tickets.values(), self._last_assigned)

    def _rank(self, ticket: Ticket, now: datetime, roster: Roster | None = None, **options: Any) -> list[Ranked]:
        return rank(ticket, roster or self._roster(), self.settings.allocation, self.settings.policy, now, **options)

    def _considered(self, command: WriteCommand, now: datetime) -> dict[str, list[Ranked]]:
        """For the decision log: the ranking each ticket of an assignment had just before it."""
        if self.settings.decision_log is None or not isinstance(command, Assign | BulkAssign):
            return {}
        ids = [command.ticket_id] if isinstance(command, Assign) else command.ticket_ids
        roster = self._roster()
        return {tid: self._rank(self.state.tickets[tid], now, roster) for tid in ids if tid in self.state.tickets}

    def _auto_assign(self, now: datetime) -> list[tuple[Outcome, dict[str, list[Ranked]]]]:
        """Place queued tickets, most urgent first (priority, then SLA due): each with its best candidate
        that has room, never over capacity. A ticket nobody can take stays queued, its reason logged
        once; it is looked at again when room may have appeared."""
        queue = sorted(
            (
                t
                for t in self.state.tickets.values()
                if t.assignee is None
                and t.status is TicketStatus.NEW
                and self._tried.get(t.id) != self._roster_version  # already failed with this roster
            ),
            key=lambda t: (t.priority, t.respond_by, t.id),
        )
        if not queue:
            return []
        roster = self._roster()
        placed: list[tuple[Outcome, dict[str, list[Ranked]]]] = []
        for ticket in queue:
            escalated = (ticket.id, "escalation") in self.state.alerts
            candidates = self._rank(ticket, now, roster, auto=True, limit=5)
            if not candidates and escalated:
                candidates = self._rank(ticket, now, roster, auto=True, partial=True, limit=5)
            if not candidates and self.settings.preempt and ticket.priority is Priority.P1:
                displaced = self._preempt(ticket, roster, now)
                if displaced is not None:
                    placed.append(displaced)
                    continue
            if not candidates:
                self._tried[ticket.id] = self._roster_version
                log.info("%s %s queued: %s", ticket.id, ticket.priority, _why_queued(ticket, roster))
                continue
            best = candidates[0]
            reason = ("escalated, best partial match: " if best.reason.startswith("partial") else "") + best.reason
            outcome = assign_with_reason(self.state, ticket.id, best.tech_id, AUTO, now, reason)
            if isinstance(outcome, Refusal):  # cannot happen for an open ticket and a known technician
                log.error("auto-assign of %s refused: %s", ticket.id, outcome.message)
                continue
            roster.took(ticket, best.tech_id, now)
            self._tried.pop(ticket.id, None)
            placed.append((outcome, {ticket.id: candidates}))
        return placed

    def _preempt(self, ticket: Ticket, roster: Roster, now: datetime) -> tuple[Outcome, dict[str, list[Ranked]]] | None:
        """Displace the least urgent not-yet-started P3/P4 ticket of the best technician for `ticket`."""
        for candidate in self._rank(ticket, now, roster, limit=50):
            held = [
                t for t in self.state.tickets.values()
                if t.assignee == candidate.tech_id and t.status is TicketStatus.ASSIGNED
                and t.priority in (Priority.P3, Priority.P4)
            ]  # fmt: skip
            if not held:
                continue
            victim = max(held, key=lambda t: (t.priority, current_target(t)[1], t.id))
            reason = f"preempted {victim.id} ({victim.priority}): nobody free could take this P1; {candidate.reason}"
            outcome = preempt(self.state, victim.id, ticket.id, candidate.tech_id, AUTO, now, reason)
            if isinstance(outcome, Refusal):
                continue
            roster.released(victim, candidate.tech_id)
            roster.took(ticket, candidate.tech_id, now)
            self._roster_version += 1  # the displaced ticket is queued again and worth a look
            log.info("%s P1 preempted %s %s from %s", ticket.id, victim.id, victim.priority, candidate.tech_id)
            return outcome, {ticket.id: [candidate]}
        return None

    def _decisions(self, outcome: Outcome, considered: dict[str, list[Ranked]], now: datetime) -> list[dict[str, Any]]:
        """One decision-log record per allocation event in `outcome`."""
        records = []
        for event in outcome.events:
            if not isinstance(event, TicketEvent) or event.kind not in ("ticket_assigned", "ticket_unassigned"):
                continue
            ticket = event.ticket
            if event.kind == "ticket_assigned" and ticket.assignee is not None:
                self._last_assigned[ticket.assignee] = now
            if self.settings.decision_log is None:
                continue
            reading = read_clock(ticket, now, self.settings.policy)
            records.append({
                "ts": now.isoformat(),
                "seq": event.seq,
                "ticket": ticket.id,
                "priority": ticket.priority.value,
                "from": event.previous_assignee,
                "to": ticket.assignee,
                "actor": event.actor,
                "kind": _decision_kind(event),
                "reason": event.reason if event.actor == AUTO.user else f"{event.reason or 'manual'} by {event.actor}",
                "sla_target": reading.target,
                "sla_left_s": int(reading.left.total_seconds()),
                "candidates": [{"tech_id": c.tech_id, "score": c.score, "reason": c.reason}
                               for c in considered.get(ticket.id, [])],
            })  # fmt: skip
        return records

    def _log_decisions(self, lines: list[tuple[int, str]]) -> None:
        """Append committed decisions to the file; the next batch records in the database that they are there."""
        log_file = self.settings.decision_log
        if log_file is None or not lines:
            return
        log_file.write("".join(line + "\n" for _, line in lines))
        log_file.flush()
        self._decisions_in_file = lines[-1][0]
        self._decisions_in_file_stored = False

    async def _repair_decision_log(self) -> None:
        """Re-append decisions committed by a server that died before writing them to the file."""
        log_file = self.settings.decision_log
        path = getattr(log_file, "name", None)  # an in-memory log (tests) has no file to repair
        if log_file is None or not isinstance(path, str) or not Path(path).is_file():
            return
        last_seq, ends_cleanly = _last_decision_in(Path(path))
        missing = await self.storage.decisions_missing_from_log(last_seq)
        if not missing:
            return
        log_file.write(("" if ends_cleanly else "\n") + "".join(line + "\n" for line in missing))
        log_file.flush()
        self._decisions_in_file = json.loads(missing[-1])["seq"]
        self._decisions_in_file_stored = False
        log.warning("decision log: re-appended %d decisions committed before a crash", len(missing))

    async def _run_clock(self) -> None:
        while True:
            await asyncio.sleep(self.settings.clock_interval_s)
            if len(self._waiting) < MAX_BATCH:  # under a flood the next batch will come soon anyway
                self._waiting.put(_TICK, _TICK)

    def _publish(self, events: list[tuple[Event, str]]) -> None:
        if not events:
            return
        everyone = [c for c in self.clients if c.pending is None and c.actor.role is not Role.TECHNICIAN]
        technicians = [c for c in self.clients if c.pending is None and c.actor.role is Role.TECHNICIAN]
        catching_up = [c for c in self.clients if c.pending is not None]
        for event, payload in events:
            frame = _event_frame(payload)
            broadcast([c.ws for c in everyone if c.covered_seq < event.seq], frame)
            if technicians:
                broadcast(
                    [c.ws for c in technicians if c.covered_seq < event.seq and visible_to(c.actor, event)], frame
                )
            for client in catching_up:
                if visible_to(client.actor, event):
                    assert client.pending is not None
                    client.pending.append((event.seq, frame))
            self.event_log.write(payload + "\n")
            if isinstance(event, TicketEvent) and event.kind in ("ticket_assigned", "ticket_unassigned"):
                log.info(_allocation_line(event))
        self.published_seq = events[-1][0].seq
        self.event_log.flush()

    def _drop_slow_clients(self) -> None:
        for client in list(self.clients):
            transport = client.ws.transport
            if transport is not None and transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
                log.warning("closing %s: it is not keeping up with the event stream", client.actor.user)
                self.clients.discard(client)
                asyncio.create_task(_close(client.ws, CLOSE_TOO_SLOW, "too slow: reconnect with last_seq"))

    async def _watch_revocations(self) -> None:
        while True:
            await asyncio.sleep(REVOCATION_POLL_S)
            try:
                revoked = await self.storage.revoked_names()
            except Exception as exc:  # a busy database must not end the watcher
                log.warning("cannot read revoked tokens: %s", exc)
                continue
            for client in list(self.clients):
                if client.token_name in revoked:
                    self.clients.discard(client)
                    asyncio.create_task(_close(client.ws, CLOSE_BAD_TOKEN, "token revoked"))


def _changed_rows(state: DispatchState, events: list[Event]) -> tuple[list[Ticket], list[Any], list[Any]]:
    """The current rows of everything the events touched (each once, in its latest state)."""
    ticket_ids: dict[str, None] = {}
    tech_ids: dict[str, None] = {}
    incident_ids: dict[str, None] = {}
    for event in events:
        if isinstance(event, TicketEvent):
            ticket_ids[event.ticket.id] = None
            if event.ticket.incident_id:
                incident_ids[event.ticket.incident_id] = None
        elif isinstance(event, IncidentEvent):
            incident_ids[event.incident.id] = None
        elif hasattr(event, "technician"):
            tech_ids[event.technician.id] = None
    return (
        [state.tickets[i] for i in ticket_ids],
        [state.technicians[i] for i in tech_ids],
        [state.incidents[i] for i in incident_ids if i in state.incidents],
    )


def _decision_kind(event: TicketEvent) -> str:
    """manual, bulk, rebalance, auto or preemption."""
    reason = event.reason or "manual"
    if "preempt" in reason:
        return "preemption"
    if event.actor == AUTO.user:
        return "auto"
    return reason.split(":")[0]


def _why_queued(ticket: Ticket, roster: Roster) -> str:
    needed = set(ticket.skills)
    skilled = [t for t in roster.technicians.values() if needed <= set(t.skills)]
    label = f"{', '.join(sorted(needed))} skill" if needed else "any skill"
    if not skilled:
        return f"nobody has the {label}" if needed else "no technicians on the roster"
    if all(t.status.value in ("break", "off_shift") for t in skilled):
        return f"everyone with the {label} is on a break or off shift"
    return f"everyone free with the {label} is at capacity"


def _bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; "" (never a token) for another scheme."""
    authorization = request.headers.get("Authorization")
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _last_decision_in(path: Path) -> tuple[int, bool]:
    """The seq of the file's last whole record (0 if none), and whether the file ends with a newline
    (a crash mid-write leaves half a line, which must not swallow the next record)."""
    with path.open("rb") as file:
        size = file.seek(0, 2)
        file.seek(max(0, size - 64 * 1024))
        tail = file.read()
    ends_cleanly = tail.endswith(b"\n") or size == 0
    for line in reversed(tail.splitlines()):
        try:
            return int(json.loads(line)["seq"]), ends_cleanly
        except (ValueError, KeyError, TypeError):
            continue
    return 0, ends_cleanly


def _event_frame(payload: str) -> str:
    # The event is serialised once and the same string goes to every board.
    return '{"type":"event","event":' + payload + "}"


def _error(command_id: str | None, code: ErrorCode, message: str) -> str:
    return Error(command_id=command_id, code=code, message=message).model_dump_json()


def _refusal_frame(command_id: str, refusal: Refusal) -> str:
    current = refusal.current.model_dump(mode="json") if refusal.current is not None else None
    return Error(command_id=command_id, code=refusal.code, message=refusal.message, current=current).model_dump_json()


async def _close(ws: ServerConnection, code: int, reason: str) -> None:
    """Close, but never wait long on a client that stopped reading: websockets waits for the send
    buffer to drain before its own close timeout starts, so a stalled socket is aborted instead."""
    try:
        async with asyncio.timeout(CLOSE_WAIT_S):
            await ws.close(code, reason)
    except TimeoutError:
        if ws.transport is not None:
            ws.transport.abort()


def _command_id_of(raw: str) -> str | None:
    """Best effort, so that even a refused frame's error names the command it answers."""
    # pydantic's own parser, as decoding used: it raises ValueError (not RecursionError) on deep
    # nesting and refuses lone surrogates that could not be serialised back into the error frame.
    try:
        value = from_json(raw)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("command_id"), str) and len(value["command_id"]) <= 128:
        return str(value["command_id"])
    return None


def _allocation_line(event: TicketEvent) -> str:
    ticket = event.ticket
    if event.kind == "ticket_unassigned":
        return f"{ticket.id} {ticket.priority} {event.previous_assignee} -> queue by {event.actor}"
    source = f"{event.previous_assignee} " if event.previous_assignee else ""
    return f"{ticket.id} {ticket.priority} {source}-> {ticket.assignee} by {event.actor}"


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT both mean: stop accepting, finish the in-flight batch, exit 0."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
