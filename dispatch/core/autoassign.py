"""Auto-assign and pre-emption: the server placing queued tickets by itself.

Pure. Run by the batch decision (dispatch.core.decide) after the batch's commands, inside the same
transaction, so an automatic assignment is stored, published and logged exactly like a manual one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dispatch.core.allocation import UNAVAILABLE, AllocationPolicy, TeamLoad, rank
from dispatch.core.models import Priority, Role, Ticket, TicketStatus
from dispatch.core.protocol import Candidate
from dispatch.core.rules import Outcome, Refusal, Rules, assign_with_reason, fatigue_blocks, preempt
from dispatch.core.sla import current_target
from dispatch.core.state import Actor, DispatchState

__all__ = ["AUTO", "AutoAssignMemory", "Placement", "auto_assign"]

# The server's own changes (SLA alerts, auto-assignments, bursts) are made by this actor.
AUTO = Actor("auto", Role.DISPATCHER)


@dataclass
class AutoAssignMemory:
    """What allocation remembers between batches, beside the state."""

    # Which tickets auto-assign already failed to place, at which roster version; the version moves
    # whenever room may have appeared, so a queued ticket is looked at again only then.
    roster_version: int = 0
    tried: dict[str, int] = field(default_factory=dict)
    # Fairness: ties go to whoever waited longest since their last assignment.
    last_assigned: dict[str, datetime] = field(default_factory=dict)

    def roster(self, state: DispatchState) -> TeamLoad:
        return TeamLoad.of(state, self.last_assigned)

    def room_may_have_appeared(self) -> None:
        self.roster_version += 1


@dataclass
class Placement:
    """An automatic change and the ranking it was chosen from (for the decision log)."""

    outcome: Outcome
    considered: dict[str, list[Candidate]]


def auto_assign(
    state: DispatchState,
    memory: AutoAssignMemory,
    allocation: AllocationPolicy,
    rules: Rules,
    now: datetime,
    *,
    may_preempt: bool,
) -> tuple[list[Placement], list[str]]:
    """Place queued tickets, most urgent first (priority, then SLA due): each with its best candidate
    that has room, never over capacity. A ticket nobody can take stays queued, and its reason is
    returned once (as a line for the operator's log, as is a pre-emption); it is looked at again when
    room may have appeared. Only tickets someone with room has the skills for are ranked: when one
    place opens with thousands queued, the pass costs a set test per ticket, not a ranking."""
    queue = state.holdings().queued  # new and unassigned, kept as events are applied
    waiting = [state.tickets[i] for i in queue if memory.tried.get(i) != memory.roster_version]
    if len(memory.tried) > 2 * len(queue) + 64:
        # Tickets that left the queue without being placed (closed, assigned by hand) are forgotten.
        memory.tried = {i: v for i, v in memory.tried.items() if i in queue}
    if not waiting:
        return [], []
    roster = memory.roster(state)
    blocked = fatigue_blocks(state, rules, now)
    # Who could be given a ticket now (their skills), as placements fill them.
    room = {
        t.id: frozenset(t.skills)
        for t in roster.technicians.values()
        if t.status not in UNAVAILABLE and t.id not in blocked and roster.load[t.id] < t.capacity
    }
    placed: list[Placement] = []
    queued: list[str] = []

    def stays_queued(ticket: Ticket) -> None:
        if ticket.id not in memory.tried:  # its reason once, not at every look
            queued.append(f"{ticket.id} {ticket.priority} queued: {why_queued(ticket, roster)}")
        memory.tried[ticket.id] = memory.roster_version

    def escalated(ticket: Ticket) -> bool:
        return (ticket.id, "escalation") in state.alerts

    # Each technician's work a P1 may displace: found once a pass, when a P1 first needs it.
    preemptible: dict[str, list[Ticket]] | None = None
    hopeful = []
    for ticket in waiting:
        if _anyone_could_take(ticket, room, partial=escalated(ticket)) or (
            may_preempt and ticket.priority is Priority.P1
        ):
            hopeful.append(ticket)
        else:
            stays_queued(ticket)  # not sorted, not ranked: nobody with room has the skills
    for ticket in sorted(hopeful, key=lambda t: (t.priority, t.respond_by, t.id)):
        could = _anyone_could_take(ticket, room, partial=escalated(ticket))  # room fills as the pass goes
        candidates = []
        if could:
            candidates = rank(ticket, roster, allocation, rules.contracts, now, auto=True, limit=5, blocked=blocked)
        if not candidates and could and escalated(ticket):
            candidates = rank(
                ticket, roster, allocation, rules.contracts, now, auto=True, partial=True, limit=5, blocked=blocked
            )
        if not candidates and may_preempt and ticket.priority is Priority.P1:
            if preemptible is None:
                preemptible = _preemptible(state)
            displaced = _preempt(state, memory, ticket, roster, allocation, rules, now, blocked, preemptible)
            if displaced is not None:
                placed.append(displaced[0])
                queued.append(displaced[1])
                continue
        if not candidates:
            stays_queued(ticket)
            continue
        best = candidates[0]
        reason = ("escalated, best partial match: " if best.reason.startswith("partial") else "") + best.reason
        outcome = assign_with_reason(state, ticket.id, best.tech_id, AUTO, now, reason, rules)
        if isinstance(outcome, Refusal):  # cannot happen for an open ticket and a known technician
            queued.append(f"auto-assign of {ticket.id} refused: {outcome.message}")
            continue
        roster.took(ticket, best.tech_id, now)
        if roster.load[best.tech_id] >= roster.technicians[best.tech_id].capacity:
            room.pop(best.tech_id, None)
        memory.tried.pop(ticket.id, None)
        placed.append(Placement(outcome, {ticket.id: candidates}))
    return placed, queued


def _anyone_could_take(ticket: Ticket, room: dict[str, frozenset[str]], *, partial: bool) -> bool:
    """Whether someone with room has the ticket's skills (with `partial`, some of them): when nobody
    does, ranking in auto mode finds nobody either."""
    if not ticket.skills:
        return bool(room)
    needed = frozenset(ticket.skills)
    return any(needed <= skills or (partial and needed & skills) for skills in room.values())


def _preempt(
    state: DispatchState,
    memory: AutoAssignMemory,
    ticket: Ticket,
    roster: TeamLoad,
    allocation: AllocationPolicy,
    rules: Rules,
    now: datetime,
    blocked: dict[str, str],
    preemptible: dict[str, list[Ticket]],
) -> tuple[Placement, str] | None:
    """Displace the least urgent not-yet-started P3/P4 ticket of the best technician for `ticket`;
    the placement and a line saying so."""
    for candidate in rank(ticket, roster, allocation, rules.contracts, now, limit=50):
        if candidate.tech_id in blocked:
            continue
        held = preemptible.get(candidate.tech_id)
        if not held:
            continue
        victim = max(held, key=lambda t: (t.priority, current_target(t)[1], t.id))
        reason = f"preempted {victim.id} ({victim.priority}): nobody free could take this P1; {candidate.reason}"
        outcome = preempt(state, victim.id, ticket.id, candidate.tech_id, AUTO, now, reason, rules)
        if isinstance(outcome, Refusal):
            continue
        held.remove(victim)
        roster.released(victim, candidate.tech_id)
        roster.took(ticket, candidate.tech_id, now)
        memory.room_may_have_appeared()  # the displaced ticket is queued again and worth a look
        line = f"{ticket.id} P1 preempted {victim.id} {victim.priority} from {candidate.tech_id}"
        return Placement(outcome, {ticket.id: [candidate]}), line
    return None


def _preemptible(state: DispatchState) -> dict[str, list[Ticket]]:
    """Not-yet-started P3/P4 tickets, by who holds them (one look at the open tickets)."""
    held: dict[str, list[Ticket]] = {}
    for ticket in state.tickets.values():
        if ticket.assignee and ticket.status is TicketStatus.ASSIGNED and ticket.priority in (Priority.P3, Priority.P4):
            held.setdefault(ticket.assignee, []).append(ticket)
    return held


def why_queued(ticket: Ticket, roster: TeamLoad) -> str:
    """Why nobody can take `ticket`, in words."""
    needed = set(ticket.skills)
    skilled = [t for t in roster.technicians.values() if needed <= set(t.skills)]
    who = f"everyone with the {', '.join(sorted(needed))} skill" if needed else "everyone"
    if not skilled:
        return f"nobody has the {', '.join(sorted(needed))} skill" if needed else "no technicians on the team"
    if all(t.status.value in ("break", "off_shift") for t in skilled):
        return f"{who} is on a break or off shift"
    return f"{who} free is at capacity" if needed else "everyone free is at capacity"
