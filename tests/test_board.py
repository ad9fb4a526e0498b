"""The board, driven with Pilot against the real server."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import BaseModel
from rich.console import Console
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import OptionList, Static
from websockets.asyncio.server import ServerConnection, serve

from dispatch.app import DispatchApp
from dispatch.client import LinkState, ServerLink, backoff_delay
from dispatch.core.contracts import Contracts
from dispatch.core.models import HoldReason, Priority, Role, TechStatus, Ticket, TicketStatus
from dispatch.core.protocol import (
    Ack,
    Assign,
    BulkAssign,
    Command,
    Error,
    ErrorCode,
    ForecastAnswer,
    Hello,
    Rebalance,
    ServerFrame,
    SetStatus,
    Undo,
    Welcome,
)
from dispatch.core.roster import Roster
from dispatch.core.sla import SlaReading, SlaState, clock_fields
from dispatch.model import Severity
from dispatch.screens.board import BoardScreen
from dispatch.screens.callout import CalloutPrompt
from dispatch.screens.connecting import ConnectingScreen
from dispatch.screens.detail import TicketDetail
from dispatch.screens.forecast import ForecastScreen
from dispatch.screens.help import HelpScreen
from dispatch.screens.pickers import AssignPicker, ChoicePicker, ConfirmPrompt, TextPrompt
from dispatch.session import BoardSession, ForecastSchedule, RecentChange, WhatIf, utc_now
from dispatch.widgets.lane import SLA, Lane, countdown
from dispatch.widgets.technician_panel import TechnicianPanel
from tests.inprocess import ManualClock, running_server
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


def current_id(app: DispatchApp, priority: str) -> str | None:
    """The id of the ticket under the lane's cursor."""
    current = lane(app, priority).current
    return current.id if current is not None else None


def picker_ready(app: DispatchApp) -> Callable[[], bool]:
    """The assign picker is open and the ranking has arrived."""
    return lambda: (
        isinstance(app.screen, AssignPicker) and app.screen.query_one("#candidates", OptionList).option_count > 0
    )


def board_loaded(app: DispatchApp, tickets: int) -> Callable[[], bool]:
    return lambda: isinstance(app.screen, BoardScreen) and sum(len(x.rows) for x in app.screen.lanes) == tickets


def row_text(lane: Lane, ticket_id: str) -> str:
    """The ticket's row as the lane draws it on screen (through its strip cache)."""
    index = [t.id for t in lane.rows].index(ticket_id)
    return lane.render_line(index - lane.scroll_offset.y).text


def rendered_text(content: object) -> str:
    """What a Rich renderable reads as, wide enough that nothing wraps."""
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


def modal_ready(app: DispatchApp, kind: type[Screen[Any]], part: str) -> Callable[[], bool]:
    """A modal of `kind` is in front and composed (`part` matches in it, e.g. `#text:focus`), so that
    keys pressed now reach it."""
    return lambda: isinstance(app.screen, kind) and bool(app.screen.query(part))


def choices_shown(app: DispatchApp, heading: str) -> Callable[[], bool]:
    """A choice picker with this heading is open."""
    return lambda: isinstance(app.screen, ChoicePicker) and app.screen.heading == heading


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
        assert current_id(app, "P1") == "T-000001"
        await pilot.press("a")
        await until(pilot, picker_ready(app))
        await pilot.press("enter")
        event = await floor.until_event(lambda e: e["kind"] == "ticket_assigned")
        # bob and alice both fit; alice (0/3) and bob (0/5) tie on score, the lighter load then id wins.
        assert event["ticket"]["id"] == "T-000001" and event["ticket"]["assignee"] == "alice"
        assert event["actor"] == "dan"
        await until(pilot, lambda: app.model.state.tickets["T-000001"].assignee == "alice")
        # The cursor stayed in place, on the next ticket of the queue.
        assert current_id(app, "P1") == "T-000002"

        await pilot.press("A")  # straight to the best candidate
        event = await floor.until_event(lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["id"] == "T-000002")
        assert event["ticket"]["assignee"] == "bob"  # alice now holds one


async def test_the_board_first_shown_looks_as_it_does_restyled(server: ServerProcess, floor: Session) -> None:
    # Its first showing skips Textual's restyle of every widget (they were styled as they mounted): the
    # screen must be what restyling all of them shows. The clock stands, so no countdown moves between.
    now = datetime.now(UTC)
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"), clock=lambda: now)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        await pilot.pause()
        first = app.export_screenshot()
        app.update_styles(app.screen)
        app.screen.refresh(layout=True)
        await pilot.pause()
        assert first == app.export_screenshot()


