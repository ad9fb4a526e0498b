"""Who should take a ticket: a ranked list of technicians, each with a score and a reason in words.

A first ranking (skills as a hard filter, availability, load against capacity); the full engine with
SLA urgency, incident affinity, fairness and a policy file is a later step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from dispatch.core.models import Technician, TechStatus, Ticket

# Nobody on a break or off shift is offered work.
UNAVAILABLE = frozenset({TechStatus.BREAK, TechStatus.OFF_SHIFT})
_STATUS_SCORE = {TechStatus.AVAILABLE: 1.0, TechStatus.BUSY: 0.5, TechStatus.ON_SITE: 0.3}


@dataclass(frozen=True)
class Ranked:
    tech_id: str
    score: float
    reason: str


def rank_technicians(
    ticket: Ticket, technicians: Iterable[Technician], load: dict[str, int], limit: int = 10
) -> list[Ranked]:
    """Rank who can take `ticket`, best first; `load` maps technician id to open tickets held."""
    needed = set(ticket.skills)
    ranked: list[Ranked] = []
    for tech in technicians:
        if tech.status in UNAVAILABLE or tech.id == ticket.assignee:
            continue
        if not needed <= set(tech.skills):
            continue
        held = load.get(tech.id, 0)
        spare = (tech.capacity - held) / tech.capacity if tech.capacity else 0.0
        score = round(0.6 * _STATUS_SCORE[tech.status] + 0.4 * max(spare, 0.0), 3)
        parts = [", ".join(sorted(needed)) + (" skill" if len(needed) == 1 else " skills")] if needed else []
        parts.append(f"load {held}/{tech.capacity}")
        parts.append(tech.status.value.replace("_", " "))
        if held >= tech.capacity:
            parts.append("at capacity")
        ranked.append(Ranked(tech.id, score, ", ".join(parts)))
    # Same input, same order: ties go to the lighter load, then the id.
    ranked.sort(key=lambda r: (-r.score, load.get(r.tech_id, 0), r.tech_id))
    return ranked[:limit]
