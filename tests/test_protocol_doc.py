"""docs/protocol.md cannot drift from the code: its command list and permission matrix are the command
registry's, and every example frame in it has the keys of a frame the real server sends.

Example frames are the JSON objects in the page's fenced blocks: a ```json block, or one frame per line
(`>> ` from the client, `<< ` or nothing from the server). A `…` outside a string marks keys left out
(`{"seq":3,…,"kind":"ticket_assigned"}`): such an object may leave keys out but may not name one the
server does not send; an object without `…` must have exactly the server's keys, nested objects included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest

from dispatch.core.commands import COMMANDS
from dispatch.core.contracts import Contracts
from dispatch.core.models import Role
from dispatch.core.protocol import ServerFrame, decode_client_frame
from tests.inprocess import ManualClock, running_server
from tests.support import Session, tech_frame, ticket_frame

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
ELIDED = "…"
NO = {"–", "-", "no", ""}  # a matrix cell that means "may not send"
# One business calendar, so a snapshot carries one (`calendars`); only Globex's tickets run on it.
CONTRACTS = """
[calendars.uk-office]
timezone = "Europe/London"
mon = "09:00-17:30"
tue = "09:00-17:30"
wed = "09:00-17:30"
thu = "09:00-17:30"
fri = "09:00-17:00"
holidays = ["2026-12-25"]

[tiers.business]
calendar = "uk-office"
pause_on = ["awaiting_client"]