async def test_marked_tickets_go_in_one_bulk_assign(server: ServerProcess, floor: Session) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        await pilot.press("space", "space", "space")
        assert lane(app, "P1").marked == {"T-000001", "T-000002", "T-000003"}
        await pilot.press("a")
        await until(pilot, picker_ready(app))
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
        await until(pilot, picker_ready(app))
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
        board: BoardScreen = screen
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
        mine = board.lanes[0]  # (the `is` check above widened `screen` back to Screen)
        await until(pilot, lambda: [t.id for t in mine.rows] == ["T-000001", "T-000002"])
        await floor.ok({"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"})
        await until(pilot, lambda: [t.id for t in mine.rows] == ["T-000001"])


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


# --- the link: reconnecting ----------------------------------------------------------------------------


@asynccontextmanager
async def scripted_server(handler: Callable[[ServerConnection], Awaitable[None]]) -> AsyncIterator[str]:
    """A bare websockets server on a free loopback port that runs `handler` per connection."""
    async with serve(handler, "127.0.0.1", 0) as listener:
        port = next(iter(listener.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def run_link_until(link: ServerLink, enough: Callable[[list[LinkState]], bool]) -> list[LinkState]:
    """Run `link` until the states it reported are `enough`; returns them."""
    states: list[LinkState] = []
    done = asyncio.Event()

    def on_state(state: LinkState) -> None:
        states.append(state)
        if enough(states):
            done.set()

    task = asyncio.create_task(link.run(lambda: 7, lambda frame: None, on_state))
    try:
        await asyncio.wait_for(done.wait(), 10 * TIMEOUT_FACTOR)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    return states


async def test_a_server_that_closes_after_hello_never_counts_as_connected_and_the_backoff_grows() -> None:
    hellos: list[Hello] = []
    first_hello = asyncio.Event()
    release = asyncio.Event()

    async def close_after_hello(ws: ServerConnection) -> None:
        hellos.append(Hello.model_validate_json(await ws.recv()))
        if len(hellos) == 1:
            first_hello.set()
            await release.wait()
        await ws.close(1011, "not ready")

    delays_asked: list[int] = []

    def no_wait(attempt: int) -> float:
        delays_asked.append(attempt)
        return 0.0  # the rule under test is the attempt count, not the clock

    async with scripted_server(close_after_hello) as url:
        link = ServerLink(url, "secret", backoff=no_wait)
        running = asyncio.create_task(run_link_until(link, lambda states: len(states) >= 5))
        try:
            await asyncio.wait_for(first_hello.wait(), 10 * TIMEOUT_FACTOR)
            # Socket open and hello sent, but no welcome yet: nothing may be sent as if connected.
            assert not await link.send(Rebalance(command_id="too-early"))
        finally:
            release.set()  # else a failure here would leave the server waiting on this handler
        states = await running

    assert not any(state.connected for state in states)
    assert [state.attempt for state in states[:5]] == [1, 2, 3, 4, 5]
    assert delays_asked[:4] == [1, 2, 3, 4]
    assert "not ready (1011)" in states[0].detail
    assert states[0].reason == "not ready", "the server's own words, for the board's header"
    # The hello is the protocol's model, resuming from what the board holds.
    assert hellos[0] == Hello(token="secret", last_seq=7)


async def test_given_several_servers_a_board_that_reaches_none_says_why_for_each() -> None:
    """One node's database is away (it closes with 1013), the other is down: the person is told both,
    not only whichever was tried last."""

    async def database_away(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(1013, "the database cannot be reached: try again later")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = f"ws://127.0.0.1:{probe.getsockname()[1]}"  # nobody listens once the probe is closed
    async with scripted_server(database_away) as away:
        urls = f"{away},{down}"
        states = await run_link_until(ServerLink(urls, "secret", backoff=lambda attempt: 0.0), lambda s: len(s) >= 2)
        assert states[1].detail.splitlines() == [
            f"{away}: server closed the connection: the database cannot be reached: try again later (1013)",
            f"{down}: server not reachable (connection refused)",
        ]
        app = DispatchApp(urls, "secret")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ConnectingScreen) and "(1013)" in screen_words(app)
                        and "connection refused" in screen_words(app))  # fmt: skip
            assert screen_words(app).startswith("Cannot reach any server:")


def screen_words(app: DispatchApp) -> str:
    return str(app.screen.query_one("#connecting", Static).render())


async def test_the_attempt_count_starts_again_only_once_welcome_arrives() -> None:
    welcome = Welcome(role=Role.VIEWER, user="wall", tech_id=None, seq=0).model_dump_json()

    async def welcome_then_close(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(welcome)
        await ws.close(1001, "restarting")

    async with scripted_server(welcome_then_close) as url:
        link = ServerLink(url, "secret", backoff=lambda attempt: 0.0)
        states = await run_link_until(link, lambda states: len(states) >= 6)

    assert [(state.connected, state.attempt) for state in states[:6]] == [(True, 0), (False, 1)] * 3


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 15.0), (20, 15.0)]
)
def test_backoff_doubles_up_to_its_cap_with_full_jitter(attempt: int, ceiling: float) -> None:
    assert backoff_delay(attempt, draw=lambda low, high: high) == ceiling
    assert backoff_delay(attempt, draw=lambda low, high: low) == 0.0


