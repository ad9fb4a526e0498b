"""The after-action report, over a log the real server wrote with a fixed clock, so every figure is known."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.commands import execute
from dispatch.core.contracts import Contracts
from dispatch.core.decide import TICK, Decider, DeciderSettings, Request
from dispatch.core.models import Priority, Role, Technician, Ticket, TicketStatus
from dispatch.core.protocol import Event, SlaEvent, TechnicianEvent, TicketEvent, decode_client_frame, event_adapter
from dispatch.core.roster import Roster
from dispatch.core.rules import Outcome, Rules, clock_alerts
from dispatch.core.sla import clock_fields
from dispatch.core.state import Actor, DispatchState, apply_event, ticket_id_for
from server.report import (
    GuardrailOverride,
    IncidentUpdates,
    Report,
    ReportError,
    SlaCompliance,
    build_report,
    format_text,
    interruption_band,
    render_html,
    run_report,
)
from tests.support import ServerProcess, Session, tech_frame, ticket_frame, timeout

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(hours=5)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# What the dispatcher did, and when (minutes after T0). Tickets T-000001…6 are created at T0 as
# P1, P2, P2, P3, P1, P3. Expected, as of T0 + 5 h:
#   first assignment: T1 5m, T2 10m, T6 10m, T3 30m, T5 30m, T4 never -> p50 10m, p90 30m
#   reassignments: T1 alice -> bob, T2 bob -> alice; T6 unassigned (back to the queue)
#   respond-by missed: T5 (P1, 15 min, taken at 30m), T4 (P3, 4 h, never taken)
#   resolve-by missed and still open: T5 (P1, 4 h)
#   queue depth: 6 at T0, 5 at 5m, 3 at 10m, 2 at 30m
#   SLA compliance (Acme, standard): respond 4 met, 2 breached; resolve 1 met (T1), 1 breached (T5)
WAVES: list[tuple[int, list[dict[str, Any]]]] = [
    (
        0,
        [
            *(tech_frame(tech) for tech in ("alice", "bob", "carol", "dave")),
            *(
                ticket_frame(f"Ticket {n}", priority=priority)
                for n, priority in enumerate(("P1", "P2", "P2", "P3", "P1", "P3"), start=1)
            ),
        ],
    ),
    (5, [{"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"}]),
    (
        10,
        [
            {"type": "assign", "ticket_id": "T-000002", "tech_id": "bob"},
            {"type": "assign", "ticket_id": "T-000001", "tech_id": "bob"},
            {"type": "assign", "ticket_id": "T-000006", "tech_id": "carol"},
        ],
    ),
    (
        30,
        [
            {"type": "assign", "ticket_id": "T-000003", "tech_id": "alice"},
            {"type": "assign", "ticket_id": "T-000002", "tech_id": "alice"},
            {"type": "assign", "ticket_id": "T-000005", "tech_id": "bob"},
            {"type": "set_status", "ticket_id": "T-000001", "status": "resolved"},
            {"type": "unassign", "ticket_id": "T-000006"},
        ],
    ),
]


async def _write_log(workdir: Path) -> Path:
    server = ServerProcess(db=workdir / "dispatch.db", workdir=workdir)
    for wave, (at, commands) in enumerate(WAVES):
        server.start("--port", "0", "--fixed-clock", (T0 + minutes(at)).isoformat())
        try:
            session = await Session.open(server.url, await server.token(Role.DISPATCHER, f"ana-{wave}"))
            for command in commands:
                await session.ok(command)
            await session.close()
        finally:
            server.stop()
    return server.db


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One log for the whole module: starting the server four times is the slow part."""
    yield asyncio.run(_write_log(tmp_path_factory.mktemp("report")))


