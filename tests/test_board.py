"""The board, driven with Pilot against the real server."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from dispatch.app import DispatchApp
from dispatch.core.models import Role
from dispatch.screens.board import BoardScreen
from dispatch.screens.pickers import AssignPicker
from dispatch.widgets.lane import Lane
from tests.support import TIMEOUT_FACTOR, ServerProcess, Session, tech_frame, ticket_frame

SIZE = (140, 40)


async def until(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `condition` holds (the app applies events at 10 Hz); `timeout` is scaled."""
    deadline = time.monotonic() + TIMEOUT_FACTOR * timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


def lane(app: DispatchApp, priority: str) -> Lane:
    return app.screen.query_one(f"#lane-{priority.lower()}", Lane)


def board_loaded(app: DispatchApp, tickets: int) -> Callable[[], bool]:
    return lambda: isinstance(app.screen, BoardScreen) and sum(len(x.rows) for x in app.screen.lanes) == tickets


@pytest.fixture
async def floor(server: ServerProcess, dispatcher: Session) -> Session:
    """Three technicians; T-000001..3 are P1 network tickets from three clients, T-000004 a P3."""
    await dispatcher.ok(tech_frame("alice", ["network"]))
    await dispatcher.ok(tech_frame("bob", ["network", "security"], capacity=5))
    await dispatcher.ok(tech_frame("carol", ["printers"]))
    for client in ("Acme", "Globex", "Initech"):
        await dispatcher.ok(
            ticket_frame(f"Internet down at {client}", client=client, priority="P1", skills=["network"])
        )
    await dispatcher.ok(ticket_frame("Printer jam", client="Globex", priority="P3", skills=["printers"]))
    return dispatcher


async def test_a_then_enter_assigns_the_best_candidate(server: ServerProcess, floor: Session) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        assert lane(app, "P1").current is not None and lane(app, "P1").current.id == "T-000001"
        await pilot.press("a")
        await until(
            pilot, lambda: isinstance(app.screen, AssignPicker) and app.screen.query_one("#candidates").option_count > 0
        )
        await pilot.press("enter")
        event = await floor.until_event(lambda e: e["kind"] == "ticket_assigned")
        # bob and alice both fit; alice (0/3) and bob (0/5) tie on score, the lighter load then id wins.
        assert event["ticket"]["id"] == "T-000001" and event["ticket"]["assignee"] == "alice"
        assert event["actor"] == "dan"
        await until(pilot, lambda: app.model.state.tickets["T-000001"].assignee == "alice")
        # The cursor stayed in place, on the next ticket of the queue.
        assert lane(app, "P1").current is not None and lane(app, "P1").current.id == "T-000002"

        await pilot.press("A")  # straight to the best candidate
        event = await floor.until_event(lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["id"] == "T-000002")
        assert event["ticket"]["assignee"] == "bob"  # alice now holds one


async def test_marked_tickets_go_in_one_bulk_assign(server: ServerProcess, floor: Session) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        await pilot.press("space", "space", "space")
        assert lane(app, "P1").marked == {"T-000001", "T-000002", "T-000003"}
        await pilot.press("a")
        await until(
            pilot, lambda: isinstance(app.screen, AssignPicker) and app.screen.query_one("#candidates").option_count > 0
        )
        await pilot.press("down", "enter")  # the second candidate: bob
        await floor.until_event(lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["id"] == "T-000003")
        history = await floor.ok({"type": "history", "ticket_id": "T-000002"})
        assert history["events"][-1]["reason"] == "bulk" and history["events"][-1]["ticket"]["assignee"] == "bob"
        await until(pilot, lambda: all(app.model.state.tickets[f"T-00000{n}"].assignee == "bob" for n in (1, 2, 3)))
        assert not lane(app, "P1").marked


async def test_filter_narrows_every_lane_live_and_escape_clears(server: ServerProcess, floor: Session) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        await pilot.press("slash", *"globex")
        await until(pilot, lambda: [t.id for t in lane(app, "P1").rows] == ["T-000002"])
        assert [t.id for t in lane(app, "P3").rows] == ["T-000004"]
        assert "1 of 3" in str(lane(app, "P1").border_title)
        # A ticket that arrives while filtering shows only if it matches.
        await floor.ok(ticket_frame("Globex VPN", client="Globex", priority="P1"))
        await floor.ok(ticket_frame("Acme VPN", client="Acme", priority="P1"))
        await until(pilot, lambda: [t.id for t in lane(app, "P1").rows] == ["T-000002", "T-000005"])
        await pilot.press("escape")
        await until(pilot, lambda: len(lane(app, "P1").rows) == 5)


