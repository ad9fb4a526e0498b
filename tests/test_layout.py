"""The board at every terminal size: the rules (table-driven, no Textual) and what a person sees at 80x24."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.segment import Segment
from textual.app import App, ComposeResult

from dispatch.core.models import Priority, Technician, TechStatus, Ticket, TicketStatus
from dispatch.widgets.columns import Column, cut_words, fit_columns, merge_columns
from dispatch.widgets.key_bar import Key, fitting_keys
from dispatch.widgets.lane import MIN_TITLE, SLA, LaneWidths, lane_columns
from dispatch.widgets.lane_stack import lane_heights
from dispatch.widgets.row_list import RowList
from dispatch.widgets.technician_panel import panel_columns, team_summary

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
    columns = lane_columns(tickets, own_lane=False)
    specs = {column.name: column for column in columns if column.name != "title"}
    assert specs["id"].want == 8 and specs["sla"].want == SLA
    assert specs["assignee"].want == len("unassigned")
    title, more_title = (column for column in columns if column.name == "title")
    assert title.least == MIN_TITLE and title.fills
    assert more_title.want == len("Internet down") - MIN_TITLE  # after the client, before the age
    assert specs["client"].want == 24  # capped
    assert specs["client"].least == len("Cyberdyne…")  # its longest first word, and the ellipsis
    assert specs["site"].want == len("Harbour clinic") and specs["incident"].want == len("INC-0001")
    # A lane without sites or incidents does not spend cells on them.
    plain = fit_columns(200, lane_columns(tickets[:1], own_lane=False))
    assert [name for name, _ in plain] == ["id", "sla", "assignee", "title", "client", "age"]


def test_a_lane_kept_up_ticket_by_ticket_measures_what_it_holds_now() -> None:
    # A busy lane re-measures only changed tickets: what a ticket asked for before it changed or left
    # must not linger in the widths (a client renamed shorter, an incident closed, a ticket gone).
    widths = LaneWidths(own_lane=False)
    held = {t.id: t for t in (ticket(1, "Acme"), ticket(2, "Cyberdyne Labs", site="Harbour clinic"))}
    for t in held.values():
        widths.put(t)
    changes = [
        ticket(1, "Stark Accounting Group", incident_id="INC-0001", assignee="mallory"),  # wider
        ticket(2, "Cy", site=""),  # narrower: the site column goes
        ticket(1, "Acme"),  # back again: the incident column goes
        ticket(3, "Wayne Enterprises", status=TicketStatus.IN_PROGRESS, assignee="alice"),
    ]
    for changed in changes:
        held[changed.id] = changed
        widths.put(changed)
        assert widths.columns() == lane_columns(list(held.values()), own_lane=False)
    widths.drop("T-000003")
    del held["T-000003"]
    assert widths.columns() == lane_columns(list(held.values()), own_lane=False)
    assert dict((c.name, c.want) for c in widths.columns())["client"] == len("Acme")
    # Filled at once (a snapshot), then kept up ticket by ticket: the same as measuring afresh.
    widths.fill(list(held.values()))
    widths.put(changes[0])
    held[changes[0].id] = changes[0]
    assert widths.columns() == lane_columns(list(held.values()), own_lane=False)
    widths.fill([])
    assert widths.columns() == lane_columns([], own_lane=False)
    assert dict((c.name, c.want) for c in widths.columns())["client"] == 0


def test_a_title_grows_to_be_readable_before_the_age_and_the_site_get_room() -> None:
    long_title = "Card terminals offline at Head office"
    columns = lane_columns([ticket(1, "Stark Accounting", title=long_title, site="Head office")], own_lane=False)
    # 80 columns less the mark: the client whole, then the title as far as it goes; no age, no site.
    assert dict(fit_columns(76, columns)) == {"id": 8, "sla": SLA, "assignee": 10, "title": 27, "client": 16}
    assert cut_words(long_title, 27) == "Card terminals offline at…"
    # With room for a readable title, the age and the site come back.
    assert [name for name, _ in fit_columns(110, columns)] == [
        "id",
        "sla",
        "assignee",
        "title",
        "client",
        "age",
        "site",
    ]


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


@pytest.mark.parametrize(
    ("room", "rows", "chrome", "open_lanes", "heights"),
    [
        # 80x24 during the outage, borders down to title lines: P4 folds, every lane shows its most
        # urgent three, then P1 gets every row it needs first: the tallest.
        (20, [9, 7, 6, 0], 1, None, [10, 5, 4, 1]),
        # Room to spare goes to P1 (new tickets show there without a reshuffle); empty lanes fold.
        (40, [3, 2, 0, 0], 2, None, [34, 4, 1, 1]),
        # Not a row for every lane: the least urgent fold first.
        (5, [5, 5, 5, 5], 1, None, [2, 1, 1, 1]),
        # The focus view (!): P3 and P4 fold whatever they hold.
        (20, [2, 8, 9, 1], 2, [True, True, False, False], [8, 10, 1, 1]),
        # Nothing anywhere: P1 keeps the room (and says it is empty).
        (20, [0, 0, 0, 0], 2, None, [17, 1, 1, 1]),
        # A technician's own lane takes all there is, empty or not.
        (20, [0], 2, None, [20]),
        (20, [5], 2, None, [20]),
    ],
)
def test_rows_go_to_the_lanes_with_tickets_p1_first(
    room: int, rows: list[int], chrome: int, open_lanes: list[bool] | None, heights: list[int]
) -> None:
    assert lane_heights(room, rows, chrome=chrome, open_lanes=open_lanes) == heights
    assert sum(heights) == room


@pytest.mark.parametrize(
    ("width", "shown"),
    [
        (80, ["T", "a", "A", "u", "p", "s", "?"]),
        (60, ["T", "a", "A", "u", "?"]),  # a key that does not fit goes whole, and those after it
        (40, ["T", "a", "?"]),
        (10, ["?"]),  # help stays, whatever else gives way
    ],
)
def test_the_key_bar_keeps_whole_keys_and_help_last(width: int, shown: list[str]) -> None:
    keys = [Key("T", "Technicians", "technicians"), Key("a", "Assign", "assign"),
            Key("A", "Assign best", "assign_best"), Key("u", "Unassign", "unassign"),
            Key("p", "Priority", "priority"), Key("s", "Status", "status"), Key("?", "Help", "help")]  # fmt: skip
    assert [key.shown for key in fitting_keys(keys, width)] == shown


def test_the_folded_panel_says_who_is_free_busy_and_off() -> None:
    team = [
        technician("alice", "Alice Moreau"),  # free
        technician("bob", "Bob Okafor").model_copy(update={"capacity": 1}),  # available but full: busy
        technician("heidi", "Heidi Brandt", TechStatus.ON_SITE),
        technician("judy", "Judy Chen", TechStatus.OFF_SHIFT),
        technician("oscar", "Oscar Dubois", TechStatus.BREAK),
    ]
    assert team_summary(team, {"bob": 1}) == "5 techs: 1 free · 2 busy · 2 off"
    assert team_summary(team[:1], {}) == "1 tech: 1 free · 0 busy · 0 off"


class Words(RowList[str]):
    """The list base with words for rows: a row's look is its word."""

    def row_key(self, row: str) -> str:
        return row.split(":")[0]

    def row_signature(self, row: str) -> str:
        return row

    def render_row(self, row: str, width: int, selected: bool) -> list[Segment]:
        return [Segment(("> " if selected else "  ") + row)]


