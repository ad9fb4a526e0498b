"""Commands answered from memory without changing anything: `suggest` and `rebalance`.

Pure. The writer answers them in order with the batch they came in, so a `suggest` right after a
`create_ticket` on the same connection finds the new ticket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatch.core.allocation import AllocationPolicy, TeamLoad, rank
from dispatch.core.forecast import Extra, HandleTimes
from dispatch.core.forecast import forecast as predict
from dispatch.core.protocol import (
    ErrorCode,
    Forecast,
    ForecastAnswer,
    Plan,
    PredictedBreach,
    Rebalance,
    Shortfall,
    Suggest,
    Suggestions,
)
from dispatch.core.rebalance import plan_rebalance
from dispatch.core.rules import Refusal, Rules, fatigue_blocks
from dispatch.core.state import DispatchState

__all__ = ["Reading", "forecast", "rebalance", "suggest"]


@dataclass
class Reading:
    """What a read is answered from: the state as of its place in the batch."""

    state: DispatchState
    now: datetime
    rules: Rules
    allocation: AllocationPolicy
    # Built on demand: most batches hold no read.
    roster: Callable[[], TeamLoad]
    handle_times: HandleTimes = field(default_factory=HandleTimes)


def suggest(r: Reading, command: Suggest) -> Suggestions | Refusal:
    ticket = r.state.tickets.get(command.ticket_id)
    if ticket is None:
        return Refusal(ErrorCode.NOT_FOUND, f"no ticket {command.ticket_id}")
    blocked = fatigue_blocks(r.state, r.rules, r.now)
    ranked = rank(ticket, r.roster(), r.allocation, r.rules.contracts, r.now, blocked=blocked)
    return Suggestions(command_id=command.command_id, ticket_id=ticket.id, candidates=ranked)


def forecast(r: Reading, command: Forecast) -> ForecastAnswer:
    result = predict(
        r.state.tickets.values(),
        r.state.technicians.values(),
        r.now,
        timedelta(minutes=command.horizon_minutes),
        handle_times=r.handle_times,
        contracts=r.rules.contracts,
        roster=r.rules.roster,
        extra=[Extra(frozenset(e.skills), e.capacity) for e in command.extra],
        without=command.without,
    )
    return ForecastAnswer(
        command_id=command.command_id,
        generated_at=r.now,
        horizon_minutes=command.horizon_minutes,
        breaches=[PredictedBreach(ticket_id=b.ticket_id, target=b.target, at=b.at) for b in result.breaches],
        by_priority=result.by_priority,
        short=[Shortfall(skill=skill, technicians=n) for skill, n in result.short],
    )


def rebalance(r: Reading, command: Rebalance) -> Plan:
    blocked = fatigue_blocks(r.state, r.rules, r.now)
    moves = plan_rebalance(r.state.tickets, r.roster(), r.allocation, r.rules.contracts, r.now, blocked=blocked)
    return Plan(command_id=command.command_id, moves=moves)
