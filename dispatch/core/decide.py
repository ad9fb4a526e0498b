"""The writer's decision: one batch of commands in; events, replies and decision records out.

Pure (websockets' sans-I/O lesson): `decide` runs each command through the registry, answers
re-sent commands with their stored reply, answers reads, then does what the server does by itself
(SLA alerts on a clock tick, burst detection, auto-assign and pre-emption), all against the in-memory
state, which it updates. The server's writer (server/writer.py) only looks up stored replies first,
then stores what `decide` returned in one transaction, publishes the events and sends the replies.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from dispatch.core.allocation import AllocationPolicy, rank
from dispatch.core.autoassign import AUTO, AutoAssignMemory, Placement, auto_assign
from dispatch.core.bursts import BurstMemory, detect_bursts, forget_closed_tickets, learn_reported_bursts
from dispatch.core.commands import COMMANDS, execute, forbidden
from dispatch.core.forecast import HandleTimes
from dispatch.core.models import TicketStatus
from dispatch.core.protocol import (
    ApplyPlan,
    Assign,
    BulkAssign,
    BurstEvent,
    Candidate,
    Command,
    Error,
    Event,
    GetHistory,
    TechnicianEvent,
    TicketEvent,
    Undo,
)
from dispatch.core.reads import Reading, SharedForecasts
from dispatch.core.rules import Outcome, Refusal, Rules, clock_alerts
from dispatch.core.shifts import ShiftMemory, callout_pass, shift_changes
from dispatch.core.sla import read_clock
from dispatch.core.state import Actor, DispatchState, apply_event

__all__ = [
    "Decided", "Decider", "DeciderSettings", "Reply", "Request", "StoredAck", "TICK", "Tick", "error_frame",
    "named_tickets", "replay_keys",
]  # fmt: skip

Sender = TypeVar("Sender", bound=Hashable)

# Auto-assign passes per batch: a pre-emption puts the displaced ticket back in the queue, and one more
# pass gives it its place (or its logged reason) in the same batch.
AUTO_ASSIGN_PASSES = 3


@dataclass(frozen=True)
class DeciderSettings:
    """The server settings that decide what a batch becomes."""

    rules: Rules = field(default_factory=Rules)
    allocation: AllocationPolicy = field(default_factory=AllocationPolicy)
    auto_assign: bool = False
    # With auto-assign: a P1 nobody free can take may displace not-yet-started P3/P4 work.
    preempt: bool = False
    # This many open tickets with no incident from one client (site, category) within the window is a
    # burst; 0 turns burst detection off.
    burst_threshold: int = 5
    burst_window: timedelta = timedelta(minutes=10)
    # Whether this server does what must run once (the SLA clock's alerts, shifts, call-outs, bursts,
    # auto-assign): always alone on SQLite; on PostgreSQL only the node holding the leader lock.
    leader: bool = True

    @property
    def escalate_after(self) -> timedelta:
        return timedelta(minutes=self.allocation.escalate_after_minutes)


@dataclass(frozen=True)
class Request(Generic[Sender]):
    """One command of a batch, from one connection (`sender`, opaque here)."""

    sender: Sender
    actor: Actor
    command: Command


class Tick:
    """A look at the SLA clock, queued by the server's timer so that its alerts get seqs in order."""

    def __repr__(self) -> str:
        return "TICK"


TICK = Tick()


@dataclass
class Reply(Generic[Sender]):
    """What to send `to` once the batch is stored: a frame, or a history read from the stored log."""

    to: Sender
    frame: str | None = None
    history: GetHistory | None = None


@dataclass(frozen=True)
class StoredAck:
    """An applied command's ack, stored with its batch so that a re-sent command gets it again."""

    user: str
    command_id: str
    seq: int
    reply: str