# --- the session, without a screen ---------------------------------------------------------------------


class AnsweringLink(ServerLink):
    """A link whose server answers each command at once with `answer(command)` (None: not connected)."""

    def __init__(self, answer: Callable[[Command], ServerFrame] | None) -> None:
        super().__init__("ws://unused", "token")
        self.answer = answer
        self.session: BoardSession | None = None
        self.sent = asyncio.Event()

    async def send(self, frame: BaseModel | dict[str, Any]) -> bool:
        if self.answer is None or self.session is None:
            return False
        self.sent.set()
        assert not isinstance(frame, dict)
        reply = self.answer(cast(Command, frame))
        # As the connection worker does: the reply arrives while the sender awaits it.
        asyncio.get_running_loop().call_soon(self.session.take_reply, reply)
        return True


def answering_session(
    answer: Callable[[Command], ServerFrame] | None, clock: Callable[[], datetime] | None = None
) -> tuple[BoardSession, list[tuple[Any, ...]]]:
    """A session over an `AnsweringLink`; the list collects what it told the UI, in order."""
    told: list[tuple[Any, ...]] = []
    link = AnsweringLink(answer)

    def notify(message: str, *, title: str = "", severity: Severity = "information") -> None:
        told.append(("notify", message, title, severity))

    def rows_changed(ticket_ids: tuple[str, ...]) -> None:
        told.append(("rows", ticket_ids, {t for t in ticket_ids if session.model.is_pending(t)}))

    session = BoardSession(
        "ws://unused", "token", notify=notify, rows_changed=rows_changed, link=link, clock=clock or utc_now
    )
    link.session = session
    return session, told


async def test_a_command_shows_pending_until_answered_and_a_lost_race_is_said_in_words() -> None:
    def refuse(command: Command) -> ServerFrame:
        return Error(command_id=command.command_id, code=ErrorCode.CONFLICT, message="stale", current={"id": "T-1"})

    session, told = answering_session(refuse)
    reply = await session.send_command(
        Assign(command_id="c1", ticket_id="T-1", tech_id="bob"), "assign T-1 to bob", ["T-1"]
    )
    assert isinstance(reply, Error) and not session.model.pending
    assert told == [
        ("rows", ("T-1",), {"T-1"}),  # pending mark on
        ("rows", ("T-1",), set()),  # and off again once answered
        ("notify", "stale", "Conflict", "warning"),  # no change seen here: the server's own words
    ]


async def test_a_command_that_cannot_be_sent_says_so() -> None:
    session, told = answering_session(None)
    assert await session.send_command(Assign(command_id="c1", ticket_id="T-1", tech_id="bob"), "assign T-1") is None
    assert told == [("notify", "Not sent: assign T-1 (not connected). Try again once reconnected.", "", "warning")]


async def test_losing_the_link_fails_the_commands_in_flight() -> None:
    session, _ = answering_session(lambda command: Ack(command_id="other", seq=1))  # never its own answer
    sending = asyncio.create_task(session.request(Assign(command_id="c1", ticket_id="T-1", tech_id="bob")))
    assert isinstance(session.link, AnsweringLink)
    await asyncio.wait_for(session.link.sent.wait(), 10 * TIMEOUT_FACTOR)
    session.link_changed(LinkState(connected=False, attempt=1, detail="gone"))
    assert await asyncio.wait_for(sending, 10 * TIMEOUT_FACTOR) is None  # not the 15 s reply timeout
    assert session.link_state.detail == "gone"


def forecast_answer(command: Command, breaches: int = 2) -> ForecastAnswer:
    return ForecastAnswer(
        command_id=command.command_id, generated_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC), horizon_minutes=120,
        breaches=[{"ticket_id": f"T-{n}", "target": "respond", "at": datetime(2026, 12, 1, 9, n, tzinfo=UTC)}
                  for n in range(breaches)],
        by_priority={Priority.P1: breaches}, short=[{"skill": "network", "technicians": 1}],
    )  # fmt: skip


async def test_the_forecast_frame_answers_its_asker_and_the_plain_one_is_kept_for_the_header() -> None:
    session, told = answering_session(forecast_answer)
    answer = await session.forecast()
    assert answer is not None and session.model.forecast == answer and len(answer.breaches) == 2
    what_if = await session.forecast(WhatIf(extra=(("+1 network", ("network",), 3),)))
    assert what_if is not None and session.model.forecast == answer  # a what-if is not the board's state
    # An answer nobody waits for is not taken as a reply (and the stream never sees a forecast frame).
    assert not session.take_reply(forecast_answer(Rebalance(command_id="nobody-asked")))
    assert told == []


