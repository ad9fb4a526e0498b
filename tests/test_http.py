"""HTTP intake and /metrics (`serve --http-port`), against the real server with a real HTTP client.

Each route gets good, duplicate, malformed, oversized and unauthorised input. The alert payloads in
tests/alert_payloads/ are written after Alertmanager's (webhook version 4) and Grafana's (alerting
webhook) documentation. Every answer comes after its commit, so the server's state is checked right
after it; nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dispatch.core.models import Priority, Role
from server.http import MAX_BODY_BYTES, SourceAlert, alert_client, alert_title, priority_of
from tests.inprocess import ManualClock, Running, running_server
from tests.support import ServerProcess, Session, tech_frame, timeout
from tests.test_operator import run_cli

PAYLOADS = Path(__file__).resolve().parent / "alert_payloads"
INTAKE = "token-am"  # an intake token, as Alertmanager would hold
VIEWER = "token-wall"
DISPATCHER = "token-ana"
TECHNICIAN = "token-alice"
POST_ROUTES = ("/v1/tickets", "/v1/alerts/alertmanager", "/v1/alerts/grafana")


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Intake:
    """A running server with its HTTP listener, and a client for it."""

    running: Running
    http: aiohttp.ClientSession

    async def post(self, path: str, body: Any = None, token: str | None = INTAKE, *,
                   data: Any = None, headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
        sent = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        if data is None:
            data = json.dumps(body).encode()
        async with self.http.post(path, data=data, headers=sent) as response:
            return await _answer(response)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        async with self.http.get(path, headers=headers or {}) as response:
            return await _answer(response)

    @property
    def state_seq(self) -> int:
        return self.running.server.state.seq

    def tickets(self) -> dict[str, Any]:
        return dict(self.running.server.state.tickets)


async def _answer(response: aiohttp.ClientResponse) -> Answer:
    text = await response.text()
    body: Any = json.loads(text) if response.content_type == "application/json" else text
    return Answer(response.status, body, dict(response.headers))


@asynccontextmanager
async def serving(tmp_path: Path, **options: Any) -> AsyncIterator[Intake]:
    """The server with `--http-port 0` (and `options`), an intake token `am` and a viewer token `wall`."""
    async with running_server(tmp_path, ManualClock(), http_port=0, **options) as running:
        storage = running.server.storage
        await storage.create_token("am", Role.INTAKE, None, INTAKE)
        await storage.create_token("wall", Role.VIEWER, None, VIEWER)
        assert running.server.http_url is not None
        client_timeout = aiohttp.ClientTimeout(total=timeout(10))
        async with aiohttp.ClientSession(base_url=running.server.http_url, timeout=client_timeout) as http:
            yield Intake(running, http)


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    async with serving(tmp_path) as served:
        yield served


async def history_notes(intake: Intake, ticket_id: str) -> list[str]:
    """The notes in a ticket's stored history, read over the websocket as a board would."""
    session = await Session.open(intake.running.url, DISPATCHER)
    try:
        history = await session.ok({"type": "history", "ticket_id": ticket_id})
    finally:
        await session.close()
    return [e["note"] for e in history["events"] if e["kind"] == "note_added"]


# --- POST /v1/tickets ----------------------------------------------------------------------------------------


async def test_a_ticket_is_created_then_a_second_report_with_its_key_is_a_duplicate(intake: Intake) -> None:
    board = await Session.open(intake.running.url, DISPATCHER)
    report = {"title": "Printer jammed", "client": "Acme", "priority": "P3", "dedupe_key": "acme-prn-2"}
    first = await intake.post("/v1/tickets", report)
    assert (first.status, first.body) == (201, {"ticket_id": "T-000001", "deduplicated": False})
    # The same event reached the board as a websocket command's would, from the intake token.
    created = await board.until_event(lambda e: e["kind"] == "ticket_created")
    assert created["actor"] == "am" and created["ticket"]["title"] == "Printer jammed"
    again = await intake.post("/v1/tickets", report)
    assert (again.status, again.body) == (200, {"ticket_id": "T-000001", "deduplicated": True})
    tickets = intake.tickets()
    assert list(tickets) == ["T-000001"] and tickets["T-000001"].duplicates == 1
    await board.close()