def report_args(db: Path, **overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {"db": str(db), "incident": None, "since": None, "out": None, "as_of": AS_OF}
    return argparse.Namespace(**{**values, **overrides})


def line(text: str, label: str) -> str:
    """The one line of the text report that starts (after its indent) with `label`."""
    found = [row for row in text.splitlines() if row.strip().startswith(label)]
    assert len(found) == 1, (label, text)
    return found[0]


def section(text: str, title: str) -> str:
    """The lines of the text report under the line that starts with `title`, up to the next blank line."""
    return text.split(f"\n{title}", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]


def figures(row: str) -> list[str]:
    return re.findall(r"\d+(?:/\d+)?", row)


async def test_text_report_over_the_whole_log(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_report(report_args(db)) == 0
    text = capsys.readouterr().out
    assert text.startswith("After-action report: all events\n")
    assert "2026-11-23 08:00 → 13:00 UTC (5h 00m)" in text
    assert figures(line(text, "created in window")) == ["6", "1", "2", "2", "2", "3", "2", "4", "0"]
    assert figures(line(text, "resolved")) == ["1"]
    assert figures(line(text, "still open")) == ["5", "2"]
    assert line(text, "p50").split() == ["p50", "10m", "00s"]
    assert line(text, "p90").split() == ["p90", "30m", "00s"]
    assert figures(line(text, "assigned  ")) == ["5", "6", "1"]
    assert figures(line(text, "recorded")) == ["0"]
    assert figures(line(text, "respond-by missed")) == ["2"]
    assert figures(line(text, "resolve-by missed")) == ["0"]
    assert figures(line(text, "resolve-by overdue")) == ["1"]
    assert figures(line(text, "reassigned")) == ["2", "2"]
    assert figures(line(text, "unassigned  ")) == ["1"]
    assert figures(line(text, "queue at its peak")) == ["6", "08", "00"]
    assert figures(line(text, "queue at the end")) == ["2"]
    # technician, assigned, holding/capacity, resolved; dave had nothing but is on the roster
    assert figures(line(section(text, "LOAD PER TECHNICIAN"), "alice")) == ["3", "2/3", "0"]
    assert figures(line(section(text, "LOAD PER TECHNICIAN"), "bob")) == ["3", "1/3", "1"]
    assert figures(line(section(text, "LOAD PER TECHNICIAN"), "carol")) == ["1", "0/3", "0"]
    assert figures(line(section(text, "LOAD PER TECHNICIAN"), "dave")) == ["0", "0/3", "0"]
    # People's time without a roster: added available and never sent home, so on the clock throughout.
    people = section(text, "PEOPLE'S TIME")
    assert line(people, "alice").split() == ["alice", "5h00", "0/0", "0", "0", "0", "0", "0", "healthy"]
    assert line(people, "team, a person").split() == ["team,", "a", "person", "0.0", "0", "healthy"]
    # SLA compliance: every ticket is Acme's, on the standard tier (no contract file). Respond met by
    # T1, T2, T3, T6, breached by T4 and T5; resolve met by T1, breached by T5 (still open).
    assert line(text, "Acme").split() == ["Acme", "6", "4", "2", "1", "1", "62%", "0s"]
    assert line(text, "standard").split() == ["standard", "6", "4", "2", "1", "1", "62%", "0s"]
    assert max(len(row) for row in text.splitlines()) <= 80, text
    assert "carried in" not in text  # nothing can be open before the first event
    assert "CLIENT UPDATES\n  no incident in the window\n" in text


async def test_since_counts_only_what_happened_in_the_window(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # From T0+15m to T0+30m: only the 30-minute wave, and the P1 respond-by of T5 running out at 15m.
    assert await run_report(report_args(db, since="15m", as_of=T0 + minutes(30))) == 0
    text = capsys.readouterr().out
    assert text.startswith("After-action report: the last 15m\n")
    assert figures(line(text, "created in window"))[0] == "0"
    assert figures(line(text, "carried in")) == ["6"]
    assert line(text, "p50").split() == ["p50", "n/a"]
    assert figures(line(text, "respond-by missed")) == ["1"]
    assert figures(line(text, "resolve-by overdue")) == ["0"]
    assert figures(line(text, "reassigned")) == ["1", "1"]
    assert figures(line(text, "unassigned  ")) == ["1"]
    assert figures(line(section(text, "LOAD PER TECHNICIAN"), "alice")) == ["2", "2/3", "0"]
    assert figures(line(section(text, "LOAD PER TECHNICIAN"), "bob")) == ["1", "1/3", "1"]


async def test_html_report_is_self_contained_with_charts(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "outage"  # created, parents too
    assert await run_report(report_args(db, out=str(out))) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {out / 'report.html'}")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # The seven charts (three over time, SLA compliance per client and per tier, people's interruptions
    # and hours), as inline SVG drawn by pygal, with their series.
    assert page.count("<svg") == 7 and page.count("pygal-chart") >= 7
    titles = ("Queue depth", "Arrivals per 10 minutes", "SLA breaches per 10 minutes", "respond-by missed (derived)")
    assert all(title in page for title in titles)
    assert ">P1<" in page and ">P2<" in page  # arrivals by priority (legend)
    # Works offline: no script, stylesheet or image fetched from anywhere.
    assert not re.search(r"""<script[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert not re.search(r"""<link\b""", page, re.I)
    assert "kozea.github.io" not in page
    assert "T-000005" in page and "T-000004" in page  # the breached tickets are listed
    assert "<h2>Client updates</h2>" in page and "No incident in the window." in page


async def test_unknown_incident_is_a_one_line_error(db: Path) -> None:
    with pytest.raises(ReportError) as error:
        await run_report(report_args(db, incident="INC-7"))
    assert str(error.value) == "no tickets belong to incident INC-7"


@pytest.mark.parametrize("since", ["6", "6x", "-6h", "0h", "1.5h", "h", ""])
async def test_bad_since_is_a_one_line_error(db: Path, since: str) -> None:
    # The rule itself is dispatch.core.durations' (tests/test_durations.py); this is the wiring.
    with pytest.raises(ReportError, match=r"^--since: '.*' is not a duration: .*e\.g\. 30m, 2h, 1d\)?$"):
        await run_report(report_args(db, since=since))


async def test_a_missing_database_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no database at"):
        await run_report(report_args(tmp_path / "typo.db"))
    assert not (tmp_path / "typo.db").exists()


def _cli_has_report(tmp_path: Path) -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "server", "--db", str(tmp_path / "probe.db"), "report", "--help"],
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    return probe.returncode == 0


def test_cli_report_subcommand(db: Path, tmp_path: Path) -> None:
    if not _cli_has_report(tmp_path):
        pytest.skip("`report` is not wired into server/cli.py yet (`dispatch-server --db X report --help` fails)")
    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "server", "--db", str(db), "report", "--as-of", AS_OF.isoformat(), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert done.returncode == 0, done.stderr
    assert line(done.stdout, "p50").split() == ["p50", "10m", "00s"]
    assert (out / "report.html").is_file()
    refused = subprocess.run(
        [sys.executable, "-m", "server", "--db", str(db), "report", "--incident", "INC-7"],
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith("no tickets belong to incident INC-7")


# --- what the server cannot write yet: incidents and SLA events, as the protocol defines them -------------

CONTRACTS = Contracts()


class Log:
    """A hand-written log in the wire format, for the kinds of event no v1 command can make yet."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.tickets: dict[str, Ticket] = {}

    def _next(self) -> int:
        return len(self.events) + 1

    def technician(self, at: timedelta, tech_id: str) -> None:
        tech = Technician(id=tech_id, name=tech_id.title())
        self.events.append(
            TechnicianEvent(seq=self._next(), ts=T0 + at, actor="ana", kind="technician_added", technician=tech)
        )

    def create(self, at: timedelta, priority: Priority, incident: str | None) -> str:
        clock = clock_fields(CONTRACTS.terms("Acme", priority), T0 + at)
        ticket = Ticket(
            id=ticket_id_for(len(self.tickets) + 1),
            title="Line down",
            client="Acme",
            priority=priority,
            incident_id=incident,
            created_at=T0 + at,
            **clock,
        )
        self._ticket_event(at, "ticket_created", ticket, None)
        return ticket.id

    def assign(self, at: timedelta, ticket_id: str, tech_id: str) -> None:
        before = self.tickets[ticket_id]
        after = before.model_copy(
            update={
                "assignee": tech_id,
                "status": TicketStatus.ASSIGNED,
                "responded_at": before.responded_at or T0 + at,
            }
        )
        self._ticket_event(at, "ticket_assigned", after, before.assignee)

    def resolve(self, at: timedelta, ticket_id: str) -> None:
        before = self.tickets[ticket_id]
        self._ticket_event(
            at, "status_changed", before.model_copy(update={"status": TicketStatus.RESOLVED}), before.assignee
        )

    def breached(self, at: timedelta, ticket_id: str) -> None:
        ticket = self.tickets[ticket_id]
        self.events.append(
            SlaEvent(seq=self._next(), ts=T0 + at, actor="sla", kind="sla_breached", ticket_id=ticket_id,
                     assignee=ticket.assignee, target="resolve", due=ticket.resolve_by)
        )  # fmt: skip

    def _ticket_event(self, at: timedelta, kind: Any, ticket: Ticket, previous: str | None) -> None:
        ticket = (
            ticket.model_copy(update={"version": self.tickets[ticket.id].version + 1})
            if ticket.id in self.tickets
            else ticket
        )
        self.tickets[ticket.id] = ticket
        self.events.append(
            TicketEvent(seq=self._next(), ts=T0 + at, actor="ana", kind=kind, ticket=ticket, previous_assignee=previous)
        )


def outage_log() -> Log:
    log = Log()
    log.technician(minutes(0), "alice")
    log.technician(minutes(0), "bob")
    quiet = log.create(minutes(0), Priority.P3, None)  # T1, not part of the outage
    first = log.create(minutes(60), Priority.P1, "INC-7")  # T2
    second = log.create(minutes(62), Priority.P2, "INC-7")  # T3
    log.assign(minutes(64), first, "alice")
    log.assign(minutes(80), second, "alice")  # 18 min
    log.assign(minutes(90), quiet, "bob")
    log.breached(minutes(60 + 4 * 60), first)  # as a server with an SLA clock records it: P1 resolve-by is 4 h
    log.resolve(minutes(60 + 5 * 60), first)  # five hours after creation: resolve-by missed
    return log


def test_incident_takes_only_its_tickets_and_the_technicians_involved() -> None:
    log = outage_log()
    report = build_report(log.events, now=T0 + timedelta(hours=7), incident="INC-7")
    assert report.scope == "incident INC-7"
    assert report.start == T0 + minutes(60)  # the incident's first ticket
    assert report.ticket_count == 2 and report.created[Priority.P1] == 1 and report.created[Priority.P2] == 1
    assert sorted(report.first_assignment) == [minutes(4), minutes(18)]
    assert report.first_assignment_percentile(0.5) == minutes(11)
    assert [e.ticket_id for e in report.recorded_breaches] == ["T-000002"]
    assert [(b.ticket_id, b.kind) for b in report.breaches] == [("T-000002", "resolve_closed")]
    assert [(t.tech_id, t.assigned, t.holding, t.resolved) for t in report.technicians] == [("alice", 2, 1, 1)]
    text = format_text(report)
    assert figures(line(text, "recorded")) == ["1"]
    assert figures(line(text, "resolve-by missed")) == ["1"]


def test_whole_log_and_empty_log() -> None:
    report = build_report(outage_log().events, now=T0 + timedelta(hours=7))
    assert report.ticket_count == 3 and [t.tech_id for t in report.technicians] == ["alice", "bob"]
    empty = build_report([], now=T0)
    text = format_text(empty)
    assert figures(line(text, "created in window"))[0] == "0"
    assert line(text, "p90").split() == ["p90", "n/a"]
    assert "no technician had a ticket" in text


# --- SLA compliance per client and per tier, over a log the server's own rules write ---------------------

SLA_FILE = """
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
P1 = { respond = "30m", resolve = "4h", calendar = "24x7" }
P2 = { respond = "1h", resolve = "8h" }

[clients."Acme Corp"]
tier = "gold"
"""
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 09:00 in London (GMT): the uk-office calendar opens


class Desk:
    """A dispatcher's commands at given minutes after MONDAY, judged by the server's pure rules
    (dispatch.core.commands.execute) under SLA_FILE, and the server's SLA clock ticking when told:
    the events a server with that contract would log, without a socket."""

    def __init__(self, sla_file: str = SLA_FILE) -> None:
        self.state = DispatchState()
        self.rules = Rules(contracts=Contracts.parse(sla_file, "sla.toml"))
        self.ana = Actor("ana", Role.DISPATCHER)
        self.events: list[Event] = []

    def do(self, at: float, command: dict[str, Any], by: str = "ana") -> str:
        """Apply `command` at MONDAY + `at` minutes, as the dispatcher ana (or `by`); the ticket id it was
        about (the incident's, for an incident's command)."""
        frame = decode_client_frame(json.dumps({"command_id": f"c{len(self.events)}", **command}))
        actor = self.ana if by == "ana" else Actor(by, Role.DISPATCHER)
        outcome = execute(self.state, frame, actor, MONDAY + minutes(at), self.rules)  # type: ignore[arg-type]
        assert isinstance(outcome, Outcome), outcome
        self.events += outcome.events
        return str(outcome.ack.ticket_id or outcome.ack.incident_id)

    def tick(self, at: float) -> None:
        """The server's clock looks at every ticket, as it does each second."""
        self.events += clock_alerts(self.state, MONDAY + minutes(at), timedelta(days=7), self.ana)

    def stored_before_contracts(self, at: float, client: str, priority: Priority) -> str:
        """A ticket as an older server logged it: no tier, calendar or warning instants in the JSON."""
        ticket_id = ticket_id_for(self.state.last_ticket_number + 1)
        created = MONDAY + minutes(at)
        respond, resolve = {Priority.P2: (timedelta(hours=1), timedelta(hours=8))}[priority]
        payload = {
            "seq": self.state.seq + 1, "ts": created.isoformat(), "actor": "ana", "kind": "ticket_created",
            "ticket": {"id": ticket_id, "title": "Old ticket", "client": client, "priority": priority.value,
                       "created_at": created.isoformat(), "respond_by": (created + respond).isoformat(),
                       "resolve_by": (created + resolve).isoformat()},
        }  # fmt: skip
        event = event_adapter.validate_json(json.dumps(payload))
        apply_event(self.state, event)
        self.events.append(event)
        return ticket_id


def assign(ticket_id: str, tech_id: str = "alice") -> dict[str, Any]:
    return {"type": "assign", "ticket_id": ticket_id, "tech_id": tech_id}


def status(ticket_id: str, value: str, reason: str | None = None) -> dict[str, Any]:
    return {"type": "set_status", "ticket_id": ticket_id, "status": value, **({"reason": reason} if reason else {})}


def contract_log() -> list[Event]:
    """Monday 7 December 2026 from 09:00 (minutes after it), four clients:

    Acme Corp, gold (uk-office 09:00-17:30; P1 on 24x7; holds for a client or parts stop the clock):
      A1 P2: taken 09:30 (respond met); awaiting parts 10:00-12:00, which moves resolve-by from 17:00 to
        Tuesday 10:30; resolved 16:00 (resolve met); paused 2h.
      A2 P1 (24x7, respond by 09:30, resolve by 13:00): taken 09:45 (respond breached), resolved 12:20 (met).
      A3 P2: taken 09:10 (met), on hold awaiting a third party from 09:20, which does not stop the clock:
        resolve-by 17:00 passes on hold (breached).
      A4 P2: taken 09:05 (met), awaiting the client from 10:00 to the end: the clock stands at 10:00,
        so its resolve-by of 17:00 is not breached.
    Globex, standard (24x7):
      G1 P1: taken 09:10 (met), resolved 14:00 after its resolve-by of 13:00 (breached).
      G2 P3: never taken, respond-by 13:00 (breached); resolve-by Wednesday 09:00 (still running).
      G3 P4: cancelled at 10:00, before either target was due: counts neither way.
    Initech, standard: I1 P1, respond-by 09:15 breached and recorded by the clock at 09:31; lowered to P3
      at 09:40 (respond-by now 13:00), taken 09:50. The recorded breach stands.
    Umbrella, logged before contracts existed (so standard, 24x7): U1 P2, respond-by 10:00, taken 10:30
      (breached), resolved 11:00 (met).
    """
    desk = Desk()
    desk.do(0, tech_frame("alice", capacity=20))
    a1, a2, a3, a4 = (desk.do(0, ticket_frame(f"A{n}", client="Acme Corp", priority=p)) for n, p in
                      enumerate(("P2", "P1", "P2", "P2"), start=1))  # fmt: skip
    g1, g2, g3 = (desk.do(0, ticket_frame(f"G{n}", client="Globex", priority=p)) for n, p in
                  enumerate(("P1", "P3", "P4"), start=1))  # fmt: skip
    i1 = desk.do(0, ticket_frame("I1", client="Initech", priority="P1"))
    u1 = desk.stored_before_contracts(0, "Umbrella", Priority.P2)
    desk.do(5, assign(a4))
    desk.do(10, assign(a3))
    desk.do(10, assign(g1))
    desk.do(20, status(a3, "on_hold", "awaiting_third_party"))
    desk.do(30, assign(a1))
    desk.tick(31)
    desk.do(40, {"type": "set_priority", "ticket_id": i1, "priority": "P3"})
    desk.do(45, assign(a2))
    desk.do(50, assign(i1))
    desk.do(60, status(a1, "on_hold", "awaiting_parts"))
    desk.do(60, status(a4, "on_hold", "awaiting_client"))
    desk.do(60, status(g3, "cancelled"))
    desk.do(90, assign(u1))
    desk.do(120, status(u1, "resolved"))
    desk.do(180, status(a1, "in_progress"))
    desk.do(200, status(a2, "resolved"))
    desk.tick(241)
    desk.do(300, status(g1, "resolved"))
    desk.do(420, status(a1, "resolved"))
    desk.tick(481)
    desk.tick(27 * 60)
    assert (a1, g2, u1) == ("T-000001", "T-000006", "T-000009")
    return desk.events


# (name, tickets, respond met, respond breached, resolve met, resolve breached, paused), worst first.
Row = tuple[str, int, int, int, int, int, timedelta]


def rows(table: list[SlaCompliance]) -> list[Row]:
    return [
        (c.name, c.tickets, c.respond_met, c.respond_breached, c.resolve_met, c.resolve_breached, c.paused)
        for c in table
    ]


HOURS_2 = timedelta(hours=2)
NONE = timedelta(0)


@pytest.mark.parametrize(
    ("now", "since", "by_client", "by_tier"),
    [
        pytest.param(
            MONDAY + timedelta(hours=27),  # Tuesday 12:00
            None,
            [
                ("Initech", 1, 0, 1, 0, 0, NONE),  # 0 % met: the recorded breach counts
                ("Globex", 3, 1, 1, 0, 1, NONE),  # 1 of 3; G3 cancelled in time counts neither way
                ("Umbrella", 1, 0, 1, 1, 0, NONE),  # 1 of 2
                ("Acme Corp", 4, 3, 1, 2, 1, HOURS_2),  # 5 of 7; A4 on hold, its clock standing
            ],
            [("standard", 5, 1, 3, 1, 1, NONE), ("gold", 4, 3, 1, 2, 1, HOURS_2)],
            id="whole log",
        ),
        pytest.param(
            MONDAY + minutes(270),  # Monday 10:30 to 13:30: G3 was cancelled before, so not counted
            "3h",
            [
                ("Globex", 2, 0, 1, 0, 1, NONE),  # G2's respond-by and G1's resolve-by, both due 13:00
                ("Acme Corp", 4, 0, 0, 1, 0, HOURS_2),  # A2 resolved at 12:20; the rest ran on or before
                ("Umbrella", 1, 0, 0, 1, 0, NONE),  # its respond-by passed at 10:00, before the window
                ("Initech", 1, 0, 0, 0, 0, NONE),  # nothing decided in the window: last
            ],
            [("standard", 4, 0, 1, 1, 1, NONE), ("gold", 4, 0, 0, 1, 0, HOURS_2)],
            id="since 3h on Monday",
        ),
        pytest.param(
            MONDAY + timedelta(hours=27),  # Tuesday 10:00 to 12:00: only the open tickets, nothing decided
            "2h",
            [("Acme Corp", 2, 0, 0, 0, 0, NONE), ("Globex", 1, 0, 0, 0, 0, NONE), ("Initech", 1, 0, 0, 0, 0, NONE)],
            [("gold", 2, 0, 0, 0, 0, NONE), ("standard", 2, 0, 0, 0, 0, NONE)],
            id="since 2h on Tuesday",
        ),
    ],
)
def test_sla_compliance_per_client_and_tier(
    now: datetime, since: str | None, by_client: list[Row], by_tier: list[Row]
) -> None:
    window = timedelta(hours=int(since.removesuffix("h"))) if since else None
    report = build_report(contract_log(), now=now, since=window)
    assert rows(report.sla_by_client) == by_client
    assert rows(report.sla_by_tier) == by_tier


def test_a_hold_that_stops_the_clock_is_no_breach() -> None:
    # A4 sits on hold (awaiting the client) past the resolve-by it had when paused: the derived rule reads
    # its clock where it stopped, as the server's does, so neither way counts it as overdue.
    report = build_report(contract_log(), now=MONDAY + timedelta(hours=27))
    assert [(b.ticket_id, b.kind) for b in report.breaches if b.kind == "resolve_open"] == [
        ("T-000003", "resolve_open")
    ]
    assert {(e.ticket_id, e.target) for e in report.recorded_breaches} == {
        ("T-000002", "respond"),  # A2
        ("T-000003", "resolve"),  # A3, on a hold that does not stop the clock
        ("T-000005", "resolve"),  # G1
        ("T-000006", "respond"),  # G2
        ("T-000008", "respond"),  # I1
    }
    # U1 (stored before contracts, so on the 24x7 clock) was taken before the clock next looked: its
    # breach is known from its own times alone, and the compliance tables count it all the same.
    assert ("T-000009", "respond") in {(b.ticket_id, b.kind) for b in report.breaches}


def test_text_shows_sla_tables_worst_first() -> None:
    text = format_text(build_report(contract_log(), now=MONDAY + timedelta(hours=27)))
    assert max(len(row) for row in text.splitlines()) <= 80, text
    lines = text.splitlines()
    client_at, tier_at = (
        lines.index("SLA BY CLIENT                 respond        resolve"),
        lines.index("SLA BY TIER                   respond        resolve"),
    )
    client_table, tier_table = lines[client_at + 1 : client_at + 6], lines[tier_at + 1 : tier_at + 4]
    assert client_table[0].split() == ["client", "tickets", "met", "breached", "met", "breached", "met", "%", "paused"]
    # name, tickets, respond met/breached, resolve met/breached, share met (rounded down), paused
    assert [row.split() for row in client_table[1:]] == [
        ["Initech", "1", "0", "1", "0", "0", "0%", "0s"],
        ["Globex", "3", "1", "1", "0", "1", "33%", "0s"],
        ["Umbrella", "1", "0", "1", "1", "0", "50%", "0s"],
        ["Acme", "Corp", "4", "3", "1", "2", "1", "71%", "2h", "00m"],
    ]
    assert tier_table[0].split()[0] == "tier"
    assert [row.split() for row in tier_table[1:]] == [
        ["standard", "5", "1", "3", "1", "1", "33%", "0s"],
        ["gold", "4", "3", "1", "2", "1", "71%", "2h", "00m"],
    ]
    # Columns line up under their headings: each figure ends where its heading does.
    header = client_table[0]
    for row in client_table[1:]:
        for heading in ("tickets", "breached", "%", "paused"):
            end = header.index(heading) + len(heading)
            assert row[end - 1] != " " and (end == len(row) or row[end] == " "), (heading, row)


def test_text_without_tickets_says_so() -> None:
    text = format_text(build_report([], now=MONDAY))
    assert "SLA BY CLIENT\n  no tickets in the window" in text
    assert "SLA BY TIER\n  no tickets in the window" in text


def test_html_shows_sla_compliance_charts_offline() -> None:
    page = render_html(build_report(contract_log(), now=MONDAY + timedelta(hours=27)))
    assert page.count("<svg") == 7  # and people's time: alice's interruptions and hours
    for what in ("client", "tier"):
        assert f"id='sla-by-{what}'" in page
        assert f"SLA targets met and breached per {what}" in page
    for series in ("respond met", "resolve met", "respond breached", "resolve breached"):
        assert f">{series}<" in page  # in the charts' legends
    assert "<td>Umbrella</td>" in page and "<td>gold</td>" in page and "<td class='n'>2h 00m</td>" in page
    # Self-contained: nothing fetched from anywhere (pygal's tooltip script and the w3 namespaces aside,
    # which are names, not fetches).
    fetched = re.findall(r"""(?:src|href)\s*=\s*["']?((?:https?:)?//[^"' >]+)""", page, re.I)
    assert fetched == [], fetched
    assert "kozea.github.io" not in page and not re.search(r"<link\b|@import|url\(", page, re.I)


def test_html_without_decided_targets_draws_no_empty_chart() -> None:
    # Tuesday 10:00 to 12:00: four tickets still running, none met or breached: the tables, no charts.
    page = render_html(build_report(contract_log(), now=MONDAY + timedelta(hours=27), since=timedelta(hours=2)))
    assert page.count("<svg") == 5 and "id='sla-by-" not in page  # over time (3) and people's time (2)
    assert page.count("No SLA target was met or breached in the window") == 2
    assert "<td>Acme Corp</td><td class='n'>2</td>" in page
    empty = render_html(build_report([], now=MONDAY))
    assert "No tickets in the window, so no SLA figures per client." in empty


# --- people's time: hours, call-outs, after-hours work and overrides, over a log the server's rules write --

ROSTER_FILE = """
[technicians.alice]
timezone = "Europe/London"
shifts = ["mon-fri 08:00-16:00"]

[technicians.bob]
timezone = "Europe/London"
on_call = ["mon-sun 16:00-08:00"]

[technicians.carol]
timezone = "Europe/London"
on_call = ["mon-sun 16:00-08:00"]

[technicians.dave]
timezone = "Europe/London"
shifts = ["mon-fri 08:00-16:00"]

[fatigue]
max_hours_per_day = 10
min_rest_hours = 11
night = "22:00-07:00"
max_night_callouts_per_week = 2

[callouts]
after = "5m"
answer_within = "5m"
"""
TUESDAY = datetime(2026, 12, 1, tzinfo=UTC)  # GMT: London time is UTC


def tue(clock: str) -> datetime:
    """`06:12` on Tuesday 1 December 2026; `mon 18:00` the evening before."""
    day, _, hhmm = clock.rpartition(" ")
    hours, mins = map(int, hhmm.split(":"))
    return TUESDAY - timedelta(days=1 if day == "mon" else 0) + timedelta(hours=hours, minutes=mins)


class Crew:
    """Batches as the server's writer decides them (dispatch.core.decide, with auto-assign on) under
    ROSTER_FILE: commands from the dispatcher or a technician, and the clock's looks (shift edges,
    call-outs sent and expired, SLA alerts) when told. The events a server with that roster would log."""

    def __init__(self) -> None:
        rules = Rules(roster=Roster.parse(ROSTER_FILE, "roster.toml"))
        self.decider = Decider(DispatchState(), DeciderSettings(rules=rules, auto_assign=True, burst_threshold=0))
        self.events: list[Event] = []

    def do(self, at: str, command: dict[str, Any], by: str = "ana") -> dict[str, Any]:
        """Send `command` at `tue(at)` as the dispatcher ana, or as technician `by`; its ack."""
        actor = Actor("ana", Role.DISPATCHER) if by == "ana" else Actor(by, Role.TECHNICIAN, by)
        frame = decode_client_frame(json.dumps({"command_id": f"c{len(self.events)}", **command}))
        decided = self.decider.decide([Request("conn", actor, frame)], {}, tue(at))  # type: ignore[arg-type]
        ack: dict[str, Any] = json.loads(decided.replies[0].frame or "{}")
        assert ack["type"] == "ack", ack
        self.events += decided.events
        return ack

    def tick(self, *moments: str) -> None:
        """The server's clock looks at each moment in turn."""
        for at in moments:
            self.events += self.decider.decide([TICK], {}, tue(at)).events


def people_log() -> list[Event]:
    """Monday 18:00 to Tuesday 16:00 (London is on UTC). alice works 08:00-16:00; bob and carol are on
    call 16:00-08:00; nobody is on the clock until alice's shift.

      06:00 P1 T1 arrives. 06:05 nobody on the clock can take it: bob is called out (CO-1, at night,
            inside 22:00-07:00); 06:10 he has not answered: CO-1 expires, carol is called (CO-2, night).
      06:12 carol accepts: available, called in; auto-assign gives her T1 (after hours, called in).
      08:00 alice's shift starts.  09:00 ana calls bob in by hand (CO-3, not at night); he declines.
      10:00 T2 goes to alice (auto), and ana gives it to bob, who is off shift: an interruption.
      11:00 ana sends carol home (off shift): she worked 06:12-11:00, 4h48, all of it called in.
      12:00 T3 goes to alice, and ana gives it to carol, resting until 22:00: an override.
      16:00 alice's shift ends: she worked 8h00.
    """
    crew = Crew()
    crew.tick("mon 18:00")
    for tech in ("alice", "bob", "carol"):
        crew.do("mon 18:00", tech_frame(tech))
        crew.do("mon 18:00", {"type": "set_tech_status", "tech_id": tech, "status": "off_shift"})
    crew.do("06:00", ticket_frame("Core switch down", priority="P1"))
    crew.tick("06:00", "06:05", "06:10")
    crew.do("06:12", {"type": "answer_callout", "callout_id": "CO-2", "accept": True}, by="carol")
    crew.tick("08:00")
    assert crew.do("09:00", {"type": "callout", "tech_id": "bob", "reason": "extra hands"})["callout_id"] == "CO-3"
    crew.do("09:02", {"type": "answer_callout", "callout_id": "CO-3", "accept": False}, by="bob")
    crew.do("10:00", ticket_frame("Printer jammed", priority="P3"))
    crew.do("10:00", assign("T-000002", "bob"))
    crew.do("11:00", {"type": "set_tech_status", "tech_id": "carol", "status": "off_shift"})
    crew.do("12:00", ticket_frame("VPN flaky", priority="P3"))
    assert crew.do("12:00", assign("T-000003", "carol"))["override"] == "resting until Tue 22:00"
    crew.do("12:30", {"type": "create_incident", "title": "Core switch", "ticket_ids": ["T-000001"]})
    crew.tick("16:00")
    return crew.events


# (technician, worked, called in, call-outs sent, accepted, at night, tickets given called in, given off
# shift, overrides, interruptions), most interrupted first.
PeopleRow = tuple[str, str, str, int, int, int, int, int, int, int]


def people_rows(report: Report) -> list[PeopleRow]:
    return [
        (p.tech_id, _hhmm(p.worked), _hhmm(p.called_in), p.callouts_sent, p.callouts_accepted, p.night_callouts,
         p.assigned_called_in, p.assigned_off_shift, p.overrides, p.interruptions)
        for p in report.people
    ]  # fmt: skip


def _hhmm(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}"


@pytest.mark.parametrize(
    ("now", "since", "incident", "expected"),
    [
        pytest.param(
            tue("17:00"),
            None,
            None,
            [
                ("bob", "0h00", "0h00", 2, 0, 0, 0, 1, 0, 3),  # CO-1 expired, CO-3 declined, T2 off shift
                ("carol", "4h48", "4h48", 1, 1, 1, 1, 1, 1, 2),  # CO-2 at night, then T1; T3 off shift
                ("alice", "8h00", "0h00", 0, 0, 0, 0, 0, 0, 0),  # her shift; T2 and T3 came in it
            ],
            id="whole log",
        ),
        pytest.param(
            tue("17:00"),
            timedelta(hours=6),  # 11:00 to 17:00: alice counts from the window's start, carol is home
            None,
            [
                ("carol", "0h00", "0h00", 0, 0, 0, 0, 1, 1, 1),
                ("alice", "5h00", "0h00", 0, 0, 0, 0, 0, 0, 0),
                ("bob", "0h00", "0h00", 0, 0, 0, 0, 0, 0, 0),
            ],
            id="since 6h",
        ),
        pytest.param(
            tue("06:30"),
            timedelta(hours=1),  # 05:30 to 06:30: the night's two call-outs
            None,
            [
                ("carol", "0h18", "0h18", 1, 1, 1, 1, 0, 0, 1),  # ties go to more work after hours
                ("bob", "0h00", "0h00", 1, 0, 0, 0, 0, 0, 1),
                ("alice", "0h00", "0h00", 0, 0, 0, 0, 0, 0, 0),
            ],
            id="since 1h at night",
        ),
        pytest.param(
            tue("17:00"),
            None,
            "INC-1",  # T1 from 06:00: carol took it, bob was called out for it; alice had no part
            [
                ("bob", "0h00", "0h00", 2, 0, 0, 0, 1, 0, 3),  # all his time in the window, CO-3 too
                ("carol", "4h48", "4h48", 1, 1, 1, 1, 1, 1, 2),
            ],
            id="incident",
        ),
    ],
)
def test_people_time_per_technician(
    now: datetime, since: timedelta | None, incident: str | None, expected: list[PeopleRow]
) -> None:
    report = build_report(people_log(), now=now, since=since, incident=incident)
    assert people_rows(report) == expected


def test_people_time_overrides_say_who_and_which_rule() -> None:
    # Read back from JSON as the database stores events, so the new fields survive the trip.
    stored = [event_adapter.validate_json(event_adapter.dump_json(e)) for e in people_log()]
    report = build_report(stored, now=tue("17:00"))
    assert report.overrides == [GuardrailOverride(tue("12:00"), "T-000003", "carol", "ana", "resting until Tue 22:00")]
    assert build_report(people_log(), now=tue("17:00"), since=timedelta(hours=4)).overrides == []


def test_a_call_out_accepted_while_available_calls_in_until_a_shift_shows() -> None:
    # dave is called out at 07:00, makes himself available, then accepts: no status change, but called
    # in all the same. His shift starts at 08:00 while he is on the clock, which the log does not show;
    # his change to busy at 09:00 does (it carries his shift's end), and ends the call-out there.
    crew = Crew()
    crew.tick("mon 18:00")
    crew.do("mon 18:00", tech_frame("dave"))
    crew.do("mon 18:00", {"type": "set_tech_status", "tech_id": "dave", "status": "off_shift"})
    crew.do("07:00", {"type": "callout", "tech_id": "dave"})
    crew.do("07:01", {"type": "set_tech_status", "tech_id": "dave", "status": "available"}, by="dave")
    crew.do("07:02", {"type": "answer_callout", "callout_id": "CO-1", "accept": True}, by="dave")
    crew.do("07:10", ticket_frame("Badge reader", priority="P3"))  # auto-assigned to dave: called in
    crew.tick("08:00")
    crew.do("09:00", {"type": "set_tech_status", "tech_id": "dave", "status": "busy"}, by="dave")
    crew.do("10:00", ticket_frame("Label printer", priority="P4"))  # auto-assigned in his shift: not after hours
    crew.do("15:00", {"type": "set_tech_status", "tech_id": "dave", "status": "available"}, by="dave")
    crew.tick("16:00")  # shift ends: off shift
    report = build_report(crew.events, now=tue("17:00"))
    assert people_rows(report) == [("dave", "8h59", "1h58", 1, 1, 0, 1, 0, 0, 1)]


@pytest.mark.parametrize(
    ("per_month", "band"),
    [(0, "healthy"), (2, "healthy"), (2.1, "raised"), (6.9, "raised"), (7, "bad"), (18.9, "bad"), (19, "burnout"),
     (400, "burnout")],
)  # fmt: skip
def test_interruption_band(per_month: float, band: str) -> None:
    assert interruption_band(per_month) == band


@pytest.mark.parametrize(
    ("window", "count", "per_month"),
    [
        (timedelta(days=30), 3, 3.0),  # a month: as counted
        (timedelta(days=7), 1, 30 / 7),
        (timedelta(hours=6), 1, 120.0),  # an outage's evening, as if every 6 h of the month were like it
        (timedelta(0), 1, None),  # a window of no length scales to nothing
    ],
)
def test_counts_are_scaled_to_a_month(window: timedelta, count: int, per_month: float | None) -> None:
    scaled = build_report([], now=T0 + window, since=window or None).per_month(count)
    if per_month is None:
        assert scaled is None
    else:
        assert scaled == pytest.approx(per_month)


def test_text_shows_people_by_interruptions_against_the_scale() -> None:
    text = format_text(build_report(people_log(), now=tue("17:00")))
    assert max(len(row) for row in text.splitlines()) <= 80, text
    lines = text.splitlines()
    at = lines.index("PEOPLE'S TIME         call-outs          assigned       interruptions")
    assert lines[at + 1 : at + 7] == [
        "  technician worked  accepted night after hrs overrides window a month",
        "  bob          0h00       0/2     0         1         0      3      94 burnout",
        "  carol        4h48       1/1     1         2         1      2      63 burnout",
        "  alice        8h00       0/0     0         0         0      0       0 healthy",
        "  team, a person                                           1.7      52 burnout",
        "  the scale from on-call research: about 2 a month healthy, 7 bad, 19 burnout",
    ]
    # 23 h of log: bob's 3 interruptions are 3 x 720 h / 23 h = 94 a month, and the window says so.
    assert lines[at + 7].startswith("  (a month: the count in the window x 30 days / 23h 00m")
    assert "GUARDRAIL OVERRIDES\n  12-01 12:00  T-000003 to carol by ana: resting until Tue 22:00\n" in text


def test_text_people_time_without_technicians_or_overrides() -> None:
    text = format_text(build_report([], now=T0))
    assert "PEOPLE'S TIME\n  no technician in the window" in text
    assert "GUARDRAIL OVERRIDES\n  none: no ticket was given against a fatigue rule" in text


def test_html_shows_people_time_charts_with_the_scale() -> None:
    page = render_html(build_report(people_log(), now=tue("17:00")))
    assert 'id="interruptions"' in page and 'id="hours"' in page
    assert "After-hours interruptions a person, scaled to a month (log scale)" in page
    assert "Hours on the clock per technician" in page
    for label in ("2 healthy", "7 bad", "19 burnout"):  # the scale's lines, on the interruption axis
        assert f">{label}<" in page
    for series in ("healthy", "raised", "bad", "burnout", "on the clock", "called in (after accepting a call-out)"):
        assert f">{series}<" in page  # in the charts' legends
    assert "<td>bob</td><td class='n'>0h00</td><td class='n'>0h00</td><td class='n'>2</td>" in page
    assert "<td class='n'>94</td><td class='n'>burnout</td>" in page
    assert "<td>T-000003</td><td>carol</td><td>ana</td><td>resting until Tue 22:00</td>" in page
    assert "<b>burnout</b> on the scale on-call research uses (about 2 a month healthy, 7 bad, 19 burnout)" in page
    fetched = re.findall(r"""(?:src|href)\s*=\s*["']?((?:https?:)?//[^"' >]+)""", page, re.I)
    assert fetched == [], fetched


# --- client updates per incident, over a log the server's rules write -------------------------------------

CONTACTS_FILE = """
[clients."Acme Corp"]
contacts = ["mailto://it@acme.example", "ntfys://ntfy.sh/acme-outages"]

[clients."Beta Ltd"]
contacts = ["mailto://ops@beta.example"]
"""


def update(incident_id: str, message: str) -> dict[str, Any]:
    return {"type": "update_clients", "incident_id": incident_id, "message": message}


FIBRE_CUT = "Our ISP has a fibre cut near the office; their engineer is on site. Next update 10:00."


def updates_log() -> list[Event]:
    """Monday 7 December 2026 from 09:00 (minutes after it); Acme Corp has two contacts, Beta Ltd one,
    Gamma none (no table in the SLA file).

      09:00 T1 VPN down and T2 Mail down at Acme, T3 VPN down at Beta, T4 Phones at Gamma.
      09:05 INC-1 "ISP outage" groups T1-T4: its clients have waited since its first ticket, at 09:00.
      09:20 ana updates INC-1: Acme (T1, T2), Beta (T3) and Gamma (T4).
      09:25 INC-2 "Printers" opens empty; 09:30 T5 at Beta joins it.    10:00 T3 resolved.
      10:10 ben updates INC-1: Acme and Gamma (Beta's ticket is closed).
      11:00 T5 resolved: INC-2 is over, never updated (1h 35m from its opening).
      12:20 ana updates INC-1.    12:50 T1 and T2 resolved.
      13:00 T6 Phones dead at Beta; 13:01 INC-3 "Phone lines" groups it.
      13:20 T4 resolved: INC-1 is over. Its silences: 20m, 50m, 2h 10m, 1h 00m.
      14:30 ana updates INC-3, 1h 30m after its first ticket; it stays open.
    """
    desk = Desk(CONTACTS_FILE)
    t1, t2, t3, t4 = (desk.do(0, ticket_frame(title, client=client)) for title, client in
                      [("VPN down", "Acme Corp"), ("Mail down", "Acme Corp"), ("VPN down", "Beta Ltd"),
                       ("Phones", "Gamma")])  # fmt: skip
    assert desk.do(5, {"type": "create_incident", "title": "ISP outage", "ticket_ids": [t1, t2, t3, t4]}) == "INC-1"
    desk.do(20, update("INC-1", FIBRE_CUT))
    assert desk.do(25, {"type": "create_incident", "title": "Printers"}) == "INC-2"
    t5 = desk.do(30, ticket_frame("Printers offline", client="Beta Ltd", priority="P3", incident_id="INC-2"))
    desk.do(60, status(t3, "resolved"))
    desk.do(70, update("INC-1", "Fibre spliced; service is coming back site by site."), by="ben")
    desk.do(120, status(t5, "resolved"))
    desk.do(200, update("INC-1", "Most sites are back; we're checking the last ones & the <VPN>."))
    desk.do(230, status(t1, "resolved"))
    desk.do(230, status(t2, "resolved"))
    t6 = desk.do(240, ticket_frame("Phones dead", client="Beta Ltd", priority="P1"))
    assert desk.do(241, {"type": "create_incident", "title": "Phone lines", "ticket_ids": [t6]}) == "INC-3"
    desk.do(260, status(t4, "resolved"))
    desk.do(330, update("INC-3", "The carrier has found the fault."))
    return desk.events


def mon(clock: str) -> datetime:
    """`12:20` on Monday 7 December 2026 (UTC, London's time in December)."""
    hours, mins = map(int, clock.split(":"))
    return MONDAY.replace(hour=hours, minute=mins)


# (incident, began at, as, closed at or None, updates in the window as (number, time, by, clients),
# updates before it, longest silence as (after, start, before, end))
IncidentRow = tuple[str, str, str, str | None, list[tuple[int, str, str, str]], int, tuple[str, str, str, str]]


def incident_rows(report: Report) -> list[IncidentRow]:
    def hhmm(moment: datetime) -> str:
        return moment.strftime("%H:%M")

    def clients(incident: IncidentUpdates, number: int) -> str:
        (sent,) = [u for u in incident.updates if u.number == number]
        return ", ".join(f"{r.client} {r.contacts}" for r in sent.reached)

    return [
        (
            i.incident_id, hhmm(i.began), i.began_as, hhmm(i.closed_at) if i.closed_at else None,
            [(u.number, hhmm(u.at), u.by, clients(i, u.number)) for u in i.listed], i.earlier,
            (s.after, hhmm(s.start), s.before, hhmm(s.end)),
        )
        for i in report.incidents
        for s in [i.longest_silence]
    ]  # fmt: skip


INC_1_UPDATES = [
    (1, "09:20", "ana", "Acme Corp 2, Beta Ltd 1, Gamma 0"),
    (2, "10:10", "ben", "Acme Corp 2, Gamma 0"),  # T3, Beta's, resolved at 10:00
    (3, "12:20", "ana", "Acme Corp 2, Gamma 0"),
]
INC_2_NEVER: IncidentRow = ("INC-2", "09:25", "opened", "11:00", [], 0, ("opened", "09:25", "closed", "11:00"))


@pytest.mark.parametrize(
    ("now", "since", "incident", "expected"),
    [
        pytest.param(
            "15:00",
            None,
            None,
            [
                # Silences 20m, 50m, 2h 10m, 1h 00m: the longest between two updates.
                ("INC-1", "09:00", "first ticket", "13:20", INC_1_UPDATES, 0, ("update", "10:10", "update", "12:20")),
                INC_2_NEVER,  # never updated: silent from its opening to its last ticket resolved
                # 1h 30m waiting for the first update, then 30m to the end while still open.
                ("INC-3", "13:00", "first ticket", None, [(1, "14:30", "ana", "Beta Ltd 1")], 0,
                 ("first ticket", "13:00", "update", "14:30")),
            ],
            id="whole log",
        ),
        pytest.param(
            "12:00",
            None,
            None,
            [
                # Still open: 1h 50m since the last update, to the end of the window.
                ("INC-1", "09:00", "first ticket", None, INC_1_UPDATES[:2], 0,
                 ("update", "10:10", "window end", "12:00")),
                INC_2_NEVER,
            ],
            id="as of noon",
        ),
        pytest.param(
            "14:00",
            timedelta(hours=1),  # 13:00 to 14:00: INC-2 was over by 11:00
            None,
            [
                # Its updates came before the window; of its silences, only the last reaches into it.
                ("INC-1", "09:00", "first ticket", "13:20", [], 3, ("update", "12:20", "closed", "13:20")),
                ("INC-3", "13:00", "first ticket", None, [], 0, ("first ticket", "13:00", "window end", "14:00")),
            ],
            id="since 1h",
        ),
        pytest.param(
            "16:00",
            timedelta(hours=1),  # 15:00 to 16:00: a silence that began before the window counts whole
            None,
            [("INC-3", "13:00", "first ticket", None, [], 1, ("update", "14:30", "window end", "16:00"))],
            id="since 1h, later",
        ),
        pytest.param("15:00", None, "INC-2", [INC_2_NEVER], id="incident"),
    ],
)  # fmt: skip
def test_client_updates_per_incident(
    now: str, since: timedelta | None, incident: str | None, expected: list[IncidentRow]
) -> None:
    # Read back from JSON as the database stores events.
    stored = [event_adapter.validate_json(event_adapter.dump_json(e)) for e in updates_log()]
    report = build_report(stored, now=mon(now), since=since, incident=incident)
    assert incident_rows(report) == expected


def test_a_client_update_says_whom_it_reached_in_the_rules_words() -> None:
    report = build_report(updates_log(), now=mon("15:00"))
    first = report.incidents[0].updates[0]
    assert first.message == FIBRE_CUT
    assert [(r.client, r.contacts, r.tickets, r.reason) for r in first.reached] == [
        ("Acme Corp", 2, ("T-000001", "T-000002"), "sent to 2 contacts of Acme Corp"),
        ("Beta Ltd", 1, ("T-000003",), "sent to 1 contact of Beta Ltd"),
        ("Gamma", 0, ("T-000004",), "Gamma has no contacts in the SLA file: sent to nobody"),
    ]
    assert report.incidents[0].longest_silence.length == timedelta(hours=2, minutes=10)


def test_one_command_is_one_update_even_in_one_moment() -> None:
    # Three commands at 09:10 (two of them ana's, word for word): three updates, each to both clients.
    desk = Desk(CONTACTS_FILE)
    tickets = [desk.do(0, ticket_frame("VPN down", client=client)) for client in ("Acme Corp", "Beta Ltd")]
    desk.do(1, {"type": "create_incident", "title": "ISP outage", "ticket_ids": tickets})
    for by in ("ana", "ana", "ben"):
        desk.do(10, update("INC-1", "Looking into it."), by=by)
    # Words the report does not know (an older server's): the client, with no count.
    events = [
        e.model_copy(update={"reason": "texted the CEO"}) if isinstance(e, TicketEvent) and e.actor == "ben" else e
        for e in desk.events
    ]
    (incident,) = build_report(events, now=MONDAY + minutes(30)).incidents
    assert [(u.number, u.by, [(r.client, r.contacts) for r in u.reached]) for u in incident.updates] == [
        (1, "ana", [("Acme Corp", 2), ("Beta Ltd", 1)]),
        (2, "ana", [("Acme Corp", 2), ("Beta Ltd", 1)]),
        (3, "ben", [("Acme Corp", None), ("Beta Ltd", None)]),
    ]
    text = format_text(build_report(events, now=MONDAY + minutes(30)))
    assert "    09:10  ben       Looking into it.                       Acme Corp\n" in text


def test_text_lists_each_incident_s_updates_and_longest_silence() -> None:
    text = format_text(build_report(updates_log(), now=mon("15:00")))
    assert max(len(row) for row in text.splitlines()) <= 80, text
    assert section(text, "CLIENT UPDATES").splitlines() == [
        "  INC-1  ISP outage: 4 tickets, 09:00 to 13:20",
        "    time   sent by   message                                sent to (contacts)",
        "    09:20  ana       Our ISP has a fibre cut near the off…  Acme Corp (2)",
        "                                                            Beta Ltd (1)",
        "                                                            Gamma (none)",
        "    10:10  ben       Fibre spliced; service is coming bac…  Acme Corp (2)",
        "                                                            Gamma (none)",
        "    12:20  ana       Most sites are back; we're checking …  Acme Corp (2)",
        "                                                            Gamma (none)",
        "    longest silence   2h 10m  between the updates at 10:10 and 12:20",
        "  INC-2  Printers: 1 ticket, 09:25 to 11:00",
        "    no client update at all",
        "    longest silence   1h 35m  from its opening at 09:25 to its last ticket",
        "                              resolved at 11:00 (T-000005)",
        "  INC-3  Phone lines: 1 ticket, from 13:00, still open",
        "    time   sent by   message                                sent to (contacts)",
        "    14:30  ana       The carrier has found the fault.       Beta Ltd (1)",
        "    longest silence   1h 30m  from its first ticket at 13:00 to the first update",
        "                              at 14:30",
        "  (an update: one update_clients, sent to the contacts of each client with an",
        "   open ticket in the incident; the longest silence: from the incident's start",
        "   (its opening, or its first ticket if earlier) to the first update, between",
        "   two updates, or from the last update to its last ticket closed or the",
        "   window's end)",
    ]
    earlier = section(format_text(build_report(updates_log(), now=mon("14:00"), since=timedelta(hours=1))),
                      "CLIENT UPDATES")  # fmt: skip
    assert earlier.splitlines()[:5] == [
        "  INC-1  ISP outage: 4 tickets, 09:00 to 13:20",
        "    no update in the window (3 earlier, before the window)",
        "    longest silence   1h 00m  from the last update at 12:20 to its last ticket",
        "                              resolved at 13:20 (T-000004)",
        "  INC-3  Phone lines: 1 ticket, from 13:00, still open",
    ]
    assert "to the end of the window at 14:00, still open" in " ".join(earlier.split())


def test_text_dates_a_silence_that_began_on_an_earlier_day() -> None:
    # Tuesday 08:00 to 10:00: INC-3's last update was Monday 14:30.
    text = format_text(build_report(updates_log(), now=mon("10:00") + timedelta(days=1), since=timedelta(hours=2)))
    assert section(text, "CLIENT UPDATES").splitlines()[:4] == [
        "  INC-3  Phone lines: 1 ticket, from 12-07 13:00, still open",
        "    no update in the window (1 earlier, before the window)",
        "    longest silence  19h 30m  from the last update at 12-07 14:30 to the end of",
        "                              the window at 10:00, still open",
    ]


def test_html_shows_a_table_and_a_timeline_per_incident() -> None:
    page = render_html(build_report(updates_log(), now=mon("15:00")))
    part = page.split("<h2>Client updates</h2>", 1)[1].split("<h2>Reassignments</h2>", 1)[0]
    assert [re.sub("<[^>]+>", "", h) for h in re.findall("<h3>.*?</h3>", part)] == [
        "INC-1 · ISP outage", "INC-2 · Printers", "INC-3 · Phone lines"
    ]  # fmt: skip
    assert part.count("<table class='updates'>") == 2 and part.count("class='timeline'") == 3
    assert (
        "<td class='n'>2</td><td>10:10</td><td>ben</td><td>Fibre spliced; service is coming back site by site.</td>"
        in part
    )
    # The message is text, never markup; whom it reached, with the rules' words and tickets in the tooltip.
    assert "we&#x27;re checking the last ones &amp; the &lt;VPN&gt;." in part and "<VPN>" not in part
    assert "<span title='sent to 2 contacts of Acme Corp (T-000001, T-000002)'>Acme Corp (2)</span>" in part
    assert "Gamma (none)" in part
    assert "No client update at all: the clients were never told anything." in part
    assert "Longest silence: <b>2h 10m</b>, between the updates at 10:10 and 12:20." in part
    assert "Longest silence: <b>1h 35m</b>, from its opening at 09:25 to its last ticket resolved at 11:00" in part
    # INC-1's line runs 09:00 to 13:20 (260 min): update 2 at 70 min, its longest silence 130 min from there.
    assert "<div class='gap' style='left:26.92%;width:50.00%'" in part and "left:26.92%' title='10:10 ben: " in part
    assert "<svg" not in part and "<script" not in part
    later = render_html(build_report(updates_log(), now=mon("16:00"), since=timedelta(hours=1)))
    assert "<div class='mark earlier'" in later and "Update 1 was sent before the window." in later
