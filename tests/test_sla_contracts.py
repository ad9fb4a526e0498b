"""SLA contracts on the real server, with a clock the test moves: due times in each client's open
time, warnings and breaches in open time, hold reasons, a priority change, and `sla check`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.contracts import Contracts
from dispatch.core.models import Role
from tests.inprocess import ManualClock, Running, running_server
from tests.support import ServerProcess, Session, tech_frame, ticket_frame, timeout

CONTRACTS = """
[calendars.uk-office]
timezone = "Europe/London"
mon = "09:00-17:30"
tue = "09:00-17:30"
wed = "09:00-17:30"
thu = "09:00-17:30"
fri = "09:00-17:00"
holidays = ["2026-12-25", "2026-12-28"]

[tiers.gold]
calendar = "uk-office"
pause_on = ["awaiting_client", "awaiting_parts"]
P1 = { respond = "30m", resolve = "4h", calendar = "24x7" }
P2 = { respond = "1h", resolve = "8h" }

[clients."Acme Corp"]
tier = "gold"
"""
# Friday 4 December 2026, 16:00 in London (GMT, so also UTC): one open hour left this week.
FRIDAY_4PM = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def sla_alerts(running: Running, session: Session, ticket_id: str) -> list[tuple[str, str]]:
    """The SLA alerts about `ticket_id` so far, once the server's clock has looked at the test's time."""
    await running.clock_looked()
    marker = await session.ok(ticket_frame("marker", client="Initech", priority="P4"))
    await session.until_seq(marker["seq"])  # every event published before the marker has arrived
    return [(e["kind"], e["target"]) for e in session.events if e["kind"].startswith("sla")
            and e["ticket_id"] == ticket_id]  # fmt: skip


async def test_a_friday_evening_p2_is_due_on_monday_and_warns_in_open_time(tmp_path: Path) -> None:
    clock = ManualClock(FRIDAY_4PM + timedelta(minutes=30))  # 16:30, half an hour before closing
    contracts = Contracts.parse(CONTRACTS, "sla.toml")
    async with running_server(tmp_path, clock, contracts=contracts) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        assert ana.snapshot is not None
        assert [c["name"] for c in ana.snapshot["calendars"]] == ["uk-office"]
        created = await ana.ok(ticket_frame("Printer queue stuck", client="Acme Corp", priority="P2"))
        ticket = (await ana.until_event(lambda e: e["seq"] == created["seq"]))["ticket"]
        assert (ticket["sla_tier"], ticket["calendar"]) == ("gold", "uk-office")
        # 30 open minutes on Friday, 30 on Monday morning; the warning at 45 open minutes.
        assert at(ticket["respond_by"]) == datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
        assert at(ticket["respond_warn_at"]) == datetime(2026, 12, 7, 9, 15, tzinfo=UTC)

        clock.advance(hours=2)  # Friday 18:30: closed, 30 open minutes used of 60: nothing
        assert await sla_alerts(running, ana, ticket["id"]) == []
        clock.now = datetime(2026, 12, 7, 9, 10, tzinfo=UTC)  # Monday 09:10: 40 of 60 used
        assert await sla_alerts(running, ana, ticket["id"]) == []
        clock.advance(minutes=6)  # 46 of 60: the warning
        assert await sla_alerts(running, ana, ticket["id"]) == [("sla_warning", "respond")]
        clock.advance(minutes=15)  # 61 of 60: breached
        assert await sla_alerts(running, ana, ticket["id"]) == [("sla_warning", "respond"), ("sla_breached", "respond")]


async def test_a_gold_p1_runs_round_the_clock(tmp_path: Path) -> None:
    clock = ManualClock(FRIDAY_4PM + timedelta(hours=3))  # Friday 19:00, the office closed
    async with running_server(tmp_path, clock, contracts=Contracts.parse(CONTRACTS, "sla.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        created = await ana.ok(ticket_frame("Site down", client="Acme Corp", priority="P1"))
        ticket = (await ana.until_event(lambda e: e["seq"] == created["seq"]))["ticket"]
        assert ticket["calendar"] == "24x7"
        assert at(ticket["respond_by"]) == clock.now + timedelta(minutes=30)
        clock.advance(minutes=31)
        assert ("sla_breached", "respond") in await sla_alerts(running, ana, ticket["id"])


@pytest.mark.parametrize(
    ("reason", "stops"),
    [
        ("awaiting_client", True),
        ("awaiting_parts", True),
        ("awaiting_third_party", False),
        ("other", False),
        (None, False),
    ],
)
async def test_only_the_contracts_hold_reasons_stop_the_clock(tmp_path: Path, reason: str | None, stops: bool) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))  # a Tuesday, opening time
    async with running_server(tmp_path, clock, contracts=Contracts.parse(CONTRACTS, "sla.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("Laptop screen", client="Acme Corp", priority="P2"))  # resolve 8 open hours
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        hold: dict[str, Any] = {"type": "set_status", "ticket_id": "T-000001", "status": "on_hold"}
        held = await ana.ok(hold if reason is None else {**hold, "reason": reason})
        ticket = (await ana.until_event(lambda e: e["seq"] == held["seq"]))["ticket"]
        assert ticket["hold_reason"] == (reason or "other")
        assert (ticket["paused_at"] is not None) is stops
        clock.advance(hours=9)  # 18:00: the whole open day used, had the clock run
        alerts = await sla_alerts(running, ana, "T-000001")
        assert (alerts == []) is stops
        resumed = await ana.ok({"type": "set_status", "ticket_id": "T-000001", "status": "in_progress"})
        after = (await ana.until_event(lambda e: e["seq"] == resumed["seq"]))["ticket"]
        assert after["hold_reason"] is None and after["paused_at"] is None
        if stops:
            # It stood still for the 8.5 open hours of Tuesday; the 8 h left run from Wednesday 09:00.
            assert after["paused_seconds"] == 8 * 3600 + 30 * 60
            assert at(after["resolve_by"]) == datetime(2026, 12, 2, 17, 0, tzinfo=UTC)


async def test_a_reason_only_goes_with_on_hold(tmp_path: Path) -> None:
    async with running_server(tmp_path, ManualClock()) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("x"))
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        reply = await ana.call({"type": "set_status", "ticket_id": "T-000001", "status": "in_progress",
                                "reason": "awaiting_parts"})  # fmt: skip
        assert reply["type"] == "error" and reply["code"] == "invalid"
        reply = await ana.call({"type": "set_status", "ticket_id": "T-000001", "status": "on_hold", "reason": "lunch"})
        assert reply["type"] == "error" and reply["code"] == "invalid" and "reason" in reply["message"]


async def test_a_priority_change_keeps_the_time_paused(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    async with running_server(tmp_path, clock, contracts=Contracts.parse(CONTRACTS, "sla.toml")) as running:
        ana = await Session.open(running.url, running.tokens["ana"])
        await ana.ok(tech_frame("alice"))
        await ana.ok(ticket_frame("Parts for the server", client="Acme Corp", priority="P2"))
        await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
        await ana.ok({"type": "set_status", "ticket_id": "T-000001", "status": "on_hold", "reason": "awaiting_parts"})
        clock.advance(hours=2)
        await ana.ok({"type": "set_status", "ticket_id": "T-000001", "status": "in_progress"})  # 2 h paused
        changed = await ana.ok({"type": "set_priority", "ticket_id": "T-000001", "priority": "P3"})
        ticket = (await ana.until_event(lambda e: e["seq"] == changed["seq"]))["ticket"]
        # P3 keeps the standard target (2d = 48 open hours) counted on the gold tier's calendar from the
        # ticket's start, plus the 2 h it stood still: the time paused is not lost.
        assert ticket["paused_seconds"] == 2 * 3600
        expected = (
            Contracts.parse(CONTRACTS, "sla.toml")
            .calendars["uk-office"]
            .add(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), timedelta(days=2, hours=2))
        )
        assert at(ticket["resolve_by"]) == expected


def test_sla_check_prints_the_due_times_without_a_database(tmp_path: Path) -> None:
    contracts = tmp_path / "sla.toml"
    contracts.write_text(CONTRACTS, encoding="utf-8")
    command = [sys.executable, "-m", "server", "sla", "check", str(contracts), "--client", "Acme Corp",
               "--priority", "P2", "--at", "2026-12-04T16:30:00+00:00"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=timeout(60))
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(None, 1) if not line.startswith(("respond", "resolve")) else line.split("  ", 1)
                 for line in run.stdout.splitlines())  # fmt: skip
    assert lines["tier"].strip() == "gold"
    assert lines["respond by"].strip().startswith("Mon 2026-12-07 09:30 Europe/London")

    contracts.write_text(CONTRACTS.replace("09:00-17:30", "09:00-25:00", 1), encoding="utf-8")
    run = subprocess.run(command, capture_output=True, text=True, timeout=timeout(60))
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f'dispatch-server: {contracts}: [calendars.uk-office] mon = "09:00-25:00": 25:00 is not a time of day '
        "(00:00 to 24:00)"
    ]


async def until_in_stderr(server: ServerProcess, text: str) -> None:
    async with asyncio.timeout(timeout(10)):
        while text not in server.stderr():
            await asyncio.sleep(0.02)


async def test_sighup_rereads_the_file_and_a_bad_one_keeps_the_old_terms(tmp_path: Path) -> None:
    contracts = tmp_path / "sla.toml"
    contracts.write_text(CONTRACTS, encoding="utf-8")
    server = ServerProcess(tmp_path / "dispatch.db", tmp_path)
    server.start("--port", "0", "--sla", str(contracts), "--fixed-clock", "2026-12-01T10:00:00+00:00")
    try:
        assert server.process is not None
        ana = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))

        async def tier_of_a_new_ticket(title: str) -> str:
            created = await ana.ok(ticket_frame(title, client="Acme Corp", priority="P2"))
            event = await ana.until_event(lambda e: e["seq"] == created["seq"])
            return str(event["ticket"]["sla_tier"])

        assert await tier_of_a_new_ticket("before") == "gold"
        contracts.write_text(CONTRACTS.replace('tier = "gold"', 'tier = "silver"'), encoding="utf-8")
        server.process.send_signal(signal.SIGHUP)
        await until_in_stderr(server, "files not reloaded")
        assert 'tier = "silver": no such tier' in server.stderr()
        assert await tier_of_a_new_ticket("with a bad file") == "gold"

        contracts.write_text(CONTRACTS.replace('tier = "gold"', 'tier = "standard"', 1), encoding="utf-8")
        server.process.send_signal(signal.SIGHUP)
        await until_in_stderr(server, "reloaded " + str(contracts))
        assert await tier_of_a_new_ticket("after") == "standard"
        await ana.close()
        assert server.terminate() == 0
    finally:
        server.stop()