def ack_everything(command: Command) -> ServerFrame:
    return Ack(command_id=command.command_id, seq=1)


async def test_acked_changes_are_kept_for_undo_for_15_minutes_and_refusals_are_not() -> None:
    clock = ManualClock(datetime(2026, 12, 1, 14, 2, tzinfo=UTC))
    session, _ = answering_session(ack_everything, clock=clock)
    bulk = BulkAssign(command_id="bulk-1", ticket_ids=["T-1", "T-2"], tech_id="bob")
    await session.send_command(bulk, "assign 2 tickets to bob", ["T-1", "T-2"])
    await session.send_command(Rebalance(command_id="r-1"), "ask for a plan")  # changes nothing: not kept
    assert session.recent == [RecentChange("bulk-1", "assign 2 tickets to bob", clock.now, ("T-1", "T-2"))]
    clock.advance(minutes=14, seconds=59)
    assert session.last_change() == session.recent[0]
    clock.advance(seconds=1)  # the server forgets it now too
    assert session.last_change() is None and session.recent == []

    refusing, _ = answering_session(
        lambda command: Error(command_id=command.command_id, code=ErrorCode.CONFLICT, message="stale"), clock=clock
    )
    await refusing.send_command(SetStatus(command_id="s-1", ticket_id="T-1", status=TicketStatus.RESOLVED), "resolve")
    assert refusing.recent == []


async def test_a_refused_undo_says_why_and_the_next_z_offers_the_change_before() -> None:
    clock = ManualClock(datetime(2026, 12, 1, 14, 2, tzinfo=UTC))
    words = "T-2 changed since (now version 4, assigned, P2, assigned to carol): nothing undone"

    def answer(command: Command) -> ServerFrame:
        if isinstance(command, Undo):
            return Error(command_id=command.command_id, code=ErrorCode.CONFLICT, message=words)
        return Ack(command_id=command.command_id, seq=1)

    session, told = answering_session(answer, clock=clock)
    await session.send_command(Assign(command_id="a-1", ticket_id="T-1", tech_id="bob"), "assign T-1 to bob", ["T-1"])
    await session.send_command(Assign(command_id="a-2", ticket_id="T-2", tech_id="bob"), "assign T-2 to bob", ["T-2"])
    latest = session.last_change()
    assert latest is not None and latest.command_id == "a-2"
    assert not await session.undo(latest)
    assert ("notify", words, "Conflict", "warning") in told
    earlier = session.last_change()
    assert earlier is not None and earlier.command_id == "a-1"


@pytest.mark.parametrize(
    ("events", "due"),
    [
        ([], True),  # never asked: ask now
        ([("asked", 0), ("answered", 1)], False),
        ([("asked", 0), ("answered", 1), ("at", 29.9)], False),
        ([("asked", 0), ("answered", 1), ("at", 30)], True),  # every 30 s
        ([("asked", 0), ("answered", 1), ("changed", 2), ("at", 4.9)], False),  # debounced
        ([("asked", 0), ("answered", 1), ("changed", 2), ("at", 5)], True),
        ([("asked", 0), ("changed", 2), ("at", 31)], False),  # never two at once
        ([("asked", 0), ("changed", 1), ("asked", 6), ("answered", 7), ("at", 12)], False),  # the change was asked
    ],
)
def test_the_headers_forecast_is_asked_every_30_s_and_after_changes_at_most_every_5_s(
    events: list[tuple[str, float]], due: bool
) -> None:
    schedule = ForecastSchedule()
    now = 0.0
    for what, at in events:
        now = at
        if what == "asked":
            schedule.started(at)
        elif what == "answered":
            schedule.finished()
        elif what == "changed":
            schedule.changed()
    assert schedule.due(now) is due


# --- SLA contracts: business hours and hold reasons ------------------------------------------------------

CONTRACTS = """
[calendars.uk-office]
timezone = "Europe/London"
mon = "09:00-17:30"
tue = "09:00-17:30"
wed = "09:00-17:30"
thu = "09:00-17:30"
fri = "09:00-17:00"

[tiers.gold]
calendar = "uk-office"
pause_on = ["awaiting_client", "awaiting_parts"]

[clients."Acme Corp"]
tier = "gold"
"""
# Friday 4 December 2026, 16:30 in London (GMT, so also UTC): half an open hour left this week.
FRIDAY_4_30PM = datetime(2026, 12, 4, 16, 30, tzinfo=UTC)