@pytest.mark.parametrize("how", ["Idempotency-Key", "command_id"])
async def test_a_retried_request_gets_its_first_answer_and_applies_once(intake: Intake, how: str) -> None:
    report: dict[str, Any] = {"title": "Laptop will not boot", "client": "Globex", "priority": "P2"}
    headers = {"Idempotency-Key": "intake-retry-1"} if how == "Idempotency-Key" else {}
    if how == "command_id":
        report["command_id"] = "intake-retry-1"
    first = await intake.post("/v1/tickets", report, headers=headers)
    seq = intake.state_seq
    retry = await intake.post("/v1/tickets", report, headers=headers)
    assert first.status == retry.status == 201 and first.body == retry.body == {
        "ticket_id": "T-000001", "deduplicated": False
    }  # fmt: skip
    assert intake.state_seq == seq and list(intake.tickets()) == ["T-000001"]
    # Without a key or a dedupe_key, the same report again is a second report.
    other = await intake.post("/v1/tickets", {"title": "Laptop will not boot", "client": "Globex", "priority": "P2"})
    assert other.body["ticket_id"] == "T-000002"


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (b"{not json", 400, "the body is not valid JSON"),
        (b"[1, 2]", 400, "the body must be a JSON object of create_ticket's fields"),
        (b'{"client": "Acme", "priority": "P2"}', 400, "title: Field required"),
        (b'{"title": "x", "client": "Acme", "priority": "P9"}', 400, "priority: Input should be 'P1', 'P2', 'P3'"),
        (b'{"title": "x", "client": "Acme", "priority": "P2", "colour": "red"}', 400, "colour: Extra inputs"),
        (b'{"title": "x", "client": "Acme", "priority": "P2", "type": "assign"}', 400, "type: Input should be"),
        # Refused by the rules, after the writer has looked: the same "nothing applied".
        (b'{"title": "x", "client": "Acme", "priority": "P2", "incident_id": "INC-9"}', 404, "no incident INC-9"),
    ],
)  # fmt: skip
async def test_a_malformed_ticket_is_refused_with_its_reason_and_changes_nothing(
    intake: Intake, data: bytes, status: int, error: str
) -> None:
    answer = await intake.post("/v1/tickets", data=data)
    assert answer.status == status and error in answer.body["error"], answer
    assert list(answer.body) == ["error"]
    assert intake.state_seq == 0 and intake.tickets() == {}


# --- POST /v1/alerts/alertmanager ------------------------------------------------------------------------------


async def test_alertmanager_alerts_open_one_ticket_each_and_a_resend_opens_none(intake: Intake) -> None:
    first = await intake.post("/v1/alerts/alertmanager", payload("alertmanager_firing"))
    assert first.status == 200
    assert first.body == {
        "tickets": [
            {"index": 0, "ticket_id": "T-000001", "outcome": "created"},
            {"index": 1, "ticket_id": "T-000002", "outcome": "created"},
            {"index": 2, "ticket_id": "T-000003", "outcome": "created"},
        ],
        "skipped": [],
    }
    tickets = intake.tickets()
    seen = [(t.title, t.client, t.priority, t.dedupe_key) for t in tickets.values()]
    assert seen == [
        ("VPN gateway unreachable at Acme Corp", "Acme Corp", Priority.P1, "3f6a1c0e9b2d4a71"),  # summary, critical
        ("DiskFilling", "Globex", Priority.P3, "a07d52e8c4419b3e"),  # no summary: the alert's name; warning
        ("Nightly backup has not finished", "unknown", Priority.P4, "c2b8e61f05d7a394"),  # no client, no severity
    ]
    again = await intake.post("/v1/alerts/alertmanager", payload("alertmanager_firing"))
    assert again.status == 200 and [t["outcome"] for t in again.body["tickets"]] == ["deduplicated"] * 3
    assert [t["ticket_id"] for t in again.body["tickets"]] == ["T-000001", "T-000002", "T-000003"]
    assert list(intake.tickets()) == list(tickets)
    assert [t.duplicates for t in intake.tickets().values()] == [1, 1, 1]


