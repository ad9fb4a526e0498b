"""The dispatch state and the fold of events into it.

Pure: the server decides each command against its in-memory state (dispatch.core.rules and
dispatch.core.commands), then stores the events; replaying the stored events through `apply_event`
rebuilds the same state (a property test holds it to that), and the board applies the same events
to its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatch.core.models import Incident, Role, Technician, Ticket
from dispatch.core.protocol import Event, IncidentEvent, SlaEvent, TechnicianEvent, TicketEvent


@dataclass(frozen=True)
class Actor:
    """Who sends a command: the token's name, role and (for a technician) their technician id."""

    user: str
    role: Role
    tech_id: str | None = None


@dataclass
class DispatchState:
    """Everything the server knows: tickets, technicians, incidents, and the last event's seq."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    technicians: dict[str, Technician] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    seq: int = 0
    last_ticket_number: int = 0
    last_incident_number: int = 0
    # SLA alerts already raised, as (ticket id, "sla_warning:respond" | ... | "escalation"): each once.
    alerts: set[tuple[str, str]] = field(default_factory=set)

    def active_load(self, tech_id: str) -> int:
        """How many open tickets a technician holds."""
        return sum(1 for t in self.tickets.values() if t.assignee == tech_id and t.is_open)


def ticket_id_for(number: int) -> str:
    return f"T-{number:06d}"


def ticket_number(ticket_id: str) -> int:
    return int(ticket_id.removeprefix("T-"))


def incident_id_for(number: int) -> str:
    return f"INC-{number}"


def incident_number(incident_id: str) -> int:
    """The number of an `INC-n` id (0 for any other id, e.g. one made by an import)."""
    suffix = incident_id.removeprefix("INC-")
    return int(suffix) if incident_id.startswith("INC-") and suffix.isdigit() else 0


# --- applying events ---------------------------------------------------------------------------------


def apply_event(state: DispatchState, event: Event) -> None:
    """Fold one event into the state. Events carry the entity's whole new state, so this is an upsert."""
    if isinstance(event, TicketEvent):
        ticket = event.ticket
        state.tickets[ticket.id] = ticket
        if ticket.id.startswith("T-"):
            state.last_ticket_number = max(state.last_ticket_number, ticket_number(ticket.id))
        if ticket.incident_id and ticket.incident_id in state.incidents:
            incident = state.incidents[ticket.incident_id]
            if ticket.id not in incident.ticket_ids:
                state.incidents[incident.id] = incident.model_copy(
                    update={"ticket_ids": [*incident.ticket_ids, ticket.id]}
                )
    elif isinstance(event, TechnicianEvent):
        state.technicians[event.technician.id] = event.technician
    elif isinstance(event, IncidentEvent):
        state.incidents[event.incident.id] = event.incident
        state.last_incident_number = max(state.last_incident_number, incident_number(event.incident.id))
    elif isinstance(event, SlaEvent):
        state.alerts.add((event.ticket_id, alert_key(event.kind, event.target)))
    state.seq = event.seq


def alert_key(kind: str, target: str) -> str:
    return "escalation" if kind == "escalation" else f"{kind}:{target}"