@contextmanager
def local_time_zone(rule: str) -> Iterator[None]:
    """This process's local time zone, the dispatcher's own, set to a POSIX `TZ` rule meanwhile (a
    rule, not a zone name, so that no system tz database is needed)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = rule
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture
def in_new_york() -> Iterator[None]:
    """The dispatcher sits in New York, five hours behind London in December."""
    with local_time_zone("EST5EDT,M3.2.0,M11.1.0"):
        yield


async def test_a_ticket_on_a_closed_calendar_stands_and_says_when_it_opens(tmp_path: Path, in_new_york: None) -> None:
    clock = ManualClock(FRIDAY_4_30PM)
    async with running_server(tmp_path, clock, contracts=Contracts.parse(CONTRACTS, "sla.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(ticket_frame("Printer queue stuck", client="Acme Corp", priority="P2"))  # gold: office hours
        await ana.ok(ticket_frame("Mail down", client="Initech", priority="P2"))  # standard: 24x7
        app = DispatchApp(running.url, running.tokens["ana"], clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, board_loaded(app, 2))
            p2 = lane(app, "P2")
            # Open: both count down their hour to respond.
            assert "1h00m" in row_text(p2, "T-000001") and "1h00m" in row_text(p2, "T-000002")

            clock.advance(minutes=45)  # 17:15: the office closed at 17:00 (a Friday), after 30 open minutes
            await until(pilot, lambda: "⏸Mon 04:00" in row_text(p2, "T-000001"))  # 09:00 London, in New York
            assert "15m00s" in row_text(p2, "T-000002")  # the 24x7 clock ran on
            ticket = app.model.state.tickets["T-000001"]
            standing = app.model.clock(ticket, clock.now)
            assert standing.left == timedelta(minutes=30) and standing.state is SlaState.FINE
            clock.advance(hours=60)  # Monday 05:15 in London: still closed, still standing
            await until(pilot, lambda: "!-2d11h" in row_text(p2, "T-000002"))
            assert "⏸Mon 04:00" in row_text(p2, "T-000001")
            assert app.model.clock(ticket, clock.now) == standing

            # The detail says on which terms, when it is due in London and in New York, and why it stands.
            await pilot.press("right", "down")  # the P2 lane, its second ticket (due last)
            assert current_id(app, "P2") == "T-000001"
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TicketDetail))
            fields = rendered_text(app.screen.query_one("#fields", Static).content)
            assert "gold" in fields and "uk-office (business hours, Europe/London)" in fields
            assert "2026-12-07 09:30 GMT the client's time · 2026-12-07 04:30 EST yours" in fields
            assert "standing: uk-office is closed until Mon 04:00 your time (Mon 09:00 theirs)" in fields
            await pilot.press("escape")

            clock.now = datetime(2026, 12, 7, 9, 20, tzinfo=UTC)  # open again: it counts down from where it stood
            await until(pilot, lambda: row_text(p2, "T-000001").split()[-2:] == ["10m00s", "unassigned"])
        await ana.close()


async def test_o_asks_why_the_ticket_is_on_hold_and_escape_sends_nothing(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # a Tuesday, the office open
    async with running_server(tmp_path, clock, contracts=Contracts.parse(CONTRACTS, "sla.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("Laptop screen", client="Acme Corp", priority="P2"))
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        app = DispatchApp(running.url, running.tokens["alice"], clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, board_loaded(app, 1))
            mine = app.screen.query_one("#lane-mine", Lane)
            await pilot.press("o")
            await until(pilot, choices_shown(app, "Why is T-000001 on hold?"))
            options = app.screen.query_one("#choices", OptionList)
            labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert labels == ["awaiting the client", "awaiting parts", "awaiting a third party", "other"]
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, BoardScreen))
            # Nothing went: the next event the server publishes is the marker, not a status change.
            marker = await ana.ok(ticket_frame("marker", client="Initech", priority="P4"))
            await ana.until_seq(marker["seq"])
            assert not [e for e in ana.events if e["kind"] == "status_changed"]

            await pilot.press("o")
            await until(pilot, choices_shown(app, "Why is T-000001 on hold?"))
            await pilot.press("down", "enter")  # awaiting parts: the gold contract stops the clock for it
            event = await ana.until_event(lambda e: e["kind"] == "status_changed")
            assert event["actor"] == "alice"
            assert (event["ticket"]["status"], event["ticket"]["hold_reason"]) == ("on_hold", "awaiting_parts")
            await until(pilot, lambda: app.model.state.tickets["T-000001"].status is TicketStatus.ON_HOLD)
            held = app.model.state.tickets["T-000001"]
            assert held.hold_reason is HoldReason.AWAITING_PARTS and held.paused_at == clock.now
            clock.advance(hours=2)  # it stands: an hour to respond was already met, 8 to resolve stand still
            await until(pilot, lambda: "⏸8h00m" in row_text(mine, "T-000001"))
            assert "on hold" in row_text(mine, "T-000001")
        await ana.close()


async def test_the_dispatchers_status_picker_asks_the_hold_reason_too(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    async with running_server(tmp_path, clock, contracts=Contracts.parse(CONTRACTS, "sla.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("Laptop screen", client="Acme Corp", priority="P2"))
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        app = DispatchApp(running.url, running.tokens["ana"], clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, board_loaded(app, 1))
            await pilot.press("right")  # the P2 lane
            await pilot.press("s")
            await until(pilot, choices_shown(app, "Status of T-000001"))
            statuses = [s.value for s in TicketStatus]
            moves = statuses.index("on_hold") - statuses.index("assigned")
            await pilot.press(*["down"] * moves, "enter")
            await until(pilot, choices_shown(app, "Why is T-000001 on hold?"))
            await pilot.press("down", "down", "enter")  # awaiting a third party: gold does not stop for it
            event = await ana.until_event(lambda e: e["kind"] == "status_changed")
            assert event["ticket"]["hold_reason"] == "awaiting_third_party" and event["ticket"]["paused_at"] is None
            await until(pilot, lambda: app.model.state.tickets["T-000001"].status is TicketStatus.ON_HOLD)
            p2 = lane(app, "P2")
            assert "⏸" not in row_text(p2, "T-000001").split("alice")[0]  # its clock runs on
            assert "alice ⏸" in row_text(p2, "T-000001")  # (the work waits)
        await ana.close()


# --- the countdown column, by rule ---------------------------------------------------------------------

FRIDAY_6PM = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
MONDAY_9AM = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("left_minutes", "state", "paused", "opens_at", "text"),
    [
        (30, SlaState.FINE, False, None, "30m00s"),
        (-7, SlaState.BREACHED, False, None, "!-7m00s"),
        (30, SlaState.FINE, True, None, "⏸30m00s"),  # a hold stopped the clock
        (-7, SlaState.BREACHED, True, None, "!⏸-7m00s"),
        (30, SlaState.WARNING, False, MONDAY_9AM, "⏸Mon 04:00"),  # closed: when it opens, in New York
        (-7, SlaState.BREACHED, False, MONDAY_9AM, "!⏸Mon04:00"),
        (30, SlaState.FINE, False, MONDAY_9AM + timedelta(days=7), "⏸14 Dec"),  # a week or more away
    ],
)
def test_the_countdown_column_says_how_the_clock_stands(
    in_new_york: None, left_minutes: int, state: SlaState, paused: bool, opens_at: datetime | None, text: str
) -> None:
    created = FRIDAY_6PM - timedelta(hours=1)
    ticket = board_ticket(created, paused_at=created if paused else None)
    reading = SlaReading("respond", ticket.respond_by, timedelta(minutes=left_minutes), state, opens_at)
    shown = countdown(reading, ticket, FRIDAY_6PM)
    assert shown == text
    assert len(shown) <= SLA  # the column always holds it whole


def board_ticket(created: datetime, **fields: Any) -> Ticket:
    terms = Contracts().terms("Acme", Priority.P2)
    values = {"id": "T-000001", "title": "x", "client": "Acme", "priority": Priority.P2, "created_at": created}
    return Ticket(**values, **clock_fields(terms, created), **fields)


# --- people's time: call-outs ----------------------------------------------------------------------------

PEOPLE = """
[technicians.bob]
on_call = ["mon-sun 16:00-08:00"]

