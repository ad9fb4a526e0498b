"""The breach forecast, pure: what it predicts with no one, with enough people, without the only one who
can, and that the same state always gives the same answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.contracts import Contracts
from dispatch.core.decide import Decider, DeciderSettings, Request
from dispatch.core.forecast import Extra, HandleTimes, forecast
from dispatch.core.models import Category, Priority, Role, Technician, Ticket, TicketStatus
from dispatch.core.protocol import Forecast, ForecastAnswer
from dispatch.core.reads import FORECAST_SHARED_FOR, SharedForecasts
from dispatch.core.sla import clock_fields
from dispatch.core.state import Actor, DispatchState

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ticket(n: int, priority: Priority = Priority.P2, skills: tuple[str, ...] = ("network",), age_min: int = 40,
           **fields: object) -> Ticket:  # fmt: skip
    created = NOW - timedelta(minutes=age_min)
    clock = clock_fields(Contracts().terms("Acme", priority), created)
    return Ticket(id=f"T-{n:06d}", title="Down", client="Acme", priority=priority, skills=list(skills),
                  category=Category.NETWORK, created_at=created, **{**clock, **fields})  # fmt: skip


def tech(tech_id: str, skills: tuple[str, ...] = ("network",), capacity: int = 1) -> Technician:
    return Technician(id=tech_id, name=tech_id, skills=list(skills), capacity=capacity)


# Ten P2s taken 40 minutes ago: respond-by (1 h) in 20 minutes. Old enough not to count as recent arrivals.
QUEUE = [ticket(n, age_min=40) for n in range(1, 11)]


def test_with_no_technicians_every_respond_target_in_the_horizon_breaches() -> None:
    result = forecast(QUEUE, [], NOW, 2 * HOUR)
    responds = [b for b in result.breaches if b.target == "respond"]
    assert sorted(b.ticket_id for b in responds) == [t.id for t in QUEUE]
    assert all(b.at == NOW + timedelta(minutes=20) for b in responds)
    assert result.by_priority[Priority.P2] == len(result.breaches)


def test_enough_matching_extra_technicians_leave_no_respond_breach() -> None:
    result = forecast(QUEUE, [], NOW, 2 * HOUR, extra=[Extra(frozenset({"network"}), capacity=10)])
    assert [b for b in result.breaches if b.target == "respond"] == []


def test_without_the_only_skilled_technician_breaches_come_sooner() -> None:
    team = [tech("alice", capacity=2), tech("bob", skills=("printers",), capacity=5)]
    handle = HandleTimes()
    for n in range(5):  # these tickets take 50 minutes each
        done = ticket(100 + n, responded_at=NOW - HOUR, status=TicketStatus.RESOLVED)
        handle.record(done, NOW - timedelta(minutes=10))
    with_alice = forecast(QUEUE, team, NOW, 4 * HOUR, handle_times=handle)
    without = forecast(QUEUE, team, NOW, 4 * HOUR, handle_times=handle, without=["alice"])
    assert len(without.breaches) > len(with_alice.breaches)
    assert min(b.at for b in without.breaches) <= min(b.at for b in with_alice.breaches)
    # And `short` names the skill and how many more would help.
    assert [skill for skill, _ in without.short] == ["network"]


def test_the_same_state_gives_the_same_answer() -> None:
    team = [tech("alice", capacity=3), tech("carol", capacity=2)]
    arrivals = [ticket(200 + n, Priority.P1, age_min=5 + n) for n in range(6)]  # recent: they keep coming
    first = forecast([*QUEUE, *arrivals], team, NOW, 2 * HOUR)
    second = forecast(list(reversed([*QUEUE, *arrivals])), list(reversed(team)), NOW, 2 * HOUR)
    assert first == second
    assert any(b.ticket_id == "new" for b in first.breaches)  # tickets still to arrive breach too


def test_handle_times_are_the_median_of_recent_ones_with_defaults_until_there_are_enough() -> None:
    handle = HandleTimes()
    assert handle.estimate(Category.NETWORK, Priority.P1) == timedelta(minutes=45)
    for minutes in (10, 20, 30, 40, 600):  # one left open over lunch does not move the median much
        handle.record(ticket(1, responded_at=NOW), NOW + timedelta(minutes=minutes))
    assert handle.estimate(Category.NETWORK, Priority.P2) == timedelta(minutes=30)
    assert handle.estimate(Category.HARDWARE, Priority.P2) == timedelta(minutes=30)  # the priority's median


# --- boards asking within a few seconds of each other share the header's forecast --------------------------


def _ask(decider: Decider, now: datetime, n: int, **what_if: object) -> ForecastAnswer:
    command = Forecast.model_validate({"type": "forecast", "command_id": f"f{n}", "horizon_minutes": 120, **what_if})
    request = Request("board", Actor("ana", Role.DISPATCHER), command)
    decided = decider.decide([request], {}, now)
    frame = decided.replies[0].frame
    assert frame is not None
    return ForecastAnswer.model_validate_json(frame)


@pytest.mark.parametrize(
    ("later", "work_changed", "what_if", "shared"),
    [
        (timedelta(seconds=2), True, {}, True),  # another board, moments later, while work changed
        (timedelta(seconds=5), True, {}, False),  # old enough: worked out again
        (timedelta(0), True, {}, False),  # a clock standing still (a test's): shared only at the same seq
        (timedelta(seconds=-1), True, {}, False),  # a clock set back
        (timedelta(seconds=1), False, {"without": ["alice"]}, False),  # a what-if: always afresh
        (timedelta(seconds=1), False, {"extra": [{"skills": ["network"]}]}, False),
    ],
    ids=["moments-later", "too-old", "frozen-clock-new-seq", "clock-set-back", "what-if-without", "what-if-extra"],
)
def test_the_header_forecast_is_shared_for_a_few_seconds(
    later: timedelta, work_changed: bool, what_if: dict[str, object], shared: bool
) -> None:
    state = DispatchState(tickets={t.id: t for t in QUEUE}, technicians={"alice": tech("alice")})
    decider = Decider(state, DeciderSettings(burst_threshold=0))
    first = _ask(decider, NOW, 1)
    if work_changed:  # one more ticket due in 20 minutes: worked out again, the answer differs
        state.tickets["T-000011"] = ticket(11, age_min=40)
        state.seq += 1
    second = _ask(decider, NOW + later, 2, **what_if)
    assert second.command_id == "f2"
    assert (second.model_copy(update={"command_id": "f1"}) == first) is shared
    if what_if:  # it leaves the shared answer alone: the next plain ask moments later still gets it
        assert _ask(decider, NOW + later, 3).model_copy(update={"command_id": "f1"}) == first


def test_with_the_clock_standing_still_the_shared_forecast_holds_only_at_its_seq() -> None:
    shared = SharedForecasts()
    answer = ForecastAnswer(command_id="f1", generated_at=NOW, horizon_minutes=120, breaches=[], by_priority={},
                            short=[])  # fmt: skip
    shared.latest[120] = (answer, 7)
    assert shared.recent(120, NOW, 7) is answer
    assert shared.recent(120, NOW, 8) is None
    assert shared.recent(60, NOW, 7) is None  # another horizon
    assert shared.recent(120, NOW + FORECAST_SHARED_FOR, 8) is None
    assert shared.recent(120, NOW + FORECAST_SHARED_FOR - timedelta(milliseconds=1), 8) is answer