async def test_a_resolved_alert_notes_its_open_ticket_once(intake: Intake) -> None:
    await intake.post("/v1/alerts/alertmanager", payload("alertmanager_firing"))
    expected = {
        "tickets": [{"index": 0, "ticket_id": "T-000001", "outcome": "cleared"}],
        "skipped": [{"index": 1, "reason": "resolved, and no open ticket has fingerprint 9e41d07b6c23f58a"}],
    }
    # A dispatcher token: the roles allow an intake token to open tickets, not to write notes (below).
    cleared = await intake.post("/v1/alerts/alertmanager", payload("alertmanager_resolved"), DISPATCHER)
    assert (cleared.status, cleared.body) == (200, expected)
    seq = intake.state_seq
    resent = await intake.post("/v1/alerts/alertmanager", payload("alertmanager_resolved"), DISPATCHER)
    assert (resent.status, resent.body) == (200, expected)
    assert intake.state_seq == seq
    assert await history_notes(intake, "T-000001") == ["cleared at source"]
    assert intake.tickets()["T-000001"].is_open  # noted, not closed: a person decides that


async def test_an_intake_token_notes_a_resolved_alert_as_monitoring_does(intake: Intake) -> None:
    await intake.post("/v1/alerts/alertmanager", payload("alertmanager_firing"))
    answer = await intake.post("/v1/alerts/alertmanager", payload("alertmanager_resolved"))
    assert answer.status == 200
    assert answer.body["tickets"] == [{"index": 0, "ticket_id": "T-000001", "outcome": "cleared"}]
    assert answer.body["skipped"][0]["index"] == 1  # its ticket was never opened


async def test_an_alert_that_cannot_become_a_ticket_is_skipped_and_the_others_are_not(intake: Intake) -> None:
    body = payload("alertmanager_firing")
    body["alerts"][1]["fingerprint"] = "\x07\x08"  # nothing left once cleaned: no key to de-duplicate on
    answer = await intake.post("/v1/alerts/alertmanager", body)
    assert answer.status == 200 and [t["index"] for t in answer.body["tickets"]] == [0, 2]
    assert answer.body["skipped"] == [{"index": 1, "reason": "dedupe_key: Value error, must not be empty"}]
    assert len(intake.tickets()) == 2


def _alertmanager_with(change: str) -> Any:
    body: Any = payload("alertmanager_firing")
    if change == "version 3":
        body["version"] = "3"
    elif change == "no alerts":
        del body["alerts"]
    elif change == "pending":
        body["alerts"][0]["status"] = "pending"
    elif change == "no fingerprint":
        del body["alerts"][1]["fingerprint"]
    elif change == "labels a list":
        body["alerts"][2]["labels"] = ["alertname"]
    elif change == "a list":
        body = [body]
    return body


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("version 3", "version: Input should be '4'"),
        ("no alerts", "alerts: Field required"),
        ("pending", "alerts.0.status: Input should be 'firing' or 'resolved'"),
        ("no fingerprint", "alerts.1.fingerprint: Field required"),
        ("labels a list", "alerts.2.labels: Input should be a valid dictionary"),
        ("a list", "body: Input should be a valid dictionary"),
    ],
)
async def test_an_alertmanager_payload_of_the_wrong_shape_gets_400_and_nothing_applied(
    intake: Intake, change: str, error: str
) -> None:
    answer = await intake.post("/v1/alerts/alertmanager", _alertmanager_with(change))
    assert answer.status == 400 and answer.body["error"].startswith(error), answer
    assert intake.state_seq == 0 and intake.tickets() == {}


# --- POST /v1/alerts/grafana -----------------------------------------------------------------------------------


