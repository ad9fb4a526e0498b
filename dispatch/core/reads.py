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

__all__ = ["FORECAST_SHARED_FOR", "Reading", "SharedForecasts", "forecast", "rebalance", "suggest"]

# Every board asks for the header's forecast every few seconds while work changes, and at 5,000 open
# tickets one costs the writer ~150 ms: boards asking within this long of each other share one answer
# (its `generated_at` says when it was made), so the cost does not grow with the number of boards.
FORECAST_SHARED_FOR = timedelta(seconds=5)


@dataclass
class SharedForecasts:
    """The latest plain forecast (no what-if) for each horizon, and the seq it was made at."""

    latest: dict[int, tuple[ForecastAnswer, int]] = field(default_factory=dict)

    def recent(self, horizon_minutes: int, now: datetime, seq: int) -> ForecastAnswer | None:
        """One made less than FORECAST_SHARED_FOR ago; with a clock standing still (a test's), only one
        made at this very seq."""
        kept = self.latest.get(horizon_minutes)
        if kept is None:
            return None
        answer, made_at_seq = kept
        age = now - answer.generated_at
        fresh = timedelta(0) < age < FORECAST_SHARED_FOR or (age == timedelta(0) and made_at_seq == seq)
        return answer if fresh else None


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
    shared_forecasts: SharedForecasts = field(default_factory=SharedForecasts)


def suggest(r: Reading, command: Suggest) -> Suggestions | Refusal:
    ticket = r.state.tickets.get(command.ticket_id)
    if ticket is None:
        return Refusal(ErrorCode.NOT_FOUND, f"no ticket {command.ticket_id}")
    blocked = fatigue_blocks(r.state, r.rules, r.now)
    ranked = rank(ticket, r.roster(), r.allocation, r.rules.contracts, r.now, blocked=blocked)
    return Suggestions(command_id=command.command_id, ticket_id=ticket.id, candidates=ranked)


def forecast(r: Reading, command: Forecast) -> ForecastAnswer:
    plain = not command.extra and not command.without  # a what-if is always worked out afresh
    if plain and (shared := r.shared_forecasts.recent(command.horizon_minutes, r.now, r.state.seq)) is not None:
        return shared.model_copy(update={"command_id": command.command_id})
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
    answer = ForecastAnswer(
        command_id=command.command_id,
        generated_at=r.now,
        horizon_minutes=command.horizon_minutes,
        breaches=[PredictedBreach(ticket_id=b.ticket_id, target=b.target, at=b.at) for b in result.breaches],
        by_priority=result.by_priority,
        short=[Shortfall(skill=skill, technicians=n) for skill, n in result.short],
    )
    if plain:
        r.shared_forecasts.latest[command.horizon_minutes] = (answer, r.state.seq)
    return answer


def rebalance(r: Reading, command: Rebalance) -> Plan:
    blocked = fatigue_blocks(r.state, r.rules, r.now)
    moves = plan_rebalance(r.state.tickets, r.roster(), r.allocation, r.rules.contracts, r.now, blocked=blocked)
    return Plan(command_id=command.command_id, moves=moves)
