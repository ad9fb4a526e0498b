"""Undo: a dispatcher takes back one of their own recent changes, as new events.

Pure. The writer remembers, for 15 minutes, what each undoable change touched and how it was before
(`RecentChanges`); `undo` puts every touched ticket and technician back, all or nothing: if any of them
changed since, the undo is refused with `conflict`, in words, and nothing is undone. Each restored
ticket's version goes up, its history says "undone by ana", and an undo is itself a change that can be
undone. The memory is the server process's own: after a restart, earlier changes cannot be undone.
"""

from __future__ import annotations

from dispatch.core.models import Technician, Ticket
from dispatch.core.protocol import Ack, ErrorCode, TicketEventKind, Undo
from dispatch.core.rules import Change, Refused
from dispatch.core.state import UNDO_WINDOW, entity_at

__all__ = ["undo"]


def undo(c: Change, command: Undo) -> Ack:
    """Put back what the dispatcher's change `command.of` touched; refused if any of it changed since."""
    change = c.state.recent_changes.changes.get((c.actor.user, command.of))
    if change is None or c.now - change.at > UNDO_WINDOW:
        raise Refused(ErrorCode.NOT_FOUND, f"no change of yours with command_id {command.of} in the last 15 minutes")
    for key, after in change.after.items():
        current = entity_at(c.state, key)
        if current != after:
            raise Refused(ErrorCode.CONFLICT, f"{_name(key)} changed since ({_describe(current)}): nothing undone",
                          current)  # fmt: skip
    reason = f"undone by {c.actor.user}: {command.of} ({change.command} at {change.at:%H:%M})"
    touched: list[str] = []
    for key, before in change.before.items():
        current = entity_at(c.state, key)
        if isinstance(before, Ticket) and isinstance(current, Ticket):
            restored = before.model_copy(update={"version": current.version})
            c.ticket_event(_kind(current, before), current, restored, reason=reason,
                           previous_priority=current.priority, previous_status=current.status)  # fmt: skip
            touched.append(before.id)
        elif isinstance(before, Technician) and isinstance(current, Technician):
            c.technician_event(
                "technician_status_changed",
                current.model_copy(update={"status": before.status}),
                previous_status=current.status,
                reason=reason,
            )
    return Ack(command_id=command.command_id, seq=c.state.seq, ticket_ids=touched or None)


def _kind(current: Ticket, before: Ticket) -> TicketEventKind:
    """The event kind that says what putting `before` back changes."""
    if current.assignee != before.assignee:
        return "ticket_assigned" if before.assignee is not None else "ticket_unassigned"
    if current.priority != before.priority:
        return "priority_changed"
    if current.incident_id != before.incident_id:
        return "ticket_linked"
    return "status_changed"


def _name(key: tuple[str, str]) -> str:
    return key[1] if key[0] == "ticket" else f"technician {key[1]}"


def _describe(current: Ticket | Technician | None) -> str:
    if isinstance(current, Ticket):
        holder = f"assigned to {current.assignee}" if current.assignee else "unassigned"
        return f"now version {current.version}, {current.status}, {current.priority}, {holder}"
    if isinstance(current, Technician):
        return f"now {current.status}"
    return "gone"
