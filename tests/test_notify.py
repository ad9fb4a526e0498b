"""Notifications out (server/notify.py) and client status updates (`update_clients`), issue 14.

What each event is worded as is checked without a socket; the queue and its retries with a stand-in
sender; the rest with the real server in this process (tests/inprocess.py) and apprise sending through
its `json://` URL to a real HTTP endpoint on loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.core.contracts import Contracts
from dispatch.core.models import Priority, Role, TechStatus
from dispatch.core.protocol import (
    AddTechnician,
    Assign,
    BurstEvent,
    CreateIncident,
    CreateTicket,
    Event,
    SetTechStatus,
    Snapshot,
    UpdateClients,
)
from dispatch.core.rules import (
    Change,
    Rules,
    add_technician,
    assign,
    clock_alerts,
    create_incident,
    create_ticket,
    send_callout,
    set_tech_status,
    update_clients,
)
from dispatch.core.state import Actor, DispatchState
from server.notify import WORKERS, Notice, Notifier, Undeliverable, notices
from server.settings import ServerSettings
from server.writer import Committed
from tests.inprocess import ManualClock, running_server
from tests.support import Session, tech_frame, ticket_frame, timeout

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ANA = Actor("ana", Role.DISPATCHER)
AUTO = Actor("auto", Role.DISPATCHER)
OPERATORS = ("ntfys://ntfy.sh/dispatch-ops",)
ALICE_URL = "ntfys://ntfy.sh/alice-s3cret"
CONTRACTS = Contracts.parse(
    """
[clients."Acme Corp"]
contacts = ["mailto://it@acme.example", "ntfys://ntfy.sh/acme-outages"]

[clients."Beta Ltd"]
contacts = ["mailto://ops@beta.example"]
""",
    "sla.toml",
)
RULES = Rules(contracts=CONTRACTS)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Until `condition` holds (checked every 10 ms), at most `seconds` (scaled)."""
    async with asyncio.timeout(timeout(seconds)):
        while not condition():
            await asyncio.sleep(0.01)


# --- what each event is worded as: pure -------------------------------------------------------------


def floor() -> DispatchState:
    """alice (with a URL) and bob (without); P1 T-000001 VPN down at Acme Corp in INC-1, P2 T-000002 at
    Beta Ltd in INC-1, P1 T-000003 at Gamma (no contacts) in INC-1, all opened at 09:00 and unassigned."""
    state = DispatchState()
    c = Change(state, ANA, NOW, RULES)
    add_technician(c, AddTechnician(command_id="t1", tech_id="alice", name="Alice", notify=ALICE_URL))
    add_technician(c, AddTechnician(command_id="t2", tech_id="bob", name="Bob"))
    for n, (title, client, priority) in enumerate(
        [("VPN down", "Acme Corp", Priority.P1), ("Mail slow", "Beta Ltd", Priority.P2),
         ("Phones dead", "Gamma", Priority.P1)]
    ):  # fmt: skip
        create_ticket(c, CreateTicket(command_id=f"c{n}", title=title, client=client, priority=priority))
    create_incident(c, CreateIncident(command_id="i1", title="ISP outage",
                                      ticket_ids=["T-000001", "T-000002", "T-000003"]))  # fmt: skip
    return state


def worded(events: list[Event], state: DispatchState, operators: tuple[str, ...] = OPERATORS) -> list[Notice]:
    return notices(events, state, CONTRACTS, operators)


def test_a_technician_hears_of_their_assignment_with_what_and_by_when() -> None:
    state = floor()
    c = Change(state, ANA, NOW + timedelta(minutes=5), RULES)
    assign(c, Assign(command_id="a1", ticket_id="T-000001", tech_id="alice"))
    assert worded(c.events, state) == [
        Notice(
            (ALICE_URL,),
            "P1 T-000001 assigned to you",
            "P1 T-000001 VPN down at Acme Corp (INC-1) — assigned to you, resolve by 13:00 UTC",
            "T-000001 assigned to alice",
        )
    ]
    # bob has no URL: nothing to send; and the operators do not hear of every assignment.
    c = Change(state, ANA, NOW, RULES)
    assign(c, Assign(command_id="a2", ticket_id="T-000002", tech_id="bob"))
    assert worded(c.events, state) == []


