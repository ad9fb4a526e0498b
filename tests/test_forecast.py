"""The breach forecast, pure: what it predicts with no one, with enough people, without the only one who
can, and that the same state always gives the same answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatch.core.contracts import Contracts
from dispatch.core.forecast import Extra, HandleTimes, forecast
from dispatch.core.models import Category, Priority, Technician, Ticket, TicketStatus
from dispatch.core.sla import clock_fields

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