async def test_a_list_repainting_only_what_changed_shows_what_a_full_repaint_shows() -> None:
    # A flush repaints only the lines whose row or look changed, and a scrollbar whose thumb does not
    # move is not repainted: after every change the screen must be what repainting it all would show.
    class Screenful(App[None]):
        def compose(self) -> ComposeResult:
            yield Words()

    app = Screenful()
    async with app.run_test(size=(30, 8)) as pilot:
        words = app.query_one(Words)
        words.focus()

        async def shows(rows: list[str], cursor_moves: int = 0) -> None:
            words.set_rows(rows)
            for _ in range(abs(cursor_moves)):
                await pilot.press("down" if cursor_moves > 0 else "up")
            await pilot.pause()
            partial = app.export_screenshot()
            words.refresh()
            words.vertical_scrollbar.refresh()
            await pilot.pause()
            assert partial == app.export_screenshot()

        rows = [f"r{n}" for n in range(400)]
        await shows(rows)
        await shows(rows[:3] + ["new"] + rows[3:])  # one slid in above the cursor: the rows below move
        await shows(rows[:3] + ["new"] + rows[3:-1], cursor_moves=2)  # one off screen left: nothing moves
        await shows([f"r{n}:changed" if n == 2 else f"r{n}" for n in range(399)])  # a row's look changed
        await shows(rows[:5], cursor_moves=-1)  # the scrollbar goes
        await shows(rows * 1 + [f"s{n}" for n in range(40)], cursor_moves=9)  # it comes back; scrolled
        await shows(rows[:40] + [f"s{n}" for n in range(40)])  # at a scroll, fewer rows: the thumb moves