def test_a_deadline_on_another_day_names_the_day() -> None:
    state = floor()
    c = Change(state, ANA, NOW, RULES)
    create_ticket(c, CreateTicket(command_id="c9", title="Printer", client="Acme Corp", priority=Priority.P4))
    c = Change(state, ANA, NOW, RULES)
    assign(c, Assign(command_id="a9", ticket_id="T-000004", tech_id="alice"))
    (notice,) = worded(c.events, state)
    assert notice.body == "P4 T-000004 Printer at Acme Corp — assigned to you, resolve by Sat 28 Nov 09:00 UTC"


def test_the_operators_hear_of_an_escalation_then_a_breach() -> None:
    state = floor()
    escalated = clock_alerts(state, NOW + timedelta(minutes=10), timedelta(minutes=10), AUTO)
    assert [(n.to, n.title, n.body, n.level) for n in worded(escalated, state)] == [
        (OPERATORS, "P1 T-000001 unassigned",
         "P1 T-000001 VPN down at Acme Corp (INC-1) — unassigned for 10 min, respond by 09:15 UTC: assign it now",
         "warning"),
        (OPERATORS, "P1 T-000003 unassigned",
         "P1 T-000003 Phones dead at Gamma (INC-1) — unassigned for 10 min, respond by 09:15 UTC: assign it now",
         "warning"),
    ]  # fmt: skip
    c = Change(state, ANA, NOW + timedelta(minutes=11), RULES)
    assign(c, Assign(command_id="a1", ticket_id="T-000001", tech_id="bob"))
    breached = clock_alerts(state, NOW + timedelta(minutes=16), timedelta(minutes=10), AUTO)
    assert [n.body for n in worded(breached, state) if n.level == "failure"] == [
        "P1 T-000003 Phones dead at Gamma (INC-1) — response SLA breached (due 09:15 UTC), nobody assigned:"
        " assign it now"
    ]
    # Without --notify URLs nobody hears of them.
    assert worded(breached, state, operators=()) == []


def test_many_alerts_of_one_kind_in_one_batch_are_one_message() -> None:
    state = DispatchState()
    c = Change(state, ANA, NOW, RULES)
    for n in range(12):
        create_ticket(c, CreateTicket(command_id=f"c{n}", title=f"Site {n} down", client="Acme Corp",
                                      priority=Priority.P1))  # fmt: skip
    alerts = clock_alerts(state, NOW + timedelta(minutes=16), timedelta(minutes=10), AUTO)
    found = worded(alerts, state)
    assert [n.title for n in found] == ["12 SLA breaches", "12 P1 tickets unassigned too long"]
    breaches = found[0].body.splitlines()
    assert breaches[0] == "12 SLA breaches; look at the board:"
    assert breaches[1].startswith("P1 T-000001 Site 0 down at Acme Corp — response SLA breached")
    assert breaches[-1] == "… and 7 more"


def test_a_burst_and_a_callout_name_what_they_are_about() -> None:
    state = floor()
    ids = [f"T-{n:06d}" for n in range(40, 47)]
    burst = BurstEvent(seq=state.seq + 1, ts=NOW, actor="auto", kind="burst_detected", group="client",
                       value="Acme Corp", ticket_ids=ids, window_minutes=10)  # fmt: skip
    assert [(n.title, n.body) for n in worded([burst], state)] == [
        ("Burst: 7 tickets from client Acme Corp",
         "7 tickets in 10 min from client Acme Corp (T-000040, T-000041, T-000042, T-000043, T-000044, …)"
         " — likely one outage: group them in an incident and tell the client"),
    ]  # fmt: skip
    c = Change(state, ANA, NOW, RULES)
    set_tech_status(c, SetTechStatus(command_id="s1", tech_id="alice", status=TechStatus.OFF_SHIFT))
    c = Change(state, AUTO, NOW, RULES)
    send_callout(c, "alice", "T-000003", "P1 waiting, nobody free")
    assert [(n.to, n.body) for n in worded(c.events, state)] == [
        ((ALICE_URL,),
         "Call-out CO-1: you are asked to come in for P1 T-000003 Phones dead at Gamma (INC-1) — accept or decline"
         " by 09:05 UTC: dispatch callout accept CO-1"),
        (OPERATORS,
         "Call-out CO-1 sent to alice for P1 T-000003 Phones dead at Gamma (INC-1) — waiting for an answer until"
         " 09:05 UTC; if none comes, call the next person"),
    ]  # fmt: skip


