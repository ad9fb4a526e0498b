"""Incidents, merged duplicates, de-duplicated reports and burst detection (issue 5), end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Label, OptionList

from dispatch.app import DispatchApp
from dispatch.core.models import Role
from dispatch.screens.board import BoardScreen
from dispatch.screens.pickers import AssignPicker, ChoicePicker, NoteEditor
from tests.inprocess import ManualClock, running_server
from tests.support import ServerProcess, Session, tech_frame, ticket_frame
from tests.test_board import SIZE, board_loaded, lane, until


def kinds(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


async def test_create_incident_links_tickets_and_survives_a_restart(server: ServerProcess, dispatcher: Session) -> None:
    for client in ("Acme", "Globex", "Initech"):
        await dispatcher.ok(ticket_frame(f"VPN down at {client}", client=client))
    ack = await dispatcher.ok({"type": "create_incident", "title": "ISP", "ticket_ids": ["T-000001", "T-000002"]})
    assert ack["incident_id"] == "INC-1" and ack["ticket_ids"] == ["T-000001", "T-000002"]
    created = kinds(dispatcher.events, "incident_created")
    assert [e["incident"]["ticket_ids"] for e in created] == [["T-000001", "T-000002"]]
    linked = kinds(dispatcher.events, "ticket_linked")
    assert [(e["ticket"]["id"], e["ticket"]["incident_id"], e["ticket"]["version"]) for e in linked] == [
        ("T-000001", "INC-1", 2),
        ("T-000002", "INC-1", 2),
    ]
    # An empty incident, then linking the third ticket to the first one.
    assert (await dispatcher.ok({"type": "create_incident", "title": "Printers"}))["incident_id"] == "INC-2"
    ack = await dispatcher.ok({"type": "link", "incident_id": "INC-1", "ticket_ids": ["T-000003"]})
    assert ack["incident_id"] == "INC-1"

    server.terminate()
    server.start()
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "bo"))
    try:
        assert session.snapshot is not None
        incidents = {i["id"]: i for i in session.snapshot["incidents"]}
        assert incidents["INC-1"]["ticket_ids"] == ["T-000001", "T-000002", "T-000003"]
        assert incidents["INC-2"]["ticket_ids"] == []
        # The counter is rebuilt from the incidents table.
        assert (await session.ok({"type": "create_incident", "title": "Again"}))["incident_id"] == "INC-3"
    finally:
        await session.close()


async def test_incident_refusals_and_roles(server: ServerProcess, dispatcher: Session) -> None:
    for n in range(3):
        await dispatcher.ok(ticket_frame(f"Ticket {n}"))
    await dispatcher.ok({"type": "set_status", "ticket_id": "T-000003", "status": "cancelled"})
    await dispatcher.ok({"type": "create_incident", "title": "Outage", "ticket_ids": ["T-000001"]})

    async def refused(frame: dict[str, Any]) -> tuple[str, str]:
        reply = await dispatcher.call(frame)
        assert reply["type"] == "error", reply
        return reply["code"], reply["message"]

    assert await refused({"type": "link", "incident_id": "INC-9", "ticket_ids": ["T-000002"]}) == (
        "not_found",
        "no incident INC-9",
    )
    assert (await refused({"type": "link", "incident_id": "INC-1", "ticket_ids": ["T-000009"]}))[0] == "not_found"
    assert (await refused({"type": "link", "incident_id": "INC-1", "ticket_ids": ["T-000003"]}))[0] == "conflict"
    assert (await refused({"type": "create_incident", "title": "Other", "ticket_ids": ["T-000001"]})) == (
        "conflict",
        "T-000001 already belongs to INC-1",
    )
    assert await refused({"type": "merge", "primary_id": "T-000001", "duplicate_ids": ["T-000001"]}) == (
        "invalid",
        "cannot merge T-000001 into itself",
    )
    assert (await refused({"type": "merge", "primary_id": "T-000001", "duplicate_ids": ["T-000003"]}))[0] == "conflict"
    assert (await refused({"type": "merge", "primary_id": "T-000009", "duplicate_ids": ["T-000002"]}))[0] == "not_found"

    intake = await Session.open(server.url, await server.token(Role.INTAKE, "monitoring"))
    try:
        for frame in (
            {"type": "create_incident", "title": "Outage"},
            {"type": "link", "incident_id": "INC-1", "ticket_ids": ["T-000002"]},
            {"type": "merge", "primary_id": "T-000001", "duplicate_ids": ["T-000002"]},
        ):
            reply = await intake.call(frame)
            assert reply["type"] == "error" and reply["code"] == "forbidden", reply
        assert (await intake.call({"type": "create_incident", "title": "x"}))["message"] == (
            "an intake may not create incidents"
        )
    finally:
        await intake.close()


async def test_merge_resolves_duplicates_into_the_primary(server: ServerProcess, dispatcher: Session) -> None:
    for n in range(3):
        await dispatcher.ok(ticket_frame(f"Mail down {n}"))
    ack = await dispatcher.ok(
        {"type": "merge", "primary_id": "T-000001", "duplicate_ids": ["T-000002", "T-000003"], "reason": "same ISP"}
    )
    assert ack["ticket_id"] == "T-000001" and ack["ticket_ids"] == ["T-000002", "T-000003"]
    merged = kinds(dispatcher.events, "ticket_merged")
    assert [e["ticket"]["id"] for e in merged] == ["T-000002", "T-000003"]
    for event in merged:
        assert event["ticket"]["status"] == "resolved" and event["ticket"]["merged_into"] == "T-000001"
        assert event["reason"] == "same ISP" and event["previous_status"] == "new" and event["ticket"]["version"] == 2
    # Merged tickets are closed: merging again is a conflict.
    again = await dispatcher.call({"type": "merge", "primary_id": "T-000001", "duplicate_ids": ["T-000002"]})
    assert again["type"] == "error" and again["code"] == "conflict"


async def test_dedupe_within_and_outside_the_window(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_server(tmp_path, clock, dedupe_window_minutes=30) as running:
        session = await Session.open(running.url, running.tokens["ana"])
        try:
            report = ticket_frame("Disk full on FS01", dedupe_key="mon:fs01:disk")
            first = await session.ok(report)
            assert first["ticket_id"] == "T-000001" and first.get("deduplicated") is None
            clock.advance(minutes=20)
            second = await session.ok(report)
            assert second["ticket_id"] == "T-000001" and second["deduplicated"] is True
            assert second["duplicates"] == 1 and second["version"] == 2
            event = kinds(session.events, "ticket_duplicated")[-1]
            assert event["ticket"]["duplicates"] == 1
            # A different key, and the same key once the window has passed, open new tickets.
            assert (await session.ok(ticket_frame("Disk full", dedupe_key="mon:fs02:disk")))["ticket_id"] == "T-000002"
            clock.advance(minutes=31)
            third = await session.ok(report)
            assert third["ticket_id"] == "T-000003" and third.get("deduplicated") is None
            # A closed ticket takes no duplicates.
            await session.ok({"type": "set_status", "ticket_id": "T-000003", "status": "cancelled"})
            assert (await session.ok(report))["ticket_id"] == "T-000004"
            # Cleaned and bounded like other text.
            too_long = await session.call(ticket_frame("x", dedupe_key="k" * 201))
            assert too_long["type"] == "error" and too_long["code"] == "invalid"
        finally:
            await session.close()
        assert running.server.state.tickets["T-000001"].duplicates == 1


async def test_burst_is_reported_once_with_its_tickets(server: ServerProcess, dispatcher: Session) -> None:
    await dispatcher.ok(tech_frame("alice"))
    technician = await Session.open(server.url, await server.token(Role.TECHNICIAN, "alice", "alice"))
    categories = ["network", "hardware", "software", "security", "other"]
    try:
        for n, category in enumerate(categories[:4]):
            await dispatcher.ok(ticket_frame(f"Down {n}", client="Acme Dental", category=category))
        assert kinds(dispatcher.events, "burst_detected") == []
        await dispatcher.ok(ticket_frame("Down 4", client="Acme Dental", category="other"))
        bursts = kinds(dispatcher.events, "burst_detected")
        assert [(b["group"], b["value"], b["ticket_ids"], b["actor"]) for b in bursts] == [
            ("client", "Acme Dental", [f"T-00000{n}" for n in range(1, 6)], "auto")
        ]
        assert bursts[0]["window_minutes"] == 10
        # An unrelated ticket does not report the same burst again.
        await dispatcher.ok(ticket_frame("Printer", client="Globex", category="hardware"))
        assert len(kinds(dispatcher.events, "burst_detected")) == 1
        # Once grouped, a new ticket from the client is no burst of its own.
        ids = [f"T-00000{n}" for n in range(1, 6)]
        await dispatcher.ok({"type": "create_incident", "title": "Acme Dental outage", "ticket_ids": ids})
        await dispatcher.ok(ticket_frame("Down 5", client="Acme Dental", category="network"))
        assert len(kinds(dispatcher.events, "burst_detected")) == 1
        # Technicians never see bursts (or incidents): the next event they get is their own status.
        await dispatcher.ok({"type": "set_tech_status", "tech_id": "alice", "status": "break"})
        await technician.until_event(lambda e: e["kind"] == "technician_status_changed")
        assert {e["kind"] for e in technician.events} == {"technician_status_changed"}
    finally:
        await technician.close()


async def test_burst_banner_then_g_opens_the_incident(server: ServerProcess, dispatcher: Session) -> None:
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: board_loaded(app, 0)() and app.model.has_snapshot)
        screen = app.screen
        assert isinstance(screen, BoardScreen)
        banner = screen.query_one("#burst-banner")
        assert not banner.display
        for n in range(5):
            await dispatcher.ok(ticket_frame(f"Phones dead {n}", client="Acme Dental", priority="P1"))
        await until(pilot, lambda: bool(banner.display))
        assert "Burst: 5 tickets from Acme Dental in 10 min" in str(banner.render())
        await pilot.press("g")
        event = await dispatcher.until_event(lambda e: e["kind"] == "incident_created")
        assert event["actor"] == "dan" and event["incident"]["title"] == "Acme Dental outage"
        assert event["incident"]["ticket_ids"] == [f"T-00000{n}" for n in range(1, 6)]
        await until(pilot, lambda: not banner.display)
        await until(pilot, lambda: all(t.incident_id == "INC-1" for t in app.model.state.tickets.values()))

        # Esc dismisses a banner without grouping anything.
        for n in range(5):
            await dispatcher.ok(ticket_frame(f"Slow {n}", client="Globex", priority="P3"))
        await until(pilot, lambda: bool(banner.display))
        await pilot.press("escape")
        await until(pilot, lambda: not banner.display)
        assert len(app.model.state.incidents) == 1


def about(kind: str, ticket_id: str) -> Callable[[dict[str, Any]], bool]:
    """An event of this kind about this ticket (for `Session.until_event`)."""
    return lambda event: event["kind"] == kind and event["ticket"]["id"] == ticket_id


@pytest.fixture
async def isp_incident(dispatcher: Session) -> Session:
    """INC-1 holds the two P1 internet tickets T-000001 and T-000002; T-000003, a P1 printer jam, is not in it."""
    for client in ("Acme", "Globex"):
        await dispatcher.ok(ticket_frame(f"Internet down at {client}", client=client, priority="P1"))
    await dispatcher.ok(ticket_frame("Printer jam", client="Initech", priority="P1"))
    await dispatcher.ok({"type": "create_incident", "title": "ISP", "ticket_ids": ["T-000001", "T-000002"]})
    return dispatcher


async def test_I_assigns_the_whole_incident(server: ServerProcess, isp_incident: Session) -> None:
    dispatcher = isp_incident
    await dispatcher.ok(tech_frame("alice", ["network"], capacity=5))
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 3))
        current = lane(app, "P1").current
        assert current is not None and current.incident_id == "INC-1"
        # The incident keys stay out of the footer but are listed in the help screen.
        assert isinstance(app.screen, BoardScreen)
        assert {"g", "I", "P", "R"} <= {b.key for b in app.screen._bindings_for_role()}
        await pilot.press("I")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, AssignPicker)
                and app.screen.query_one("#candidates", OptionList).option_count > 0
            ),
        )
        await pilot.press("enter")
        for ticket_id in ("T-000001", "T-000002"):
            event = await dispatcher.until_event(about("ticket_assigned", ticket_id))
            assert event["ticket"]["assignee"] == "alice" and event["reason"] == "bulk"
        await until(pilot, lambda: app.model.state.tickets["T-000002"].assignee == "alice")
        assert app.model.state.tickets["T-000003"].assignee is None


async def test_P_and_R_act_on_every_open_ticket_of_the_incident(server: ServerProcess, isp_incident: Session) -> None:
    dispatcher = isp_incident
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 3))
        current = lane(app, "P1").current
        assert current is not None and current.incident_id == "INC-1"

        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, ChoicePicker))
        await pilot.press("down", "enter")  # from P1 (now) to P2
        for ticket_id in ("T-000001", "T-000002"):
            event = await dispatcher.until_event(about("priority_changed", ticket_id))
            assert event["ticket"]["priority"] == "P2" and event["actor"] == "dan"
        tickets = app.model.state.tickets
        await until(pilot, lambda: tickets["T-000001"].priority == tickets["T-000002"].priority == "P2")
        assert tickets["T-000003"].priority == "P1"

        await pilot.press("right")  # to the P2 lane, where the incident now is
        current = lane(app, "P2").current
        assert current is not None and current.incident_id == "INC-1"
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, NoteEditor))
        assert "Resolve INC-1: 2 open tickets" in str(app.screen.query_one(".dialog-title", Label).render())
        await pilot.press(*"ISP restored the line", "enter")
        for ticket_id in ("T-000001", "T-000002"):
            note = await dispatcher.until_event(about("note_added", ticket_id))
            assert note["note"] == "ISP restored the line"
            resolved = await dispatcher.until_event(about("status_changed", ticket_id))
            assert resolved["ticket"]["status"] == "resolved"
        await until(pilot, lambda: not tickets["T-000001"].is_open and not tickets["T-000002"].is_open)
        assert tickets["T-000003"].is_open


async def test_U_tells_every_client_of_the_incident_what_is_going_on(
    server: ServerProcess, isp_incident: Session
) -> None:
    dispatcher = isp_incident
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, board_loaded(app, 3))
        current = lane(app, "P1").current
        assert current is not None and current.incident_id == "INC-1"
        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, NoteEditor))
        title = str(app.screen.query_one(".dialog-title", Label).render())
        assert title.startswith("Update the clients of INC-1: ")
        await pilot.press(*"Fibre cut, repair by 14:00", "enter")
        for ticket_id in ("T-000001", "T-000002"):
            update = await dispatcher.until_event(about("client_updated", ticket_id))
            assert update["note"] == "Fibre cut, repair by 14:00" and update["actor"] == "dan"
        # Escape sends nothing.
        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, NoteEditor))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, NoteEditor))
