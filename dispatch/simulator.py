"""Realistic outage bursts from a small shipped dataset, reproducible from a seed.

Used by `dispatch demo`, the screenshots and the benchmarks: everything goes through the real protocol.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from dispatch.client import CommandSession
from dispatch.core.models import Category, Priority
from dispatch.core.protocol import AddTechnician, CreateTicket, ServerFrame

SCENARIOS = ("isp-outage", "patch-tuesday", "ransomware")


def _dataset() -> dict[str, Any]:
    text = resources.files("dispatch").joinpath("data/scenarios.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass(frozen=True)
class Outage:
    """A scenario's ticket stream, deterministic for a given seed."""

    scenario: str
    seed: int = 7

    def tickets(self, count: int) -> list[CreateTicket]:
        data = _dataset()
        templates = data["scenarios"][self.scenario]["tickets"]
        rng = random.Random(f"{self.scenario}:{self.seed}")
        clients = data["clients"]
        # An outage hits some clients much harder than others.
        weights = [rng.randint(1, 8) for _ in clients]
        tickets = []
        for n in range(count):
            client = rng.choices(clients, weights)[0]
            site = rng.choice(client["sites"])
            template = rng.choice(templates)
            tickets.append(
                CreateTicket(
                    type="create_ticket",
                    command_id=f"sim-{self.scenario}-{self.seed}-{n}",
                    title=template["title"].format(site=site),
                    client=client["name"],
                    site=site,
                    category=Category(template["category"]),
                    priority=Priority(rng.choice(template["priority"])),
                    skills=list(template["skills"]),
                )
            )
        return tickets


def roster() -> list[AddTechnician]:
    """The shipped team of twelve technicians."""
    return [
        AddTechnician(type="add_technician", command_id=f"sim-tech-{t['id']}", tech_id=t["id"], name=t["name"],
                      skills=t["skills"], capacity=t["capacity"])
        for t in _dataset()["technicians"]
    ]  # fmt: skip


def parse_rate(text: str) -> float:
    """`30/min`, `2/s`, `600/h` -> tickets per second."""
    count, _, unit = text.partition("/")
    seconds = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600}.get(unit.strip() or "min")
    if seconds is None:
        raise ValueError(f"rate unit must be /s, /min or /h, not {unit!r}")
    value = float(count)
    if value <= 0:
        raise ValueError("rate must be positive")
    return value / seconds


async def play(
    session: CommandSession,
    outage: Outage,
    *,
    per_second: float,
    duration_s: float,
    speed: float = 1.0,
    opening_burst: int = 0,
    on_ticket: Callable[[CreateTicket, ServerFrame], None] | None = None,
) -> int:
    """Send the outage's tickets: `opening_burst` at once, then at `per_second` (times `speed`) with
    seeded Poisson gaps, for `duration_s` of simulated time. Returns how many were sent."""
    rng = random.Random(f"timing:{outage.scenario}:{outage.seed}")
    total = opening_burst + max(int(per_second * duration_s), 0)
    tickets = outage.tickets(total)
    sent = 0
    simulated = 0.0
    for n, ticket in enumerate(tickets):
        if n >= opening_burst:
            gap = rng.expovariate(per_second)
            simulated += gap
            if simulated > duration_s:
                break
            await asyncio.sleep(gap / speed)
        reply = await session.call(ticket)
        sent += 1
        if on_ticket is not None:
            on_ticket(ticket, reply)
    return sent
