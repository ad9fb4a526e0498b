"""The single writer: group commit of decided batches, then publish, then reply.

Connections queue commands here; one task takes whatever queued up while its previous commit ran
(connections in turn, no timer), has the pure `Decider` decide the batch, stores the result in one
transaction, and only then broadcasts the events and sends the replies. A burst therefore costs one
fsync per batch, not per ticket, and no timer adds latency to a lone command.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from dispatch.core.contracts import Contracts
from dispatch.core.decide import (
    TICK,
    Decided,
    Decider,
    DeciderSettings,
    Reply,
    Request,
    Tick,
    named_tickets,
    replay_keys,
)
from dispatch.core.protocol import (
    CLOSE_TOO_SLOW,
    Command,
    Error,
    ErrorCode,
    Event,
    GetHistory,
    History,
    IncidentEvent,
    SlaEvent,
    TicketEvent,
    event_adapter,
)
from dispatch.core.roster import Roster
from dispatch.core.rules import Rules, owns_ticket
from dispatch.core.state import Actor, DispatchState, forget_closed, remember_tickets
from server.fanout import Fanout
from server.limits import TakeTurns
from server.settings import ServerSettings
from server.storage import BatchWrites, CommandRecord, Storage, StorageUnavailable

__all__ = [
    "CATCH_UP",
    "CLOSE_TRY_AGAIN_LATER",
    "MAX_BATCH",
    "UNAVAILABLE_REASON",
    "CatchUp",
    "Committed",
    "Sender",
    "Watcher",
    "Writer",
]

log = logging.getLogger("dispatch.server")

# Batches are bounded so one huge burst cannot hold a transaction (and everyone's acks) too long.
MAX_BATCH = 2_000
# A batch takes at most this many commands from one connection, so a flood makes batches (and so the
# wait of everyone else's next command) no longer than this many of its commands take to apply.
# Chosen with bench/fairness.py (one connection keeping 256 in flight): at 16 a neighbour's round trip is
# ~4x its quiet one at the median (at 64, ~13x) while the flood still gets ~3,000 commands/s through.
PER_CONNECTION_BATCH = 16
# The database (PostgreSQL) cannot be reached: connections are closed (or turned away) with this, to
# come back later or to try another node; they resume with last_seq and miss nothing.
CLOSE_TRY_AGAIN_LATER = CLOSE_TOO_SLOW  # 1013 "try again later", as for a slow client
UNAVAILABLE_REASON = "the database cannot be reached: try again later"


class CatchUp:
    """A batch's worth of nothing to decide: it only folds in what other servers stored (every batch
    does that first), queued when they say there is more so that an idle server's boards keep up."""

    def __repr__(self) -> str:
        return "CATCH_UP"


CATCH_UP = CatchUp()
# A new leader acts on shift edges from this long before it took over: the old one may have died on one.
LEADER_LOOKBACK = timedelta(seconds=30)


class Sender(Protocol):
    """Whoever a command came from: a websocket client, or an HTTP request waiting for its answer."""

    actor: Actor

    def answered(self, text: str) -> None:
        """The command's answer (a frame), once its batch is stored; frees the sender's place."""

    def __hash__(self) -> int:
        """Senders take turns in the writer's queue, one line each."""


@dataclass(frozen=True)
class Committed:
    """What one batch did, for watchers (metrics, notifications): it is stored and published."""

    events: Sequence[Event]
    # (command type, outcome: "ok", "resent" or the error code), one per command of the batch.
    outcomes: Sequence[tuple[str, str]]
    # Deciding and storing the batch.
    seconds: float


Watcher = Callable[[Committed], None]


