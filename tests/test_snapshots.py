"""Snapshot tests of the main screens: a seeded outage, a fixed clock, the real server.

The dispatcher's local time zone is pinned to UTC, as the clock is fixed: the board shows local times.
Update after an intended change of look with `pytest tests/test_snapshots.py --snapshot-update`, and
look at the report before committing the new SVGs.

One server world per module: building it (a server restarted at five moments) is most of a snapshot's
cost, and no test here changes it (they look, open dialogs and ask what-ifs; nothing is sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from dispatch.app import DispatchApp
from dispatch.core.models import Priority, Role
from dispatch.screens.board import BoardScreen
from dispatch.screens.callout import CalloutPrompt
from dispatch.screens.detail import TicketDetail
from dispatch.screens.forecast import ForecastScreen
from dispatch.screens.technicians import TechniciansScreen
from dispatch.widgets.lane import assignee_words, countdown
from tests.support import ServerProcess, Session, tech_frame, ticket_frame
from tests.test_board import CONTRACTS, local_time_zone, modal_ready, picker_ready, until
from tests.world import NOW, World, seeded_world

SIZE = (140, 40)


@pytest.fixture(autouse=True)
def dispatcher_in_utc() -> Iterator[None]:
    with local_time_zone("UTC0"):
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # Sync on purpose: snap_compare runs the app in an event loop of its own. Built in the same time
    # zone as the boards look at it (the servers inherit it).
    with local_time_zone("UTC0"):
        world = asyncio.run(seeded_world(tmp_path_factory.mktemp("world")))
    yield world
    world.server.stop()


def loaded(count: int) -> Callable[[Pilot[None]], Any]:
    """Until the board shows `count` tickets and, where it asks for one, the server's forecast."""

    async def wait(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, DispatchApp)
        await until(pilot, lambda: isinstance(app.screen, BoardScreen)
                    and sum(len(lane.rows) for lane in app.screen.lanes) >= count
                    and (app.model.role is Role.TECHNICIAN or app.model.forecast is not None))  # fmt: skip

    return wait


@pytest.mark.parametrize("size", [(80, 24), (120, 36), (200, 50)], ids=lambda size: f"{size[0]}x{size[1]}")
def test_dispatcher_board_during_the_outage(world: World, snap_compare: Any, size: tuple[int, int]) -> None:
    # 80x24: the panel folded to a line, borders down to title lines, P4 folded, P1 the tallest lane.
    # 120x36: the panel beside the lanes. 200x50: client names whole, the panel with the skills.
    app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)
    assert snap_compare(app, terminal_size=size, run_before=loaded(38))


def test_the_technician_overlay_at_80x24(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)

    async def open_overlay(pilot: Pilot[None]) -> None:
        await loaded(38)(pilot)
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, TechniciansScreen) and len(app.screen.panel.rows) == 12)

    assert snap_compare(app, terminal_size=(80, 24), run_before=open_overlay)


