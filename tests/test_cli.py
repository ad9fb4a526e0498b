"""The scriptable commands, run as a user runs them: `python -m dispatch ...` against the real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispatch.core.models import Role
from tests.support import ServerProcess, Session, tech_frame, timeout

CLI_TIMEOUT_S = timeout(30.0)


@dataclass(frozen=True)
class Run:
    """What one command printed, and how it ended."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def cli_env(server: str | None, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPATCH_SERVER", "DISPATCH_TOKEN")}
    if server is not None:
        env["DISPATCH_SERVER"] = server
    if token is not None:
        env["DISPATCH_TOKEN"] = token
    return env


async def run_cli(*args: str, server: str | None = None, token: str | None = None) -> Run:
    """`dispatch ARGS` in a subprocess, with the server and token in the environment as a user sets them."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatch", *args,
        env=cli_env(server, token), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def assert_one_line_failure(run: Run, code: int, text: str) -> None:
    """A refusal is exactly one line on stderr, nothing on stdout, and never a traceback."""
    assert run.code == code, run
    assert run.out == "", run
    assert run.err.count("\n") == 1 and text in run.err, run
    assert "Traceback" not in run.err


def closed_port_url() -> str:
    """A loopback address nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


async def snapshot_tickets(server: ServerProcess) -> list[dict[str, object]]:
    session = await Session.open(server.url, await server.token(Role.VIEWER, f"look-{os.urandom(3).hex()}"))
    await session.close()
    assert session.snapshot is not None
    tickets: list[dict[str, object]] = session.snapshot["tickets"]
    return tickets


# --- help -----------------------------------------------------------------------------------------


async def test_ticket_new_with_a_dedupe_key_counts_duplicates(server: ServerProcess, dispatcher: Session) -> None:
    token = await server.token(Role.INTAKE, "monitoring")
    report = ("ticket", "new", "--title", "Ping lost", "--client", "Acme", "--priority", "P2", "--dedupe-key", "mon-42")
    assert await run_cli(*report, server=server.url, token=token) == Run(0, "T-000001\n", "")
    again = await run_cli(*report, server=server.url, token=token)
    assert again == Run(0, "T-000001 (duplicate of an open ticket; count 1)\n", "")
    other = await run_cli(*report[:-1], "mon-43", server=server.url, token=token)
    assert other == Run(0, "T-000002\n", "")
    tickets = {t["id"]: t for t in await snapshot_tickets(server)}
    assert tickets["T-000001"]["duplicates"] == 1 and tickets["T-000001"]["dedupe_key"] == "mon-42"
    assert tickets["T-000002"]["duplicates"] == 0


async def test_help_documents_the_exit_statuses() -> None:
    helps = (["--help"], ["ticket", "new", "--help"], ["import", "--help"], ["simulate", "--help"])
    for run in await asyncio.gather(*(run_cli(*args) for args in helps)):
        assert run.code == 0
        assert "exit status" in run.out
        assert "3    token refused, or the role may not do this (forbidden)" in run.out
        assert "6    cannot reach the server" in run.out


# --- tickets --------------------------------------------------------------------------------------