async def test_grafana_alerts_are_mapped_the_same_way_with_the_client_label_chosen(tmp_path: Path) -> None:
    async with serving(tmp_path, client_label="tenant") as intake:
        first = await intake.post("/v1/alerts/grafana", payload("grafana_firing"))
        assert first.status == 200 and first.body["skipped"] == []
        assert [(t["ticket_id"], t["outcome"]) for t in first.body["tickets"]] == [
            ("T-000001", "created"), ("T-000002", "created")
        ]  # fmt: skip
        seen = [(t.title, t.client, t.priority) for t in intake.tickets().values()]
        assert seen == [
            ("Print queue stuck at Umbrella Leeds", "Umbrella Ltd", Priority.P4),
            ("Core switch sw-york-core-01 not answering", "Umbrella Ltd", Priority.P1),
        ]
        again = await intake.post("/v1/alerts/grafana", payload("grafana_firing"))
        assert [t["outcome"] for t in again.body["tickets"]] == ["deduplicated", "deduplicated"]
        assert len(intake.tickets()) == 2
        cleared = await intake.post("/v1/alerts/grafana", payload("grafana_resolved"), DISPATCHER)
        assert cleared.body == {"tickets": [{"index": 0, "ticket_id": "T-000002", "outcome": "cleared"}], "skipped": []}
        await intake.post("/v1/alerts/grafana", payload("grafana_resolved"), DISPATCHER)
        assert await history_notes(intake, "T-000002") == ["cleared at source"]
        seq = intake.state_seq
        broken = payload("grafana_firing")
        broken["alerts"] = {"status": "firing"}
        wrong = await intake.post("/v1/alerts/grafana", broken)
        assert wrong.status == 400 and wrong.body["error"].startswith("alerts: Input should be a valid list")
        assert intake.state_seq == seq


# --- on every intake route: size, tokens, rate ---------------------------------------------------------------


@pytest.mark.parametrize("route", POST_ROUTES)
async def test_a_body_over_one_mib_gets_413_and_changes_nothing(intake: Intake, route: str) -> None:
    oversized = b'{"title": "' + b"x" * MAX_BODY_BYTES + b'"}'
    answer = await intake.post(route, data=oversized)
    assert (answer.status, answer.body) == (413, {"error": f"the body is over {MAX_BODY_BYTES} bytes"})

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for start in range(0, len(oversized), 64 * 1024):
            yield oversized[start : start + 64 * 1024]

    streamed = await intake.post(route, data=chunks())
    assert streamed.status == 413 and "over" in streamed.body["error"]
    assert intake.state_seq == 0


async def test_a_body_of_exactly_one_mib_is_read(intake: Intake) -> None:
    report = json.dumps({"title": "Printer jammed", "client": "Acme", "priority": "P3"}).encode()
    answer = await intake.post("/v1/tickets", data=report + b" " * (MAX_BODY_BYTES - len(report)))
    assert answer.status == 201


@pytest.mark.parametrize("route", POST_ROUTES)
async def test_requests_without_an_intake_or_dispatcher_token_are_refused(intake: Intake, route: str) -> None:
    ticket = {"title": "x", "client": "A", "priority": "P1"}
    body = payload("alertmanager_firing") if "alertmanager" in route else ticket
    for token, headers, status, error in [
        (None, {}, 401, "an Authorization: Bearer <token> header is required"),
        (None, {"Authorization": f"Basic {INTAKE}"}, 401, "an Authorization: Bearer <token> header is required"),
        ("not-a-token", {}, 401, "bad or revoked token"),
        (VIEWER, {}, 403, "a viewer token may not send tickets or alerts"),
        (TECHNICIAN, {}, 403, "a technician token may not send tickets or alerts"),
    ]:
        answer = await intake.post(route, body, token, headers=headers)
        assert (answer.status, answer.body) == (status, {"error": error}), (token, headers)
        if status == 401:
            assert answer.headers["WWW-Authenticate"] == 'Bearer realm="dispatch"'
    await intake.running.server.storage.revoke_token("am")
    revoked = await intake.post(route, body)
    assert (revoked.status, revoked.body) == (401, {"error": "bad or revoked token"})
    assert intake.state_seq == 0


async def test_over_its_rate_a_token_gets_429_and_other_tokens_go_on(tmp_path: Path) -> None:
    # One request per 100 s, in bursts of one: the second request cannot be let through, however slow
    # the machine.
    async with serving(tmp_path, rate_limit=0.01) as intake:
        report = {"title": "Email down", "client": "Acme", "priority": "P2"}
        assert (await intake.post("/v1/tickets", report)).status == 201
        refused = await intake.post("/v1/alerts/alertmanager", payload("alertmanager_firing"))
        assert refused.status == 429 and refused.headers["Retry-After"] == "1"
        assert refused.body["error"].startswith("over 0.01 requests/s for this token: nothing applied")
        assert list(intake.tickets()) == ["T-000001"]
        assert (await intake.post("/v1/tickets", report, DISPATCHER)).status == 201