@dataclass
class Decided(Generic[Sender]):
    """A decided batch: events already applied to the state, in seq order, and what to store and send."""

    events: list[Event] = field(default_factory=list)
    replies: list[Reply[Sender]] = field(default_factory=list)
    acks: list[StoredAck] = field(default_factory=list)
    # One record per allocation (assignment or unassignment), for the database and the decision log.
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # Lines for the operator's log: why a ticket stays queued, a pre-emption.
    notes: list[str] = field(default_factory=list)
    # (command type, outcome) for each command of the batch, in order: "ok", "resent" (answered from
    # its stored reply) or the error code. For the operator's counters.
    outcomes: list[tuple[str, str]] = field(default_factory=list)


def replay_keys(batch: Iterable[Request[Any] | Tick]) -> list[tuple[str, str]]:
    """The (user, command_id) of the batch's write commands: their stored replies must be looked up
    before `decide`, so a re-sent command changes nothing."""
    return [
        (r.actor.user, r.command.command_id)
        for r in batch
        if isinstance(r, Request) and COMMANDS[r.command.type].writes
    ]


def named_tickets(batch: Iterable[Request[Any] | Tick], state: DispatchState) -> set[str]:
    """The tickets the batch's commands name (for an undo, those its change touched): closed ones may
    be out of memory (`forget_closed`), and are brought back from storage before `decide`."""
    named: set[str] = set()
    for item in batch:
        if not isinstance(item, Request):
            continue
        command = item.command
        for one in (getattr(command, "ticket_id", None), getattr(command, "primary_id", None)):
            if isinstance(one, str):
                named.add(one)
        named.update(getattr(command, "ticket_ids", None) or ())
        named.update(getattr(command, "duplicate_ids", None) or ())
        if isinstance(command, ApplyPlan):
            named.update(move.ticket_id for move in command.moves)
        elif isinstance(command, Undo):
            change = state.recent_changes.changes.get((item.actor.user, command.of))
            if change is not None:
                named.update(entity_id for kind, entity_id in change.before if kind == "ticket")
    return named


