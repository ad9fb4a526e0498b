"""`BoardModel`, the board's copy of the state, without a socket or a screen: rules table-driven."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dispatch.core.calendars import ALWAYS_OPEN, Calendar
from dispatch.core.contracts import Contracts
from dispatch.core.models import Callout, CalloutStatus, Priority, Role, Technician, TechStatus, Ticket, TicketStatus
from dispatch.core.protocol import (
    BurstEvent,
    CalloutEvent,
    Error,
    ErrorCode,
    Event,
    ForecastAnswer,
    PredictedBreach,
    Shortfall,
    SlaEvent,
    Snapshot,
    TechnicianEvent,
    TicketEvent,
    Welcome,
)
from dispatch.core.sla import SlaState, clock_fields
from dispatch.model import (
    Alert,
    Applied,
    BoardModel,
    PendingCommand,
    PeopleCounts,
    TechnicianTime,
    forecast_words,
    format_hours,
    horizon_words,
    matcher,
    opens_label,
    own_time_words,
    people_words,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SNAPSHOT_SEQ = 10


def ticket(
    number: int,
    priority: Priority = Priority.P3,
    *,
    created: datetime = T0,
    version: int = 1,
    **fields: Any,
) -> Ticket:
    clock = clock_fields(Contracts().terms("Acme", priority), created)
    values: dict[str, Any] = {
        "id": f"T-{number:06d}",
        "title": f"ticket {number}",
        "client": "Acme",
        "priority": priority,
        "created_at": created,
        **clock,
        "version": version,
    }
    return Ticket(**(values | fields))


def tech(tech_id: str, **fields: Any) -> Technician:
    return Technician(**({"id": tech_id, "name": tech_id.title(), "skills": ["network"]} | fields))


def ticket_event(seq: int, after: Ticket, kind: str = "ticket_assigned", **fields: Any) -> TicketEvent:
    return TicketEvent(seq=seq, ts=T0 + timedelta(minutes=seq), actor="ana", kind=kind, ticket=after, **fields)


def sla_event(seq: int, kind: str, ticket_id: str, target: str = "respond") -> SlaEvent:
    return SlaEvent(seq=seq, ts=T0, actor="auto", kind=kind, ticket_id=ticket_id, target=target, due=T0)


def snapshot(tickets: list[Ticket], technicians: Sequence[Technician] = (), seq: int = SNAPSHOT_SEQ) -> Snapshot:
    return Snapshot(seq=seq, tickets=tickets, technicians=list(technicians), incidents=[])


def loaded(role: Role = Role.DISPATCHER, tech_id: str | None = None, tickets: list[Ticket] | None = None) -> BoardModel:
    """A model welcomed as `role` holding a snapshot at seq 10 of three P3 tickets (or `tickets`)."""
    model = BoardModel()
    model.welcome(Welcome(role=role, user="someone", tech_id=tech_id, seq=SNAPSHOT_SEQ))
    model.load_snapshot(snapshot([ticket(1), ticket(2), ticket(3)] if tickets is None else tickets, [tech("alice")]))
    return model


# --- the snapshot --------------------------------------------------------------------------------------


def test_a_snapshot_replaces_the_state_and_fills_the_lanes_most_urgent_first() -> None:
    model = BoardModel()
    assert not model.has_snapshot
    tickets = [
        ticket(1, Priority.P2, created=T0),
        ticket(2, Priority.P2, created=T0 - timedelta(minutes=30)),  # older: due sooner
        ticket(3, Priority.P1, assignee="alice", status=TicketStatus.ASSIGNED),
        ticket(4, Priority.P4, status=TicketStatus.RESOLVED),  # closed: in the state, in no lane
    ]
    model.load_snapshot(snapshot(tickets, [tech("bob"), tech("alice")], seq=42))

    assert model.has_snapshot and model.state.seq == 42
    assert set(model.state.tickets) == {"T-000001", "T-000002", "T-000003", "T-000004"}
    assert [t.id for t in model.lane(Priority.P2)] == ["T-000002", "T-000001"]
    # All lanes at once (a technician's own lane) by due time: the assigned P1 counts to resolve (4 h).
    assert [t.id for t in model.lane(None)] == ["T-000002", "T-000001", "T-000003"]
    assert model.lane_counts() == {Priority.P1: 1, Priority.P2: 2, Priority.P3: 0, Priority.P4: 0}
    assert model.loads() == {"alice": 1}
    assert [t.id for t in model.technicians()] == ["alice", "bob"]
    assert model.touched == set(Priority)


def test_a_second_snapshot_forgets_the_first() -> None:
    model = loaded()
    model.load_snapshot(snapshot([ticket(9, Priority.P1)], seq=50))
    assert list(model.state.tickets) == ["T-000009"]
    assert model.lane_counts()[Priority.P3] == 0 and model.state.seq == 50


# --- events in order -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "seqs", "outcomes"),
    [
        (Role.DISPATCHER, [11, 12, 13], [Applied.APPLIED] * 3),
        (Role.DISPATCHER, [10], [Applied.DUPLICATE]),  # the last one we hold: a resume overlapping
        (Role.DISPATCHER, [11, 11], [Applied.APPLIED, Applied.DUPLICATE]),
        (Role.DISPATCHER, [12], [Applied.GAP]),  # 11 is missing
        (Role.DISPATCHER, [11, 13], [Applied.APPLIED, Applied.GAP]),
        (Role.VIEWER, [12], [Applied.GAP]),
        # A technician's stream is filtered by the server: holes in it are normal.
        (Role.TECHNICIAN, [15, 40], [Applied.APPLIED, Applied.APPLIED]),
        (Role.TECHNICIAN, [9], [Applied.DUPLICATE]),
    ],
)
def test_events_apply_once_in_seq_order_and_a_gap_is_noticed(
    role: Role, seqs: list[int], outcomes: list[Applied]
) -> None:
    model = loaded(role, "alice" if role is Role.TECHNICIAN else None)
    mine = ticket(1, assignee="alice", status=TicketStatus.ASSIGNED)
    results = [model.apply(ticket_event(seq, mine.model_copy(update={"version": seq}))) for seq in seqs]
    assert results == outcomes
    applied = [seq for seq, outcome in zip(seqs, outcomes, strict=True) if outcome is Applied.APPLIED]
    assert model.state.seq == (applied[-1] if applied else SNAPSHOT_SEQ)


def test_lanes_and_loads_follow_assign_priority_and_resolve() -> None:
    model = loaded()
    first = model.state.tickets["T-000001"]
    assigned = first.model_copy(update={"assignee": "alice", "status": TicketStatus.ASSIGNED, "version": 2})
    model.touched.clear()
    model.apply(ticket_event(11, assigned))
    assert model.loads() == {"alice": 1}
    assert model.touched == {Priority.P3}

    moved = assigned.model_copy(update={"priority": Priority.P1, "version": 3})
    model.apply(ticket_event(12, moved, "priority_changed", previous_priority=Priority.P3))
    assert [t.id for t in model.lane(Priority.P1)] == ["T-000001"]
    assert "T-000001" not in [t.id for t in model.lane(Priority.P3)]
    assert model.touched == {Priority.P1, Priority.P3}

    resolved = moved.model_copy(update={"status": TicketStatus.RESOLVED, "version": 4})
    model.apply(ticket_event(13, resolved, "status_changed"))
    assert model.lane_size(Priority.P1) == 0 and model.loads() == {"alice": 0}
    assert model.state.tickets["T-000001"].status is TicketStatus.RESOLVED  # still known, no longer shown


def test_a_new_ticket_counts_as_an_arrival() -> None:
    model = loaded(tickets=[])
    model.apply(ticket_event(11, ticket(7, created=T0 + timedelta(minutes=5)), "ticket_created"))
    per_minute = model.arrivals_per_minute(T0 + timedelta(minutes=10), minutes=10)
    assert sum(per_minute) == 1 and per_minute[5] == 1


def test_a_ticket_taken_from_a_technician_leaves_their_lane() -> None:
    model = loaded(Role.TECHNICIAN, "alice", tickets=[ticket(1, assignee="alice", status=TicketStatus.ASSIGNED)])
    taken = model.state.tickets["T-000001"].model_copy(update={"assignee": "bob", "version": 2})
    model.apply(ticket_event(14, taken, previous_assignee="alice"))
    assert model.lane(None) == [] and "T-000001" not in model.state.tickets
    assert model.loads() == {"alice": 0}


# --- a flush: a batch of frames ------------------------------------------------------------------------


def test_a_batch_reports_the_tickets_it_changed() -> None:
    model = loaded()
    one, two = model.state.tickets["T-000001"], model.state.tickets["T-000002"]
    batch = model.apply_batch(
        [ticket_event(10, one), ticket_event(11, one.model_copy(update={"version": 2})), ticket_event(12, two)]
    )
    assert batch.changed == {"T-000001", "T-000002"}
    assert [e.seq for e in batch.events] == [11, 12]  # 10 was already held
    assert not batch.gap and batch.redraw and not batch.technicians_changed


def test_a_batch_stops_at_a_gap_and_keeps_what_came_before() -> None:
    model = loaded()
    one = model.state.tickets["T-000001"]
    batch = model.apply_batch([ticket_event(11, one), ticket_event(13, one), ticket_event(14, one)])
    assert batch.gap and [e.seq for e in batch.events] == [11] and model.state.seq == 11


def test_a_snapshot_in_a_batch_means_redraw_everything_after_it() -> None:
    model = loaded()
    fresh = ticket(8, Priority.P2)
    batch = model.apply_batch(
        [ticket_event(11, ticket(1)), snapshot([fresh], seq=20), ticket_event(21, fresh, "note_added")]
    )
    assert batch.changed is None and [e.seq for e in batch.events] == [21]
    assert batch.redraw and batch.technicians_changed and set(model.state.tickets) == {"T-000008"}


def test_a_batch_of_technician_changes_and_bursts() -> None:
    model = loaded()
    burst = {"ts": T0, "actor": "auto", "kind": "burst_detected", "group": "client", "window_minutes": 10}
    batch = model.apply_batch(
        [
            TechnicianEvent(seq=11, ts=T0, actor="ana", kind="technician_status_changed",
                            technician=tech("alice", status=TechStatus.BREAK)),
            BurstEvent(seq=12, value="Acme", ticket_ids=["T-000001"], **burst),
            BurstEvent(seq=13, value="Globex", ticket_ids=["T-000002"], **burst),
        ]
    )  # fmt: skip
    assert batch.changed == set() and batch.technicians_changed and batch.redraw
    assert batch.burst is not None and batch.burst.value == "Globex"  # the banner shows the latest
    assert model.state.technicians["alice"].status is TechStatus.BREAK


def test_an_empty_batch_redraws_nothing() -> None:
    batch = loaded().apply_batch([ticket_event(10, ticket(1))])
    assert batch.changed == set() and batch.events == [] and not batch.redraw and batch.burst is None


# --- what the screen reads -----------------------------------------------------------------------------


def test_pending_commands_mark_their_tickets() -> None:
    model = loaded()
    model.pending["c1"] = PendingCommand("assign 2 tickets", ("T-000001", "T-000002"))
    model.pending["c2"] = PendingCommand("set alice on break")
    assert [model.is_pending(t) for t in ("T-000001", "T-000002", "T-000003")] == [True, True, False]
    del model.pending["c1"]
    assert not model.is_pending("T-000001")


@pytest.mark.parametrize(
    ("minutes_old", "expected"),
    [
        (0, (0, 0)),
        (179, (0, 0)),  # a P3 is to be responded to in 4 h: at risk once 75 % of that is used
        (180, (1, 0)),
        (239, (1, 0)),
        (240, (0, 1)),
        (300, (0, 1)),
    ],
)
def test_sla_counts_at_risk_and_breached_as_the_rows_read_them(minutes_old: int, expected: tuple[int, int]) -> None:
    model = loaded(tickets=[ticket(1, created=T0)])
    now = T0 + timedelta(minutes=minutes_old)
    assert model.sla_counts(now) == expected
    # The header's counts (two bisections) and the row's colour (read_clock) must never disagree.
    state = model.clock(model.state.tickets["T-000001"], now).state
    assert expected == ((state is SlaState.WARNING) * 1, (state is SlaState.BREACHED) * 1)


P3_RESOLVE = timedelta(days=2)  # at risk after 36 h, breached after 48 h


@pytest.mark.parametrize(
    ("paused_after_hours", "expected"),
    [
        (None, (0, 1)),  # running: 50 h of 48 used
        (10, (0, 0)),  # stood still after 10 h: fine, however long the hold lasts
        (37, (1, 0)),  # after 37 h: at risk, and it stays so
        (49, (0, 1)),  # after the breach: breached
    ],
)
def test_a_clock_stopped_by_a_hold_counts_as_it_stood_at_the_pause(
    paused_after_hours: int | None, expected: tuple[int, int]
) -> None:
    paused_at = None if paused_after_hours is None else T0 + timedelta(hours=paused_after_hours)
    status = TicketStatus.IN_PROGRESS if paused_at is None else TicketStatus.ON_HOLD
    held = ticket(1, assignee="alice", status=status, responded_at=T0, paused_at=paused_at)
    model = loaded(tickets=[held])
    now = T0 + timedelta(hours=50)  # the server moves due times on only when the hold ends
    assert model.sla_counts(now) == expected
    state = model.clock(held, now).state
    assert expected == ((state is SlaState.WARNING) * 1, (state is SlaState.BREACHED) * 1)


def test_a_hold_that_ends_puts_the_ticket_back_on_the_running_clocks() -> None:
    working = ticket(1, assignee="alice", status=TicketStatus.IN_PROGRESS, responded_at=T0)
    model = loaded(tickets=[working])
    held = working.model_copy(update={"status": TicketStatus.ON_HOLD, "paused_at": T0 + timedelta(hours=1),
                                      "version": 2})  # fmt: skip
    model.apply(ticket_event(11, held, "status_changed"))
    assert model.sla_counts(T0 + timedelta(hours=47)) == (0, 0)
    # Resumed after 46 h: the server moved its instants on by the time it stood.
    stood = timedelta(hours=46)
    resumed = held.model_copy(update={
        "status": TicketStatus.IN_PROGRESS, "paused_at": None, "paused_seconds": int(stood.total_seconds()),
        "resolve_by": held.resolve_by + stood, "resolve_warn_at": (held.resolve_warn_at or T0) + stood, "version": 3,
    })  # fmt: skip
    model.apply(ticket_event(12, resumed, "status_changed"))
    assert model.sla_counts(T0 + timedelta(hours=47)) == (0, 0)
    assert model.sla_counts(T0 + stood + timedelta(hours=37)) == (1, 0)
    assert model.sla_counts(T0 + stood + P3_RESOLVE) == (0, 1)


OFFICE = Calendar("uk-office", "Europe/London", ((( 9 * 60, 17 * 60 + 30),),) * 5 + ((), ()))  # fmt: skip


def test_clocks_run_on_the_snapshots_calendars_and_an_unknown_one_is_24x7() -> None:
    friday_5pm = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    terms = Contracts.parse(
        '[calendars.uk-office]\ntimezone = "Europe/London"\n'
        + "".join(f'{day} = "09:00-17:30"\n' for day in ("mon", "tue", "wed", "thu", "fri"))
        + '[tiers.gold]\ncalendar = "uk-office"\n[clients.Acme]\ntier = "gold"\n',
        "sla.toml",
    ).terms("Acme", Priority.P2)
    gold = ticket(1, Priority.P2, created=friday_5pm, **clock_fields(terms, friday_5pm))
    model = BoardModel()
    model.load_snapshot(
        Snapshot(seq=1, tickets=[gold], technicians=[], incidents=[], calendars=[terms.calendar.hours()])
    )
    assert model.calendar("uk-office") == OFFICE and model.calendar("gone") is ALWAYS_OPEN
    # Friday 18:00: closed; the half hour used stays used, and the clock stands until Monday 09:00.
    reading = model.clock(gold, datetime(2026, 12, 4, 18, 0, tzinfo=UTC))
    assert reading.left == timedelta(minutes=30)
    assert reading.opens_at == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    # On a calendar the board was not told of, it reads as 24x7: wall time, never standing.
    stray = gold.model_copy(update={"calendar": "gone"})
    assert model.clock(stray, datetime(2026, 12, 4, 18, 0, tzinfo=UTC)).opens_at is None


MONDAY_9AM_LONDON = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "label"),
    [
        (datetime(2026, 12, 4, 18, 0, tzinfo=UTC), "Europe/London", "Mon 09:00"),
        (datetime(2026, 12, 4, 18, 0, tzinfo=UTC), "America/New_York", "Mon 04:00"),
        (datetime(2026, 12, 4, 18, 0, tzinfo=UTC), "Asia/Tokyo", "Mon 18:00"),
        (datetime(2026, 11, 30, 9, 1, tzinfo=UTC), "Europe/London", "Mon 09:00"),  # 6 days 23 h ahead
        (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), "Europe/London", "07 Dec"),  # a week ahead: the date
    ],
)
def test_when_a_calendar_opens_is_said_in_the_dispatchers_time(now: datetime, zone: str, label: str) -> None:
    assert opens_label(MONDAY_9AM_LONDON, now, ZoneInfo(zone)) == label


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["T-000001", "T-000002", "T-000003"]),
        ("globex", ["T-000002"]),
        ("GLOBEX vpn", ["T-000002"]),
        ("alice", ["T-000003"]),
        ("unassigned", ["T-000001", "T-000002"]),
        ("security", ["T-000001"]),
        ("T-000003", ["T-000003"]),
        ("nothing-like-this", []),
    ],
)
def test_the_filter_wants_every_word_somewhere_in_the_ticket(query: str, ids: list[str]) -> None:
    tickets = [
        ticket(1, skills=["security"]),
        ticket(2, client="Globex", title="VPN down"),
        ticket(3, assignee="alice", status=TicketStatus.ASSIGNED),
    ]
    model = loaded(tickets=tickets)
    assert [t.id for t in model.lane(Priority.P3, query)] == ids
    assert [t.id for t in tickets if matcher(query)(t)] == ids


# --- a refusal in words --------------------------------------------------------------------------------


def conflict(ticket_id: str = "T-000001") -> Error:
    return Error(command_id="c1", code=ErrorCode.CONFLICT, message="version mismatch", current={"id": ticket_id})


@pytest.mark.parametrize(
    ("kind", "update", "extra", "sentence"),
    [
        ("ticket_assigned", {"assignee": "bob"}, {}, "T-000001 was assigned to bob by ana 3 min ago"),
        ("ticket_assigned", {"assignee": "bob"}, {"previous_assignee": "alice"},
         "T-000001 was reassigned to bob by ana 3 min ago"),
        ("ticket_unassigned", {}, {"previous_assignee": "alice"}, "T-000001 was unassigned by ana 3 min ago"),
        ("priority_changed", {"priority": Priority.P1}, {}, "T-000001 was moved to P1 by ana 3 min ago"),
        ("status_changed", {"status": TicketStatus.ON_HOLD}, {}, "T-000001 was set to on hold by ana 3 min ago"),
        ("note_added", {}, {"note": "called"}, "T-000001 was changed by ana 3 min ago"),
    ],
)  # fmt: skip
def test_a_lost_race_says_who_changed_the_ticket_and_when(
    kind: str, update: dict[str, Any], extra: dict[str, Any], sentence: str
) -> None:
    model = loaded()
    changed = model.state.tickets["T-000001"].model_copy(update=update | {"version": 2})
    model.apply(ticket_event(11, changed, kind, **extra))  # at T0 + 11 min
    assert model.explain_refusal(conflict(), T0 + timedelta(minutes=14)) == sentence


@pytest.mark.parametrize(
    "error",
    [
        conflict("T-000002"),  # no change seen here for that ticket
        Error(command_id="c1", code=ErrorCode.CONFLICT, message="version mismatch"),  # no current state
        Error(command_id="c1", code=ErrorCode.FORBIDDEN, message="dispatchers only", current={"id": "T-000001"}),
    ],
)
def test_other_refusals_are_the_servers_own_sentence(error: Error) -> None:
    model = loaded()
    model.apply(ticket_event(11, model.state.tickets["T-000001"].model_copy(update={"version": 2})))
    assert model.explain_refusal(error, T0 + timedelta(minutes=14)) == error.message


# --- alerts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "events", "alerts"),
    [
        (Role.DISPATCHER, [], []),
        (Role.DISPATCHER, [sla_event(11, "sla_warning", "T-000001")], []),  # the lane shows warnings
        (Role.DISPATCHER, [sla_event(11, "sla_breached", "T-000001")],
         [Alert("SLA breached", "breached: T-000001 (respond)", "error")]),
        (Role.TECHNICIAN, [sla_event(11, "sla_breached", "T-000001", "resolve")],
         [Alert("SLA breached", "breached: T-000001 (resolve)", "error")]),
        (Role.DISPATCHER, [sla_event(11 + n, "sla_breached", f"T-00000{n}") for n in range(1, 7)],
         [Alert("SLA breached", "breached: T-000001 (respond), T-000002 (respond), T-000003 (respond), "
                "T-000004 (respond) and 2 more", "error")]),
        (Role.DISPATCHER, [sla_event(11, "escalation", "T-000002"), sla_event(12, "sla_breached", "T-000001")],
         [Alert("SLA breached", "breached: T-000001 (respond)", "error"),
          Alert("Escalation", "P1 still unassigned: T-000002", "warning")]),
        (Role.VIEWER, [sla_event(11, "sla_breached", "T-000001")], []),  # a wallboard raises none
    ],
)  # fmt: skip
def test_breaches_and_escalations_are_one_alert_per_kind_per_batch(
    role: Role, events: list[Event], alerts: list[Alert]
) -> None:
    model = loaded(role, "alice" if role is Role.TECHNICIAN else None)
    assert model.alerts(events) == alerts


# --- people's time -------------------------------------------------------------------------------------

SHIFT_END = T0 + timedelta(hours=6)  # 15:00


def tech_event(seq: int, technician: Technician, at: datetime) -> TechnicianEvent:
    return TechnicianEvent(seq=seq, ts=at, actor="auto", kind="technician_status_changed", technician=technician)


def callout(
    number: int, tech_id: str = "judy", status: CalloutStatus = CalloutStatus.WAITING, **fields: Any
) -> Callout:
    expires = T0 + timedelta(minutes=5)
    values: dict[str, Any] = {"id": f"CO-{number}", "tech_id": tech_id, "sent_at": T0, "expires_at": expires}
    return Callout(**(values | {"status": status} | fields))


def callout_event(seq: int, sent: Callout, kind: str = "callout_sent", actor: str = "ana") -> CalloutEvent:
    return CalloutEvent(seq=seq, ts=T0, actor=actor, kind=kind, callout=sent)


@pytest.mark.parametrize(
    ("status", "later", "hours"),
    [
        (TechStatus.AVAILABLE, timedelta(0), 2.0),
        (TechStatus.BUSY, timedelta(minutes=90), 3.5),  # on the clock: counted on from the event
        (TechStatus.ON_SITE, timedelta(minutes=30), 2.5),
        (TechStatus.BREAK, timedelta(minutes=90), 2.0),  # off the clock: what the server said stands
        (TechStatus.OFF_SHIFT, timedelta(hours=5), 2.0),
    ],
)
def test_hours_today_count_on_from_the_event_while_on_the_clock(
    status: TechStatus, later: timedelta, hours: float
) -> None:
    model = loaded()
    alice = tech("alice", status=status, hours_today=2.0)
    model.apply(tech_event(11, alice, T0))
    time = model.technician_time(model.state.technicians["alice"], T0 + later)
    assert time.hours == pytest.approx(hours)


def test_a_snapshots_hours_are_as_of_its_arrival_and_counted_on_only_when_it_is_known() -> None:
    alice = tech("alice", status=TechStatus.BUSY, hours_today=8.5)
    model = BoardModel()
    model.load_snapshot(snapshot([], [alice]), received_at=T0)
    assert model.technician_time(alice, T0 + timedelta(minutes=45)).hours == pytest.approx(9.25)
    assert model.technician_time(alice, T0 + timedelta(minutes=45)).tired
    unknown = BoardModel()
    unknown.load_snapshot(snapshot([], [alice]))
    assert unknown.technician_time(alice, T0 + timedelta(minutes=45)).hours == 8.5


def test_overtime_counts_from_the_shift_end_the_server_said_before_the_shift_was_over() -> None:
    model = loaded()
    on_shift = tech("alice", status=TechStatus.AVAILABLE, on_shift_until=SHIFT_END)
    model.apply(tech_event(11, on_shift, T0))
    assert model.technician_time(on_shift, SHIFT_END - timedelta(hours=1)).overtime is None
    # At the end, still on site: the next event says no shift any more; the end said before counts.
    on_site = tech("alice", status=TechStatus.ON_SITE, on_shift_until=None)
    model.apply(tech_event(12, on_site, SHIFT_END + timedelta(minutes=5)))
    time = model.technician_time(on_site, SHIFT_END + timedelta(minutes=25))
    assert time.shift_end == SHIFT_END and time.overtime == timedelta(minutes=25)
    # Off shift: no overtime, and the old end is forgotten.
    gone = tech("alice", status=TechStatus.OFF_SHIFT)
    model.apply(tech_event(13, gone, SHIFT_END + timedelta(minutes=30)))
    assert model.technician_time(gone, SHIFT_END + timedelta(hours=1)) == TechnicianTime(None, None, False, 0.0, None)


def test_the_moment_between_a_shift_end_and_the_servers_change_is_no_overtime() -> None:
    model = loaded()
    on_shift = tech("alice", on_shift_until=SHIFT_END)
    model.apply(tech_event(11, on_shift, T0))
    assert model.technician_time(on_shift, SHIFT_END + timedelta(seconds=20)).overtime is None


def test_a_callout_waits_then_counts_as_called_in_until_they_go_off_the_clock() -> None:
    model = loaded()
    judy = tech("judy", status=TechStatus.OFF_SHIFT, on_call=True)
    model.apply(tech_event(11, judy, T0))
    sent = callout(1)
    model.apply(callout_event(12, sent))
    assert model.technician_time(judy, T0).callout == sent and model.technician_time(judy, T0).on_call
    assert model.people_counts(T0) == PeopleCounts(
        on_the_clock=1, on_shift=0, on_call=1, callouts_waiting=1, callouts_accepted=0
    )  # (alice, from the snapshot, is on the clock)
    accepted = sent.model_copy(update={"status": CalloutStatus.ACCEPTED})
    model.apply(callout_event(13, accepted, "callout_answered", actor="judy"))
    working = judy.model_copy(update={"status": TechStatus.AVAILABLE})
    model.apply(tech_event(14, working, T0))
    assert model.technician_time(working, T0).callout == accepted
    assert model.people_counts(T0) == PeopleCounts(2, 0, 1, 0, 1)
    model.apply(tech_event(15, judy, T0 + timedelta(hours=3)))  # home again
    assert model.technician_time(judy, T0).callout is None and model.people_counts(T0).callouts_accepted == 0


def test_on_shift_counts_shifts_not_yet_over() -> None:
    model = BoardModel()
    model.load_snapshot(snapshot([], [tech("alice", on_shift_until=SHIFT_END), tech("bob", on_call=True),
                                      tech("carol", on_shift_until=T0)]), received_at=T0)  # fmt: skip
    assert model.people_counts(T0 - timedelta(minutes=1)) == PeopleCounts(3, 2, 1, 0, 0)
    assert model.people_counts(T0) == PeopleCounts(3, 1, 1, 0, 0)


def test_a_snapshot_brings_the_waiting_callouts_and_a_technician_sees_theirs() -> None:
    model = BoardModel()
    model.welcome(Welcome(role=Role.TECHNICIAN, user="judy-phone", tech_id="judy", seq=SNAPSHOT_SEQ))
    waiting = [callout(2, ticket_id="T-000001"), callout(3, "bob")]
    model.load_snapshot(Snapshot(seq=SNAPSHOT_SEQ, tickets=[], technicians=[], incidents=[], callouts=waiting))
    mine = model.my_callout()
    assert mine is not None and mine.id == "CO-2"
    # A snapshot does not say who sent it: one for a waiting ticket is the server's ladder.
    assert model.callout_sender(mine).startswith("the server")
    assert model.callout_sender(waiting[1]) == "a dispatcher"
    model.apply(callout_event(11, mine.model_copy(update={"status": CalloutStatus.EXPIRED}), "callout_expired", "auto"))
    assert model.my_callout() is None


def test_a_callout_event_says_who_sent_it_and_changes_the_technician_panel() -> None:
    model = loaded()
    batch = model.apply_batch([callout_event(11, callout(1))])
    assert batch.technicians_changed and model.callout_sender(callout(1)) == "ana"


@pytest.mark.parametrize(
    ("hours", "text"),
    [(0.0, "0h00"), (1.58, "1h35"), (9.999, "10h00"), (10.5, "10h30"), (-0.1, "0h00")],
)
def test_hours_are_written_to_the_minute(hours: float, text: str) -> None:
    assert format_hours(hours) == text


@pytest.mark.parametrize(
    ("counts", "full", "compact"),
    [
        (PeopleCounts(8, 7, 2, 0, 0), "on shift 7 · ☎ on call 2 · called out: none", "shift 7 · ☎ 2"),
        (PeopleCounts(8, 7, 2, 1, 0), "on shift 7 · ☎ on call 2 · called out: 1 waiting", "shift 7 · ☎ 2 · asked 1"),
        (PeopleCounts(8, 7, 2, 1, 2), "on shift 7 · ☎ on call 2 · called out: 1 waiting, 2 accepted",
         "shift 7 · ☎ 2 · asked 1 · in 2"),
        # No roster: nobody is on a shift or on call, so who is on the clock.
        (PeopleCounts(3, 0, 0, 0, 0), "on the clock 3 · called out: none", "on the clock 3"),
    ],
)  # fmt: skip
def test_the_headers_people_words(counts: PeopleCounts, full: str, compact: str) -> None:
    assert people_words(counts) == full
    assert people_words(counts, compact=True) == compact


@pytest.mark.parametrize(
    ("time", "words"),
    [
        (TechnicianTime(SHIFT_END, None, False, 1.5, None), "on shift until 15:00 · 1h30 on the clock in 24 h"),
        (TechnicianTime(SHIFT_END, timedelta(minutes=25), True, 9.5, None),
         "+0h25 past your shift's end (15:00) · ☎ on call · 9h30 on the clock in 24 h"),
        (TechnicianTime(None, None, True, 0, None), "not on a shift · ☎ on call · 0h00 on the clock in 24 h"),
    ],
)  # fmt: skip
def test_a_technicians_own_time_in_words(time: TechnicianTime, words: str) -> None:
    # (The board says times in the dispatcher's own zone: 15:00 UTC as this machine writes it.)
    assert own_time_words(time).replace(f"{SHIFT_END.astimezone():%H:%M}", "15:00") == words


def forecast(
    breaches: list[tuple[str, Priority]], short: Sequence[tuple[str, int]] = (), horizon: int = 120
) -> ForecastAnswer:
    return ForecastAnswer(
        command_id="f1", generated_at=T0, horizon_minutes=horizon,
        breaches=[PredictedBreach(ticket_id=t, target="respond", at=T0) for t, _ in breaches],
        by_priority={p: sum(1 for _, q in breaches if q is p) for p in Priority},
        short=[Shortfall(skill=skill, technicians=n) for skill, n in short],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "full", "compact"),
    [
        (forecast([]), "forecast: no breaches in 2h", "forecast none in 2h"),
        (forecast([("T-1", Priority.P2)], horizon=90), "forecast: 1 breach in 1h30 (P2 1)", "forecast 1 in 1h30"),
        (forecast([("T-1", Priority.P1), ("T-2", Priority.P2), ("T-3", Priority.P1), ("new", Priority.P2),
                   ("T-4", Priority.P2), ("T-5", Priority.P2)], [("network", 2)]),
         "forecast: 6 breaches in 2h (P1 2, P2 4) · short 2 network",
         "forecast 6 in 2h · short 2 network"),
        (forecast([("T-1", Priority.P3)], [("network", 2), ("voip", 1)], horizon=45),
         "forecast: 1 breach in 45m (P3 1) · short 2 network, 1 voip",
         "forecast 1 in 45m · short 2 network, 1 voip"),
    ],
)  # fmt: skip
def test_the_headers_forecast_words(answer: ForecastAnswer, full: str, compact: str) -> None:
    assert forecast_words(answer) == full
    assert forecast_words(answer, compact=True) == compact


@pytest.mark.parametrize(("minutes", "words"), [(120, "2h"), (90, "1h30"), (45, "45m"), (1440, "24h")])
def test_a_horizon_in_words(minutes: int, words: str) -> None:
    assert horizon_words(minutes) == words