# --- GET /metrics and /healthz ---------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, parsed by prometheus-client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_show_the_queue_the_commands_and_the_breaches(intake: Intake) -> None:
    empty = await intake.get("/metrics")
    assert empty.status == 200 and empty.headers["Content-Type"].startswith("text/plain")
    before = _samples(empty.body)
    assert [_value(before, "dispatch_open_tickets", priority=p.value) for p in Priority] == [0, 0, 0, 0]

    board = await Session.open(intake.running.url, DISPATCHER)
    wall = await Session.open(intake.running.url, VIEWER)
    await intake.post("/v1/alerts/alertmanager", payload("alertmanager_firing"))  # P1, P3, P4
    await intake.post("/v1/tickets", {"title": "x", "client": "Acme", "priority": "P2", "incident_id": "INC-9"})
    await board.ok(tech_frame("bob"))
    await board.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "bob"})
    # Three days on, every target has run out.
    intake.running.clock.advance(days=3)
    await intake.running.clock_looked()
    await board.until_seq(intake.state_seq)
    breaches = sum(1 for e in board.events if e["kind"] == "sla_breached")
    assert breaches > 0

    samples = _samples((await intake.get("/metrics")).body)
    assert {p.value: _value(samples, "dispatch_open_tickets", priority=p.value) for p in Priority} == {
        "P1": 1, "P2": 0, "P3": 1, "P4": 1
    }  # fmt: skip
    assert {p.value: _value(samples, "dispatch_unassigned_tickets", priority=p.value) for p in Priority} == {
        "P1": 0, "P2": 0, "P3": 1, "P4": 1
    }  # fmt: skip
    assert _value(samples, "dispatch_commands_total", type="create_ticket", outcome="ok") == 3
    assert _value(samples, "dispatch_commands_total", type="create_ticket", outcome="not_found") == 1
    assert _value(samples, "dispatch_commands_total", type="assign", outcome="ok") == 1
    assert _value(samples, "dispatch_sla_breaches_total") == breaches
    # No --notify URL and no technician's URL here: nothing sent, nothing failed, both listed.
    assert [_value(samples, "dispatch_notifications_total", outcome=o) for o in ("sent", "failed")] == [0, 0]
    assert {r.value: _value(samples, "dispatch_connections", role=r.value) for r in Role} == {
        "dispatcher": 1, "technician": 0, "intake": 0, "viewer": 1
    }  # fmt: skip
    # Every batch that answered someone was timed: three POSTs' and two websocket commands' at least.
    assert _value(samples, "dispatch_commit_seconds_count") >= 4
    assert _value(samples, "dispatch_commit_seconds_bucket", le="+Inf") == _value(
        samples, "dispatch_commit_seconds_count"
    )
    assert _value(samples, "dispatch_http_requests_total", route="/v1/alerts/alertmanager", code="200") == 1
    assert _value(samples, "dispatch_http_requests_total", route="/v1/tickets", code="404") == 1
    await board.close()
    await wall.close()


async def test_metrics_through_a_proxy_or_from_elsewhere_need_a_live_token(intake: Intake) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    refused = await intake.get("/metrics", forwarded)
    assert refused.status == 401 and "Authorization: Bearer" in refused.body["error"]
    bad = await intake.get("/metrics", {**forwarded, "Authorization": "Bearer not-a-token"})
    assert bad.status == 401
    # Any role may read them: they say nothing a viewer's board does not show.
    allowed = await intake.get("/metrics", {**forwarded, "Authorization": f"Bearer {VIEWER}"})
    assert allowed.status == 200 and "dispatch_open_tickets" in allowed.body


async def test_healthz_answers_on_the_http_port_too(intake: Intake) -> None:
    await intake.post("/v1/tickets", {"title": "Email down", "client": "Acme", "priority": "P2"})
    answer = await intake.get("/healthz")
    assert (answer.status, answer.body) == (200, "ok seq=1 connections=0 protocol=1\n")


# --- stopping, and the command line -----------------------------------------------------------------------------


