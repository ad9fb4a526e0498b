"""A rebalance plan: moves that leave nobody over capacity and place the most urgent P1 and P2 work.

Pure. The server answers `rebalance` with such a plan; the dispatcher previews it and sends it back as
`apply_plan`, applied all or nothing (each move carries the version it was planned against).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from dispatch.core.allocation import AllocationPolicy, TeamLoad, rank
from dispatch.core.contracts import Contracts
from dispatch.core.durations import format_left
from dispatch.core.models import OPEN_STATUSES, Priority, Ticket, TicketStatus
from dispatch.core.protocol import PlanMove
from dispatch.core.sla import current_target


def plan_rebalance(
    tickets: dict[str, Ticket],
    roster: TeamLoad,
    policy: AllocationPolicy,
    contracts: Contracts,
    now: datetime,
    limit: int = 200,
    blocked: Mapping[str, str] | None = None,
) -> list[PlanMove]:
    """Moves, in the order to apply them. Work already started (in progress, on hold) is never moved,
    and nobody a fatigue rule blocks (`blocked`) is given more."""
    moves: list[PlanMove] = []

    def urgency(ticket: Ticket) -> tuple[Priority, datetime, str]:
        return ticket.priority, current_target(ticket)[1], ticket.id

    # 1. Nobody over capacity: the least urgent not-yet-started tickets of an overloaded technician go
    #    to whoever ranks best with room.
    for tech in sorted(roster.technicians.values(), key=lambda t: t.id):
        held = sorted(
            (t for t in tickets.values() if t.assignee == tech.id and t.status is TicketStatus.ASSIGNED),
            key=urgency,
            reverse=True,
        )
        for ticket in held:
            if roster.load[tech.id] <= tech.capacity or len(moves) >= limit:
                break
            best = rank(ticket, roster, policy, contracts, now, auto=True, limit=1, blocked=blocked)
            if not best:
                continue
            roster.released(ticket, tech.id)
            roster.took(ticket, best[0].tech_id, None)
            why = f"{tech.id} over capacity ({roster.load[tech.id] + 1}/{tech.capacity}); {best[0].reason}"
            moves.append(PlanMove(ticket_id=ticket.id, tech_id=best[0].tech_id, expected_version=ticket.version,
                                  from_tech=tech.id, reason=why))  # fmt: skip

    # 2. Unassigned P1 and P2, earliest SLA first, to the best technician with room.
    waiting = sorted(
        (t for t in tickets.values() if t.assignee is None and t.status in OPEN_STATUSES
         and t.priority in (Priority.P1, Priority.P2)),
        key=lambda t: (current_target(t)[1], t.priority, t.id),
    )  # fmt: skip
    for ticket in waiting:
        if len(moves) >= limit:
            break
        best = rank(ticket, roster, policy, contracts, now, auto=True, limit=1, blocked=blocked)
        if not best:
            continue
        roster.took(ticket, best[0].tech_id, None)
        left = format_left(current_target(ticket)[1] - now)
        moves.append(PlanMove(ticket_id=ticket.id, tech_id=best[0].tech_id, expected_version=ticket.version,
                              reason=f"{ticket.priority} unassigned, {left} left; {best[0].reason}"))  # fmt: skip
    return moves
