"""Burst detection, the pure rules: who is reported, when again, and which group wins.

The end-to-end behaviour (events on the wire, the board's banner, `g`) is in test_incidents.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from dispatch.core.bursts import BurstMemory, detect_bursts, forget_closed_tickets
from dispatch.core.commands import execute
from dispatch.core.models import Role
from dispatch.core.protocol import BurstEvent, CreateIncident, CreateTicket, SetStatus
from dispatch.core.rules import Outcome
from dispatch.core.state import Actor, DispatchState

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DISPATCHER = Actor("ana", Role.DISPATCHER)
AUTO = Actor("auto", Role.DISPATCHER)
WINDOW = timedelta(minutes=10)
_ids = count(1)


class Floor:
    """A state, a clock and the burst memory, as the server's writer holds them."""

    def __init__(self, threshold: int = 5) -> None:
        self.state = DispatchState()
        self.memory = BurstMemory()
        self.now = START
        self.threshold = threshold

    def run(self, command: CreateTicket | CreateIncident | SetStatus) -> None:
        outcome = execute(self.state, command, DISPATCHER, self.now)
        assert isinstance(outcome, Outcome), outcome

    def report(self, client: str = "Acme", site: str = "", category: str = "other", n: int = 1) -> None:
        for _ in range(n):
            self.run(CreateTicket(type="create_ticket", command_id=f"c{next(_ids)}", title="Down", client=client,
                                  priority="P2", site=site, category=category))  # fmt: skip

    def batch_done(self) -> list[BurstEvent]:
        return detect_bursts(self.state, self.now, self.threshold, WINDOW, self.memory, AUTO)


def sizes(events: list[BurstEvent]) -> list[tuple[str, str, int]]:
    return [(e.group, e.value, len(e.ticket_ids)) for e in events]


def test_a_burst_is_reported_at_the_threshold_then_when_it_has_grown_by_half() -> None:
    floor = Floor()
    reported: list[int] = []
    for _ in range(60):  # one ticket per batch, the slowest way to grow
        floor.report()
        reported += [n for _, _, n in sizes(floor.batch_done())]
    assert reported == [5, 10, 15, 22, 33, 49]


def test_a_flood_in_big_batches_is_reported_a_few_times_with_every_ticket() -> None:
    floor = Floor()
    events = []
    for _ in range(20):
        floor.report(n=100)
        events += floor.batch_done()
    # Each report once half as many again have joined: seven reports for 2,000 tickets, not twenty.
    assert [len(e.ticket_ids) for e in events] == [100, 200, 300, 500, 800, 1200, 1800]
    assert events[-1].ticket_ids == sorted(floor.state.tickets)[:1800]


def test_a_long_flood_costs_a_few_full_looks_per_group_not_one_per_batch() -> None:
    floor = Floor()
    for _ in range(2_000):  # one ticket per batch: the most batches a flood can make
        floor.report(client="Loop", category="network")
        floor.batch_done()
    # The client burst is looked at when it could be reported again; its category (covered by it)
    # when it has grown by half. Either way a handful of looks, where one per batch would be 2,000.
    assert floor.memory.looks[("client", "Loop")] <= 20
    assert floor.memory.looks[("category", "network")] <= 20


def test_what_detection_remembers_is_bounded_by_the_window_not_by_the_day() -> None:
    floor = Floor()
    for n in range(3_000):  # a long day: a ticket a minute, each from its own client and site
        floor.report(client=f"Client {n}", site=f"Site {n}")
        floor.batch_done()
        floor.now += timedelta(minutes=1)
    remembered = floor.memory
    assert len(remembered.arrivals) <= 11  # the tickets of the last ten minutes
    assert len(remembered.members) <= 2 * 11 + 1  # their clients and sites, and the one category
    assert len(remembered.joined) <= len(remembered.members) and len(remembered.reported) <= len(remembered.members)