async def test_ticket_new_then_list_in_sla_order(server: ServerProcess, dispatcher: Session) -> None:
    token = await server.token(Role.DISPATCHER, "script")
    await dispatcher.ok(tech_frame("alice", ["network"]))

    first = await run_cli(
        "ticket", "new", "--title", "Internet down", "--client", "Acme Dental", "--priority", "p1",
        "--site", "Main St", "--category", "network", "--skills", "network, firewall",
        server=server.url, token=token,
    )  # fmt: skip
    assert first == Run(0, "T-000001\n", "")
    second = await run_cli(
        "ticket", "new", "--title", "Printer jammed", "--client", "Initech", "--priority", "P2",
        server=server.url, token=token,
    )  # fmt: skip
    assert second == Run(0, "T-000002\n", "")

    created = {t["id"]: t for t in await snapshot_tickets(server)}
    assert created["T-000001"]["priority"] == "P1" and created["T-000001"]["skills"] == ["network", "firewall"]
    assert created["T-000001"]["site"] == "Main St" and created["T-000001"]["category"] == "network"
    assert created["T-000002"]["category"] == "other"

    # New tickets race their respond-by clocks: P1 (15 min) before P2 (1 h).
    listing = await run_cli("ticket", "list", server=server.url, token=token)
    assert listing.code == 0, listing
    header, *rows = listing.lines
    assert header.split() == ["ID", "PRI", "STATUS", "ASSIGNEE", "SLA", "LEFT", "DUE", "CLIENT", "TITLE"]
    assert [row.split()[0] for row in rows] == ["T-000001", "T-000002"]
    assert rows[0].split()[1:4] == ["P1", "new", "-"]
    assert rows[0].split()[4].startswith(("14m", "15m")) and rows[0].endswith("Acme Dental  Internet down")
    assert rows[0].split()[9] == "UTC"  # the due time, on the 24x7 calendar

    # Once taken, the resolve-by clock counts (4 h for P1), so the untaken P2 is now more urgent.
    assigned = await run_cli("assign", "T-000001", "alice", server=server.url, token=token)
    assert assigned == Run(0, "T-000001 -> alice\n", "")
    listing = await run_cli("ticket", "list", server=server.url, token=token)
    rows = listing.lines[1:]
    assert [row.split()[0] for row in rows] == ["T-000002", "T-000001"]
    assert rows[1].split()[2:4] == ["assigned", "alice"] and rows[1].split()[4].startswith("3h5")

    as_json = await run_cli("ticket", "list", "--lane", "P1", "--json", server=server.url, token=token)
    tickets = json.loads(as_json.out)
    assert [t["id"] for t in tickets] == ["T-000001"]
    assert tickets[0]["assignee"] == "alice" and tickets[0]["version"] == 2 and tickets[0]["client"] == "Acme Dental"

    # Closed tickets are not listed.
    await dispatcher.ok({"type": "set_status", "ticket_id": "T-000002", "status": "cancelled"})
    listing = await run_cli("ticket", "list", "--json", server=server.url, token=token)
    assert [t["id"] for t in json.loads(listing.out)] == ["T-000001"]