def test_a_client_update_goes_to_each_clients_contacts_about_its_own_tickets() -> None:
    state = floor()
    c = Change(state, ANA, NOW, RULES)
    ack = update_clients(c, UpdateClients(command_id="u1", incident_id="INC-1", message="The ISP is on site."))
    assert ack.ticket_ids == ["T-000001", "T-000002", "T-000003"]
    assert [(e.kind, e.ticket.id, e.note, e.reason) for e in c.events] == [  # type: ignore[union-attr]
        ("client_updated", "T-000001", "The ISP is on site.", "sent to 2 contacts of Acme Corp"),
        ("client_updated", "T-000002", "The ISP is on site.", "sent to 1 contact of Beta Ltd"),
        ("client_updated", "T-000003", "The ISP is on site.", "Gamma has no contacts in the SLA file: sent to nobody"),
    ]
    # Gamma has no contacts: no message for it.
    assert [(n.to, n.title, n.body) for n in worded(c.events, state, operators=())] == [
        (("mailto://it@acme.example", "ntfys://ntfy.sh/acme-outages"), "Update for Acme Corp: ISP outage (INC-1)",
         "The ISP is on site.\n\nYour open tickets: T-000001 VPN down"),
        (("mailto://ops@beta.example",), "Update for Beta Ltd: ISP outage (INC-1)",
         "The ISP is on site.\n\nYour open tickets: T-000002 Mail slow"),
    ]  # fmt: skip


def test_a_technicians_url_is_kept_out_of_everything_a_board_receives() -> None:
    state = floor()
    alice = state.technicians["alice"]
    assert alice.notify == ALICE_URL
    c = Change(state, ANA, NOW, RULES)
    set_tech_status(c, SetTechStatus(command_id="s1", tech_id="alice", status=TechStatus.BREAK))
    snapshot = Snapshot(seq=state.seq, tickets=[], technicians=list(state.technicians.values()), incidents=[])
    for text in (alice.model_dump_json(), c.events[0].model_dump_json(), snapshot.model_dump_json(), repr(alice)):
        assert "s3cret" not in text
    # ... while the server's own copy keeps it through every change.
    assert state.technicians["alice"].notify == ALICE_URL


# --- the queue, its retries and its bound, with a stand-in sender ----------------------------------------


class FakeSender:
    """Answers each try from `answers` (None: delivered; text: a failure; an exception: raised), then
    delivers; `hold` makes every try wait until it is set."""

    def __init__(self, *answers: str | Exception | None) -> None:
        self.answers = list(answers)
        self.tries: list[tuple[str, str]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, url: str, notice: Notice, timeout_s: float) -> str | None:
        self.tries.append((url, notice.title))
        await self.hold.wait()
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer


def one_assignment() -> Committed:
    state = floor()
    c = Change(state, ANA, NOW, RULES)
    assign(c, Assign(command_id="a1", ticket_id="T-000001", tech_id="alice"))
    return Committed(c.events, [("assign", "ok")], 0.001)


def fast(**options: Any) -> ServerSettings:
    return ServerSettings(notify_backoff_s=0.001, **options)


async def test_a_failed_message_is_retried_with_backoff_until_it_goes_out() -> None:
    committed = one_assignment()
    send = FakeSender("HTTP 503", "connection refused")
    notifier = Notifier(fast(), floor(), send)
    notifier.start()
    notifier.watch(committed)
    await until(lambda: notifier.sent == 1)
    assert send.tries == [(ALICE_URL, "P1 T-000001 assigned to you")] * 3
    assert notifier.failures == 0
    await notifier.stop(timeout(1))


async def test_a_message_that_keeps_failing_is_one_log_line_and_one_failure(caplog: pytest.LogCaptureFixture) -> None:
    send = FakeSender(*["HTTP 500"] * 10)
    notifier = Notifier(fast(notify_retries=2), floor(), send)
    notifier.start()
    with caplog.at_level(logging.WARNING, logger="dispatch.server"):
        notifier.watch(one_assignment())
        await until(lambda: notifier.failures == 1)
    assert len(send.tries) == 3 and notifier.sent == 0
    (line,) = [r.getMessage() for r in caplog.records if "notification" in r.getMessage()]
    # Where (not the topic: as good as a password), what it was about, and why.
    assert line == "notification not sent to ntfys://ntfy.sh/… after 3 tries (T-000001 assigned to alice): HTTP 500"
    await notifier.stop(timeout(1))


