"""Forecast benchmark: its speed on a 2,000-ticket queue, and its calibration on the shipped outages.

    .venv/bin/python bench/forecast.py [--runs 5] [--seeds 3]

Speed: the forecast (with its `short` what-ifs) over 2,000 open tickets and 60 technicians, next to a
baseline measured in the same run: only ordering that queue the way the server ranks it (what any
forecast costs at least). It is meant to run every 30 s.

Calibration: each shipped scenario is replayed through the server's own pure writer step (auto-assign
on, the shipped team of twelve, a minute at a time) with a simulated team that resolves each ticket after
a handle time drawn from one distribution (log-normal around a median of 50 minutes, the same for every
ticket). At 20, 40 and 60 minutes into the outage the forecast is asked, and its predicted breaches
within 30, 60 and 120 minutes are compared with the breaches that then happened: counts (median over
seeds and checkpoints), and per target (ticket, respond/resolve) precision and recall. The aim is the
count within +-25 % at 60 minutes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch.core.contracts import Contracts  # noqa: E402
from dispatch.core.decide import TICK, Decided, Decider, DeciderSettings, Request  # noqa: E402
from dispatch.core.forecast import forecast  # noqa: E402
from dispatch.core.models import Category, Priority, Role, Technician, TechStatus, Ticket  # noqa: E402
from dispatch.core.protocol import Command, SetStatus, SetTechStatus, SlaEvent  # noqa: E402
from dispatch.core.sla import clock_fields  # noqa: E402
from dispatch.core.state import Actor, DispatchState  # noqa: E402
from dispatch.simulator import SCENARIOS, Outage, roster  # noqa: E402

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SKILLS = ["network", "printers", "security", "software", "voip", "m365"]
HORIZONS = (30, 60, 120)
CHECKPOINTS = (20, 40, 60)
MEDIAN_HANDLE_MIN = 50.0
DISPATCHER = Actor("bench", Role.DISPATCHER)


# --- speed ------------------------------------------------------------------------------------------------


def speed(runs: int) -> None:
    rng = random.Random(1)
    tickets = []
    for n in range(2_000):
        priority = rng.choice(list(Priority))
        created = START - timedelta(minutes=rng.uniform(0, 120))
        clock = clock_fields(Contracts().terms("c", priority), created)
        tickets.append(Ticket(id=f"T-{n:06d}", title="x", client="c", priority=priority, created_at=created,
                              skills=[rng.choice(SKILLS)], category=Category.NETWORK, **clock))  # fmt: skip
    team = [Technician(id=f"t{n}", name=f"t{n}", skills=rng.sample(SKILLS, 2), capacity=3) for n in range(60)]
    ours, floor = [], []
    for _ in range(runs):
        started = time.perf_counter()
        sorted(tickets, key=lambda t: (t.priority, t.respond_by, t.id))
        floor.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        result = forecast(tickets, team, START, timedelta(hours=2))
        ours.append((time.perf_counter() - started) * 1000)
    print(f"forecast, 2,000 open tickets, 60 technicians, 2 h, with what-ifs: median {statistics.median(ours):.0f} ms"
          f"  (baseline, ordering the queue only: {statistics.median(floor):.1f} ms; {len(result.breaches)} breaches,"
          f" short {result.short})")  # fmt: skip


# --- calibration ------------------------------------------------------------------------------------------


def replay(scenario: str, seed: int) -> tuple[list[tuple[int, int, int, int, float, float]], int]:
    """(checkpoint, horizon, predicted, actual, precision, recall) rows for one replayed outage."""
    rng = random.Random(f"{scenario}:{seed}")
    state = DispatchState()
    decider = Decider(state, DeciderSettings(auto_assign=True, burst_threshold=0))
    now = START

    def send(*commands: Command) -> None:
        decider.decide([Request("bench", DISPATCHER, c) for c in commands], {}, now)

    send(*roster())
    # Not the whole team is at their desk: an outage is worse than the team's size suggests.
    send(*(SetTechStatus(command_id=f"off-{t}", tech_id=t, status=TechStatus.OFF_SHIFT)
           for t in sorted(state.technicians)[::3]))  # fmt: skip
    # The outage: an opening burst, then a steady stream, for the first hour.
    outage = Outage(scenario, seed).tickets(60)
    arrivals = sorted([0] * 15 + [rng.randint(1, 60) for _ in range(45)])
    finish: dict[str, datetime] = {}
    predictions: dict[int, dict[int, set[tuple[str, str]]]] = {}
    counts: dict[int, dict[int, int]] = {}
    breaches: list[tuple[datetime, str, str]] = []
    created_total = 0
    for minute in range(0, 60 + 120 + 1):
        now = START + timedelta(minutes=minute)
        todays = [outage[i] for i, at in enumerate(arrivals) if at == minute]
        if todays:
            send(*todays)
            created_total += len(todays)
        # The simulated team: a ticket taken is started, then resolved after its handle time.
        for ticket in list(state.tickets.values()):
            if ticket.assignee and ticket.is_open and ticket.id not in finish:
                handle = rng.lognormvariate(0, 0.4) * MEDIAN_HANDLE_MIN
                finish[ticket.id] = now + timedelta(minutes=handle)
        done = [tid for tid, at in finish.items() if at <= now and state.tickets[tid].is_open]
        for tid in sorted(done):
            ticket = state.tickets[tid]
            for status in ("in_progress", "resolved") if ticket.status == "assigned" else ("resolved",):
                send(SetStatus(command_id=f"{tid}-{status}", ticket_id=tid, status=status))
        decided: Decided[str] = decider.decide([TICK], {}, now)
        for event in decided.events:
            if isinstance(event, SlaEvent) and event.kind == "sla_breached":
                breaches.append((event.due, event.ticket_id, event.target))
        if minute in CHECKPOINTS:
            result = forecast(state.tickets.values(), state.technicians.values(), now, timedelta(minutes=120),
                              handle_times=decider.handle_times)  # fmt: skip
            predictions[minute] = {h: {(b.ticket_id, b.target) for b in result.breaches
                                       if b.at <= now + timedelta(minutes=h) and b.ticket_id != "new"}
                                   for h in HORIZONS}  # fmt: skip
            counts[minute] = {h: sum(1 for b in result.breaches if b.at <= now + timedelta(minutes=h))
                              for h in HORIZONS}  # fmt: skip
    rows = []
    for checkpoint, by_horizon in predictions.items():
        at = START + timedelta(minutes=checkpoint)
        for horizon in HORIZONS:
            window = [(tid, target) for due, tid, target in breaches if at < due <= at + timedelta(minutes=horizon)]
            actual_known = {pair for pair in window if int(pair[0][2:]) <= _tickets_at(state, at)}
            predicted = by_horizon[horizon]
            hits = len(predicted & actual_known)
            precision = hits / len(predicted) if predicted else 1.0
            recall = hits / len(actual_known) if actual_known else 1.0
            rows.append((checkpoint, horizon, counts[checkpoint][horizon], len(window), precision, recall))
    return rows, created_total


def _tickets_at(state: DispatchState, at: datetime) -> int:
    """How many tickets had been created by `at` (ids are in order of creation)."""
    return sum(1 for t in state.tickets.values() if t.created_at <= at)


def calibration(seeds: int) -> None:
    print(f"\ncalibration: predicted vs actual breaches (median over {seeds} seeds x checkpoints {CHECKPOINTS} min)")
    print(f"{'scenario':<14} {'horizon':>7} {'predicted':>9} {'actual':>7} {'ratio':>6} {'precision':>9} {'recall':>7}")
    for scenario in SCENARIOS:
        rows = [row for seed in range(1, seeds + 1) for row in replay(scenario, seed)[0]]
        for horizon in HORIZONS:
            mine = [r for r in rows if r[1] == horizon]
            predicted = statistics.median(r[2] for r in mine)
            actual = statistics.median(r[3] for r in mine)
            ratio = f"{predicted / actual:.2f}" if actual else "-"
            precision = statistics.median(r[4] for r in mine)
            recall = statistics.median(r[5] for r in mine)
            print(f"{scenario:<14} {horizon:>5}m {predicted:>9.1f} {actual:>7.1f} {ratio:>6} {precision:>9.2f}"
                  f" {recall:>7.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    speed(args.runs)
    calibration(args.seeds)


if __name__ == "__main__":
    main()
