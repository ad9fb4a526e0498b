"""The connected boards and tools, and the fan-out of committed events to them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from dispatch.core.models import Role
from dispatch.core.protocol import Event, TicketEvent
from dispatch.core.rules import visible_to
from dispatch.core.state import Actor
from server.limits import CommandAllowance

__all__ = ["Client", "Fanout", "close_bounded", "event_frame", "write_frames"]

log = logging.getLogger("dispatch.server")

# A board that cannot take the stream this far behind is closed (1013) and resumes with last_seq,
# rather than growing our memory or slowing everyone else.
SEND_BUFFER_LIMIT = 8 * 1024 * 1024
# Most commands one connection may have waiting for their ack; past it we stop reading its frames,
# which pushes back on the client through TCP instead of queueing without bound.
MAX_IN_FLIGHT = 256
CLOSE_WAIT_S = 3.0


@dataclass(eq=False)
class Client:
    """One board or tool connected with a token."""

    ws: ServerConnection
    actor: Actor
    token_name: str
    allowance: CommandAllowance | None = None
    in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))
    # Live events (seq, frame) that arrive while the client is still catching up; sent right after,
    # in order, skipping those its snapshot or catch-up already covered.
    pending: list[tuple[int, str]] | None = field(default_factory=list)
    # The seq its snapshot or catch-up covered. A snapshot may already hold a batch that is still
    # committing, so that batch's events must not be sent again when they are published.
    covered_seq: int = 0
    # While a batch is published (`Fanout.holding`): its frames for this client, written together.
    held: list[bytes] | None = None

    def send(self, text: str) -> None:
        self.send_encoded(text.encode())

    def send_encoded(self, frame: bytes) -> None:
        # Written without awaiting, so the writer never waits on one slow socket; the buffer it fills
        # is checked after every batch (see Fanout.drop_slow_clients).
        if self.held is not None:
            self.held.append(frame)
        else:
            write_frames(self.ws, [frame])

    def answered(self, text: str) -> None:
        """Send the answer to one of its commands, which frees a place for its next one."""
        self.send(text)
        self.in_flight.release()


class Fanout:
    """Every connected client, and what has been published to them."""

    def __init__(self, published_seq: int, event_log: IO[str]) -> None:
        self.clients: set[Client] = set()
        # The in-memory state runs ahead of the disk while a batch commits; this is the last seq that
        # is committed and was broadcast, the only one a resuming client may be promised.
        self.published_seq = published_seq
        self.event_log = event_log
        # Set at every publish, for those waiting for a seq (`reach`).
        self._advanced = asyncio.Event()

    def publish(self, events: Sequence[tuple[Event, str]]) -> None:
        """Send committed events (with their serialised payload) to every client that may see them."""
        if not events:
            return
        everyone = [c for c in self.clients if c.pending is None and c.actor.role is not Role.TECHNICIAN]
        technicians = [c for c in self.clients if c.pending is None and c.actor.role is Role.TECHNICIAN]
        catching_up = [c for c in self.clients if c.pending is not None]
        for event, payload in events:
            frame = event_frame(payload)
            encoded = frame.encode()  # once, for every client
            for client in everyone:
                if client.covered_seq < event.seq:
                    client.send_encoded(encoded)
            for client in technicians:
                if client.covered_seq < event.seq and visible_to(client.actor, event):
                    client.send_encoded(encoded)
            for client in catching_up:
                if visible_to(client.actor, event):
                    assert client.pending is not None
                    client.pending.append((event.seq, frame))
            self.event_log.write(payload + "\n")
            if isinstance(event, TicketEvent) and event.kind in ("ticket_assigned", "ticket_unassigned"):
                log.info(_allocation_line(event))
        self.published_seq = events[-1][0].seq
        self.event_log.flush()
        self._advanced.set()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Within it, what is sent to a client (a batch's events, then its answers) is kept and written
        at the end in one write per client: one system call for the batch, not one per frame, on both
        ends of each socket. Nothing waits here, so frames go out when the batch's are ready anyway."""
        held = list(self.clients)
        for client in held:
            client.held = []
        try:
            yield
        finally:
            for client in held:
                frames, client.held = client.held, None
                if frames:
                    write_frames(client.ws, frames)

    async def reach(self, seq: int, within_s: float) -> None:
        """Until `seq` is published, or `within_s` seconds have passed, whichever is first."""
        try:
            async with asyncio.timeout(within_s):
                while self.published_seq < seq:
                    self._advanced.clear()
                    await self._advanced.wait()
        except TimeoutError:
            pass

    def drop_slow_clients(self, code: int, reason: str) -> None:
        """Close clients whose send buffer outgrew the limit: they resume with last_seq."""
        for client in list(self.clients):
            transport = client.ws.transport
            if transport is not None and transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
                log.warning("closing %s: it is not keeping up with the event stream", client.actor.user)
                self.drop(client, code, reason)

    def drop(self, client: Client, code: int, reason: str) -> None:
        """Stop sending to `client` and close it (without waiting here)."""
        self.clients.discard(client)
        asyncio.create_task(close_bounded(client.ws, code, reason))

    async def close_all(self, code: int, reason: str) -> None:
        await asyncio.gather(*(close_bounded(c.ws, code, reason) for c in list(self.clients)))


def write_frames(ws: ServerConnection, frames: list[bytes]) -> None:
    """Send text frames (UTF-8) in one write, as websockets' broadcast() sends one: skipped when the
    connection is closing, a failure logged and ignored (the connection's own reader sees it close)."""
    if ws.protocol.state is not State.OPEN or ws.transport is None:
        return
    try:
        for frame in frames:
            ws.protocol.send_text(frame)
        ws.transport.write(b"".join(ws.protocol.data_to_send()))
    except Exception as exc:
        ws.logger.warning("skipped a write: %s", exc)


def event_frame(payload: str) -> str:
    # The event is serialised once and the same string goes to every board.
    return '{"type":"event","event":' + payload + "}"


async def close_bounded(ws: ServerConnection, code: int, reason: str) -> None:
    """Close, but never wait long on a client that stopped reading: websockets waits for the send
    buffer to drain before its own close timeout starts, so a stalled socket is aborted instead."""
    try:
        async with asyncio.timeout(CLOSE_WAIT_S):
            await ws.close(code, reason)
    except TimeoutError:
        if ws.transport is not None:
            ws.transport.abort()


def _allocation_line(event: TicketEvent) -> str:
    ticket = event.ticket
    if event.kind == "ticket_unassigned":
        return f"{ticket.id} {ticket.priority} {event.previous_assignee} -> queue by {event.actor}"
    source = f"{event.previous_assignee} " if event.previous_assignee else ""
    return f"{ticket.id} {ticket.priority} {source}-> {ticket.assignee} by {event.actor}"