[clients.Globex]
tier = "business"
"""


# --- the page, read --------------------------------------------------------------------------------


def _section(text: str, number: int) -> str:
    """Section `## N. ...` of the page, up to the next `## `."""
    match = re.search(rf"^## {number}\. .*?(?=^## )", text, re.M | re.S)
    assert match is not None, f"docs/protocol.md has no section {number}"
    return match.group(0)


def _table_after(text: str, marker: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule left out) of the first table after `marker`."""
    start = text.index(marker)
    lines = text[start:].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([a-z_]+)`", cell)


@dataclass(frozen=True)
class DocFrame:
    line: int
    client: bool
    frame: dict[str, Any]

    def __str__(self) -> str:
        return f"docs/protocol.md:{self.line} {json.dumps(self.frame)[:100]}"


def _mark_elisions(text: str) -> str:
    """Valid JSON from an example with `…` (outside strings): a key `"…"` in an object, an item in a list."""
    out: list[str] = []
    nesting: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            in_string = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            in_string = True
        elif char in "{[":
            nesting.append(char)
        elif char in "}]" and nesting:
            nesting.pop()
        elif char == ELIDED and nesting:
            out.append(f'"{ELIDED}": true' if nesting[-1] == "{" else f'"{ELIDED}"')
            continue
        out.append(char)
    return "".join(out)


def doc_frames(text: str) -> Iterator[DocFrame]:
    decoder = json.JSONDecoder()
    for block in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        language, body = block.group(1), block.group(2)
        first_line = text.count("\n", 0, block.start(2)) + 1
        if language == "json":
            frame = json.loads(_mark_elisions(body))
            yield DocFrame(first_line, frame.get("type") == "hello", frame)
        elif language == "":
            for offset, line in enumerate(body.splitlines()):
                client = line.startswith(">> ")
                source = line.removeprefix(">> ").removeprefix("<< ").strip()
                if source.startswith("{"):
                    # raw_decode: a note may follow the frame on its line ("(technician alice)").
                    frame, _ = decoder.raw_decode(_mark_elisions(source))
                    yield DocFrame(first_line + offset, client, frame)


DOC_TEXT = DOC.read_text(encoding="utf-8")
DOC_FRAMES = list(doc_frames(DOC_TEXT))


# --- commands and permissions ----------------------------------------------------------------------


def test_the_permission_matrix_is_the_registrys() -> None:
    rows = _table_after(_section(DOC_TEXT, 3), "Permission matrix")
    roles = [Role.DISPATCHER, Role.TECHNICIAN, Role.INTAKE, Role.VIEWER]  # the matrix's columns, in order
    documented: dict[str, frozenset[Role]] = {}
    for row in rows:
        assert len(row) == 1 + len(roles), row
        allowed = frozenset(role for role, cell in zip(roles, row[1:], strict=True) if cell not in NO)
        for name in _names(row[0]):
            assert name not in documented, f"{name} is in the permission matrix twice"
            documented[name] = allowed
    assert sorted(documented) == sorted(COMMANDS), "the matrix lists exactly the commands a client may send"
    wrong = {name: (sorted(documented[name]), sorted(spec.roles)) for name, spec in COMMANDS.items()
             if documented[name] != spec.roles}  # fmt: skip
    assert not wrong, f"documented roles differ from the registry's (doc, code): {wrong}"


def test_every_command_has_its_section_and_every_server_frame_its_row() -> None:
    commands = _section(DOC_TEXT, 4)
    headings = re.findall(r"^### 4\.\d+ `([a-z_]+)`", commands, re.M)
    assert sorted(headings) == sorted(COMMANDS)
    (union,) = get_args(ServerFrame)[:1]
    sent = {model.model_fields["type"].default for model in get_args(union)}
    rows = _table_after(_section(DOC_TEXT, 5), "| `type` | when |")
    assert sorted(name for row in rows for name in _names(row[0])) == sorted(sent)


@pytest.mark.parametrize("example", [f for f in DOC_FRAMES if f.client], ids=str)
def test_every_client_example_is_a_valid_frame(example: DocFrame) -> None:
    decode_client_frame(json.dumps(example.frame))


# --- example frames against real ones --------------------------------------------------------------


def _kind(frame: dict[str, Any]) -> tuple[str, str | None]:
    event = frame.get("event")
    return str(frame.get("type")), event.get("kind") if isinstance(event, dict) else None


def shape_problems(doc: Any, real: Any, events: dict[str, dict[str, Any]], where: str = "") -> list[str]:
    """How `doc`'s keys differ from `real`'s, recursively; an event in a list is compared with a real
    event of its kind (`events`)."""
    if isinstance(doc, dict) and isinstance(real, dict):
        keys = set(doc) - {ELIDED}
        problems = [f"{where}.{key}: the server sends no such key" for key in sorted(keys - set(real))]
        if ELIDED not in doc:
            problems += [f"{where}.{key}: missing (or mark the cut with …)" for key in sorted(set(real) - keys)]
        for key in sorted(keys & set(real)):
            problems += shape_problems(doc[key], real[key], events, f"{where}.{key}")
        return problems
    if isinstance(doc, list) and isinstance(real, list):
        problems = []
        for index, item in enumerate(doc):
            if not isinstance(item, dict):
                continue
            like = events.get(str(item.get("kind"))) if "kind" in item else next(iter(real), None)
            if like is None:
                problems.append(f"{where}[{index}]: no real frame to compare with (the scenario must make one)")
            else:
                problems += shape_problems(item, like, events, f"{where}[{index}]")
        return problems
    return []


async def _real_frames(tmp_path: Path) -> list[dict[str, Any]]:
    """One of every frame docs/protocol.md shows, from the real server (its clock moved by the test)."""
    clock = ManualClock()
    contracts = Contracts.parse(CONTRACTS, "sla.toml")
    async with running_server(tmp_path, clock, burst_threshold=5, contracts=contracts) as server:
        ana = await Session.open(server.url, server.tokens["ana"])
        ana.frames = []
        frames = [ana.welcome, ana.snapshot or {}]
        await ana.ok(tech_frame("alice", ["network"], capacity=4))
        await ana.ok(tech_frame("bob", ["network", "security"]))
        vpn = await ana.ok(ticket_frame("VPN down at HQ", client="Acme Corp", priority="P1", skills=["network"]))
        printer = await ana.ok(ticket_frame("Printer jam", client="Beta Ltd", priority="P3"))
        switch = await ana.ok(ticket_frame("Switch reboot loop", client="Beta Ltd", priority="P3"))
        await ana.ok({"type": "assign", "ticket_id": vpn["ticket_id"], "tech_id": "alice", "expected_version": 1})
        await ana.ok({"type": "suggest", "ticket_id": printer["ticket_id"]})
        await ana.ok({"type": "set_priority", "ticket_id": vpn["ticket_id"], "priority": "P2"})
        await ana.ok(
            {"type": "bulk_assign", "ticket_ids": [printer["ticket_id"], switch["ticket_id"]], "tech_id": "bob"}
        )
        await ana.ok({"type": "unassign", "ticket_id": switch["ticket_id"]})
        await ana.ok({"type": "set_tech_status", "tech_id": "bob", "status": "on_site"})
        alice = await Session.open(server.url, server.tokens["alice"])
        await alice.ok({"type": "set_status", "ticket_id": vpn["ticket_id"], "status": "in_progress"})
        await alice.ok(
            {"type": "set_status", "ticket_id": vpn["ticket_id"], "status": "on_hold", "reason": "awaiting_client"}
        )
        await alice.close()
        await ana.ok({"type": "add_note", "ticket_id": vpn["ticket_id"], "text": "Called the client"})
        await ana.ok({"type": "history", "ticket_id": vpn["ticket_id"]})
        for refused in (
            {"type": "assign", "ticket_id": vpn["ticket_id"], "tech_id": "nobody"},  # not_found
            {"type": "assign", "ticket_id": vpn["ticket_id"], "tech_id": "bob", "expected_version": 1},  # conflict
        ):
            assert (await ana.call(refused))["type"] == "error"
        incident = await ana.ok(
            {"type": "create_incident", "title": "Beta outage", "ticket_ids": [printer["ticket_id"]]}
        )
        await ana.ok({"type": "link", "incident_id": incident["incident_id"], "ticket_ids": [switch["ticket_id"]]})
        await ana.ok({"type": "update_clients", "incident_id": incident["incident_id"], "message": "Fibre cut"})
        duplicate = await ana.ok(ticket_frame("Printer jam again", client="Beta Ltd"))
        await ana.ok({"type": "merge", "primary_id": printer["ticket_id"], "duplicate_ids": [duplicate["ticket_id"]]})
        for _ in range(2):
            await ana.ok(ticket_frame("Disk full on FS01", client="Globex", priority="P3", dedupe_key="mon:fs01"))
        for n in range(5):
            await ana.ok(ticket_frame(f"Phones down {n}", client="Acme Dental", priority="P2"))
        await ana.until_event(lambda e: e["kind"] == "burst_detected")
        plan = await ana.ok({"type": "rebalance"})
        assert plan["moves"], plan
        await ana.ok({"type": "apply_plan", "moves": plan["moves"]})
        scanner = await ana.ok(ticket_frame("Scanner offline", client="Initech", priority="P4"))
        await ana.ok({"type": "assign", "ticket_id": scanner["ticket_id"], "tech_id": "bob", "command_id": "c40"})
        await ana.ok({"type": "undo", "of": "c40"})
        await ana.ok({"type": "forecast", "horizon_minutes": 240, "extra": [{"skills": ["network"], "capacity": 2}]})
        # Call-outs: alice accepts hers; bob's is left to expire (5 minutes) while the clock moves below.
        await ana.ok({"type": "set_tech_status", "tech_id": "alice", "status": "off_shift"})
        called = await ana.ok({"type": "callout", "tech_id": "alice", "reason": "P1 outage at Acme"})
        alice = await Session.open(server.url, server.tokens["alice"])
        await alice.ok({"type": "answer_callout", "callout_id": called["callout_id"], "accept": True})
        await alice.close()
        await ana.until_event(lambda e: e["kind"] == "technician_status_changed" and e["reason"] is not None)
        await ana.ok({"type": "set_tech_status", "tech_id": "bob", "status": "off_shift"})
        await ana.ok({"type": "callout", "tech_id": "bob"})
        # The SLA clock: an unassigned P1 past 75 % of its 15 minutes, then an escalation and a breach.
        await ana.ok(ticket_frame("Core router down", client="Initech", priority="P1", skills=["voice"]))
        clock.advance(minutes=12)
        await ana.until_event(lambda e: e["kind"] == "sla_warning")
        await ana.until_event(lambda e: e["kind"] == "escalation")
        await ana.until_event(lambda e: e["kind"] == "callout_expired")
        clock.advance(minutes=5)
        await ana.until_event(lambda e: e["kind"] == "sla_breached")
        # One call-out left waiting, for the snapshot below (the server may have sent bob one itself).
        await ana.call({"type": "callout", "tech_id": "bob"})
        frames += ana.frames
        await ana.close()
        # A snapshot with something in every list.
        wall = await Session.open(server.url, server.tokens["ana"])
        frames.append(wall.snapshot or {})
        await wall.close()
    return frames


def _fewest_unmatched(problems: list[str]) -> tuple[int, int]:
    # Report against the real frame that had something to compare (a full snapshot, not the empty one).
    return sum("no real frame" in problem for problem in problems), len(problems)


async def test_every_server_example_has_the_keys_of_a_real_frame(tmp_path: Path) -> None:
    real = await _real_frames(tmp_path)
    by_kind: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for frame in real:
        by_kind.setdefault(_kind(frame), []).append(frame)
    events = {event["kind"]: event for frame in real if isinstance(event := frame.get("event"), dict)}
    problems: list[str] = []
    for example in (f for f in DOC_FRAMES if not f.client):
        kind = _kind(example.frame)
        candidates = by_kind.get(kind)
        if not candidates:
            problems.append(f"{example}: the server was never seen sending {kind} (or the scenario lacks it)")
            continue
        # Frames of one type differ only where a value is null in one and an object in another (`current`).
        found = min((shape_problems(example.frame, c, events) for c in candidates), key=_fewest_unmatched)
        problems += [f"{example}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)


def test_the_page_has_examples_to_check() -> None:
    server_kinds = {_kind(f.frame) for f in DOC_FRAMES if not f.client}
    assert {("welcome", None), ("snapshot", None), ("ack", None), ("error", None), ("plan", None)} <= server_kinds
    assert {("event", kind) for kind in ("ticket_created", "sla_warning", "burst_detected")} <= server_kinds