[fatigue]
max_hours_per_day = 10
min_rest_hours = 11

[callouts]
after = "5m"
answer_within = "5m"
"""
TUESDAY_10PM = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def screen_text(app: DispatchApp, selector: str) -> str:
    """What a Static on the current screen reads."""
    return rendered_text(app.screen.query_one(selector, Static).content)


def panel_row(app: DispatchApp, tech_id: str) -> str:
    panel = app.screen.query_one(TechnicianPanel)
    index = [t.id for t in panel.rows].index(tech_id)
    return panel.render_line(index - panel.scroll_offset.y).text


@asynccontextmanager
async def bob_off_shift(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[str, dict[str, str], Session]]:
    """A server with PEOPLE's roster where bob, on call, has just gone off shift (so he should rest)."""
    with local_time_zone("UTC0"):
        roster = Roster.parse(PEOPLE, "roster.toml")
        async with running_server(tmp_path, clock, ("bob",), roster=roster) as running:
            ana = await Session.open(running.url, running.tokens["ana"])
            await ana.ok(tech_frame("bob", ["network"]))
            await ana.ok({"type": "set_tech_status", "tech_id": "bob", "status": "off_shift"})
            try:
                yield running.url, running.tokens, ana
            finally:
                await ana.close()


async def test_y_on_a_technicians_board_accepts_the_callout_and_the_server_makes_them_available(
    tmp_path: Path,
) -> None:
    clock = ManualClock(TUESDAY_10PM)
    async with bob_off_shift(tmp_path, clock) as (url, tokens, ana):
        app = DispatchApp(url, tokens["bob"], clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BoardScreen) and "bob" in app.model.state.technicians)
            await ana.ok({"type": "callout", "tech_id": "bob", "reason": "core switch down at Acme"})
            # The call-out comes in front of everything: who asks, what for, by when.
            await until(pilot, modal_ready(app, CalloutPrompt, "#callout-fields"))
            fields = screen_text(app, "#callout-fields")
            assert "ana" in fields and "core switch down at Acme" in fields and "22:05 (in 5m00s)" in fields
            board = app.board
            assert board is not None and board.query_one("#callout-banner", Static).display
            await pilot.press("y")
            event = await ana.until_event(lambda e: e.get("reason") == "call-out accepted")
            assert event["technician"]["id"] == "bob" and event["technician"]["status"] == "available"
            await until(pilot, lambda: app.model.state.technicians["bob"].status is TechStatus.AVAILABLE)
            await until(pilot, lambda: not board.query_one("#callout-banner", Static).display)
            assert app.screen is board
            assert any(n.message == "CO-1 accepted: you are available." for n in app._notifications)
            # Their own line says they are on the clock now, past no shift of theirs.
            await until(pilot, lambda: "not on a shift · ☎ on call · 0h00" in screen_text(app, "#people"))


