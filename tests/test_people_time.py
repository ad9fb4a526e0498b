"""People's time on the real server, with a clock the test moves: shifts change status at their edges
once, a waiting P1 calls out the on-call technician, an unanswered call-out passes to the next, an
accepted one gets the ticket assigned, and an assignment against a fatigue rule is an override."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatch.core.roster import Roster
from tests.inprocess import ManualClock, Running, running_server
from tests.support import Session, tech_frame, ticket_frame
from tests.test_cli import Run, assert_one_line_failure, run_cli

ROSTER = """
[technicians.alice]
timezone = "Europe/London"
shifts = ["mon-fri 08:00-16:00"]

[technicians.bob]
timezone = "Europe/London"
on_call = ["mon-sun 16:00-08:00"]

[technicians.carol]
timezone = "Europe/London"
on_call = ["mon-sun 16:00-08:00"]

[fatigue]
max_hours_per_day = 10
min_rest_hours = 11

[callouts]
after = "5m"
answer_within = "5m"
"""
# Tuesday 1 December 2026 (GMT: London time is UTC).
TUESDAY = datetime(2026, 12, 1, tzinfo=UTC)


async def published(running: Running, session: Session) -> list[dict[str, Any]]:
    """Every event so far, once the server's clock has looked at the test's time."""
    await running.clock_looked()
    marker = await session.ok(ticket_frame("marker", client="Initech", priority="P4"))
    await session.until_seq(marker["seq"])
    return session.events


async def test_a_shift_start_and_end_change_status_exactly_once(tmp_path: Path) -> None:
    clock = ManualClock(TUESDAY + timedelta(hours=7, minutes=59))
    async with running_server(tmp_path, clock, roster=Roster.parse(ROSTER, "roster.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok({"type": "set_tech_status", "tech_id": "alice", "status": "off_shift"})
        await published(running, ana)
        clock.advance(minutes=2)  # 08:01: the shift has started
        await published(running, ana)
        clock.advance(hours=4)  # nothing happens mid-shift
        await published(running, ana)
        clock.advance(hours=4)  # 16:01: the shift has ended
        events = await published(running, ana)
        changes = [(e["technician"]["status"], e.get("reason"), e["actor"]) for e in events
                   if e["kind"] == "technician_status_changed"]  # fmt: skip
        assert changes == [
            ("off_shift", None, "ana"),
            ("available", "shift starts", "auto"),
            ("off_shift", "shift ends", "auto"),
        ]
        on_shift = next(e for e in events if e.get("reason") == "shift starts")["technician"]
        assert on_shift["on_shift_until"].startswith("2026-12-01T16:00:00")


async def test_someone_busy_at_the_shift_end_keeps_their_work(tmp_path: Path) -> None:
    clock = ManualClock(TUESDAY + timedelta(hours=15, minutes=50))
    async with running_server(tmp_path, clock, roster=Roster.parse(ROSTER, "roster.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("Switch dead", priority="P2"))
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        await ana.ok({"type": "set_tech_status", "tech_id": "alice", "status": "on_site"})
        await published(running, ana)
        clock.advance(minutes=20)
        events = await published(running, ana)
        assert not [e for e in events if e.get("reason") == "shift ends"]
        assert running.server.state.tickets["T-000001"].assignee == "alice"


async def test_a_waiting_p1_calls_out_then_the_next_on_the_ladder_and_acceptance_gets_the_ticket(
    tmp_path: Path,
) -> None:
    clock = ManualClock(TUESDAY + timedelta(hours=20))  # evening: nobody on shift
    roster = Roster.parse(ROSTER, "roster.toml")
    technicians = ("bob", "carol")
    async with running_server(tmp_path, clock, technicians, roster=roster, auto_assign=True) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        for tech in ("bob", "carol"):
            await ana.ok(tech_frame(tech, skills=["network"]))
            await ana.ok({"type": "set_tech_status", "tech_id": tech, "status": "off_shift"})
        # Both were on the clock for a moment when added at 20:00, so they rest 11 h: until 07:00.
        clock.now = TUESDAY + timedelta(days=1, hours=7)  # Wednesday 07:00, still in their on-call window
        await ana.ok(ticket_frame("Core switch down", priority="P1", skills=["network"]))
        await published(running, ana)
        clock.advance(minutes=4)
        assert not [e for e in await published(running, ana) if e["kind"] == "callout_sent"]
        clock.advance(minutes=2)  # waited 6 minutes: a call-out
        sent = [e for e in await published(running, ana) if e["kind"] == "callout_sent"]
        assert len(sent) == 1
        first = sent[0]["callout"]
        assert first["ticket_id"] == "T-000001" and first["tech_id"] in ("bob", "carol")
        clock.advance(minutes=6)  # unanswered: expired, and the next one asked
        events = await published(running, ana)
        assert [e["callout"]["id"] for e in events if e["kind"] == "callout_expired"] == [first["id"]]
        second = [e["callout"] for e in events if e["kind"] == "callout_sent"][-1]
        assert second["tech_id"] != first["tech_id"] and second["ticket_id"] == "T-000001"

        callee = await Session.open(running.url, running.tokens[second["tech_id"]])
        assert callee.snapshot is not None and [c["id"] for c in callee.snapshot["callouts"]] == [second["id"]]
        answer = await callee.ok({"type": "answer_callout", "callout_id": second["id"], "accept": True})
        assert answer["callout_id"] == second["id"]
        assigned = await ana.until_event(lambda e: e["kind"] == "ticket_assigned")
        assert assigned["ticket"]["assignee"] == second["tech_id"] and assigned["actor"] == "auto"
        answered = next(e for e in ana.events if e["kind"] == "callout_answered")
        assert answered["callout"]["status"] == "accepted" and answered["seq"] < assigned["seq"]
        available = next(e for e in ana.events if e.get("reason") == "call-out accepted")
        assert available["technician"]["id"] == second["tech_id"]


async def test_an_assignment_against_a_fatigue_rule_is_an_override_in_the_ack_and_the_log(tmp_path: Path) -> None:
    clock = ManualClock(TUESDAY + timedelta(hours=8))
    async with running_server(tmp_path, clock, roster=Roster.parse(ROSTER, "roster.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))  # on the clock from 08:00
        await ana.ok(ticket_frame("Printer", priority="P3"))
        clock.advance(hours=10, minutes=30)
        suggestions = await ana.call({"type": "suggest", "ticket_id": "T-000001"})
        (alice,) = suggestions["candidates"]
        assert alice["blocked"] == "worked 10h30 in the last 24 h (limit 10h)"
        ack = await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        assert ack["override"] == "worked 10h30 in the last 24 h (limit 10h)"
        await published(running, ana)
    records = [json.loads(line) for line in running.decision_log.read_text().splitlines()]
    assert [(r["ticket"], r["actor"], r["override"]) for r in records] == [
        ("T-000001", "ana", "worked 10h30 in the last 24 h (limit 10h)")
    ]


async def test_the_command_line_calls_out_lists_and_answers(tmp_path: Path) -> None:
    clock = ManualClock(TUESDAY + timedelta(hours=22))
    async with running_server(tmp_path, clock, ("bob",), roster=Roster.parse(ROSTER, "roster.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("bob"))
        await ana.ok({"type": "set_tech_status", "tech_id": "bob", "status": "off_shift"})
        sent = await run_cli("callout", "send", "bob", "--reason", "core switch", server=running.url, token="token-ana")
        assert sent.code == 0 and sent.out.startswith("CO-1 -> bob"), sent
        listed = await run_cli("callout", "list", server=running.url, token="token-bob")
        assert listed.code == 0 and listed.lines[1].split()[:3] == ["CO-1", "bob", "-"], listed
        taken = await run_cli("callout", "accept", "CO-1", server=running.url, token="token-bob")
        assert taken == Run(0, "CO-1 accepted: you are available\n", ""), taken
        again = await run_cli("callout", "decline", "CO-1", server=running.url, token="token-bob")
        assert_one_line_failure(again, 5, "dispatch callout decline: CO-1 is already accepted")
        assert running.server.state.technicians["bob"].status == "available"
