"""Every rule of wire contract v1, spoken over a real socket to the real server, on either storage engine
(a SQLite file, and PostgreSQL: `on_both_engines`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dispatch.core.models import Role
from tests.support import ServerProcess, Session, both_engines, on_both_engines, tech_frame, ticket_frame, timeout

pytest_generate_tests = on_both_engines


async def closed_code(ws) -> int:  # type: ignore[no-untyped-def]
    """Read until the server closes; return its close code, failing if it sent any frame."""
    with pytest.raises(ConnectionClosed) as info:
        frame = await asyncio.wait_for(ws.recv(), timeout(10))
        pytest.fail(f"server sent {frame!r} before closing")
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def test_welcome_then_snapshot(server: ServerProcess, dispatcher: Session) -> None:
    node = server.url.removeprefix("ws://")  # no --node: the address it listens on
    assert dispatcher.welcome == {
        "type": "welcome", "role": "dispatcher", "user": "ana", "tech_id": None, "seq": 0, "protocol": 1,
        "node": node,
    }  # fmt: skip
    assert dispatcher.snapshot == {
        "type": "snapshot", "seq": 0, "tickets": [], "technicians": [], "incidents": [], "calendars": [],
        "callouts": [],
    }  # fmt: skip


# On SQLite only, as every input-parametrized check here: these are the protocol's. A token looked up and
# not found is the revoked-token test's path, which runs on both engines.
@pytest.mark.parametrize(
    "first_frame",
    [
        {"type": "hello", "token": "not-a-token", "last_seq": None},
        {"type": "hello", "last_seq": None},
        {"type": "create_ticket", "command_id": "x", "title": "t", "client": "c", "priority": "P1"},
        "not json at all",
    ],
    ids=["wrong token", "no token", "no hello", "garbage"],
)
async def test_bad_or_missing_token_closes_4401_with_nothing_sent(server: ServerProcess, first_frame: object) -> None:
    async with connect(server.url) as ws:
        await ws.send(first_frame if isinstance(first_frame, str) else json.dumps(first_frame))
        assert await closed_code(ws) == 4401


async def test_revoked_token_is_refused(server: ServerProcess) -> None:
    token = await server.token(Role.VIEWER, "wall")
    from server.storage import Storage

    storage = await Storage.open(server.where)
    await storage.revoke_token("wall")
    await storage.close()
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "last_seq": None}))
        assert await closed_code(ws) == 4401


async def test_create_and_assign_reach_every_board_in_seq_order(server: ServerProcess, dispatcher: Session) -> None:
    viewer = await Session.open(server.url, await server.token(Role.VIEWER, "wallboard"))
    assert (await dispatcher.call(tech_frame("alice", ["network"])))["type"] == "ack"
    created = await dispatcher.ok(ticket_frame("VPN down", priority="P1", skills=["network"]))
    assert created["ticket_id"] == "T-000001"
    assigned = await dispatcher.ok(
        {"type": "assign", "ticket_id": "T-000001", "tech_id": "alice", "expected_version": 1}
    )
    assert assigned["seq"] == 3 and assigned["version"] == 2
    await viewer.until_seq(3)
    assert [e["seq"] for e in viewer.events] == [1, 2, 3]
    assert [e["kind"] for e in viewer.events] == ["technician_added", "ticket_created", "ticket_assigned"]
    assigned_event = viewer.events[2]
    assert assigned_event["actor"] == "ana"
    assert assigned_event["ticket"]["assignee"] == "alice" and assigned_event["ticket"]["status"] == "assigned"
    assert assigned_event["ts"].endswith("Z")
    await viewer.close()


async def test_ack_comes_after_the_event_is_durable(server: ServerProcess, dispatcher: Session) -> None:
    ack = await dispatcher.ok(ticket_frame())
    server.kill9()
    server.start()
    session = await Session.open(server.url, await server.token(Role.VIEWER, "after"))
    assert session.snapshot is not None
    assert [t["id"] for t in session.snapshot["tickets"]] == [ack["ticket_id"]]
    assert session.snapshot["seq"] == ack["seq"]


# On SQLite only: the parser refuses these before storage is reached.
@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"type": "launch_missiles", "command_id": "m1"}), "unknown message type"),
        (json.dumps({"command_id": "m2"}), "no 'type'"),
        (json.dumps([1, 2, 3]), "object"),
        (json.dumps({"type": "create_ticket", "command_id": "m3", "client": "c", "priority": "P1"}), "title"),
        (json.dumps({**ticket_frame(priority="P9"), "command_id": "m4"}), "priority"),
        (json.dumps({**ticket_frame(), "command_id": "m5", "colour": "red"}), "colour"),
        (json.dumps({**ticket_frame(title="x" * 201), "command_id": "m6"}), "200"),
        (json.dumps({**ticket_frame(title="x" * 200_000), "command_id": "m7"}), "200"),
        (json.dumps({**ticket_frame(skills=["s"] * 10_000), "command_id": "m8"}), "skills"),
        (json.dumps({**ticket_frame(title="   "), "command_id": "m9"}), "empty"),
        (json.dumps({"type": "assign", "command_id": "m10", "ticket_id": "T-1\u001b[2J", "tech_id": "a"}), "ticket_id"),
    ],
    ids=["json", "unknown", "no-type", "array", "missing", "enum", "extra", "long", "huge", "many", "blank", "ctrl"],
)
async def test_bad_frames_get_an_invalid_error_and_change_nothing(
    server: ServerProcess, dispatcher: Session, frame: str, expected: str
) -> None:
    await dispatcher.send(frame)
    while True:
        reply = await dispatcher.receive()
        if reply["type"] == "error":
            break
    assert reply["code"] == "invalid"
    assert expected in reply["message"]
    parsed = json.loads(frame) if frame.startswith('{"') else None
    assert reply["command_id"] == (parsed.get("command_id") if isinstance(parsed, dict) else None)
    # The connection goes on, and nothing changed.
    probe = await dispatcher.ok(ticket_frame("still here"))
    assert probe["seq"] == 1


async def test_binary_frame_gets_an_error(dispatcher: Session) -> None:
    await dispatcher.ws.send(b"\x00\x01binary")
    reply = await dispatcher.receive()
    assert reply["type"] == "error" and reply["code"] == "invalid"
    assert (await dispatcher.ok(ticket_frame()))["type"] == "ack"


async def test_oversized_frame_closes_1009_and_others_go_on(server: ServerProcess, dispatcher: Session) -> None:
    other = await Session.open(server.url, await server.token(Role.DISPATCHER, "dan"))
    await dispatcher.ws.send(json.dumps({**ticket_frame(title="x" * (1024 * 1024 + 10)), "command_id": "big"}))
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await dispatcher.receive()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert (await other.ok(ticket_frame()))["ticket_id"] == "T-000001"
    await other.close()


async def test_control_characters_never_reach_a_board(server: ServerProcess, dispatcher: Session) -> None:
    title = "Printer\u001b[2J\u001b]0;pwned\u0007 on fire\nagain\u202e"
    ack = await dispatcher.ok(ticket_frame(title=title, client="Acme\u0000 Corp", site="HQ\r\n2"))
    event = await dispatcher.until_event(lambda e: e["seq"] == ack["seq"])
    ticket = event["ticket"]
    assert ticket["title"] == "Printer[2J]0;pwned on fire again"
    assert ticket["client"] == "Acme Corp" and ticket["site"] == "HQ 2"
    for text in (ticket["title"], ticket["client"], ticket["site"]):
        assert all(ch >= " " and not ("\x7f" <= ch <= "\x9f") for ch in text)
    # A plan's reason lands in the assignment event each board shows.
    await dispatcher.ok(tech_frame("alice"))
    move = {"ticket_id": ticket["id"], "tech_id": "alice", "expected_version": 1, "reason": "load\u001b[2J\u0000 off"}
    applied = await dispatcher.ok({"type": "apply_plan", "moves": [move]})
    event = await dispatcher.until_event(lambda e: e["seq"] == applied["seq"])
    assert event["reason"] == "rebalance: load[2J off", event


async def test_a_resent_command_id_returns_the_original_ack_and_changes_nothing(
    server: ServerProcess, dispatcher: Session
) -> None:
    frame = {**ticket_frame("Only once"), "command_id": "create-once"}
    first = await dispatcher.call(frame)
    second = await dispatcher.call(frame)
    assert first == second and first["ticket_id"] == "T-000001"
    await dispatcher.ok(ticket_frame("probe"))
    assert [e["kind"] for e in dispatcher.events] == ["ticket_created", "ticket_created"]
    # Command ids are scoped per user: another token's "create-once" is a command of its own.
    other = await Session.open(server.url, await server.token(Role.DISPATCHER, "dan"))
    assert (await other.call(frame))["ticket_id"] == "T-000003"
    await other.close()


async def test_a_command_id_with_a_nul_is_invalid_and_the_server_goes_on(dispatcher: Session) -> None:
    # PostgreSQL's text cannot hold a NUL: such an id once stopped a PostgreSQL node at its reply lookup.
    for frame in ({**ticket_frame(), "command_id": "nul\u0000id"}, {"type": "undo", "of": "nul\u0000id"}):
        refused = await dispatcher.call(frame)
        assert refused["type"] == "error" and refused["code"] == "invalid" and "NUL" in refused["message"], refused
    assert (await dispatcher.ok(ticket_frame()))["ticket_id"] == "T-000001"


async def test_idempotency_survives_a_restart_for_the_same_token(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    session = await Session.open(server.url, token)
    frame = {**ticket_frame("Only once"), "command_id": "create-once"}
    first = await session.call(frame)
    server.kill9()
    server.start()
    session = await Session.open(server.url, token)
    assert await session.call(frame) == first
    assert session.snapshot is not None and len(session.snapshot["tickets"]) == 1


async def test_expected_version_mismatch_is_a_conflict_carrying_current(dispatcher: Session) -> None:
    await dispatcher.ok(tech_frame("alice"))
    await dispatcher.ok(tech_frame("bob"))
    await dispatcher.ok(ticket_frame())
    await dispatcher.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice", "expected_version": 1})
    refused = await dispatcher.call(
        {"type": "assign", "ticket_id": "T-000001", "tech_id": "bob", "expected_version": 1}
    )
    assert refused["type"] == "error" and refused["code"] == "conflict"
    assert refused["current"]["assignee"] == "alice" and refused["current"]["version"] == 2
    assert "version 2" in refused["message"]


REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"type": "assign", "ticket_id": "T-000404", "tech_id": "alice"}, "not_found"),
    ({"type": "assign", "ticket_id": "T-000001", "tech_id": "nobody"}, "not_found"),
    ({"type": "set_status", "ticket_id": "T-000001", "status": "in_progress"}, "conflict"),
    ({"type": "unassign", "ticket_id": "T-000001"}, "conflict"),
    ({"type": "bulk_assign", "ticket_ids": ["T-000001", "T-000404"], "tech_id": "alice"}, "not_found"),
    ({"type": "create_ticket", "title": "t", "client": "c", "priority": "P1", "incident_id": "INC-9"}, "not_found"),
    ({"type": "suggest", "ticket_id": "T-000404"}, "not_found"),
    ({"type": "add_technician", "tech_id": "alice", "name": "Alice Again"}, "conflict"),
]


async def test_refusals_name_what_is_wrong(dispatcher: Session) -> None:
    # One server for every case: a refusal changes nothing, so each starts from the same board. (On
    # PostgreSQL an unknown ticket is also looked for among the closed ones in the database.)
    await dispatcher.ok(tech_frame("alice"))
    await dispatcher.ok(ticket_frame())
    for frame, code in REFUSALS:
        refused = await dispatcher.call(frame)
        assert refused["type"] == "error" and refused["code"] == code, (frame, refused)
        assert refused["message"], frame
    assert (await dispatcher.ok(ticket_frame()))["seq"] == 3, "a refusal changed something"


async def test_bulk_assign_is_all_or_nothing(server: ServerProcess, dispatcher: Session) -> None:
    await dispatcher.ok(tech_frame("alice", capacity=10))
    for n in range(3):
        await dispatcher.ok(ticket_frame(f"Outage {n}"))
    await dispatcher.ok({"type": "set_status", "ticket_id": "T-000003", "status": "cancelled"})
    refused = await dispatcher.call(
        {"type": "bulk_assign", "ticket_ids": ["T-000001", "T-000002", "T-000003"], "tech_id": "alice"}
    )
    assert refused["code"] == "conflict" and "T-000003" in refused["message"]
    ack = await dispatcher.ok({"type": "bulk_assign", "ticket_ids": ["T-000001", "T-000002"], "tech_id": "alice"})
    viewer = await Session.open(server.url, await server.token(Role.VIEWER, "v"))
    assert viewer.snapshot is not None
    assignees = {t["id"]: t["assignee"] for t in viewer.snapshot["tickets"]}
    assert assignees == {"T-000001": "alice", "T-000002": "alice", "T-000003": None}
    assert ack["seq"] == viewer.snapshot["seq"]


async def test_suggest_ranks_by_skill_availability_and_load(dispatcher: Session) -> None:
    await dispatcher.ok(tech_frame("alice", ["network"]))
    await dispatcher.ok(tech_frame("bob", ["network", "security"]))
    await dispatcher.ok(tech_frame("carol", ["printers"]))
    await dispatcher.ok(tech_frame("dave", ["network"]))
    await dispatcher.ok({"type": "set_tech_status", "tech_id": "dave", "status": "off_shift"})
    await dispatcher.ok(ticket_frame("Old work"))
    await dispatcher.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
    await dispatcher.ok(ticket_frame("Switch down", skills=["network"]))
    reply = await dispatcher.ok({"type": "suggest", "ticket_id": "T-000002"})
    assert reply["type"] == "suggestions"
    assert [c["tech_id"] for c in reply["candidates"]] == ["bob", "alice"]
    assert "load 1/3" in reply["candidates"][1]["reason"]


async def test_history_lists_who_did_what(dispatcher: Session) -> None:
    await dispatcher.ok(tech_frame("alice"))
    await dispatcher.ok(ticket_frame())
    await dispatcher.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
    await dispatcher.ok({"type": "add_note", "ticket_id": "T-000001", "text": "called the client"})
    reply = await dispatcher.ok({"type": "history", "ticket_id": "T-000001"})
    assert [(e["kind"], e["actor"]) for e in reply["events"]] == [
        ("ticket_created", "ana"), ("ticket_assigned", "ana"), ("note_added", "ana"),
    ]  # fmt: skip
    assert reply["events"][2]["note"] == "called the client"


async def test_resume_sends_only_the_missed_events(server: ServerProcess, dispatcher: Session) -> None:
    token = await server.token(Role.VIEWER, "wall")
    board = await Session.open(server.url, token)
    await dispatcher.ok(ticket_frame("one"))
    await board.until_seq(1)
    await board.close()
    for title in ("two", "three"):
        await dispatcher.ok(ticket_frame(title))
    board = await Session.open(server.url, token, last_seq=1)
    assert board.snapshot is None and board.welcome["seq"] == 3
    await board.until_seq(3)
    assert [e["seq"] for e in board.events] == [2, 3]
    # A last_seq the server never reached (another database) gets a snapshot instead.
    stranger = await Session.open(server.url, token, last_seq=99)
    assert stranger.snapshot is not None and stranger.snapshot["seq"] == 3


@pytest.mark.serve("--burst-threshold", "0")  # this test counts on exactly one event per ticket
@pytest.mark.parametrize("last_seq", [5, None], ids=["resume", "snapshot"])
@both_engines  # resuming reads the missed events from the database, a different one on each engine
async def test_joining_during_a_burst_has_no_gap_and_no_duplicate(
    server: ServerProcess, dispatcher: Session, last_seq: int | None
) -> None:
    await _join_during_a_burst(server, dispatcher, last_seq)


async def _join_during_a_burst(server: ServerProcess, dispatcher: Session, last_seq: int | None) -> None:
    token = await server.token(Role.VIEWER, "wall")
    for n in range(20):
        await dispatcher.ok(ticket_frame(f"before {n}"))
    sent = [await dispatcher.send(ticket_frame(f"burst {n}")) for n in range(300)]
    board = await Session.open(server.url, token, last_seq=last_seq)
    for command_id in sent:
        assert command_id is not None
        await dispatcher.reply_to(command_id)
    await board.until_seq(320)
    base = last_seq if board.snapshot is None else board.snapshot["seq"]
    assert base is not None
    assert [e["seq"] for e in board.events] == list(range(base + 1, 321))
    if board.snapshot is not None:
        assert len(board.snapshot["tickets"]) == base
