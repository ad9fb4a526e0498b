"""The command registry: every command a client may send, declared once.

Each entry names the wire model, the roles that may send it, what it does in words (for a refusal:
"a viewer may not assign tickets") and how it is answered: a write handler (dispatch.core.rules)
that turns it into events, a read handler (dispatch.core.reads) that answers from memory, or neither
(`history`, answered from the stored log once the batch it came in is committed). Permission checks,
the write/read split, the server's dispatch and the protocol document's permission matrix (checked by
a test) all come from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatch.core import reads, rules, undo
from dispatch.core.models import Role
from dispatch.core.protocol import (
    AddNote,
    AddTechnician,
    AnswerCallout,
    ApplyPlan,
    Assign,
    BulkAssign,
    CalloutCommand,
    Command,
    CreateIncident,
    CreateTicket,
    ErrorCode,
    Forecast,
    GetHistory,
    Link,
    Merge,
    Rebalance,
    SetPriority,
    SetStatus,
    SetTechStatus,
    Suggest,
    Unassign,
    Undo,
    UpdateClients,
)
from dispatch.core.rules import Change, Outcome, Refusal, Refused, Rules
from dispatch.core.state import Actor, DispatchState

__all__ = ["COMMANDS", "CommandSpec", "execute", "forbidden"]

WriteHandler = Callable[[Change, Any], Any]
ReadHandler = Callable[[reads.Reading, Any], Any]

DISPATCHER = frozenset({Role.DISPATCHER})
EVERYONE = frozenset(Role)


@dataclass(frozen=True)
class CommandSpec:
    """One command: its wire model, who may send it, its verb in words, and its handler."""

    model: type[Any]
    roles: frozenset[Role]
    # Completes "a viewer may not ...".
    verb: str
    write: WriteHandler | None = None
    read: ReadHandler | None = None

    @property
    def type(self) -> str:
        return str(self.model.model_fields["type"].default)

    @property
    def writes(self) -> bool:
        """Whether it changes state (and so is stored, idempotent by command_id, and acked)."""
        return self.write is not None


_SPECS = (
    CommandSpec(CreateTicket, frozenset({Role.DISPATCHER, Role.INTAKE}), "create tickets", write=rules.create_ticket),
    CommandSpec(Assign, DISPATCHER, "assign tickets", write=rules.assign),
    CommandSpec(Unassign, DISPATCHER, "unassign tickets", write=rules.unassign),
    CommandSpec(SetPriority, DISPATCHER, "change priorities", write=rules.set_priority),
    # A technician: on their own tickets, to the statuses of doing the work (checked by the handler).
    CommandSpec(
        SetStatus, frozenset({Role.DISPATCHER, Role.TECHNICIAN}), "change a ticket's status", write=rules.set_status
    ),  # fmt: skip
    # A technician: their own availability only.
    CommandSpec(
        SetTechStatus,
        frozenset({Role.DISPATCHER, Role.TECHNICIAN}),
        "change a technician's availability",
        write=rules.set_tech_status,
    ),  # fmt: skip
    CommandSpec(AddTechnician, DISPATCHER, "add technicians", write=rules.add_technician),
    CommandSpec(BulkAssign, DISPATCHER, "assign tickets", write=rules.bulk_assign),
    CommandSpec(Suggest, DISPATCHER, "ask for suggestions", read=reads.suggest),
    # An intake: monitoring notes an alert cleared at source (a technician: on their own tickets).
    CommandSpec(
        AddNote, frozenset({Role.DISPATCHER, Role.TECHNICIAN, Role.INTAKE}), "add notes", write=rules.add_note
    ),  # fmt: skip
    # A technician: the history of their own tickets.
    CommandSpec(GetHistory, EVERYONE, "read a ticket's history"),
    CommandSpec(Rebalance, DISPATCHER, "ask for a rebalance plan", read=reads.rebalance),
    CommandSpec(ApplyPlan, DISPATCHER, "apply plans", write=rules.apply_plan),
    CommandSpec(CreateIncident, DISPATCHER, "create incidents", write=rules.create_incident),
    CommandSpec(Link, DISPATCHER, "link tickets to incidents", write=rules.link),
    CommandSpec(Merge, DISPATCHER, "merge tickets", write=rules.merge),
    CommandSpec(UpdateClients, DISPATCHER, "update clients", write=rules.update_clients),
    CommandSpec(CalloutCommand, DISPATCHER, "call technicians out", write=rules.callout),
    # A technician: call-outs sent to them.
    CommandSpec(AnswerCallout, frozenset({Role.TECHNICIAN}), "answer call-outs", write=rules.answer_callout),
    # A dispatcher: their own changes only (checked by the handler).
    CommandSpec(Undo, DISPATCHER, "undo changes", write=undo.undo),
    CommandSpec(Forecast, frozenset({Role.DISPATCHER, Role.VIEWER}), "ask for a forecast", read=reads.forecast),
)

COMMANDS: dict[str, CommandSpec] = {spec.type: spec for spec in _SPECS}


def forbidden(actor: Actor, command: Command) -> Refusal | None:
    """The refusal for a role that may not send this command at all; None when it may."""
    spec = COMMANDS[command.type]
    if actor.role in spec.roles:
        return None
    article = "an" if actor.role.value[0] in "aeiou" else "a"
    return Refusal(ErrorCode.FORBIDDEN, f"{article} {actor.role.value} may not {spec.verb}")


def execute(
    state: DispatchState, command: Command, actor: Actor, now: datetime, judged_by: Rules | None = None
) -> Outcome | Refusal:
    """Check a write command against the roles, the rules and the state; on success its events are
    applied to `state`."""
    spec = COMMANDS[command.type]
    if spec.write is None:
        raise ValueError(f"{command.type} is not a write command")
    refusal = forbidden(actor, command)
    if refusal is not None:
        return refusal
    change = Change(state, actor, now, judged_by)
    try:
        ack = spec.write(change, command)
    except Refused as refused:
        return refused.refusal
    return Outcome(change.events, ack, change.before)