async def test_an_unusable_url_is_not_retried() -> None:
    send = FakeSender(Undeliverable("apprise cannot use this URL"))
    notifier = Notifier(fast(), floor(), send)
    notifier.start()
    notifier.watch(one_assignment())
    await until(lambda: notifier.failures == 1)
    assert len(send.tries) == 1
    await notifier.stop(timeout(1))


async def test_the_queue_is_bounded_and_a_stop_waits_only_so_long(caplog: pytest.LogCaptureFixture) -> None:
    send = FakeSender()
    send.hold.clear()  # every endpoint hangs
    notifier = Notifier(fast(notify_queue=3), floor(), send)
    notifier.start()
    for busy in range(1, WORKERS + 1):
        notifier.watch(one_assignment())
        await until(lambda: len(send.tries) == busy)  # noqa: B023 (awaited before the loop moves on)
    with caplog.at_level(logging.WARNING, logger="dispatch.server"):
        for _ in range(20):
            notifier.watch(one_assignment())  # never blocks: the writer calls this
    # Every worker hangs in its first try, 3 wait in the queue, the rest were dropped (one line says so).
    assert notifier.queue.qsize() == 3
    assert notifier.dropped == 17 == notifier.failures
    assert [r.getMessage() for r in caplog.records] == [
        "notifications: 3 waiting, the most allowed: new ones are dropped until some go out"
        " (T-000001 assigned to alice)"
    ]
    await notifier.stop(0.05)
    assert notifier.failures == WORKERS + 20 and notifier.sent == 0


# --- the real server, apprise and an HTTP endpoint on loopback ------------------------------------------


class Endpoint:
    """A plain HTTP server on 127.0.0.1 taking apprise's `json://` POSTs; `hold` cleared makes it hang
    (it reads the request and does not answer until the hold is set again)."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.arrived = 0
        self.hold = asyncio.Event()
        self.hold.set()

    def url(self, path: str, options: str = "") -> str:
        return f"json://127.0.0.1:{self.port}/{path}" + (f"?{options}" if options else "")

    def to(self, path: str) -> list[dict[str, Any]]:
        return [body for where, body in self.received if where == f"/{path}"]

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            length = next(int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:"))
            body = json.loads(await reader.readexactly(length))
            self.arrived += 1
            await self.hold.wait()
            self.received.append((head[0].split()[1], body))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def endpoint_running() -> AsyncIterator[Endpoint]:
    endpoint = Endpoint()
    server = await asyncio.start_server(endpoint._answer, "127.0.0.1", 0)
    endpoint.port = server.sockets[0].getsockname()[1]
    try:
        yield endpoint
    finally:
        endpoint.hold.set()
        server.close()
        await server.wait_closed()


async def test_a_technicians_phone_hears_of_their_assignment_also_after_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    async with endpoint_running() as endpoint:
        # A URL with a password in it, as a phone's often has a token.
        secret_url = endpoint.url("alice").replace("json://", "json://alice:s3cret@")
        async with running_server(tmp_path, clock) as server:
            ana = await Session.open(server.url, server.tokens["ana"])
            ana.frames = []
            await ana.ok({**tech_frame("alice", ["network"]), "notify": secret_url})
            await ana.ok(ticket_frame("VPN down", client="Acme Corp", priority="P1"))
            await ana.ok({"type": "create_incident", "title": "ISP outage", "ticket_ids": ["T-000001"]})
            await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
            await until(lambda: len(endpoint.to("alice")) == 1)
            # The first frames seen by boards never carry the URL; a new board's snapshot does not either.
            wall = await Session.open(server.url, server.tokens["ana"])
            await wall.close()
            assert "s3cret" not in json.dumps([ana.frames, wall.snapshot])
            await ana.close()
        assert endpoint.to("alice") == [
            {"version": "1.0", "title": "P1 T-000001 assigned to you",
             "message": "P1 T-000001 VPN down at Acme Corp (INC-1) — assigned to you, resolve by 12:00 UTC",
             "attachments": [], "type": "info"},
        ]  # fmt: skip
        # The URL is the server's to keep: it survives a restart.
        async with running_server(tmp_path, clock) as server:
            ana = await Session.open(server.url, server.tokens["ana"])
            await ana.ok(ticket_frame("Printer jam", client="Acme Corp", priority="P3"))
            await ana.ok({"type": "assign", "ticket_id": "T-000002", "tech_id": "alice"})
            await until(lambda: len(endpoint.to("alice")) == 2)
            await ana.close()
            assert server.server.notifier.sent == 1 and server.server.notifier.failures == 0
        assert endpoint.to("alice")[1]["title"] == "P3 T-000002 assigned to you"


async def test_the_operator_hears_of_escalations_breaches_bursts_and_callouts(tmp_path: Path) -> None:
    clock = ManualClock()
    async with endpoint_running() as endpoint:
        async with running_server(tmp_path, clock, notify=(endpoint.url("ops"),), burst_threshold=3) as server:
            ana = await Session.open(server.url, server.tokens["ana"])
            await ana.ok(tech_frame("bob"))
            await ana.ok({"type": "set_tech_status", "tech_id": "bob", "status": "off_shift"})
            await ana.ok({"type": "callout", "tech_id": "bob", "reason": "core switch down"})
            for n in range(3):
                await ana.ok(ticket_frame(f"Phones down {n}", client="Acme Dental", priority="P3"))
            await ana.ok(ticket_frame("Core router down", client="Initech", priority="P1"))
            clock.advance(minutes=10)
            await ana.until_event(lambda e: e["kind"] == "escalation")
            clock.advance(minutes=6)
            await ana.until_event(lambda e: e["kind"] == "sla_breached")
            await until(lambda: len(endpoint.to("ops")) == 4)
            await ana.close()
    # Four workers send at once: the order they arrive in is not fixed.
    received = {body["title"]: (body["type"], body["message"]) for body in endpoint.to("ops")}
    assert received == {
        "Call-out CO-1 sent to bob": ("info", "Call-out CO-1 sent to bob (core switch down) — waiting for an answer"
                                      " until 08:05 UTC; if none comes, call the next person"),
        "Burst: 3 tickets from client Acme Dental": ("warning", "3 tickets in 10 min from client Acme Dental"
            " (T-000001, T-000002, T-000003) — likely one outage: group them in an incident and tell the client"),
        "P1 T-000004 unassigned": ("warning", "P1 T-000004 Core router down at Initech — unassigned for 10 min,"
                                   " respond by 08:15 UTC: assign it now"),
        "SLA breached: P1 T-000004": ("failure", "P1 T-000004 Core router down at Initech — response SLA breached"
                                      " (due 08:15 UTC), nobody assigned: assign it now"),
    }  # fmt: skip


async def test_update_clients_reaches_every_contact_and_is_in_the_history(tmp_path: Path) -> None:
    async with endpoint_running() as endpoint:
        contracts = Contracts.parse(
            f"""