async def test_tech_list_and_status(server: ServerProcess, dispatcher: Session) -> None:
    token = await server.token(Role.DISPATCHER, "script")
    await dispatcher.ok(tech_frame("bob", ["voip"], capacity=2))
    await dispatcher.ok(tech_frame("alice", ["network", "firewall"], capacity=4))
    created = await dispatcher.ok({"type": "create_ticket", "title": "VPN", "client": "Acme", "priority": "P2"})
    await dispatcher.ok({"type": "assign", "ticket_id": created["ticket_id"], "tech_id": "alice"})

    listing = await run_cli("tech", "list", server=server.url, token=token)
    assert listing.code == 0
    assert [line.split() for line in listing.lines] == [
        ["ID", "NAME", "STATUS", "LOAD", "SKILLS"],
        ["alice", "Alice", "available", "1/4", "network,firewall"],
        ["bob", "Bob", "available", "0/2", "voip"],
    ]

    assert await run_cli("tech", "status", "alice", "break", server=server.url, token=token) == Run(
        0, "alice -> break\n", ""
    )
    as_json = await run_cli("tech", "list", "--json", server=server.url, token=token)
    assert [(t["id"], t["status"]) for t in json.loads(as_json.out)] == [("alice", "break"), ("bob", "available")]

    # A reader that is gone before the table is printed ends the command quietly, without a traceback.
    piped = await asyncio.create_subprocess_shell(
        f"{sys.executable} -m dispatch tech list | true",
        env=cli_env(server.url, token), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(piped.communicate(), CLI_TIMEOUT_S)
    assert (out, err) == (b"", b"")

    # A technician may set only their own availability.
    bob = await server.token(Role.TECHNICIAN, "bob-laptop", tech_id="bob")
    assert (await run_cli("tech", "status", "bob", "busy", server=server.url, token=bob)).code == 0
    refused = await run_cli("tech", "status", "alice", "available", server=server.url, token=bob)
    assert_one_line_failure(refused, 3, "dispatch tech status: a technician may set only their own availability")


async def test_tech_add_puts_a_technician_on_the_roster(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "script")
    added = await run_cli("tech", "add", "carol", "--name", "Carol L", "--skills", "printers, hardware",
                          "--capacity", "4", server=server.url, token=token)  # fmt: skip
    assert added == Run(0, "carol added (printers, hardware, capacity 4)\n", "")
    again = await run_cli("tech", "add", "carol", "--name", "Carol", server=server.url, token=token)
    assert_one_line_failure(again, 5, "dispatch tech add: technician carol already exists")
    viewer = await server.token(Role.VIEWER, "wall")
    refused = await run_cli("tech", "add", "dan", "--name", "Dan", server=server.url, token=viewer)
    assert refused.code == 3
    listing = await run_cli("tech", "list", "--json", server=server.url, token=token)
    assert [(t["id"], t["capacity"]) for t in json.loads(listing.out)] == [("carol", 4)]


# --- refusals and their exit statuses ---------------------------------------------------------------


async def test_refusals_exit_with_distinct_statuses(server: ServerProcess, dispatcher: Session) -> None:
    token = await server.token(Role.DISPATCHER, "script")
    viewer = await server.token(Role.VIEWER, "wallboard")
    await dispatcher.ok(tech_frame("alice"))
    await dispatcher.ok({"type": "create_ticket", "title": "VPN", "client": "Acme", "priority": "P2"})
    await dispatcher.ok({"type": "assign", "ticket_id": "T-000001", "tech_id": "alice"})
    new_ticket = ("ticket", "new", "--title", "Scanner", "--client", "Acme", "--priority", "P3")

    # Independent refusals: run side by side to keep the test short.
    (
        forbidden,
        bad_token,
        missing,
        nobody,
        same,
        stale,
        invalid,
        no_token,
        bad_address,
        bad_choice,
    ) = await asyncio.gather(
        run_cli(*new_ticket, server=server.url, token=viewer),
        run_cli("ticket", "list", server=server.url, token="not-a-token"),
        run_cli("assign", "T-999999", "alice", server=server.url, token=token),
        run_cli("assign", "T-000001", "zed", server=server.url, token=token),
        run_cli("assign", "T-000001", "alice", server=server.url, token=token),
        run_cli("assign", "T-000001", "alice", "--expected-version", "1", server=server.url, token=token),
        run_cli(*new_ticket[:3], "x" * 201, *new_ticket[4:], server=server.url, token=token),
        run_cli(*new_ticket, server=server.url),
        run_cli(*new_ticket, "--server", "http://127.0.0.1:1", token=token),
        run_cli("tech", "status", "alice", "lunch", server=server.url, token=token),
    )
    assert_one_line_failure(forbidden, 3, "dispatch ticket new: a viewer may not create tickets")
    assert_one_line_failure(bad_token, 3, "the server refused the token")
    assert_one_line_failure(missing, 4, "dispatch assign: no ticket T-999999")
    assert_one_line_failure(nobody, 4, "no technician zed")
    assert_one_line_failure(same, 5, "dispatch assign: T-000001 is already assigned to alice")
    assert_one_line_failure(stale, 5, "T-000001 changed")
    assert_one_line_failure(invalid, 1, "title: String should have at most 200 characters")
    assert_one_line_failure(no_token, 2, "no token: pass --token or set DISPATCH_TOKEN")
    assert_one_line_failure(bad_address, 2, "ws://HOST:PORT")
    assert bad_choice.code == 2 and "invalid choice: 'lunch'" in bad_choice.err

    # None of that changed anything.
    assert [t["id"] for t in await snapshot_tickets(server)] == ["T-000001"]


async def test_unreachable_server_exits_6() -> None:
    url = closed_port_url()
    commands = (["ticket", "list"], ["assign", "T-000001", "alice"], ["simulate", "--duration", "1s"])
    for run in await asyncio.gather(*(run_cli(*args, server=url, token="whatever") for args in commands)):
        assert_one_line_failure(run, 6, f"cannot reach the server at {url} (connection refused)")


async def test_given_several_servers_a_command_uses_the_first_that_answers(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    down, also_down = closed_port_url(), closed_port_url()
    made = await run_cli("ticket", "new", "--title", "VPN down", "--client", "Acme", "--priority", "P2",
                         server=f"{down},{server.url}", token=token)  # fmt: skip
    assert made.code == 0 and made.out.strip() == "T-000001", made.err
    none = await run_cli("ticket", "list", server=f"{down}, {also_down}", token=token)
    reasons = f"{down} (connection refused), {also_down} (connection refused)"
    assert_one_line_failure(none, 6, f"cannot reach the server at {reasons}")


# --- simulate -------------------------------------------------------------------------------------

FAST = ("--rate", "600/min", "--duration", "3s", "--speed", "100")


async def test_simulate_is_the_same_for_the_same_seed(server: ServerProcess, tmp_path: Path) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = ServerProcess(db=other_dir / "dispatch.db", workdir=other_dir).start()
    try:
        first = await run_cli(
            "simulate", "--scenario", "patch-tuesday", "--seed", "11", *FAST,
            server=server.url, token=await server.token(Role.INTAKE, "monitoring"),
        )  # fmt: skip
        second = await run_cli(
            "simulate", "--scenario", "patch-tuesday", "--seed", "11", *FAST,
            server=other.url, token=await other.token(Role.DISPATCHER, "ana"),
        )  # fmt: skip
    finally:
        other.stop()
    assert first.code == 0 and second.code == 0, (first, second)
    *tickets, summary = first.lines
    assert len(tickets) >= 10
    assert tickets[0].startswith("T-000001  P")
    assert second.lines == first.lines
    assert summary.startswith(f"patch-tuesday seed 11: {len(tickets)} tickets (")
    assert summary.endswith(f"; {len(tickets)} created, 0 already present")
    # What the lines say is what the server holds.
    held = {t["id"]: t for t in await snapshot_tickets(server)}
    for line in tickets:
        ticket_id, priority, rest = line.split("  ", 2)
        assert held[ticket_id]["priority"] == priority
        assert rest.split()[0] in str(held[ticket_id]["client"]) and rest.endswith(str(held[ticket_id]["title"]))

    # Another seed, another burst; the same seed again by the same token name creates nothing new.
    monitoring = await server.token(Role.INTAKE, "monitoring-2")
    other_seed = await run_cli("simulate", "--scenario", "patch-tuesday", "--seed", "12", *FAST, server=server.url,
                               token=monitoring)  # fmt: skip
    assert [line.split("  ", 1)[1] for line in other_seed.lines[:-1]] != [line.split("  ", 1)[1] for line in tickets]
    again = await run_cli("simulate", "--scenario", "patch-tuesday", "--seed", "12", *FAST, server=server.url,
                          token=monitoring)  # fmt: skip
    assert again.code == 0
    assert all(line.endswith("(already present)") for line in again.lines[:-1])
    assert again.lines[-1].endswith(f"0 created, {len(again.lines) - 1} already present")


async def test_simulate_refused_for_a_viewer(server: ServerProcess) -> None:
    run = await run_cli("simulate", *FAST, server=server.url, token=await server.token(Role.VIEWER, "wall"))
    assert_one_line_failure(run, 3, "dispatch simulate: a viewer may not create tickets")


async def test_simulate_team_then_ctrl_c_stops_with_a_summary(server: ServerProcess) -> None:
    token = await server.token(Role.DISPATCHER, "sim")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatch", "simulate", "--team", "--rate", "20/s", "--duration", "1h",
        env=cli_env(server.url, token), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen = [await asyncio.wait_for(process.stdout.readline(), CLI_TIMEOUT_S) for _ in range(2)]
    assert all(line.startswith(b"T-00000") for line in seen)
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode == 130, err
    assert err == b""
    last = out.decode().splitlines()[-1]
    assert last.startswith("stopped by Ctrl+C. isp-outage seed 7: ")
    # --team added the shipped roster first.
    session = await Session.open(server.url, token)
    await session.close()
    assert session.snapshot is not None and len(session.snapshot["technicians"]) == 12


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--rate", "30/fortnight"), "argument --rate"),
        (("--duration", "soon"), "argument --duration"),
        (("--speed", "0"), "argument --speed: must be more than zero"),
        (("--duration", "inf"), "argument --duration: 'inf' is not a duration: use e.g. 30m, 2h, 1d"),
        (("--duration", "0s"), "argument --duration: '0s' is not a duration: it must be more than zero"),
        (("--rate", "100/s", "--duration", "1000h"), "at most 100,000 per run"),
        (("--scenario", "meteor"), "invalid choice: 'meteor'"),
    ],
)
async def test_simulate_usage_errors(option: tuple[str, ...], message: str) -> None:
    run = await run_cli("simulate", *option, server=closed_port_url(), token="t")
    assert run.code == 2 and message in run.err and "Traceback" not in run.err