def screen_lines(app: DispatchApp) -> list[str]:
    """The terminal's lines as a person reads them (Textual's compositor has no public way to say it)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def test_at_80x24_the_highlighted_tickets_countdown_and_assignee_are_on_screen(world: World) -> None:
    app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(38)(pilot)
        await pilot.pause()
        board = app.screen
        assert isinstance(board, BoardScreen)
        p1 = board.lanes[0]
        ticket = p1.current
        assert ticket is not None and p1.has_focus
        left = countdown(app.model.clock(ticket, NOW), ticket, NOW)
        row = next(line for line in screen_lines(app) if ticket.id in line)
        assert left in row and assignee_words(ticket, own_lane=False) in row, row
        # Every lane with tickets shows its most urgent ones, and the outage's P1 lane is the tallest.
        heights = {lane.priority: lane.outer_size.height for lane in board.lanes}
        assert heights[Priority.P1] == max(heights.values())
        assert all(lane.scrollable_content_region.height >= min(len(lane.rows), 3) for lane in board.lanes)
        # ! : P1 and P2 only; the others fold to their title lines, saying how to get them back.
        await pilot.press("exclamation_mark")
        await until(pilot, lambda: board.lanes[2].has_class("-folded") and board.lanes[3].has_class("-folded"))
        assert [lane.outer_size.height > 1 for lane in board.lanes] == [True, True, False, False]
        assert any(line.startswith("─P3 Normal · 6 · ! shows it") for line in screen_lines(app))


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


def test_technician_lane_at_80x24(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.technician, clock=lambda: NOW)
    assert snap_compare(app, terminal_size=(80, 24), run_before=loaded(2))


def test_forecast_with_a_what_if(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.dispatcher, clock=lambda: NOW)

    async def what_if(pilot: Pilot[None]) -> None:
        await loaded(38)(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ForecastScreen) and app.screen.base is not None)
        await pilot.press("plus", "enter")  # +1 network, the skill the server says is short
        await until(pilot, lambda: isinstance(app.screen, ForecastScreen) and app.screen.answer is not None)

    assert snap_compare(app, terminal_size=SIZE, run_before=what_if)


def test_callout_on_a_technicians_board_at_80x24(world: World, snap_compare: Any) -> None:
    app = DispatchApp(world.server.url, world.callee, clock=lambda: NOW)

    async def prompted(pilot: Pilot[None]) -> None:
        await until(pilot, modal_ready(app, CalloutPrompt, "#callout-fields"))

    assert snap_compare(app, terminal_size=(80, 24), run_before=prompted)


# --- business hours: Friday evening, the office closed ---------------------------------------------------

FRIDAY_3PM = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)  # London is on GMT: also 15:00 there
FRIDAY_5_15PM = FRIDAY_3PM + timedelta(hours=2, minutes=15)
# (title, client, priority, hold reason for alice or None): gold clients are on uk-office's hours,
# Initech on the standard tier, 24x7.
OFFICE_TICKETS = (
    ("Printer queue stuck", "Acme Corp", "P2", None),  # breached at 16:00, standing since 17:00
    ("Mail down", "Initech", "P2", None),  # breached at 16:00, still counting
    ("Laptop screen cracked", "Acme Corp", "P2", "awaiting_parts"),  # gold stops the clock for parts
    ("New starter laptop", "Acme Corp", "P3", None),  # 2 h of 4 left, standing
    ("Slow Wi-Fi", "Initech", "P3", None),  # 1h45m left
    ("VPN for the auditors", "Acme Corp", "P2", "awaiting_third_party"),  # runs on hold, but closed
)


async def office_hours_world(workdir: Path) -> World:
    """Tickets made on Friday at 15:00 under CONTRACTS, looked at on Friday at 17:15."""
    contracts = workdir / "sla.toml"
    contracts.write_text(CONTRACTS)
    server = ServerProcess(db=workdir / "office.db", workdir=workdir, options=("--sla", str(contracts)))
    server.start("--port", "0", "--fixed-clock", FRIDAY_3PM.isoformat())
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana-setup"))
    await session.ok(tech_frame("alice"))
    for number, (title, client, priority, hold) in enumerate(OFFICE_TICKETS, start=1):
        await session.ok(ticket_frame(title, client=client, priority=priority))
        if hold is not None:
            ticket_id = f"T-{number:06d}"
            await session.ok({"type": "assign", "ticket_id": ticket_id, "tech_id": "alice"})
            await session.ok({"type": "set_status", "ticket_id": ticket_id, "status": "on_hold", "reason": hold})
    await session.close()
    server.stop()
    server.start("--port", "0", "--fixed-clock", FRIDAY_5_15PM.isoformat())
    world = World(
        server=server,
        dispatcher=await server.token(Role.DISPATCHER, "ana"),
        technician=await server.token(Role.TECHNICIAN, "alice-laptop", "alice"),
        viewer=await server.token(Role.VIEWER, "wallboard"),
    )
    # As in seeded_world: the breaches come on the clock's first tick, before any board connects.
    watcher = await Session.open(server.url, world.viewer)
    await watcher.until_event(lambda e: e["kind"] == "sla_breached")
    await watcher.close()
    return world


@pytest.fixture(scope="module")
def office_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with local_time_zone("UTC0"):
        world = asyncio.run(office_hours_world(tmp_path_factory.mktemp("office")))
    yield world
    world.server.stop()


def test_closed_calendar_rows_stand_and_say_when_they_open(office_world: World, snap_compare: Any) -> None:
    app = DispatchApp(office_world.server.url, office_world.dispatcher, clock=lambda: FRIDAY_5_15PM)
    assert snap_compare(app, terminal_size=(120, 30), run_before=loaded(len(OFFICE_TICKETS)))


def test_ticket_detail_on_hold_with_its_clock_standing(office_world: World, snap_compare: Any) -> None:
    app = DispatchApp(office_world.server.url, office_world.dispatcher, clock=lambda: FRIDAY_5_15PM)

    async def open_detail(pilot: Pilot[None]) -> None:
        await loaded(len(OFFICE_TICKETS))(pilot)
        await pilot.press("slash", *"cracked", "enter", "enter")
        await until(pilot, lambda: isinstance(app.screen, TicketDetail)
                    and "created" in str(app.screen.query_one("#history").render()))  # fmt: skip

    assert snap_compare(app, terminal_size=SIZE, run_before=open_detail)
