"""Seeding a bench's database directly: the real rules decide each command, one transaction stores them.

A bench that needs thousands of tickets before it measures anything cannot send them as commands: one
connection is held to the server's rate limit (500 a second, closed with 4429 when it keeps pushing),
and the seeding is not what is measured. Here each command goes through `execute` (the same checks and
events as the server's writer) on the state the database holds, and everything is written at once.
Start the server afterwards: it loads what is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from dispatch.core.commands import execute
from dispatch.core.models import Role
from dispatch.core.protocol import Command, Event
from dispatch.core.rules import Refusal
from dispatch.core.state import Actor, DispatchState
from server.storage import Storage

__all__ = ["seed_database"]

SEEDER = Actor("seed", Role.DISPATCHER)


async def seed_database(db: Path, commands: Sequence[Command], now: datetime) -> DispatchState:
    """Apply `commands` (as a dispatcher, at `now`) to the database `db`, creating it if need be; the
    state afterwards. A refused command is an error in the bench, not something to skip."""
    storage = await Storage.open(db)
    try:
        state = await storage.load_state(now)
        events: list[tuple[Event, str]] = []
        for command in commands:
            outcome = execute(state, command, SEEDER, now)
            if isinstance(outcome, Refusal):
                raise RuntimeError(f"seeding: {command.type} refused: {outcome.message}")
            events.extend((e, e.model_dump_json()) for e in outcome.events)
        await storage.apply_batch(events, state.tickets.values(), state.technicians.values(),
                                  state.incidents.values(), [])  # fmt: skip
    finally:
        await storage.close()
    return state
