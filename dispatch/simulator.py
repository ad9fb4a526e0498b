"""Realistic outage bursts from a small shipped dataset, reproducible from a seed.

Used by `dispatch demo`, the screenshots and the benchmarks: everything goes through the real protocol.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from dispatch.core.models import Category, Priority
from dispatch.core.protocol import AddTechnician, CreateTicket

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
