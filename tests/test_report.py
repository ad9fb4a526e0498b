"""The after-action report, over a log the real server wrote with a fixed clock, so every figure is known."""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.contracts import Contracts
from dispatch.core.models import Priority, Role, Technician, Ticket, TicketStatus
from dispatch.core.protocol import Event, SlaEvent, TechnicianEvent, TicketEvent
from dispatch.core.sla import clock_fields
from dispatch.core.state import ticket_id_for
from server.report import ReportError, build_report, format_text, run_report
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
    assert figures(line(text, "alice")) == ["3", "2/3", "0"]
    assert figures(line(text, "bob")) == ["3", "1/3", "1"]
    assert figures(line(text, "carol")) == ["1", "0/3", "0"]
    assert figures(line(text, "dave")) == ["0", "0/3", "0"]
    assert max(len(row) for row in text.splitlines()) <= 80, text
    assert "carried in" not in text  # nothing can be open before the first event


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
    assert figures(line(text, "alice")) == ["2", "2/3", "0"]
    assert figures(line(text, "bob")) == ["1", "1/3", "1"]


async def test_html_report_is_self_contained_with_charts(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "outage"  # created, parents too
    assert await run_report(report_args(db, out=str(out))) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {out / 'report.html'}")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # The three charts, as inline SVG drawn by pygal, with their series.
    assert page.count("<svg") == 3 and page.count("pygal-chart") >= 3
    titles = ("Queue depth", "Arrivals per 10 minutes", "SLA breaches per 10 minutes", "respond-by missed (derived)")
    assert all(title in page for title in titles)
    assert ">P1<" in page and ">P2<" in page  # arrivals by priority (legend)
    # Works offline: no script, stylesheet or image fetched from anywhere.
    assert not re.search(r"""<script[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert not re.search(r"""<link\b""", page, re.I)
    assert "kozea.github.io" not in page
    assert "T-000005" in page and "T-000004" in page  # the breached tickets are listed


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
