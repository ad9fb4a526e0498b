"""The SLA clock, escalation and auto-assign, against the real server with a clock the test moves."""

from __future__ import annotations

import json
from pathlib import Path

from tests.inprocess import ManualClock, running_server
from tests.support import Session, tech_frame, ticket_frame


async def test_warning_and_breach_each_once_per_target(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_server(tmp_path, clock) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("VPN down", priority="P1"))  # respond 15 min, resolve 4 h
        clock.advance(minutes=11)  # 73 %: nothing yet
        probe = await ana.ok(ticket_frame("probe", priority="P4"))
        clock.advance(minutes=1)  # 80 % of the respond target
        warning = await ana.until_event(lambda e: e["kind"] == "sla_warning")
        assert warning["ticket_id"] == "T-000001" and warning["target"] == "respond" and warning["actor"] == "auto"
        assert warning["seq"] > probe["seq"]
        clock.advance(minutes=4)  # past 15 min
        breach = await ana.until_event(lambda e: e["kind"] == "sla_breached")
        assert breach["target"] == "respond"
        # Taking the ticket starts the resolve clock; its alerts come later, once each.
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        clock.advance(hours=3, minutes=50)
        await ana.until_event(lambda e: e["kind"] == "sla_breached" and e["target"] == "resolve")
        clock.advance(minutes=30)
        last = await ana.ok(ticket_frame("after", priority="P4"))
        await ana.until_seq(last["seq"])
        alerts = [
            (e["kind"], e["target"]) for e in ana.events if e["kind"].startswith("sla") and e["ticket_id"] == "T-000001"
        ]
        assert alerts == [("sla_warning", "respond"), ("sla_breached", "respond"),
                          ("sla_warning", "resolve"), ("sla_breached", "resolve")]  # fmt: skip
        assert breach["assignee"] is None


async def test_alerts_are_not_raised_again_after_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_server(tmp_path, clock) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(ticket_frame("VPN down", priority="P1"))
        clock.advance(minutes=20)
        await ana.until_event(lambda e: e["kind"] == "sla_breached")
    async with running_server(tmp_path, clock) as running:
        ana = await Session.open(running.url, running.tokens["ana"], last_seq=0)
        clock.advance(minutes=1)
        marker = await ana.ok(ticket_frame("marker", priority="P4"))
        clock.advance(minutes=1)
        second = await ana.ok(ticket_frame("marker 2", priority="P4"))
        await ana.until_seq(second["seq"])
        kinds = [e["kind"] for e in ana.events if e.get("ticket_id") == "T-000001"]
        assert kinds == ["sla_warning", "sla_breached", "escalation"], "each alert once, also across a restart"
        assert marker["seq"] < second["seq"]


async def test_the_clock_stands_still_on_hold(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_server(tmp_path, clock) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("Server down", priority="P1"))
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        alice = await Session.open(running.url, running.tokens["alice"])
        await alice.ok({"type": "set_status", "ticket_id": "T-000001", "status": "on_hold"})
        clock.advance(hours=6)  # well past the 4 h resolve target, but on hold
        marker = await ana.ok(ticket_frame("marker", priority="P4"))
        clock.advance(seconds=1)
        second = await ana.ok(ticket_frame("marker 2", priority="P4"))
        await ana.until_seq(second["seq"])
        assert not [e for e in ana.events if e["kind"].startswith("sla") and e["ticket_id"] == "T-000001"]
        assert marker
        resumed = await alice.ok({"type": "set_status", "ticket_id": "T-000001", "status": "in_progress"})
        event = await ana.until_event(lambda e: e["seq"] == resumed["seq"])
        ticket = event["ticket"]
        assert ticket["paused_seconds"] == 6 * 3600 + 1 and ticket["paused_at"] is None
        assert ticket["resolve_by"] == "2026-11-23T18:00:01Z"  # 08:00 + 4 h + the 6 h 1 s on hold


async def test_priority_change_recomputes_the_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_server(tmp_path, clock) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(ticket_frame("Printer", priority="P4"))
        clock.advance(minutes=30)
        moved = await ana.ok({"type": "set_priority", "ticket_id": "T-000001", "priority": "P1"})
        event = await ana.until_event(lambda e: e["seq"] == moved["seq"])
        assert event["ticket"]["respond_by"] == "2026-11-23T08:15:00Z"  # from its creation, not from now
        await ana.until_event(lambda e: e["kind"] == "sla_breached")


async def test_escalation_then_best_partial_match_with_auto_assign(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_server(tmp_path, clock, auto_assign=True) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice", ["network"]))
        await ana.ok(tech_frame("bob", ["printers"]))
        # Needs network and voip: nobody has both.
        await ana.ok(ticket_frame("Phones and internet down", priority="P1", skills=["network", "voip"]))
        clock.advance(minutes=5)
        await ana.ok(ticket_frame("marker", priority="P4", skills=["printers"]))
        clock.advance(minutes=6)  # older than the 10 minute escalation threshold
        escalation = await ana.until_event(lambda e: e["kind"] == "escalation")
        assigned = await ana.until_event(lambda e: e["kind"] == "ticket_assigned" and e["ticket"]["id"] == "T-000001")
        assert assigned["actor"] == "auto" and assigned["ticket"]["assignee"] == "alice"
        assert assigned["reason"].startswith("escalated, best partial match: partial skills: has network, lacks voip")
        assert escalation["seq"] < assigned["seq"]
        decisions = [json.loads(line) for line in running.decision_log.read_text().splitlines()]
        last = next(d for d in decisions if d["ticket"] == "T-000001")
        assert last["to"] == "alice" and last["kind"] == "auto" and last["candidates"][0]["tech_id"] == "alice"


async def test_the_board_says_when_an_sla_breaches(tmp_path: Path) -> None:
    from dispatch.app import DispatchApp
    from tests.test_board import until

    clock = ManualClock()
    async with running_server(tmp_path, clock) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(ticket_frame("VPN down", priority="P1"))
        app = DispatchApp(running.url, running.tokens["ana"], clock=clock)
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: len(app.model.state.tickets) == 1)
            clock.advance(minutes=16)
            await until(pilot, lambda: any("breached: T-000001 (respond)" in n.message for n in app._notifications))
            await until(pilot, lambda: app.model.sla_counts(clock()) == (0, 1))