def test_tickets_closed_or_grouped_do_not_count_and_old_ones_leave_the_window() -> None:
    floor = Floor()
    floor.report(n=4)
    assert floor.batch_done() == []
    floor.run(SetStatus(type="set_status", command_id="x1", ticket_id="T-000001", status="cancelled"))
    floor.report()
    assert floor.batch_done() == []  # four open: no burst yet
    floor.report()
    assert sizes(floor.batch_done()) == [("client", "Acme", 5)]

    floor.run(CreateIncident(type="create_incident", command_id="x2", title="Acme outage",
                             ticket_ids=[f"T-00000{n}" for n in range(2, 7)]))  # fmt: skip
    floor.now += WINDOW + timedelta(seconds=1)
    floor.report(n=4)
    assert floor.batch_done() == []  # the grouped and the old ones are no part of a new burst


def test_a_client_burst_is_not_reported_again_as_its_site_or_category() -> None:
    floor = Floor()
    floor.report(client="Acme", site="HQ", category="network", n=6)
    assert sizes(floor.batch_done()) == [("client", "Acme", 6)]
    # Across clients, the shared category is the burst.
    for client in ("Globex", "Initech", "Umbrella", "Hooli", "Stark"):
        floor.report(client=client, category="software")
    assert sizes(floor.batch_done()) == [("category", "software", 5)]


def test_after_a_restart_a_burst_under_way_is_found_from_the_tickets_in_the_window() -> None:
    floor = Floor()
    floor.report(n=3)
    floor.now += WINDOW + timedelta(minutes=1)
    floor.report(n=5)
    floor.memory = BurstMemory()  # what a restarted server starts with
    events = floor.batch_done()
    assert [e.ticket_ids for e in events] == [[f"T-00000{n}" for n in range(4, 9)]]


def test_once_a_client_burst_is_grouped_a_wave_from_other_clients_is_reported_by_its_category() -> None:
    floor = Floor()
    floor.report(client="Acme", category="network", n=40)
    assert sizes(floor.batch_done()) == [("client", "Acme", 40)]  # its category is covered by it
    floor.run(CreateIncident(type="create_incident", command_id="acme", title="Acme outage",
                             ticket_ids=sorted(floor.state.tickets)))  # fmt: skip
    reported: list[tuple[str, str, int]] = []
    for n in range(14):  # then the ISP's other customers call, one by one
        floor.report(client=f"Client {n}", category="network")
        reported += sizes(floor.batch_done())
    assert reported[0] == ("category", "network", 5)


def test_an_afternoon_burst_is_measured_against_the_afternoon_not_the_morning_flood() -> None:
    floor = Floor()
    floor.report(client="Acme", n=150)
    assert sizes(floor.batch_done()) == [("client", "Acme", 150)]
    for _ in range(48):  # four quiet hours: one Acme ticket every five minutes keeps the group alive
        floor.now += timedelta(minutes=5)
        floor.report(client="Acme")
        floor.batch_done()
    floor.now += timedelta(minutes=1)
    floor.report(client="Acme", n=60)
    afternoon = sizes(floor.batch_done())
    assert afternoon and afternoon[0][:2] == ("client", "Acme") and afternoon[0][2] >= 60


def test_closed_tickets_leave_detection_at_once_unless_reported() -> None:
    floor = Floor()
    floor.report(n=5)
    assert sizes(floor.batch_done()) == [("client", "Acme", 5)]
    # A stream opened and closed at once (other clients, under the threshold) is not kept for the window.
    for n in range(200):
        floor.report(client=f"Client {n}", category="network")
        floor.batch_done()
        ticket_id = f"T-{floor.state.last_ticket_number:06d}"
        floor.run(SetStatus(type="set_status", command_id=f"r{n}", ticket_id=ticket_id, status="cancelled"))
        forget_closed_tickets(floor.memory, [ticket_id])
    assert list(floor.memory.arrivals) == [f"T-00000{n}" for n in range(1, 6)]
    # The reported ones stay until they leave the window: the next report is measured against them.
    forget_closed_tickets(floor.memory, ["T-000001"])
    assert "T-000001" in floor.memory.arrivals
    floor.report(n=5)
    assert sizes(floor.batch_done()) == [("client", "Acme", 10)]