async def test_c_on_the_panel_calls_the_technician_out_and_the_override_is_said(tmp_path: Path) -> None:
    clock = ManualClock(TUESDAY_10PM + timedelta(minutes=30))
    async with bob_off_shift(tmp_path, clock) as (url, tokens, ana):
        app = DispatchApp(url, tokens["ana"], clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BoardScreen) and "bob" in app.model.state.technicians)
            await until(pilot, lambda: "called out: none" in screen_text(app, "#people"))
            for _ in range(5):  # Tab past the lanes to the technician panel
                if app.focused is app.screen.query_one(TechnicianPanel):
                    break
                await pilot.press("tab")
            await pilot.press("c")
            await until(pilot, modal_ready(app, TextPrompt, "#text:focus"))
            await pilot.press(*"core switch", "enter")
            sent = await ana.until_event(lambda e: e["kind"] == "callout_sent")
            assert sent["actor"] == "ana" and sent["callout"]["tech_id"] == "bob"
            assert sent["callout"]["reason"] == "core switch"
            # bob went off shift at 22:30: he should rest until 09:30, so this call-out is an override.
            await until(pilot, lambda: any(n.title == "Override" for n in app._notifications))
            override = next(n.message for n in app._notifications if n.title == "Override")
            assert override.startswith("call out bob, against a fatigue rule: resting until Wed 09:30")
            assert any(n.message.startswith("Call-out CO-1 sent to bob") for n in app._notifications)
            await until(pilot, lambda: "called out: 1 waiting" in screen_text(app, "#people"))
            assert "asked" in panel_row(app, "bob") and "☎" in panel_row(app, "bob")
            # Again while that one waits: the server refuses, in words.
            await pilot.press("c")
            await until(pilot, modal_ready(app, TextPrompt, "#text:focus"))
            await pilot.press("enter")
            await until(pilot, lambda: any("already has a call-out waiting" in n.message for n in app._notifications))


# --- the forecast and its what-if --------------------------------------------------------------------------


async def test_f_shows_the_predicted_breaches_and_a_what_if_changes_the_count(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    with local_time_zone("UTC0"):
        async with running_server(tmp_path, clock) as running:
            ana = await Session.open(running.url, running.tokens["ana"])
            await ana.ok(tech_frame("carol", ["printers"]))  # nobody on the clock has the network skill
            await ana.ok(tech_frame("dave", ["network"]))
            await ana.ok({"type": "set_tech_status", "tech_id": "dave", "status": "off_shift"})
            for client in ("Acme", "Globex", "Initech"):
                await ana.ok(ticket_frame(f"Internet down at {client}", client=client, priority="P1",
                                          skills=["network"]))  # fmt: skip
            app = DispatchApp(running.url, running.tokens["ana"], clock=clock)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, board_loaded(app, 3))
                # The header asks by itself, in the background.
                await until(pilot, lambda: app.model.forecast is not None)
                base = app.model.forecast
                assert base is not None and base.short and base.short[0].skill == "network"
                await until(pilot, lambda: screen_text(app, "#forecast").startswith(
                    f"forecast: {len(base.breaches)} breaches in 2h (P1 "))  # fmt: skip
                assert "T-000001" in {b.ticket_id for b in base.breaches}

                await pilot.press("f")
                await until(pilot, lambda: isinstance(app.screen, ForecastScreen))
                forecast = app.screen
                assert isinstance(forecast, ForecastScreen)
                await until(pilot, lambda: "T-000001" in screen_text(app, "#breaches"))
                assert "nothing changed yet" in screen_text(app, "#forecast-counts")
                await pilot.press("plus")  # +1 technician with a skill: the one short comes first
                await until(pilot, choices_shown(app, "What if one more technician had…"))
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, ForecastScreen) and forecast.answer is not None)
                assert forecast.answer is not None and len(forecast.answer.breaches) < len(base.breaches)
                counts = screen_text(app, "#forecast-counts")
                assert (
                    "+1 network  →  " in counts and f"({len(forecast.answer.breaches) - len(base.breaches)})" in counts
                )
                # Backspace takes the edit back: the plain forecast again.
                await pilot.press("backspace")
                await until(pilot, lambda: "nothing changed yet" in screen_text(app, "#forecast-counts"))
                # Calling dave in (off shift, with the skill), and leaving carol out (without it).
                await pilot.press("c")
                await until(pilot, choices_shown(app, "What if we called in…"))
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, ForecastScreen) and forecast.answer is not None)
                called_in = len(forecast.answer.breaches) if forecast.answer else None
                assert called_in is not None and called_in < len(base.breaches)
                await pilot.press("minus")
                await until(pilot, choices_shown(app, "What if this technician were not there?"))
                await pilot.press("enter")
                await until(pilot, lambda: "call out dave · without carol  →  " in screen_text(app, "#forecast-counts")
                            and forecast.answer is not None)  # fmt: skip
                assert forecast.answer is not None and len(forecast.answer.breaches) == called_in
                await pilot.press("escape")
                await until(pilot, lambda: isinstance(app.screen, BoardScreen))
            await ana.close()