async def test_requests_at_a_stop_are_answered_after_their_commit_or_refused_unapplied(tmp_path: Path) -> None:
    client_timeout = aiohttp.ClientTimeout(total=timeout(20))
    async with aiohttp.ClientSession(timeout=client_timeout) as http:
        statuses: dict[str, int | str] = {}

        async def keep_reporting(url: str, worker: int) -> None:
            """Report after report until one is not accepted: the stop has come."""
            for n in range(1000):
                title = f"Report {worker}.{n}"
                body = {"title": title, "client": "Acme", "priority": "P3"}
                try:
                    headers = {"Authorization": f"Bearer {INTAKE}"}
                    async with http.post(f"{url}/v1/tickets", json=body, headers=headers) as response:
                        statuses[title] = response.status
                except aiohttp.ClientError as exc:  # the listener has closed
                    statuses[title] = type(exc).__name__
                if statuses[title] != 201:
                    return

        async with serving(tmp_path, rate_limit=0) as intake:
            url = intake.running.server.http_url
            assert url is not None
            workers = [asyncio.create_task(keep_reporting(url, worker)) for worker in range(8)]
            async with asyncio.timeout(timeout(10)):
                while len(statuses) < 40:  # well under way: the stop comes mid-stream
                    await asyncio.wait(workers, timeout=0.01)
        await asyncio.gather(*workers)
    refusals = {status for status in statuses.values() if status != 201}
    assert refusals and refusals <= {503, "ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}
    async with running_server(tmp_path, ManualClock()) as restarted:
        stored = {t.title for t in restarted.server.state.tickets.values()}
    # Durable before the answer: every 201 is in the database; whatever was refused was never applied.
    assert stored == {title for title, status in statuses.items() if status == 201}


async def test_serve_prints_the_http_address_after_the_websocket_one_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = ServerProcess(db=tmp_path / "dispatch.db", workdir=tmp_path, options=("--http-port", "0")).start()
    try:
        assert process.process is not None and process.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.process.stdout.readline), timeout(15))
        assert line.startswith("http on http://127.0.0.1:"), line
        base = line.split()[-1]
        token = await process.token(Role.INTAKE, "alertmanager")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout(10))) as http:
            headers = {"Authorization": f"Bearer {token}"}
            body = payload("alertmanager_firing")
            async with http.post(f"{base}/v1/alerts/alertmanager", json=body, headers=headers) as response:
                assert response.status == 200
                assert len((await response.json())["tickets"]) == 3
        assert process.terminate() == 0
    finally:
        process.stop()


def test_an_http_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(tmp_path / "d.db", "serve", "--port", "0", "--http-port", str(port))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == f"dispatch-server: --http-port {port} on 127.0.0.1: already in use\n"


# --- the mapping, table-driven ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "P1"), ("CRITICAL", "P1"), ("error", "P2"), ("major", "P2"), ("warning", "P3"),
     ("info", "P4"), ("none", "P4"), ("", "P4"), (None, "P4")],
)  # fmt: skip
def test_severity_gives_the_priority(severity: str | None, priority: str) -> None:
    assert priority_of(severity) == Priority(priority)


@pytest.mark.parametrize(
    ("labels", "annotations", "common", "title", "client"),
    [
        ({"alertname": "HostDown", "client": "Acme"}, {"summary": "db01 down"}, {}, "db01 down", "Acme"),
        ({"alertname": "HostDown"}, {"summary": "  "}, {"client": "Globex"}, "HostDown", "Globex"),
        ({}, {}, {}, "alert 0123abcd", "unknown"),
        ({"alertname": "A\tB\x1b[2J", "client": "\x07"}, {}, {}, "A B[2J", "unknown"),
        ({"alertname": "x" * 300}, {}, {}, "x" * 199 + "…", "unknown"),
    ],
)
def test_title_and_client_come_from_the_labels_with_fallbacks(
    labels: dict[str, str], annotations: dict[str, str], common: dict[str, str], title: str, client: str
) -> None:
    alert = SourceAlert(status="firing", labels=labels, annotations=annotations, fingerprint="0123abcd")
    assert alert_title(alert) == title
    assert alert_client(alert, common, "client") == client
