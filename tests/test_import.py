"""`dispatch import`: bad rows reported by line and skipped, good rows in, and nothing twice on a re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatch.cli import main
from dispatch.core.models import Role
from dispatch.importer import read_ticket_file
from tests.support import ServerProcess
from tests.test_cli import closed_port_url, run_cli, snapshot_tickets

# Line numbers as an editor shows them: the header is line 1, and the quoted title of line 5 goes on
# to line 6, so the row after it starts on line 7.
TICKETS_CSV = """\
Title,Client,Priority,Site,Category,Skills
Printer jammed,Acme Dental,p3,Main St clinic,hardware,printers
Email down,Initech, P2 ,,Software,"m365; exchange,outlook"
No priority here,Initech,,,,
"Two-line
title",Hooli Retail,P4,Store 12,,
Bad category,Initech,P1,,plumbing,

Printer jammed,Acme Dental,p3,Main St clinic,hardware,printers
,,,,,
Too many cells,Initech,P1,HQ,other,network,extra
"""

FIXED_CSV = TICKETS_CSV.replace("No priority here,Initech,,", "No priority here,Initech,P2,").replace(
    "plumbing", "network"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def test_csv_import_reports_bad_rows_by_line_and_reruns_create_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    token = await server.token(Role.INTAKE, "monitoring")
    tickets = write(tmp_path / "tickets.csv", TICKETS_CSV)

    first = await run_cli("import", str(tickets), server=server.url, token=token)
    assert first.code == 1, first
    assert first.err.splitlines() == [
        f"{tickets}:4: priority is empty",
        f"{tickets}:7: category: Input should be 'hardware', 'software', 'network', 'security' or 'other'"
        " (got 'plumbing')",
        f"{tickets}:11: 7 cells, but the header has 6 columns",
    ]
    assert first.out == f"{tickets}: 4 created, 0 already present, 3 skipped\n"

    held = sorted(await snapshot_tickets(server), key=lambda t: str(t["id"]))
    assert [(t["title"], t["client"], t["priority"]) for t in held] == [
        ("Printer jammed", "Acme Dental", "P3"),
        ("Email down", "Initech", "P2"),
        ("Two-line title", "Hooli Retail", "P4"),
        ("Printer jammed", "Acme Dental", "P3"),  # the same row twice is two tickets
    ]
    assert held[0]["site"] == "Main St clinic" and held[0]["category"] == "hardware"
    assert held[1]["skills"] == ["m365", "exchange", "outlook"] and held[1]["category"] == "software"
    assert held[2]["category"] == "other" and held[2]["skills"] == []

    again = await run_cli("import", str(tickets), server=server.url, token=token)
    assert again.code == 1
    assert again.out == f"{tickets}: 0 created, 4 already present, 3 skipped\n"
    assert len(await snapshot_tickets(server)) == 4

    # Fix two bad rows, run the whole file again: only they become new tickets.
    fixed = write(tmp_path / "tickets-fixed.csv", FIXED_CSV)
    third = await run_cli("import", str(fixed), server=server.url, token=token)
    assert third.code == 1
    assert third.err.splitlines() == [f"{fixed}:11: 7 cells, but the header has 6 columns"]
    assert third.out == f"{fixed}: 2 created, 4 already present, 1 skipped\n"
    titles = [t["title"] for t in await snapshot_tickets(server)]
    assert len(titles) == 6 and "No priority here" in titles and "Bad category" in titles


async def test_json_import(server: ServerProcess, tmp_path: Path) -> None:
    token = await server.token(Role.DISPATCHER, "ana")
    items = [
        {"title": "VPN flaky", "client": "Umbrella Legal", "priority": "P2", "skills": ["Network"], "site": None},
        {"title": "VPN flaky", "client": "Umbrella Legal", "priority": "P9"},
        "not an object",
        {"title": "Laptop dead", "client": "Stark", "priority": "P3", "colour": "red"},
        {"title": "Laptop dead", "client": "Stark", "priority": "P3", "skills": "hardware"},
        {"client": "Stark", "priority": "P3"},
        {"title": "Laptop dead", "client": "Stark", "priority": "p3", "category": "Hardware"},
    ]
    path = write(tmp_path / "tickets.json", json.dumps(items, indent=2))

    run = await run_cli("import", str(path), server=server.url, token=token)
    assert run.code == 1
    assert run.err.splitlines() == [
        f"{path}: item 2: priority: Input should be 'P1', 'P2', 'P3' or 'P4' (got 'P9')",
        f"{path}: item 3: expected an object with title, client, priority, not str",
        f"{path}: item 4: unknown field 'colour' (fields: title, client, priority, site, category, skills)",
        f"{path}: item 5: skills: Input should be a valid list (got 'hardware')",
        f"{path}: item 6: title is missing",
    ]
    assert run.out == f"{path}: 2 created, 0 already present, 5 skipped\n"
    held = await snapshot_tickets(server)
    assert [(t["title"], t["priority"], t["category"], t["skills"]) for t in held] == [
        ("VPN flaky", "P2", "other", ["network"]),
        ("Laptop dead", "P3", "hardware", []),
    ]
    again = await run_cli("import", str(path), server=server.url, token=token)
    assert again.out == f"{path}: 0 created, 2 already present, 5 skipped\n"
    assert len(await snapshot_tickets(server)) == 2

    good = write(tmp_path / "good.json", json.dumps([items[0], items[-1]]))
    all_in = await run_cli("import", str(good), server=server.url, token=token)
    assert (all_in.code, all_in.out, all_in.err) == (0, f"{good}: 0 created, 2 already present, 0 skipped\n", "")


async def test_import_refused_for_a_viewer_sends_nothing_more(server: ServerProcess, tmp_path: Path) -> None:
    tickets = write(tmp_path / "tickets.csv", TICKETS_CSV)
    run = await run_cli("import", str(tickets), server=server.url, token=await server.token(Role.VIEWER, "wall"))
    assert run.code == 3
    assert run.err.splitlines()[-1] == "dispatch import: a viewer may not create tickets"
    assert await snapshot_tickets(server) == []


async def test_dry_run_checks_without_connecting(tmp_path: Path) -> None:
    tickets = write(tmp_path / "tickets.csv", TICKETS_CSV)
    # Nobody listens there and there is no token: a dry run must not need either.
    run = await run_cli("import", str(tickets), "--dry-run", server=closed_port_url())
    assert run.code == 1
    assert len(run.err.splitlines()) == 3 and f"{tickets}:4: priority is empty" in run.err
    assert run.out == f"{tickets}: 4 rows ready, 3 skipped (dry run: nothing sent)\n"

    fixed = write(tmp_path / "fixed.csv", FIXED_CSV.replace(",network,extra", ",network"))
    clean = await run_cli("import", str(fixed), "--dry-run", server=closed_port_url())
    assert (clean.code, clean.err) == (0, "")


def test_unusable_files_are_refused_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process (`dispatch.cli.main`): the file is refused before any connection, nothing to start.
    cases = {
        "colour.csv": ("title,client,priority,colour\nx,y,P1,red\n", ":1: unknown column 'colour'"),
        "short.csv": ("title,client\nx,y\n", ":1: missing column priority"),
        "empty.csv": ("", ": empty; the first line must name the columns"),
        "object.json": ('{"title": "x"}', ": expected a JSON list of ticket objects"),
        "broken.json": ('[\n{"title": "x",\n', ":3: not valid JSON"),
        "tickets.txt": ("title,client,priority\n", ": expected a .csv or .json file"),
    }
    for name, (text, message) in cases.items():
        path = write(tmp_path / name, text)
        assert main(["import", str(path), "--server", closed_port_url(), "--token", "t"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"dispatch import: {path}{message}") and err.count("\n") == 1, err
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("title,client,priority\nCaf\xe9 Wi-Fi,Bistro,P3\n".encode("latin-1"))
    assert main(["import", str(latin1), "--dry-run"]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err


async def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    run = await run_cli("import", str(missing), server=closed_port_url(), token="t")
    assert (run.code, run.out, run.err) == (2, "", f"dispatch import: {missing}: No such file or directory\n")


def test_command_ids_follow_the_content_not_the_file(tmp_path: Path) -> None:
    csv_rows = read_ticket_file(write(tmp_path / "a.csv", TICKETS_CSV)).rows
    # The same tickets with other spacing, case, column order and file name get the same ids.
    shuffled = write(
        tmp_path / "b.csv",
        "priority,client,title,skills,category,site\n"
        "P3,Acme Dental ,Printer jammed,PRINTERS,hardware,Main St clinic\n"
        "P3,Acme Dental,Printer jammed,printers,HARDWARE,Main St clinic\n",
    )
    again = read_ticket_file(shuffled).rows
    printer_ids = [r.ticket.command_id for r in csv_rows if r.ticket.title == "Printer jammed"]
    assert [r.ticket.command_id for r in again] == printer_ids
    assert len(set(printer_ids)) == 2  # identical rows: the occurrence tells them apart
    assert [r.where for r in csv_rows] == [f"{tmp_path / 'a.csv'}:{n}" for n in (2, 3, 5, 9)]
    # The same row as JSON is the same ticket too.
    items = [{"title": "Printer jammed", "client": "Acme Dental", "priority": "P3", "site": "Main St clinic",
              "category": "hardware", "skills": ["printers"]}]  # fmt: skip
    assert read_ticket_file(write(tmp_path / "d.json", json.dumps(items))).rows[0].ticket.command_id == printer_ids[0]
    # A batch label makes new ids on purpose.
    relabelled = read_ticket_file(shuffled, batch="2026-11-23").rows
    assert not {r.ticket.command_id for r in relabelled} & set(printer_ids)
    assert all(len(r.ticket.command_id) <= 128 for r in csv_rows + relabelled)