@dataclass
class Decider:
    """The pure half of the writer: the state, what it remembers between batches, and the rules."""

    state: DispatchState
    settings: DeciderSettings
    allocation_memory: AutoAssignMemory = field(default_factory=AutoAssignMemory)
    burst_memory: BurstMemory = field(default_factory=BurstMemory)
    shift_memory: ShiftMemory = field(default_factory=ShiftMemory)
    # How long recent tickets took to resolve, for the forecast (learned as tickets resolve).
    handle_times: HandleTimes = field(default_factory=HandleTimes)
    # The boards' header forecast, shared among those asking within a few seconds (see reads).
    shared_forecasts: SharedForecasts = field(default_factory=SharedForecasts)
    # Events other servers stored since this leader last decided (absorbed): they may call for a burst
    # report (tickets created) or an automatic assignment.
    absorbed: set[str] = field(default_factory=set, init=False)

    def absorb(self, events: Sequence[Event]) -> None:
        """Fold in events another server on the same database decided and stored (in seq order, right
        after this state's seq), and learn from them as from this server's own."""
        for event in events:
            apply_event(self.state, event)
        self._learn(list(events))
        closed = [e.ticket.id for e in events if isinstance(e, TicketEvent) and not e.ticket.is_open]
        if closed:
            forget_closed_tickets(self.burst_memory, closed)
        if any(_may_make_room(e) for e in events):
            self.allocation_memory.room_may_have_appeared()
        self.absorbed.update(e.kind for e in events)
        closed = [e.ticket.id for e in events if isinstance(e, TicketEvent) and not e.ticket.is_open]
        if closed:
            forget_closed_tickets(self.burst_memory, closed)

    def became_leader(self, now: datetime, recent: Sequence[Event], shift_lookback: timedelta) -> None:
        """Take over what must run once from a leader that went away: learn the bursts it reported
        (`recent`: the log's latest events), and look at shift edges from a little before now, so an
        edge the old leader may have missed while dying is acted on (one it did act on changes nothing)."""
        learn_reported_bursts(self.burst_memory, [e for e in recent if isinstance(e, BurstEvent)])
        self.shift_memory.looked_at = now - shift_lookback
        self.allocation_memory.room_may_have_appeared()

    def decide(
        self, batch: Sequence[Request[Sender] | Tick], known: Mapping[tuple[str, str], str], now: datetime
    ) -> Decided[Sender]:
        """Decide one batch. `known` holds the stored replies of commands already applied (see
        `replay_keys`); the state is updated as the batch is decided."""
        out: Decided[Sender] = Decided()
        known = dict(known)
        tick = False
        for item in batch:
            if isinstance(item, Tick):
                tick = True
                continue
            command, spec = item.command, COMMANDS[item.command.type]
            if not spec.writes:
                answer, result = self._read(item, now)
                out.replies.append(answer)
                out.outcomes.append((command.type, result))
                continue
            key = (item.actor.user, command.command_id)
            if key in known:  # a re-sent command: its original answer, and nothing changes
                out.replies.append(Reply(item.sender, known[key]))
                out.outcomes.append((command.type, "resent"))
                continue
            considered = self._considered(command, now)
            outcome = execute(self.state, command, item.actor, now, self.settings.rules)
            if isinstance(outcome, Refusal):
                out.replies.append(Reply(item.sender, error_frame(command.command_id, outcome)))
                out.outcomes.append((command.type, outcome.code.value))
                continue
            out.outcomes.append((command.type, "ok"))
            self.state.recent_changes.remember(key[0], key[1], command.type, outcome.before, self.state, now)
            reply = outcome.ack.model_dump_json()
            known[key] = reply
            out.replies.append(Reply(item.sender, reply))
            out.acks.append(StoredAck(key[0], key[1], outcome.ack.seq, reply))
            out.events.extend(outcome.events)
            self._learn(outcome.events)
            out.decisions.extend(self._decision_records(outcome, considered, now))
        if any(_may_make_room(e) for e in out.events):
            self.allocation_memory.room_may_have_appeared()  # queued tickets are worth a new look
        leader = self.settings.leader
        if tick and leader:
            rules = self.settings.rules
            shifts = shift_changes(self.state, rules, self.shift_memory, now)
            alerts = clock_alerts(self.state, now, self.settings.escalate_after, AUTO)
            load = self.allocation_memory.roster(self.state)
            callouts, notes = callout_pass(self.state, rules, self.settings.allocation, load, now)
            out.events.extend([*shifts, *alerts, *callouts])
            out.notes.extend(notes)
            if shifts or any(e.kind == "escalation" for e in alerts):
                # Someone came on shift, or an escalated P1 may now take a partial match.
                self.allocation_memory.room_may_have_appeared()
        absorbed, self.absorbed = (self.absorbed, set()) if leader else (set(), self.absorbed)
        created = "ticket_created" in absorbed or any(e.kind == "ticket_created" for e in out.events)
        if leader and self.settings.burst_threshold > 0 and created:
            out.events.extend(
                detect_bursts(
                    self.state,
                    now,
                    self.settings.burst_threshold,
                    self.settings.burst_window,
                    self.burst_memory,
                    AUTO,
                )
            )
        if leader and self.settings.auto_assign and (out.events or tick or absorbed):
            for _ in range(AUTO_ASSIGN_PASSES):
                placed, notes = auto_assign(
                    self.state,
                    self.allocation_memory,
                    self.settings.allocation,
                    self.settings.rules,
                    now,
                    may_preempt=self.settings.preempt,
                )
                out.notes.extend(notes)
                for placement in placed:
                    out.events.extend(placement.outcome.events)
                    out.decisions.extend(self._decision_records(placement.outcome, placement.considered, now))
                if not any(_is_preemption(p) for p in placed):
                    break
        closed = [e.ticket.id for e in out.events if isinstance(e, TicketEvent) and not e.ticket.is_open]
        if closed:
            forget_closed_tickets(self.burst_memory, closed)
        return out

    def _learn(self, events: list[Event]) -> None:
        """Resolved tickets teach the forecast how long work takes."""
        for event in events:
            if isinstance(event, TicketEvent) and event.ticket.status is TicketStatus.RESOLVED:
                if event.kind == "status_changed" and event.previous_status is not TicketStatus.RESOLVED:
                    self.handle_times.record(event.ticket, event.ts)

    def _read(self, request: Request[Sender], now: datetime) -> tuple[Reply[Sender], str]:
        """The answer to a read, and its outcome ("ok" or the error code)."""
        command, spec = request.command, COMMANDS[request.command.type]
        refusal = forbidden(request.actor, command)
        if refusal is not None:
            return Reply(request.sender, error_frame(command.command_id, refusal)), refusal.code.value
        if spec.read is None:
            # Answered from the stored log once this batch is committed (so it includes this batch).
            assert isinstance(command, GetHistory)
            return Reply(request.sender, history=command), "ok"
        reading = Reading(
            self.state, now, self.settings.rules, self.settings.allocation,
            lambda: self.allocation_memory.roster(self.state), self.handle_times, self.shared_forecasts,
        )  # fmt: skip
        answer = spec.read(reading, command)
        if isinstance(answer, Refusal):
            return Reply(request.sender, error_frame(command.command_id, answer)), answer.code.value
        return Reply(request.sender, answer.model_dump_json()), "ok"

    def _considered(self, command: Command, now: datetime) -> dict[str, list[Candidate]]:
        """For the decision log: the ranking each ticket of a manual assignment had just before it."""
        if not isinstance(command, Assign | BulkAssign):
            return {}
        ids = [command.ticket_id] if isinstance(command, Assign) else command.ticket_ids
        roster = self.allocation_memory.roster(self.state)
        return {
            tid: rank(self.state.tickets[tid], roster, self.settings.allocation, self.settings.rules.contracts, now)
            for tid in ids
            if tid in self.state.tickets
        }

    def _decision_records(
        self, outcome: Outcome, considered: dict[str, list[Candidate]], now: datetime
    ) -> list[dict[str, Any]]:
        """One decision record per allocation event in `outcome`."""
        records = []
        for event in outcome.events:
            if not isinstance(event, TicketEvent) or event.kind not in ("ticket_assigned", "ticket_unassigned"):
                continue
            ticket = event.ticket
            if event.kind == "ticket_assigned" and ticket.assignee is not None:
                self.allocation_memory.last_assigned[ticket.assignee] = now
            reading = read_clock(ticket, now, self.settings.rules.contracts.calendar(ticket.calendar))
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
                "override": event.override,
                "candidates": [c.model_dump() for c in considered.get(ticket.id, [])],
            })  # fmt: skip
        return records


def _may_make_room(event: Event) -> bool:
    """Whether an event may let a queued ticket be placed: a ticket moved or closed, a technician changed."""
    return (isinstance(event, TicketEvent) and event.kind != "ticket_created") or isinstance(event, TechnicianEvent)


def _is_preemption(placement: Placement) -> bool:
    return len(placement.outcome.events) > 1


def _decision_kind(event: TicketEvent) -> str:
    """manual, bulk, rebalance, auto or preemption."""
    reason = event.reason or "manual"
    if "preempt" in reason:
        return "preemption"
    if reason.startswith("undone by"):
        return "undo"
    if event.actor == AUTO.user:
        return "auto"
    return reason.split(":")[0]


def error_frame(command_id: str | None, refusal: Refusal) -> str:
    """A refusal as the `error` frame that answers the command."""
    current = refusal.current.model_dump(mode="json") if refusal.current is not None else None
    return Error(command_id=command_id, code=refusal.code, message=refusal.message, current=current).model_dump_json()