# --- undo ------------------------------------------------------------------------------------------------


async def test_z_then_enter_takes_back_a_bulk_assignment(server: ServerProcess, floor: Session) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 4))
        await pilot.press("space", "space", "space", "a")
        await until(pilot, picker_ready(app))
        await pilot.press("enter")  # alice
        ids = ("T-000001", "T-000002", "T-000003")
        await until(pilot, lambda: all(app.model.state.tickets[t].assignee == "alice" for t in ids))
        await until(pilot, lambda: app.session.recent != [])
        change = app.session.recent[-1]

        await pilot.press("z")
        await until(pilot, modal_ready(app, ConfirmPrompt, "#confirm-heading"))
        heading = str(app.screen.query_one("#confirm-heading", Static).content)
        assert heading == f"undo: assign 3 tickets to alice at {change.at.astimezone():%H:%M}"
        await pilot.press("enter")
        await until(pilot, lambda: all(app.model.state.tickets[t].assignee is None for t in ids))
        history = await floor.ok({"type": "history", "ticket_id": "T-000002"})
        assert history["events"][-1]["reason"].startswith(f"undone by dan: {change.command_id}")
        assert any(n.message.startswith("Undone: assign 3 tickets to alice") for n in app._notifications)
        # Nothing else of dan's to take back.
        await pilot.press("z")
        await until(pilot, lambda: any(n.message.startswith("Nothing of yours to undo") for n in app._notifications))
        assert isinstance(app.screen, BoardScreen)


@pytest.mark.parametrize(
    ("role", "present", "absent"),
    [
        (Role.DISPATCHER, {"c", "f", "z"}, {"y"}),
        (Role.TECHNICIAN, {"y"}, {"c", "f", "z"}),
        (Role.VIEWER, {"f"}, {"c", "y", "z"}),
    ],
)
async def test_the_help_lists_the_new_keys_for_the_roles_that_have_them(
    server: ServerProcess, role: Role, present: set[str], absent: set[str]
) -> None:
    app = DispatchApp(server.url, await server.token(role, f"someone-{role.value}", "alice"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BoardScreen) and app.model.has_snapshot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = {key for key, _ in help_screen.keys}
        assert present <= keys and not absent & keys, keys
        # Keys as they are typed, and a technician's help says nothing of lanes and a panel they lack.
        assert {"/", "?"} <= keys and not {"slash", "question_mark"} & keys
        words = " ".join(what for _, what in help_screen.keys)
        assert ("panel" in words and "other lane" in words) is (role is not Role.TECHNICIAN), words


async def test_a_folded_panel_is_reached_with_t_and_the_help_says_so(server: ServerProcess) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan", None))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BoardScreen) and app.model.has_snapshot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen)
        keys = {key for key, _ in app.screen.keys}
        assert "T" in keys and "tab" not in keys, keys


async def test_every_dialog_fits_an_80_column_terminal(server: ServerProcess, floor: Session) -> None:
    """The dialogs are 90 and 100 columns wide where there is room; on 80 columns they shrink to the
    screen, so that neither their right border nor the ends of their lines are cut off."""
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, board_loaded(app, 4))
        for key, ready in (
            ("question_mark", lambda: isinstance(app.screen, HelpScreen)),
            ("a", picker_ready(app)),
            ("f", lambda: isinstance(app.screen, ForecastScreen)),
        ):
            await pilot.press(key)
            await until(pilot, ready)
            await pilot.pause()
            dialog = app.screen.query_one(".dialog")
            assert dialog.region.right <= 80, (key, dialog.region)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, BoardScreen))
