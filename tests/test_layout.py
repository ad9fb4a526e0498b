"""The board at every terminal size: the rules (table-driven, no Textual) and what a person sees at 80x24."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.models import Priority, Technician, TechStatus, Ticket, TicketStatus
from dispatch.widgets.columns import Column, cut_words, fit_columns, merge_columns
from dispatch.widgets.lane import MIN_TITLE, SLA, lane_columns
from dispatch.widgets.technician_panel import panel_columns

# A lane's columns, most important first: the id and the countdown always, then who, the title (which
# takes the rest), the client (up to its real length, squeezable to its longest first word), age, site.
LANE = (
    Column("id", 8, always=True),
    Column("sla", 10, always=True),
    Column("assignee", 10),
    Column("title", 12, least=12, fills=True),
    Column("client", 16, least=10),
    Column("age", 6),
    Column("site", 12, least=6),
)


@pytest.mark.parametrize(
    ("width", "fitted"),
    [
        # Wide: everything at its content's width, the title takes the rest.
        (120, {"id": 8, "sla": 10, "assignee": 10, "title": 51, "client": 16, "age": 6, "site": 12}),
        # Exactly room for all: the title at its least.
        (81, {"id": 8, "sla": 10, "assignee": 10, "title": 12, "client": 16, "age": 6, "site": 12}),
        # One cell less: the last column (site) is squeezed, not dropped.
        (80, {"id": 8, "sla": 10, "assignee": 10, "title": 12, "client": 16, "age": 6, "site": 11}),
        # Site cannot shrink below 6: dropped whole, and the title gets its room.
        (73, {"id": 8, "sla": 10, "assignee": 10, "title": 17, "client": 16, "age": 6}),
        # Age does not fit: it goes, and everything after it with it.
        (67, {"id": 8, "sla": 10, "assignee": 10, "title": 18, "client": 16}),
        # The client squeezed down to its least (its longest first word), before it goes.
        (56, {"id": 8, "sla": 10, "assignee": 10, "title": 12, "client": 11}),
        (55, {"id": 8, "sla": 10, "assignee": 10, "title": 12, "client": 10}),
        (53, {"id": 8, "sla": 10, "assignee": 10, "title": 21}),
        # The title goes before the assignee; the countdown is never cut, whatever the width.
        (41, {"id": 8, "sla": 10, "assignee": 10}),
        (28, {"id": 8, "sla": 10}),
        (10, {"id": 8, "sla": 10}),
    ],
)
def test_columns_give_way_by_importance_and_are_dropped_whole(width: int, fitted: dict[str, int]) -> None:
    assert dict(fit_columns(width, LANE)) == fitted
    assert [name for name, _ in fit_columns(width, LANE)] == [c.name for c in LANE if c.name in fitted]


@pytest.mark.parametrize(
    ("text", "width", "shown"),
    [
        ("Cyberdyne Labs", 14, "Cyberdyne Labs"),
        ("Cyberdyne Labs", 13, "Cyberdyne…"),  # never "Cyberdyne La…"
        ("Cyberdyne Labs", 10, "Cyberdyne…"),
        ("Internet down at Lab A", 20, "Internet down at…"),
        ("Internet down at Lab A", 12, "Internet…"),
        ("VPN will not connect, from East wing", 22, "VPN will not connect…"),  # no dangling comma
        ("Supercalifragilistic", 8, "Superca…"),  # one word longer than the column: nothing better
        ("Acme", 1, "…"),
        ("Acme", 0, ""),
    ],
)
def test_text_is_cut_at_a_word_with_an_ellipsis(text: str, width: int, shown: str) -> None:
    assert cut_words(text, width) == shown


NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def ticket(number: int, client: str, **fields: object) -> Ticket:
    values: dict[str, object] = {
        "id": f"T-{number:06d}", "title": "Internet down", "client": client, "priority": Priority.P1,
        "created_at": NOW, "respond_by": NOW + timedelta(minutes=15), "resolve_by": NOW + timedelta(hours=4),
    }  # fmt: skip
    values.update(fields)
    return Ticket.model_validate(values)


def test_a_lanes_columns_are_as_wide_as_its_tickets_need() -> None:
    tickets = [
        ticket(1, "Cyberdyne Labs", assignee="alice", status=TicketStatus.IN_PROGRESS),
        ticket(2, "Acme", site="Harbour clinic", incident_id="INC-0001"),
        ticket(3, "An Extraordinarily Long Client Name Ltd"),
    ]
    specs = {column.name: column for column in lane_columns(tickets, own_lane=False)}
    assert specs["id"].want == 8 and specs["sla"].want == SLA
    assert specs["assignee"].want == len("unassigned")
    assert specs["title"].least == MIN_TITLE and specs["title"].fills
    assert specs["client"].want == 24  # capped
    assert specs["client"].least == len("Cyberdyne…")  # its longest first word, and the ellipsis
    assert specs["site"].want == len("Harbour clinic") and specs["incident"].want == len("INC-0001")
    # A lane without sites or incidents does not spend cells on them.
    plain = fit_columns(200, lane_columns(tickets[:1], own_lane=False))
    assert [name for name, _ in plain] == ["id", "sla", "assignee", "title", "client", "age"]


def test_lanes_share_their_columns_so_that_they_line_up() -> None:
    p1 = lane_columns([ticket(1, "Acme", site="Lab A")], own_lane=False)
    p2 = lane_columns([ticket(2, "Cyberdyne Labs", incident_id="INC-0001", assignee="mallory")], own_lane=False)
    merged = {column.name: column for column in merge_columns([p1, p2])}
    assert [column.name for column in merge_columns([p1, p2])] == [column.name for column in p1]
    assert merged["client"].want == len("Cyberdyne Labs") and merged["client"].least == len("Cyberdyne…")
    assert merged["site"].want == len("Lab A") and merged["incident"].want == len("INC-0001")
    assert merged["assignee"].want == len("unassigned")


def technician(tech_id: str, name: str, status: TechStatus = TechStatus.AVAILABLE) -> Technician:
    return Technician(id=tech_id, name=name, skills=["network", "firewall"], status=status, capacity=4)


TEAM = [technician("alice", "Alice Moreau"), technician("mallory", "Mallory Reyes", TechStatus.OFF_SHIFT)]


@pytest.mark.parametrize(
    ("width", "shown"),
    [
        (72, ["id", "status", "load", "shift", "hours", "bar", "skills", "name"]),  # the overlay: all
        (66, ["id", "status", "load", "shift", "hours", "bar", "skills"]),  # the name goes first
        (50, ["id", "status", "load", "shift", "hours", "bar", "skills"]),  # the skills cut to one
        (48, ["id", "status", "load", "shift", "hours", "bar"]),
        (39, ["id", "status", "load", "shift", "hours"]),
        (22, ["id", "status", "load"]),  # who, whether they can take work, how much they have
        (21, ["id", "status"]),
        (17, ["id"]),
    ],
)
def test_the_technician_panel_keeps_who_their_status_and_load_longest(width: int, shown: list[str]) -> None:
    assert [name for name, _ in fit_columns(width, panel_columns(TEAM))] == shown


def test_the_panels_columns_are_as_wide_as_the_team_needs() -> None:
    specs = {column.name: column for column in panel_columns(TEAM)}
    assert specs["id"].want == len("mallory") and specs["status"].want == len("off shift")
    assert specs["load"].want == len("4/4") and specs["name"].want == len("Mallory Reyes")
    assert specs["name"].least == len("Mallory…")
