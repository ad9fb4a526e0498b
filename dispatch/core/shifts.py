"""What the server does by itself about people's time, on each look at the clock.

Pure. Shifts act at their edges only: at a shift's start an off-shift technician becomes available,
at its end an available one goes off shift; a change made by hand in between stands until the next
edge, and someone busy or on site at the end keeps their work (the board shows the overtime). The
roster never takes work away: a shift ending only stops new work.

Call-outs: a P1 or P2 that has waited `callouts.after` with nobody on the clock who could take it
(skills, room, fatigue) calls out the first fitting technician on the ladder (the rotation member on
turn, then on-call windows); an unanswered call-out expires after `answer_within` and the next on the
ladder is asked. One call-out waits at a time for the same skills, so a burst of forty tickets does not
wake the whole ladder: the one who accepts takes work up to their capacity first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dispatch.core.allocation import AllocationPolicy, TeamLoad, rank
from dispatch.core.autoassign import AUTO
from dispatch.core.models import CalloutStatus, Priority, TechStatus
from dispatch.core.protocol import Event
from dispatch.core.rules import Change, Rules, fatigue_blocks, send_callout
from dispatch.core.state import OFF_THE_CLOCK, DispatchState

__all__ = ["ShiftMemory", "callout_pass", "shift_changes"]


@dataclass
class ShiftMemory:
    """Where the last look at the roster stopped (None before the first: edges are not replayed)."""

    looked_at: datetime | None = None


def shift_changes(state: DispatchState, rules: Rules, memory: ShiftMemory, now: datetime) -> list[Event]:
    """Status changes for the shift edges since the last look."""
    roster = rules.roster
    after, memory.looked_at = memory.looked_at, now
    if after is None or not roster.people or now <= after:
        return []
    change = Change(state, AUTO, now, rules)
    for _, tech_id, starts in roster.shift_edges(after, now):
        technician = state.technicians.get(tech_id)
        if technician is None:  # named in the roster, not added yet: applies once they are
            continue
        if starts and technician.status is TechStatus.OFF_SHIFT:
            status, reason = TechStatus.AVAILABLE, "shift starts"
        elif not starts and technician.status is TechStatus.AVAILABLE:
            status, reason = TechStatus.OFF_SHIFT, "shift ends"
        else:
            continue
        change.technician_event(
            "technician_status_changed",
            technician.model_copy(update={"status": status}),
            previous_status=technician.status,
            reason=reason,
        )
    return change.events


def callout_pass(
    state: DispatchState, rules: Rules, allocation: AllocationPolicy, load: TeamLoad, now: datetime
) -> tuple[list[Event], list[str]]:
    """Expire unanswered call-outs, then call out for P1/P2 tickets nobody on the clock can take.
    Returns the events and lines for the operator's log."""
    roster = rules.roster
    if not roster.people and not roster.rotations and not state.callouts:
        return [], []
    change = Change(state, AUTO, now, rules)
    notes: list[str] = []
    for callout in list(state.callouts.values()):
        if callout.status is CalloutStatus.WAITING and callout.expires_at <= now:
            change.callout_event("callout_expired", callout.model_copy(update={"status": CalloutStatus.EXPIRED}))
    waiting = {c.tech_id: c for c in state.callouts.values() if c.status is CalloutStatus.WAITING}
    blocked = fatigue_blocks(state, rules, now)
    due = sorted(
        (
            t
            for t in (state.tickets[i] for i in state.holdings().queued)  # new and unassigned
            if t.priority in (Priority.P1, Priority.P2) and now - t.created_at >= roster.callout_after
        ),
        key=lambda t: (t.priority, t.respond_by, t.id),
    )
    ladder = roster.ladder(now) if due else []
    for ticket in due:
        needed = set(ticket.skills)
        if rank(ticket, load, allocation, rules.contracts, now, auto=True, limit=1, blocked=blocked):
            continue  # someone on the clock can take it: auto-assign or the dispatcher will
        callees = [state.technicians[t] for t in waiting if t in state.technicians]
        if any(needed <= set(tech.skills) for tech in callees):
            continue  # a call-out for these skills is already waiting for an answer
        asked = {c.tech_id for c in state.callouts.values() if c.ticket_id == ticket.id}
        for tech_id in ladder:
            technician = state.technicians.get(tech_id)
            if (
                technician is None
                or technician.status not in OFF_THE_CLOCK
                or tech_id in asked
                or tech_id in waiting
                or not needed <= set(technician.skills)
                or change.fatigue(tech_id, callout=True) is not None
            ):
                continue
            minutes = int((now - ticket.created_at).total_seconds() // 60)
            reason = f"{ticket.id} {ticket.priority.value} ({ticket.client}: {ticket.title}) waiting {minutes} min"
            waiting[tech_id] = send_callout(change, tech_id, ticket.id, reason)
            notes.append(f"{ticket.id} {ticket.priority} called out {tech_id}: nobody on the clock can take it")
            break
    return change.events, notes
