"""The real server in this test's process, for tests that need to move its clock.

Same DispatchServer, SQLite file and loopback websocket as `dispatch-server serve`, started the same way
(server.embedded.running); only the clock is a `ManualClock` the test advances.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatch.core.models import Role
from server.app import DispatchServer
from server.embedded import running
from server.settings import ServerSettings
from server.storage import Storage
from tests.support import timeout


class ManualClock:
    def __init__(self, start: datetime = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Running:
    url: str
    server: DispatchServer
    tokens: dict[str, str]
    decision_log: Path
    clock: ManualClock

    async def clock_looked(self) -> None:
        """Until the server's SLA clock has looked at the time the test set, and published what it found."""
        async with asyncio.timeout(timeout(10)):
            while (self.server.writer.clock_looked_at or datetime.min.replace(tzinfo=UTC)) < self.clock.now:
                await asyncio.sleep(0.01)


@asynccontextmanager
async def running_server(
    workdir: Path, clock: ManualClock, technicians: tuple[str, ...] = (), **options: Any
) -> AsyncIterator[Running]:
    """The server on `workdir`'s database (tokens `token-ana`, dispatcher, and `token-alice`, technician,
    and `token-<id>` for each of `technicians`), with `options` as ServerSettings fields."""
    storage = await Storage.open(workdir / "dispatch.db")
    tokens = {"ana": "token-ana", "alice": "token-alice", **{t: f"token-{t}" for t in technicians}}
    decision_path = workdir / "dispatch.decisions.jsonl"
    try:
        if not await storage.list_tokens():  # a restart of the same database keeps its tokens
            await storage.create_token("ana", Role.DISPATCHER, None, tokens["ana"])
            for tech_id in ("alice", *technicians):
                await storage.create_token(tech_id, Role.TECHNICIAN, tech_id, tokens[tech_id])
        with decision_path.open("a", encoding="utf-8") as decisions:
            settings = ServerSettings(port=0, clock=clock, clock_interval_s=0.02, decision_log=decisions, **options)
            async with running(storage, settings, io.StringIO()) as server:
                yield Running(server.url, server.server, tokens, decision_path, clock)
    finally:
        await storage.close()