async def test_losing_a_race_is_told_in_words_and_shows_the_current_state(
    server: ServerProcess, floor: Session
) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        await pilot.press("a")  # dan looks at the candidates for T-000001 ...
        await until(
            pilot, lambda: isinstance(app.screen, AssignPicker) and app.screen.query_one("#candidates").option_count > 0
        )
        # ... while ana gives it to bob first.
        await floor.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "bob"})
        await until(pilot, lambda: app.model.state.tickets["T-000001"].assignee == "bob")
        await pilot.press("enter")
        await until(pilot, lambda: any("T-000001" in n.message for n in app._notifications))
        message = next(n.message for n in app._notifications if "T-000001" in n.message)
        assert message.startswith("T-000001 was assigned to bob by ana") and message.endswith("ago")
        assert app.model.state.tickets["T-000001"].assignee == "bob"
        assert not app.model.pending


async def test_technician_sees_only_their_lane_and_works_it(server: ServerProcess, floor: Session) -> None:
    await floor.ok({"type": "assign", "ticket_id": "T-000002", "tech_id": "alice"})
    await floor.ok({"type": "assign", "ticket_id": "T-000003", "tech_id": "bob"})
    app = DispatchApp(server.url, await server.token(Role.TECHNICIAN, "alice-phone", "alice"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 1))
        screen = app.screen
        assert isinstance(screen, BoardScreen)
        assert [x.id for x in screen.lanes] == ["lane-mine"] and not screen.query("TechnicianPanel")
        assert [t.id for t in screen.lanes[0].rows] == ["T-000002"]
        assert screen.check_action("assign", ()) is False and screen.check_action("start", ()) is True
        await pilot.press("a")  # a dispatcher key: nothing happens
        assert app.screen is screen
        await pilot.press("i")  # start
        event = await floor.until_event(lambda e: e["kind"] == "status_changed")
        assert event["ticket"]["status"] == "in_progress" and event["actor"] == "alice-phone"
        # A ticket given to her appears; one taken away disappears.
        await floor.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        await until(pilot, lambda: [t.id for t in screen.lanes[0].rows] == ["T-000001", "T-000002"])
        await floor.ok({"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"})
        await until(pilot, lambda: [t.id for t in screen.lanes[0].rows] == ["T-000001"])


async def test_viewer_gets_a_read_only_wallboard(server: ServerProcess, floor: Session) -> None:
    app = DispatchApp(server.url, await server.token(Role.VIEWER, "wall"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        screen = app.screen
        assert isinstance(screen, BoardScreen)
        for action in ("assign", "assign_best", "unassign", "priority", "status", "mark", "start", "note"):
            assert screen.check_action(action, ()) is False
        await pilot.press("a", "u", "space")
        assert app.screen is screen and not lane(app, "P1").marked


async def test_board_resumes_after_a_server_restart_without_gaps_or_duplicates(
    server: ServerProcess, floor: Session
) -> None:
    token = await server.token(Role.DISPATCHER, "dan")
    app = DispatchApp(server.url, token)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        server.kill9()
        await until(pilot, lambda: app.screen.has_class("-stale"))
        assert "reconnecting" in str(app.screen.query_one("#connection").render())
        # Same port again, so the board's retries find it.
        port = server.url.rsplit(":", 1)[1]
        server.start("--port", port)
        await until(pilot, lambda: not app.screen.has_class("-stale"), timeout=30)
        other = await Session.open(server.url, await server.token(Role.DISPATCHER, "eve"))
        for n in range(5):
            await other.ok(ticket_frame(f"after restart {n}", priority="P2"))
        await until(pilot, lambda: len(lane(app, "P2").rows) == 5)
        fresh = await Session.open(server.url, await server.token(Role.VIEWER, "check"))
        assert fresh.snapshot is not None
        assert app.model.state.seq == fresh.snapshot["seq"]
        ours = {t.id: t.model_dump(mode="json") for t in app.model.state.tickets.values()}
        assert ours == {t["id"]: t for t in fresh.snapshot["tickets"]}


async def test_bad_token_exits_with_a_clear_message(server: ServerProcess) -> None:
    app = DispatchApp(server.url, "wrong")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 3
