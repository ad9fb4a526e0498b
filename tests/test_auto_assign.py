"""Headless auto-assign over a 300-ticket burst: the real `dispatch-server serve --auto-assign`."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter

from dispatch.core.models import Role
from tests.support import ServerProcess, Session, tech_frame, ticket_frame

SKILLS = ["network", "printers", "security", "software"]


async def test_a_burst_is_assigned_or_queued_with_reasons_and_capacity_holds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    decision_log = tmp_path / "decisions.jsonl"
    server = ServerProcess(db=tmp_path / "auto.db", workdir=tmp_path)
    server.start("--port", "0", "--auto-assign", "--decision-log", str(decision_log))
    try:
        ana = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
        for n in range(20):
            await ana.ok(tech_frame(f"tech{n:02d}", [SKILLS[n % 4], SKILLS[(n + 1) % 4]], capacity=1 + n % 4))
        for n, status in ((0, "off_shift"), (1, "break"), (2, "on_site")):
            await ana.ok({"type": "set_tech_status", "tech_id": f"tech{n:02d}", "status": status})
        intake = await Session.open(server.url, await server.token(Role.INTAKE, "monitoring"))
        sent = [
            await intake.send(ticket_frame(f"burst {n}", priority=f"P{1 + n % 4}", skills=[SKILLS[n % 4]]))
            for n in range(300)
        ]
        for command_id in sent:
            assert (await intake.reply_to(str(command_id)))["type"] == "ack"
        last = (await ana.ok(ticket_frame("marker", priority="P4", skills=["nobody-has-this"])))["seq"]
        await ana.until_seq(last)

        viewer = await Session.open(server.url, await server.token(Role.VIEWER, "check"))
        assert viewer.snapshot is not None
        technicians = {t["id"]: t for t in viewer.snapshot["technicians"]}
        tickets = viewer.snapshot["tickets"]
        load = Counter(t["assignee"] for t in tickets if t["assignee"])
        for tech_id, held in load.items():
            assert held <= technicians[tech_id]["capacity"], f"{tech_id} over capacity"
        assert not {"tech00", "tech01"} & set(load), "nobody on a break or off shift is given work"
        capacity = sum(t["capacity"] for t in technicians.values() if t["status"] not in ("off_shift", "break"))
        assert sum(load.values()) == capacity, "everyone with room is filled up before anything queues"

        # Every ticket left unassigned has its reason in the server log.
        queued = {t["id"] for t in tickets if t["assignee"] is None}
        assert queued
        logged = set(re.findall(r"(T-\d{6}) P\d queued: ", server.stderr()))
        assert queued <= logged
        assert "T-000301 P4 queued: nobody has the nobody-has-this skill" in server.stderr()

        # One decision-log line per allocation event, with its reason and candidates.
        assigned_events = [e for e in ana.events if e["kind"] == "ticket_assigned"]
        decisions = [json.loads(line) for line in decision_log.read_text().splitlines()]
        assert [d["seq"] for d in decisions] == [e["seq"] for e in assigned_events]
        assert all(d["actor"] == "auto" and d["reason"] and d["candidates"] for d in decisions)

        # Room appears (a ticket resolved, someone back from the break): the queue moves by itself.
        holder = assigned_events[0]["ticket"]
        await ana.ok({"type": "set_status", "ticket_id": holder["id"], "status": "resolved"})
        await ana.ok({"type": "set_tech_status", "tech_id": "tech01", "status": "available"})
        await ana.until_event(lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["assignee"] == "tech01")
        await ana.until_event(
            lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["assignee"] == holder["assignee"]
            and e["seq"] > assigned_events[-1]["seq"]
        )  # fmt: skip
    finally:
        server.stop()


async def test_decisions_command_reads_the_log_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = ServerProcess(db=tmp_path / "d.db", workdir=tmp_path).start()
    try:
        ana = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
        await ana.ok(tech_frame("alice", ["network"]))
        await ana.ok(tech_frame("bob", ["network"]))
        await ana.ok(ticket_frame("VPN down", priority="P1", skills=["network"]))
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "bob"})
        await ana.ok({"type": "unassign", "ticket_id": "T-000001"})
        await ana.close()
    finally:
        server.terminate()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "--db", str(tmp_path / "d.db"), "decisions", "--ticket", "T-000001",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, err
    assert "T-000001" in text and "manual by ana" in text and "considered: alice 0.70, bob 0.70" in text
    assert "queue" in text  # the unassignment: back to the queue
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "--db", str(tmp_path / "d.db"),
        "decisions", "--format", "json", "--since", "1h",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [(r["from"], r["to"]) for r in records] == [(None, "bob"), ("bob", None)]


async def test_decisions_lost_from_the_file_in_a_crash_are_written_at_the_next_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    decision_log = tmp_path / "decisions.jsonl"
    server = ServerProcess(
        db=tmp_path / "auto.db", workdir=tmp_path, options=("--auto-assign", "--decision-log", str(decision_log))
    )
    server.start()
    try:
        ana = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
        await ana.ok(tech_frame("alice", ["network"], capacity=20))
        for n in range(12):
            await ana.ok(ticket_frame(f"outage {n}", skills=["network"]))
        assigned = [e["seq"] for e in ana.events if e["kind"] == "ticket_assigned"]
        while len(assigned) < 12:
            assigned.append(
                (await ana.until_event(lambda e: e["kind"] == "ticket_assigned" and e["seq"] not in assigned))["seq"]
            )
        await ana.close()
        server.kill9()

        # What a crash between the commit and the file write leaves: the last lines missing, the one
        # being written cut in half.
        lines = decision_log.read_text().splitlines(keepends=True)
        assert [json.loads(line)["seq"] for line in lines] == assigned
        decision_log.write_text("".join(lines[:7]) + lines[7][:40])
        server.start()
        repaired = decision_log.read_text().splitlines()
        records = [json.loads(line) for line in repaired if line.startswith("{") and line.endswith("}")]
        assert [r["seq"] for r in records] == assigned, "every decision once, in order"
        assert len(repaired) == len(assigned) + 1  # plus the half line, kept as it was (the reader skips it)
        assert "re-appended 5 decisions" in server.stderr()

        # A log rotated with copytruncate (emptied) after a clean stop is not given old lines again.
        assert server.terminate() == 0
        decision_log.write_text("")
        server.start()
        assert decision_log.read_text() == ""
    finally:
        server.stop()