class Writer:
    """Owns the in-memory state's changes: every command and clock tick goes through here, in order."""

    def __init__(self, storage: Storage, state: DispatchState, settings: ServerSettings, fanout: Fanout) -> None:
        self.storage = storage
        self.state = state
        self.settings = settings
        self.fanout = fanout
        self.decider = Decider(state, decider_settings(settings))
        self._waiting: TakeTurns[Sender | Tick | CatchUp, Request[Sender] | Tick | CatchUp] = TakeTurns()
        self.fatal: BaseException | None = None
        # Told of every batch once it is stored and published; must not block (queue work elsewhere).
        self.watchers: list[Watcher] = []
        # The clock time of the last look at the SLA clock that is published: tests that move the
        # clock wait on it instead of sleeping.
        self.clock_looked_at: datetime | None = None
        # The last decision written to the decision-log file, and whether the database knows it yet.
        self._decisions_in_file = 0
        self._decisions_in_file_stored = True
        # Where several servers share the database: a catch-up is queued (at most one at a time).
        self._catch_up_queued = False
        # The database could not be reached: since when, and whether the state must be read again.
        self._unavailable_since: datetime | None = None
        self._stale = False

    # --- what connections and the clock put in ----------------------------------------------------------

    def submit(self, sender: Sender, command: Command) -> None:
        """Queue a command (the caller holds one of the sender's in-flight places)."""
        self._waiting.put(sender, Request(sender, sender.actor, command))

    def tick(self) -> None:
        """Queue a look at the SLA clock, unless a flood keeps batches coming anyway."""
        if len(self._waiting) < MAX_BATCH:
            self._waiting.put(TICK, TICK)

    def use_rules(self, contracts: Contracts, roster: Roster) -> None:
        """Judge the next batches by these SLA contracts and this roster (a reloaded file)."""
        rules = replace(self.decider.settings.rules, contracts=contracts, roster=roster)
        self.decider.settings = replace(self.decider.settings, rules=rules)

    def close(self) -> None:
        """Take nothing new; `run` returns once what is queued is committed and answered."""
        self._waiting.close()

    # --- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        while (batch := await self._waiting.next_batch(MAX_BATCH, PER_CONNECTION_BATCH)) is not None:
            await self.commit(batch)

    async def commit(self, items: list[Request[Sender] | Tick | CatchUp]) -> None:
        """Decide, store, publish, reply: one batch, in the database's write turn (where other servers
        share the database, after folding in what they stored meanwhile)."""
        started = time.perf_counter()
        now = self.settings.clock()
        self._catch_up_queued = False
        batch = [item for item in items if not isinstance(item, CatchUp)]
        try:
            if self._stale:
                await self._reload()
            recalled = await self._recall_closed(batch)
            async with self.storage.write_turn(self.state.seq) as turn:
                absorbed = self._absorb(turn.others)
                known = await turn.writes.find_replies(replay_keys(batch))
                decided = self.decider.decide(batch, known, now)
                events = [(e, e.model_dump_json()) for e in decided.events]
                decision_lines = [(r["seq"], json.dumps(r, separators=(",", ":"))) for r in decided.decisions]
                if events or decided.acks:
                    await self._store(turn.writes, decided, events, decision_lines)
        except StorageUnavailable as exc:
            self._refuse(batch, exc, time.perf_counter() - started)
            return
        if self._unavailable_since is not None:
            log.warning("the database is back: taking commands again")
            self._unavailable_since = None
        for note in decided.notes:
            log.info(note)
        seconds = time.perf_counter() - started
        with self.fanout.holding():  # each client's events and answers in one write
            self.fanout.publish(events)
            self._export_decisions(decision_lines)
            committed = Committed(decided.events, decided.outcomes, seconds)
            for watcher in self.watchers:
                watcher(committed)
            if any(isinstance(item, Tick) for item in batch):
                self.clock_looked_at = now
            for reply in decided.replies:
                reply.to.answered(await self._answer(reply))
        touched = [*absorbed, *decided.events]
        forget_closed(self.state, [*recalled, *(e.ticket.id for e in touched if isinstance(e, TicketEvent))])
        self.fanout.drop_slow_clients(CLOSE_TOO_SLOW, "too slow: reconnect with last_seq")

    async def _recall_closed(self, batch: list[Request[Sender] | Tick]) -> list[str]:
        """Closed tickets the batch names, back from storage (with their alerts) for this batch: memory
        holds the open ones (`forget_closed`), and a command about a closed ticket (reopen it, its
        history, an undo) is decided as if it had never left."""
        missing = [i for i in named_tickets(batch, self.state) if i not in self.state.tickets]
        if not missing:
            return []
        tickets = await self.storage.find_tickets(missing)
        alerts = []
        for ticket in tickets:
            events = [event_adapter.validate_json(p) for p in await self.storage.ticket_history(ticket.id)]
            alerts += [e for e in events if isinstance(e, SlaEvent)]
        remember_tickets(self.state, tickets, alerts)
        return [t.id for t in tickets]

    async def _store(self, writes: BatchWrites, decided: Decided[Sender], events: list[tuple[Event, str]],
                     decision_lines: list[tuple[int, str]]) -> None:  # fmt: skip
        through = None if self._decisions_in_file_stored else self._decisions_in_file
        try:
            await writes.apply_batch(
                events,
                *_changed_rows(self.state, decided.events),
                [CommandRecord(a.user, a.command_id, a.seq, a.reply) for a in decided.acks],
                decision_lines,
                through,
            )
            self._decisions_in_file_stored = True
        except StorageUnavailable:
            raise  # nothing stored, nothing acked: the batch is refused and the state reloaded (commit)
        except BaseException as exc:
            # The in-memory state is now ahead of the disk and nothing here was acked: stop rather
            # than serve a truth we could not store. Clients resend with the same command_ids.
            log.critical("cannot store a batch of %d events, stopping: %s", len(events), exc)
            self.fatal = exc
            raise

    # --- several servers on one database, and a database that cannot be reached ---------------------------

    def catch_up(self, stored_seq: int | None = None) -> None:
        """Another server stored events up to `stored_seq` (None: it may have): fold them in soon, even
        with nothing to write here."""
        if (stored_seq is None or stored_seq > self.state.seq) and not self._catch_up_queued:
            self._catch_up_queued = True
            self._waiting.put(CATCH_UP, CATCH_UP)

    def lead(self, leader: bool, recent: Sequence[Event] = ()) -> None:
        """Take on (or give up) what must run once among the servers sharing the database; a new leader
        learns from `recent` (the log's latest burst reports) what the last one reported."""
        if leader == self.decider.settings.leader:
            return
        if leader:
            self.decider.became_leader(self.settings.clock(), recent, LEADER_LOOKBACK)
        self.decider.settings = replace(self.decider.settings, leader=leader)

    @property
    def leading(self) -> bool:
        return self.decider.settings.leader

    def _absorb(self, payloads: list[str]) -> list[Event]:
        """Events other servers stored: into the state first, then to this server's boards, in seq order,
        before anything this batch decides."""
        if not payloads:
            return []
        events = [event_adapter.validate_json(p) for p in payloads]
        self.decider.absorb(events)
        self.fanout.publish(list(zip(events, payloads, strict=True)))
        return events

    def _refuse(self, batch: list[Request[Sender] | Tick], exc: StorageUnavailable, seconds: float) -> None:
        """The database could not be reached: nothing of the batch is stored, so nothing is acked; every
        command is refused as `unavailable` (to resend with the same id) and the state, which deciding
        may have changed, is read again before the next batch."""
        self._stale = True
        if self._unavailable_since is None:
            self._unavailable_since = self.settings.clock()
            log.error("cannot store: %s; refusing commands until it is back", exc)
        message = "the database cannot be reached: not applied; resend it (same command_id) in a moment"
        outcomes = []
        for item in batch:
            if isinstance(item, Request):
                frame = Error(command_id=item.command.command_id, code=ErrorCode.UNAVAILABLE, message=message)
                item.sender.answered(frame.model_dump_json())
                outcomes.append((item.command.type, ErrorCode.UNAVAILABLE.value))
        # A board left open would go on saying "connected" through the outage: closed with the reason
        # (after the answers above, already on its socket), it says why and comes back. At every
        # refusal, not only the first: one that got in while the database flickered back is told too.
        for client in list(self.fanout.clients):
            self.fanout.drop(client, CLOSE_TRY_AGAIN_LATER, UNAVAILABLE_REASON)
        committed = Committed([], outcomes, seconds)
        for watcher in self.watchers:
            watcher(committed)

    async def _reload(self) -> None:
        """After a batch that could not be stored: the state as the database has it, and what this
        server's boards have not been sent yet (stored by others, or a commit whose answer was lost)."""
        fresh = await self.storage.load_state(self.settings.clock(), closed_tickets=False)
        missed = await self.storage.events_after(self.fanout.published_seq, fresh.seq)
        # The same object stays: connections, HTTP intake and metrics hold it.
        for name in (f.name for f in fields(DispatchState)):
            setattr(self.state, name, getattr(fresh, name))
        self.decider.allocation_memory.room_may_have_appeared()
        self._stale = False
        self.fanout.publish([(event_adapter.validate_json(p), p) for p in missed])

    async def _answer(self, reply: Reply[Sender]) -> str:
        if reply.history is None:
            assert reply.frame is not None
            return reply.frame
        return await self._history(reply.to.actor, reply.history)

    async def _history(self, actor: Actor, command: GetHistory) -> str:
        refusal = owns_ticket(actor, command.ticket_id, self.state)
        if refusal is not None:
            return Error(command_id=command.command_id, code=refusal.code, message=refusal.message).model_dump_json()
        try:
            payloads = await self.storage.ticket_history(command.ticket_id)
        except StorageUnavailable:
            message = "the database cannot be reached: no history now; ask again in a moment"
            return Error(command_id=command.command_id, code=ErrorCode.UNAVAILABLE, message=message).model_dump_json()
        events = [event_adapter.validate_json(p) for p in payloads]
        return History(command_id=command.command_id, ticket_id=command.ticket_id, events=events).model_dump_json()

    # --- the decision-log file: an export stream beside the database's own copy ---------------------------

    def _export_decisions(self, lines: list[tuple[int, str]]) -> None:
        """Append committed decisions to the file; the next batch records in the database that they are there."""
        log_file = self.settings.decision_log
        if log_file is None or not lines:
            return
        log_file.write("".join(line + "\n" for _, line in lines))
        log_file.flush()
        self._decisions_in_file = lines[-1][0]
        self._decisions_in_file_stored = False

    async def repair_decision_log(self) -> None:
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

    async def record_decision_log_position(self) -> None:
        """At a clean stop: so a log rotated before the next start is not given these lines again."""
        if self.fatal is None and not self._decisions_in_file_stored:
            try:
                await self.storage.apply_batch([], [], [], [], [], decision_log_through=self._decisions_in_file)
            except StorageUnavailable as exc:
                # The next start re-appends a few lines the file may already have (see repair_decision_log).
                log.warning("decision log position not recorded: %s", exc)


def decider_settings(settings: ServerSettings) -> DeciderSettings:
    return DeciderSettings(
        rules=Rules(
            contracts=settings.contracts,
            roster=settings.roster,
            dedupe_window=timedelta(minutes=settings.dedupe_window_minutes),
        ),
        allocation=settings.allocation,
        auto_assign=settings.auto_assign,
        preempt=settings.preempt,
        burst_threshold=settings.burst_threshold,
        burst_window=timedelta(minutes=settings.burst_window_minutes),
    )


def _changed_rows(state: DispatchState, events: list[Event]) -> tuple[list[Any], list[Any], list[Any]]:
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
