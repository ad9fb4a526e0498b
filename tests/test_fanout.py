"""How frames leave the server: a batch's events and answers written together to each client, and
snapshots that re-serialise only the tickets that changed. Unit tests without sockets, then the real
server under a pipelined burst."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.models import HoldReason, Incident, Role, Technician, Ticket, TicketStatus
from dispatch.core.protocol import Snapshot
from server.connection import TicketJson
from tests.support import ServerProcess, Session, ticket_frame

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def ticket(number: int, **fields: object) -> Ticket:
    values: dict[str, object] = {
        "id": f"T-{number}", "title": f"Printer {number} jammed «ünïcode» \"quoted\"", "client": "Acme",
        "priority": "P2", "created_at": NOW, "respond_by": NOW + timedelta(hours=1),
        "resolve_by": NOW + timedelta(hours=8), **fields,
    }  # fmt: skip
    return Ticket.model_validate(values)


TICKETS = [
    ticket(1),
    ticket(2, status=TicketStatus.ASSIGNED, assignee="alice", responded_at=NOW, skills=["network"]),
    ticket(3, status=TicketStatus.ON_HOLD, paused_at=NOW, hold_reason=HoldReason.AWAITING_CLIENT, incident_id="I-1"),
    ticket(4, status=TicketStatus.RESOLVED, version=3, dedupe_key="k", duplicates=2),
]


def shell(seq: int) -> Snapshot:
    return Snapshot(
        seq=seq,
        tickets=[],
        technicians=[Technician(id="alice", name="Alice", skills=["network"], on_call=True, hours_today=2.5)],
        incidents=[Incident(id="I-1", title="ISP down", ticket_ids=["T-3"], opened_at=NOW)],
    )


@pytest.mark.parametrize(
    "tickets",
    [[], TICKETS[:1], TICKETS],
    ids=["none", "one", "several"],
)
def test_a_snapshot_with_kept_ticket_json_is_the_same_text(tickets: list[Ticket]) -> None:
    expected = shell(7).model_copy(update={"tickets": tickets}).model_dump_json()
    assert TicketJson().snapshot(shell(7), tickets) == expected


def test_only_changed_tickets_are_serialised_again_and_closed_ones_are_let_go() -> None:
    kept = TicketJson()
    kept.snapshot(shell(1), TICKETS)
    before = dict(kept._json)
    changed = TICKETS[0].model_copy(update={"status": TicketStatus.ASSIGNED, "assignee": "alice", "version": 2})
    now_open = [changed, *TICKETS[1:3]]  # T-4 left the snapshot
    text = kept.snapshot(shell(2), now_open)
    assert text == shell(2).model_copy(update={"tickets": now_open}).model_dump_json()
    assert kept._json["T-2"][1] is before["T-2"][1]  # the same string: not serialised again
    assert kept._json["T-1"][1] is not before["T-1"][1]
    assert set(kept._json) == {"T-1", "T-2", "T-3"}
    # An equal ticket read back from the database (another object) reuses its JSON too.
    again = [Ticket.model_validate(t.model_dump()) for t in now_open]
    assert kept.snapshot(shell(3), again) == shell(3).model_copy(update={"tickets": again}).model_dump_json()
    assert kept._json["T-2"][1] is before["T-2"][1]


async def test_a_pipelined_burst_reaches_everyone_whole_and_in_order(server: ServerProcess) -> None:
    """Many commands in flight from one client make batches of several; each client's frames of a
    batch go out in one write. Every viewer still gets each event once, in seq order, and the sender
    gets each of its events before the ack that names it."""
    sender = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    viewers = [await Session.open(server.url, await server.token(Role.VIEWER, f"wall{n}")) for n in range(3)]
    sender.frames = []
    ids = [await sender.send(ticket_frame(title=f"Burst {n}")) for n in range(60)]
    for command_id in ids:
        assert command_id is not None
        await sender.reply_to(command_id)
    acks = [f for f in sender.frames if f["type"] == "ack"]
    assert len(acks) == 60
    seen: set[int] = set()
    for frame in sender.frames:
        if frame["type"] == "event":
            seen.add(frame["event"]["seq"])
        else:
            assert frame["seq"] in seen, "an ack came before its event"
    last = max(a["seq"] for a in acks)
    await asyncio.gather(*(v.until_seq(last) for v in viewers))
    for viewer in viewers:
        # The tickets, and the burst they make (up to the last ack: a burst report may come after it).
        seqs = [e["seq"] for e in viewer.events if e["seq"] <= last]
        assert seqs == sorted(set(seqs)) == [e["seq"] for e in sender.events if e["seq"] <= last]
        created = [e["ticket"]["title"] for e in viewer.events if e["kind"] == "ticket_created"]
        assert sorted(created) == sorted(f"Burst {n}" for n in range(60))
    for session in [sender, *viewers]:
        await session.close()
