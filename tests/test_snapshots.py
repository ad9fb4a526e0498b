"""Snapshot tests of the main screens: a seeded outage, a fixed clock, the real server.

Update after an intended change of look with `pytest tests/test_snapshots.py --snapshot-update`, and
look at the report before committing the new SVGs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from dispatch.app import DispatchApp
from dispatch.screens.board import BoardScreen
from dispatch.screens.detail import TicketDetail
from tests.test_board import picker_ready, until
from tests.world import NOW, World, seeded_world

SIZE = (140, 40)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # Sync on purpose: snap_compare runs the app in an event loop of its own.
    world = asyncio.run(seeded_world(tmp_path))
    yield world
    world.server.stop()


def loaded(count: int) -> Callable[[Pilot[None]], Any]:
    async def wait(pilot: Pilot[None]) -> None:
        app = pilot.app
        await until(pilot, lambda: isinstance(app.screen, BoardScreen)
                    and sum(len(lane.rows) for lane in app.screen.lanes) >= count)  # fmt: skip

    return wait


def test_dispatcher_board(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(38))


def test_assign_picker(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)

    async def open_picker(pilot: Pilot[None]) -> None:
        await loaded(38)(pilot)
        await pilot.press("a")
        await until(pilot, picker_ready(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=open_picker)


def test_ticket_detail_with_history(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)

    async def open_detail(pilot: Pilot[None]) -> None:
        await loaded(38)(pilot)
        await pilot.press("slash", *"T-000001 alice", "enter", "enter")
        await until(pilot, lambda: isinstance(app.screen, TicketDetail)
                    and "note" in str(app.screen.query_one("#history").render()))  # fmt: skip

    assert snap_compare(app, terminal_size=SIZE, run_before=open_detail)


def test_technician_lane(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.technician, clock=lambda: NOW)
    assert snap_compare(app, terminal_size=(120, 20), run_before=loaded(2))
