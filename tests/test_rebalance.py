"""Rebalance plans, applied all or nothing, and preemption, against the real server."""

from __future__ import annotations

import json
from pathlib import Path

from dispatch.app import DispatchApp
from dispatch.core.models import Role
from dispatch.screens.plan import PlanPreview
from tests.support import ServerProcess, Session, tech_frame, ticket_frame
from tests.test_board import until


async def overloaded_floor(ana: Session) -> None:
    """alice (capacity 1) holds three P3/P4 tickets; bob and carol are free; a P1 and a P2 wait."""
    await ana.ok(tech_frame("alice", ["network"], capacity=1))
    await ana.ok(tech_frame("bob", ["network"], capacity=3))
    await ana.ok(tech_frame("carol", ["network"], capacity=1))
    for n, priority in enumerate(("P3", "P4", "P4"), start=1):
        await ana.ok(ticket_frame(f"held {n}", priority=priority, skills=["network"]))
        await ana.ok({"type": "assign", "ticket_id": f"T-{n:06d}", "tech_id": "alice"})
    await ana.ok(ticket_frame("Core switch down", priority="P1", skills=["network"]))  # T-000004
    await ana.ok(ticket_frame("VPN flaky", priority="P2", skills=["network"]))  # T-000005


async def test_a_plan_leaves_nobody_over_capacity_and_places_p1_p2(server: ServerProcess, dispatcher: Session) -> None:
    await overloaded_floor(dispatcher)
    plan = await dispatcher.ok({"type": "rebalance"})
    assert plan["type"] == "plan"
    moves = [(m["ticket_id"], m["from_tech"], m["tech_id"]) for m in plan["moves"]]
    # alice keeps her most urgent ticket (the P3); the two P4s leave, least urgent first; then the P1
    # is placed before the P2.
    assert [m[0] for m in moves] == ["T-000003", "T-000002", "T-000004", "T-000005"]
    assert all(src == "alice" for _, src, _ in moves[:2]) and all(src is None for _, src, _ in moves[2:])
    assert "alice over capacity" in plan["moves"][0]["reason"]
    ack = await dispatcher.ok({"type": "apply_plan", "moves": plan["moves"]})
    assert ack["ticket_ids"] == ["T-000003", "T-000002", "T-000004", "T-000005"]
    viewer = await Session.open(server.url, await server.token(Role.VIEWER, "v"))
    assert viewer.snapshot is not None
    capacity = {t["id"]: t["capacity"] for t in viewer.snapshot["technicians"]}
    held: dict[str, int] = {}
    for ticket in viewer.snapshot["tickets"]:
        if ticket["assignee"]:
            held[ticket["assignee"]] = held.get(ticket["assignee"], 0) + 1
    assert all(held[tech] <= capacity[tech] for tech in held)
    assert all(t["assignee"] for t in viewer.snapshot["tickets"])
    # A plan of nothing left to do.
    assert (await dispatcher.ok({"type": "rebalance"}))["moves"] == []


async def test_a_stale_plan_is_refused_whole(server: ServerProcess, dispatcher: Session) -> None:
    await overloaded_floor(dispatcher)
    plan = await dispatcher.ok({"type": "rebalance"})
    await dispatcher.ok({"type": "set_priority", "ticket_id": "T-000005", "priority": "P1"})
    refused = await dispatcher.call({"type": "apply_plan", "moves": plan["moves"]})
    assert refused["code"] == "conflict" and refused["current"]["id"] == "T-000005"
    history = await dispatcher.ok({"type": "history", "ticket_id": "T-000002"})
    assert history["events"][-1]["ticket"]["assignee"] == "alice", "nothing of the plan was applied"


async def test_only_a_dispatcher_rebalances(server: ServerProcess, dispatcher: Session) -> None:
    viewer = await Session.open(server.url, await server.token(Role.VIEWER, "wall"))
    assert (await viewer.call({"type": "rebalance"}))["code"] == "forbidden"
    move = {"ticket_id": "T-000001", "tech_id": "alice", "expected_version": 1}
    assert (await viewer.call({"type": "apply_plan", "moves": [move]}))["code"] == "forbidden"


async def test_preempt_displaces_p4_work_for_a_p1(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    server = ServerProcess(db=tmp_path / "p.db", workdir=tmp_path)
    server.start("--port", "0", "--auto-assign", "--preempt", "--decision-log", str(log))
    try:
        ana = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
        await ana.ok(tech_frame("alice", ["network"], capacity=1))
        await ana.ok(ticket_frame("Wi-Fi slow", priority="P4", skills=["network"]))
        await ana.until_event(lambda e: e["kind"] == "ticket_assigned")  # auto: alice is full now
        await ana.ok(ticket_frame("Internet down", priority="P1", skills=["network"]))
        taken = await ana.until_event(lambda e: e["kind"] == "ticket_unassigned")
        assert taken["ticket"]["id"] == "T-000001" and taken["reason"] == "preempted by T-000002"
        given = await ana.until_event(lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["id"] == "T-000002")
        assert given["ticket"]["assignee"] == "alice" and given["actor"] == "auto"
        kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
        assert kinds == ["auto", "preemption", "preemption"]
        assert "T-000001 P4 queued" in server.stderr()
    finally:
        server.stop()


async def test_b_previews_the_plan_and_enter_applies_it(server: ServerProcess, dispatcher: Session) -> None:
    await overloaded_floor(dispatcher)
    app = DispatchApp(server.url, await server.token(Role.DISPATCHER, "dan"))
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: len(app.model.state.tickets) == 5)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, PlanPreview))
        preview = app.screen
        assert isinstance(preview, PlanPreview)
        assert [m.ticket_id for m in preview.moves] == ["T-000003", "T-000002", "T-000004", "T-000005"]
        await pilot.press("enter")
        await dispatcher.until_event(lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["id"] == "T-000005")
        await until(pilot, lambda: app.model.state.tickets["T-000005"].assignee is not None)
        assert app.model.state.tickets["T-000002"].assignee != "alice"
