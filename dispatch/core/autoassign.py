"""Auto-assign and pre-emption: the server placing queued tickets by itself.

Pure. Run by the batch decision (dispatch.core.decide) after the batch's commands, inside the same
transaction, so an automatic assignment is stored, published and logged exactly like a manual one.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime

from dispatch.core.allocation import UNAVAILABLE, AllocationPolicy, TeamLoad, rank
from dispatch.core.models import Priority, Role, Ticket, TicketStatus
from dispatch.core.protocol import Candidate
from dispatch.core.rules import Outcome, Refusal, Rules, assign_with_reason, fatigue_blocks, preempt
from dispatch.core.sla import current_target
from dispatch.core.state import Actor, DispatchState, queue_key

__all__ = ["AUTO", "AutoAssignMemory", "Placement", "auto_assign"]

# The server's own changes (SLA alerts, auto-assignments, bursts) are made by this actor.
AUTO = Actor("auto", Role.DISPATCHER)


@dataclass
class AutoAssignMemory:
    """What allocation remembers between batches, beside the state."""

    # Queued tickets whose reason for waiting was given (once each, in the operator's log).
    reasoned: set[str] = field(default_factory=set)
    # P1s that neither a partial match nor a pre-emption could place since room last may have appeared:
    # looked at again only then (every other ticket is looked at whenever someone with room could take it).
    tried_p1: set[str] = field(default_factory=set)
    # Fairness: ties go to whoever waited longest since their last assignment.
    last_assigned: dict[str, datetime] = field(default_factory=dict)

    def roster(self, state: DispatchState) -> TeamLoad:
        return TeamLoad.of(state, self.last_assigned)

    def room_may_have_appeared(self) -> None:
        self.tried_p1.clear()

    def forget_gone(self, queue: set[str]) -> None:
        """Tickets that left the queue (placed, closed, assigned by hand) are forgotten, now and then."""
        if len(self.reasoned) > 2 * len(queue) + 64:
            self.reasoned &= queue
        if len(self.tried_p1) > 2 * len(queue) + 64:
            self.tried_p1 &= queue


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
    returned once (as a line for the operator's log, as is a pre-emption).

    Only tickets someone with room has the skills for are looked at (and the P1s, which an escalation
    or a pre-emption may place without such room): the queue is kept by skill set, so when one place
    opens with thousands queued the pass costs a few set operations and the ranking of the tickets it
    places, not a look at every ticket."""
    holdings = state.holdings()
    queue = holdings.queued  # new and unassigned, kept as events are applied
    memory.forget_gone(queue)
    if not queue:
        return [], []
    roster = memory.roster(state)
    blocked = fatigue_blocks(state, rules, now)
    # Who could be given a ticket now (their skills), as placements fill them.
    room = {
        t.id: frozenset(t.skills)
        for t in roster.technicians.values()
        if t.status not in UNAVAILABLE and t.id not in blocked and roster.load[t.id] < t.capacity
    }
    # The queue of each skill set someone with room has, merged most urgent first (copies: placing a
    # ticket takes it out of its list); and the P1s a pre-emption or, escalated, a partial match may
    # place without such room, unless they already failed since room last may have appeared.
    groups = [list(keys) for skills, keys in holdings.queued_by_skills.items()
              if _anyone_could_take(skills, room, partial=False)]  # fmt: skip
    queued_p1 = holdings.queued_p1
    if may_preempt:
        p1s = queued_p1 - memory.tried_p1
    elif len(state.alerts) < len(queued_p1):
        # Only the escalated ones, found from the alerts raised when there are fewer of them: a long
        # queue of P1s that have not waited long enough to escalate is not looked at one by one.
        p1s = {i for i, kind in state.alerts if kind == "escalation" and i in queued_p1} - memory.tried_p1
    else:
        p1s = {i for i in queued_p1 - memory.tried_p1 if (i, "escalation") in state.alerts}
    special = sorted(queue_key(state.tickets[i]) for i in p1s)
    placed: list[Placement] = []
    queued: list[str] = []
    # Each ticket's own list of displaceable work, found once a pass when a P1 first needs it.
    preemptible: dict[str, list[Ticket]] | None = None
    looked_at: set[str] = set()
    for priority, _, ticket_id in heapq.merge(*groups, special):
        if not room and (priority is not Priority.P1 or not may_preempt):
            # Nobody has room: only a pre-emption could place a ticket now, and only a P1 (they come
            # first). Looking at the rest of a long queue would place nothing.
            break
        if ticket_id in looked_at or ticket_id not in queue:
            continue  # a P1 in both lists; one displaced and placed again in this pass
        looked_at.add(ticket_id)
        ticket = state.tickets[ticket_id]
        escalated = (ticket.id, "escalation") in state.alerts
        could = _anyone_could_take(frozenset(ticket.skills), room, partial=escalated)
        candidates = []
        if could:
            candidates = rank(ticket, roster, allocation, rules.contracts, now, auto=True, limit=5, blocked=blocked)
        if not candidates and could and escalated:
            candidates = rank(
                ticket, roster, allocation, rules.contracts, now, auto=True, partial=True, limit=5, blocked=blocked
            )
        if not candidates and may_preempt and priority is Priority.P1:
            if preemptible is None:
                preemptible = _preemptible(state)
            displaced = _preempt(state, memory, ticket, roster, allocation, rules, now, blocked, preemptible)
            if displaced is not None:
                placed.append(displaced[0])
                queued.append(displaced[1])
                continue
        if not candidates:
            if priority is Priority.P1:
                memory.tried_p1.add(ticket.id)
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
        memory.reasoned.discard(ticket.id)
        placed.append(Placement(outcome, {ticket.id: candidates}))
    # What stays queued says why, once: the first pass that leaves it there (every other queued ticket
    # was there at an earlier pass, and was told then).
    entered, holdings.entered = holdings.entered, set()
    for ticket_id in sorted(entered - memory.reasoned):
        memory.reasoned.add(ticket_id)
        ticket = state.tickets[ticket_id]
        queued.append(f"{ticket.id} {ticket.priority} queued: {why_queued(ticket, roster)}")
    return placed, queued


def _anyone_could_take(needed: frozenset[str], room: dict[str, frozenset[str]], *, partial: bool) -> bool:
    """Whether someone with room has these skills (with `partial`, some of them): exactly when ranking
    in auto mode finds someone."""
    if not needed:
        return bool(room)
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