[clients."Acme Corp"]
contacts = ["{endpoint.url("acme-it")}", "{endpoint.url("acme-boss")}"]

[clients."Beta Ltd"]
contacts = ["{endpoint.url("beta")}"]
""",
            "sla.toml",
        )
        async with running_server(tmp_path, ManualClock(), contracts=contracts) as server:
            ana = await Session.open(server.url, server.tokens["ana"])
            for title, client in [("VPN down", "Acme Corp"), ("Mail down", "Acme Corp"), ("VPN down", "Beta Ltd"),
                                  ("Phones", "Gamma"), ("Closed one", "Beta Ltd")]:  # fmt: skip
                await ana.ok(ticket_frame(title, client=client, priority="P2"))
            ids = [f"T-00000{n}" for n in range(1, 6)]
            await ana.ok({"type": "create_incident", "title": "ISP outage", "ticket_ids": ids})
            await ana.ok({"type": "set_status", "ticket_id": "T-000005", "status": "cancelled"})
            message = "Our ISP has a fibre cut near the office; their engineer is on site. Next update 15:00."
            ack = await ana.ok({"type": "update_clients", "incident_id": "INC-1", "message": message})
            # Only the open tickets are updated (T-000005 is closed).
            assert ack["incident_id"] == "INC-1" and ack["ticket_ids"] == ids[:4]
            await until(lambda: len(endpoint.received) == 3)
            history = await ana.ok({"type": "history", "ticket_id": "T-000004"})
            (update,) = [e for e in history["events"] if e["kind"] == "client_updated"]
            assert update["note"] == message and update["actor"] == "ana"
            assert update["reason"] == "Gamma has no contacts in the SLA file: sent to nobody"
            # A technician, a viewer: may not.
            alice = await Session.open(server.url, server.tokens["alice"])
            refused = await alice.call({"type": "update_clients", "incident_id": "INC-1", "message": "hi"})
            assert (refused["code"], refused["message"]) == ("forbidden", "a technician may not update clients")
            await alice.close()
            missing = await ana.call({"type": "update_clients", "incident_id": "INC-9", "message": "hi"})
            assert (missing["code"], missing["message"]) == ("not_found", "no incident INC-9")
            await ana.close()
    acme = "Your open tickets: T-000001 VPN down; T-000002 Mail down"
    assert endpoint.to("acme-it") == endpoint.to("acme-boss") == [
        {"version": "1.0", "title": "Update for Acme Corp: ISP outage (INC-1)", "message": f"{message}\n\n{acme}",
         "attachments": [], "type": "info"},
    ]  # fmt: skip
    assert [b["message"] for b in endpoint.to("beta")] == [f"{message}\n\nYour open tickets: T-000003 VPN down"]


async def test_the_writer_keeps_acking_while_the_endpoint_hangs(tmp_path: Path) -> None:
    commands = 200
    async with endpoint_running() as endpoint:
        endpoint.hold.clear()
        async with running_server(
            tmp_path, ManualClock(), rate_limit=0.0, notify_queue=8, notify_timeout_s=60.0, notify_drain_s=0.1
        ) as server:
            notifier = server.server.notifier
            ana = await Session.open(server.url, server.tokens["ana"])
            await ana.ok({**tech_frame("alice", capacity=100), "notify": endpoint.url("alice", "rto=60")})
            await ana.ok(ticket_frame("first", priority="P3"))
            await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
            await until(lambda: endpoint.arrived == 1)  # the endpoint has it, and does not answer
            # Open and assign tickets as fast as the connection takes them, every message to the hung phone.
            sent: list[str] = []
            for n in range(2, commands // 2 + 2):
                sent.append(str(await ana.send(ticket_frame(f"ticket {n}", priority="P3"))))
                sent.append(str(await ana.send({"type": "assign", "ticket_id": f"T-{n:06d}", "tech_id": "alice"})))
            replies = [await ana.reply_to(command_id) for command_id in sent]
            assert [r["type"] for r in replies] == ["ack"] * commands
            # The messages waited in a bounded queue (the rest were dropped and counted), none went out.
            assert notifier.queue.qsize() <= 8
            assert notifier.dropped >= commands // 2 - 8 - WORKERS
            assert endpoint.received == [] and notifier.sent == 0
            await ana.close()
        # The stop gave them a bounded time; everything not delivered counts as a failure.
        assert notifier.failures == commands // 2 + 1 - notifier.sent


async def test_the_command_line_adds_a_url_and_updates_clients(tmp_path: Path) -> None:
    async with endpoint_running() as endpoint:
        contracts = Contracts.parse(f'[clients.Acme]\ncontacts = ["{endpoint.url("acme")}"]\n', "sla.toml")
        async with running_server(tmp_path, ManualClock(), contracts=contracts) as server:
            ana = await Session.open(server.url, server.tokens["ana"])

            async def dispatch(*args: str) -> tuple[int, str, str]:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "dispatch", *args, "--server", server.url, "--token", server.tokens["ana"],
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(process.communicate(), timeout(30))
                assert process.returncode is not None
                return process.returncode, out.decode(), err.decode()

            added = await dispatch("tech", "add", "alice", "--name", "Alice", "--notify", endpoint.url("alice"))
            assert added[0] == 0, added
            assert (await dispatch("tech", "add", "bob", "--name", "Bob", "--notify", "not a url"))[:2] == (1, "")
            for client in ("Acme", "Beta"):
                await ana.ok(ticket_frame("VPN down", client=client, priority="P1"))
            await ana.ok({"type": "create_incident", "title": "ISP", "ticket_ids": ["T-000001", "T-000002"]})
            await ana.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
            code, out, err = await dispatch("incident", "update", "INC-1", "--message", "Fibre cut; ETA 15:00")
            assert (code, err) == (0, ""), err
            assert out.splitlines() == [
                "INC-1: update recorded on 2 open tickets",
                "  sent to 1 contact of Acme (T-000001)",
                "  Beta has no contacts in the SLA file: sent to nobody (T-000002)",
            ]
            assert (await dispatch("incident", "update", "INC-7", "--message", "x"))[0] == 4
            await until(lambda: len(endpoint.to("acme")) == 1 and len(endpoint.to("alice")) == 1)
            await ana.close()
    assert endpoint.to("acme")[0]["message"] == "Fibre cut; ETA 15:00\n\nYour open tickets: T-000001 VPN down"
