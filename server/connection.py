"""One connection's life: checks before the upgrade, the hello, catching up, and the read loop."""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import timedelta
from http import HTTPStatus

from pydantic import ValidationError
from pydantic_core import from_json
from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from dispatch.core.models import CalloutStatus, Role, Ticket
from dispatch.core.protocol import (
    CLOSE_BAD_TOKEN,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_MANY_CONNECTIONS,
    HELLO_TIMEOUT_S,
    PROTOCOL_VERSION,
    Error,
    ErrorCode,
    Hello,
    Snapshot,
    Welcome,
    decode_client_frame,
    describe_validation_error,
    event_adapter,
)
from dispatch.core.rules import visible_to, with_time
from dispatch.core.state import Actor, DispatchState
from server.fanout import Client, Fanout, close_bounded, event_frame
from server.limits import CommandAllowance
from server.settings import ServerSettings
from server.storage import Storage, StorageUnavailable, TokenRecord
from server.writer import CLOSE_TRY_AGAIN_LATER, UNAVAILABLE_REASON, Writer

__all__ = ["Connections"]

log = logging.getLogger("dispatch.server")

# Catching up by events beyond this many is slower than a snapshot.
MAX_RESUME_EVENTS = 10_000
# Closed tickets created this recently stay in a snapshot, so a board can still show the day's work.
RECENTLY_CLOSED = timedelta(hours=24)
REVOCATION_POLL_S = 1.0
# How long a client from another node waits for this one to catch up with it before it gets a snapshot.
CATCH_UP_WAIT_S = 1.0


class TicketJson:
    """Each ticket's JSON as the last full snapshot wrote it. Tickets are immutable and replaced when they
    change, so a snapshot of 5,000 tickets serialises only those changed since the last one: boards
    connecting during a burst no longer hold up everyone's acks for tens of milliseconds each."""

    def __init__(self) -> None:
        self._json: dict[str, tuple[Ticket, str]] = {}

    def snapshot(self, snapshot: Snapshot, tickets: list[Ticket]) -> str:
        """`snapshot` (built without tickets) as JSON with `tickets` in it: the same text as
        `snapshot.model_copy(update={"tickets": tickets}).model_dump_json()`."""
        kept, self._json = self._json, {}  # only this snapshot's tickets stay: closed ones leave
        parts = []
        for ticket in tickets:
            hit = kept.get(ticket.id)
            if hit is None or (hit[0] is not ticket and hit[0] != ticket):
                hit = (ticket, ticket.model_dump_json())
            self._json[ticket.id] = hit
            parts.append(hit[1])
        empty = snapshot.model_dump_json()
        head = f'{{"type":"snapshot","seq":{snapshot.seq},"tickets":[]'
        assert empty.startswith(head) and not snapshot.tickets, "the snapshot's fields moved: see TicketJson"
        return head[:-1] + ",".join(parts) + "]" + empty[len(head) :]


class Connections:
    """Admits connections and reads their commands into the writer."""

    def __init__(
        self, storage: Storage, state: DispatchState, settings: ServerSettings, fanout: Fanout, writer: Writer
    ) -> None:
        self.storage = storage
        self.state = state
        self.settings = settings
        self.fanout = fanout
        self.writer = writer
        self.draining = False
        # Other servers write to the same database (PostgreSQL, several nodes).
        self.others_write = False
        self.ws_server: Server | None = None
        # The token an upgrade request's `Authorization: Bearer` header proved, until its hello.
        self._bearers: weakref.WeakKeyDictionary[ServerConnection, TokenRecord] = weakref.WeakKeyDictionary()
        self._ticket_json = TicketJson()

    # --- before the upgrade -------------------------------------------------------------------------------

    async def check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: /healthz, the connection cap, and a token sent as `Authorization: Bearer`.

        The Origin check comes right after this, in websockets itself (`origins=`)."""
        if request.path == "/healthz":
            healthy = self.writer.fatal is None and not self.draining
            status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            body = (
                f"{status.phrase.lower()} seq={self.state.seq} connections={len(self.fanout.clients)} "
                f"protocol={PROTOCOL_VERSION}\n"
            ).encode()
            return Response(status.value, status.phrase, Headers([("Content-Type", "text/plain")]), body)
        # Upgraded connections are counted (this one not yet); those still opening are bounded by the
        # handshake timeout instead.
        if self.ws_server is not None and len(self.ws_server.all_connections) >= self.settings.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections: try again later\n")
        bearer = _bearer_token(request)
        if bearer is not None:
            try:
                record = await self.storage.find_token(bearer)
            except StorageUnavailable:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, UNAVAILABLE_REASON + "\n")
            if record is None:
                response = connection.respond(HTTPStatus.UNAUTHORIZED, "bad or revoked token\n")
                response.headers["WWW-Authenticate"] = 'Bearer realm="dispatch"'
                return response
            self._bearers[connection] = record
        return None

    # --- one connection -----------------------------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        client = await self._handshake(ws)
        if client is None:
            return
        try:
            await self._read_commands(client)
        except ConnectionClosed:
            pass
        finally:
            self.fanout.clients.discard(client)

    async def _handshake(self, ws: ServerConnection) -> Client | None:
        """Check the hello; a bad or missing token gets close 4401 and nothing else."""
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                raw = await ws.recv()
            hello = decode_client_frame(raw)
        except (TimeoutError, ValidationError, ConnectionClosed):
            hello = None
        try:
            record = await self._token_of(ws, hello) if isinstance(hello, Hello) else None
        except StorageUnavailable:
            await ws.close(CLOSE_TRY_AGAIN_LATER, UNAVAILABLE_REASON)
            return None
        if record is None or not isinstance(hello, Hello):
            await ws.close(CLOSE_BAD_TOKEN, "bad or missing token")
            return None
        clients = self.fanout.clients
        if sum(c.token_name == record.name for c in clients) >= self.settings.max_connections_per_token:
            await ws.close(CLOSE_TOO_MANY_CONNECTIONS, f"token {record.name!r} has too many open connections")
            return None
        client = Client(ws, Actor(record.name, record.role, record.tech_id), record.name)
        if self.settings.rate_limit > 0:
            client.allowance = CommandAllowance(self.settings.rate_limit, burst=max(1.0, 2 * self.settings.rate_limit))
        # Join the fan-out before reading the current seq: anything committed from here on lands in
        # `pending`, anything before is in the snapshot or the catch-up, so there is no gap.
        clients.add(client)
        try:
            await self._catch_up(client, hello.last_seq)
        except ConnectionClosed:
            clients.discard(client)
            return None
        except StorageUnavailable:
            clients.discard(client)
            await ws.close(CLOSE_TRY_AGAIN_LATER, UNAVAILABLE_REASON)
            return None
        return client

    async def _token_of(self, ws: ServerConnection, hello: Hello) -> TokenRecord | None:
        """The token from the upgrade request's Authorization header or else the hello; both must agree."""
        bearer = self._bearers.pop(ws, None)
        if bearer is not None:
            # A second, different token in the hello: trust neither.
            same = hello.token is None or (ws.request is not None and hello.token == _bearer_token(ws.request))
            return bearer if same else None
        return await self.storage.find_token(hello.token) if hello.token else None

    async def _catch_up(self, client: Client, last_seq: int | None) -> None:
        actor = client.actor
        if self.others_write and last_seq is not None and last_seq > self.fanout.published_seq:
            # A client coming from another node may be a batch or two ahead of this one: fold those in
            # first (moments), so that it resumes with the events it missed instead of a snapshot.
            self.writer.catch_up()
            await self.fanout.reach(last_seq, CATCH_UP_WAIT_S)
        published = self.fanout.published_seq
        # `base` is the seq the client is brought up to before it goes live. Both branches read it after
        # joining the fan-out, so every later event is in `pending` (and those up to it are skipped there).
        resume = last_seq is not None and last_seq <= published and published - last_seq <= MAX_RESUME_EVENTS
        if resume:
            base = published  # committed: the log has every event up to it
            await client.ws.send(_welcome(actor, base, self.settings.node))
            assert last_seq is not None
            for payload in await self.storage.events_after(last_seq, base):
                if actor.role is Role.TECHNICIAN and not visible_to(actor, event_adapter.validate_json(payload)):
                    continue
                await client.ws.send(event_frame(payload))
        else:
            # The snapshot is built from memory, which may include a batch still committing; its events
            # are published right after the commit and skipped below as already covered.
            base = self.state.seq
            snapshot = await self._snapshot_for(actor)
            await client.ws.send(_welcome(actor, base, self.settings.node))
            await client.ws.send(snapshot)
        client.covered_seq = base
        # Flush what went live meanwhile; the last check and the switch to live happen without an
        # await in between, so nothing can slip past.
        while client.pending:
            waiting, client.pending = client.pending, []
            for seq, frame in waiting:
                if seq > base:
                    await client.ws.send(frame)
        client.pending = None

    async def _snapshot_for(self, actor: Actor) -> str:
        """The state at the current seq, taken from memory before the first await; then the day's closed
        tickets, which live in the database (see `forget_closed`). Those may be newer than the seq (a
        batch committed meanwhile): the live events after it, sent next, say the same again, so the
        board still ends up equal to the server."""
        horizon = self.settings.clock() - RECENTLY_CLOSED

        def shown(t: Ticket) -> bool:
            return actor.role is not Role.TECHNICIAN or t.assignee == actor.tech_id

        seq = self.state.seq
        in_memory = set(self.state.tickets)
        tickets = [t for t in self.state.tickets.values() if (t.is_open or t.created_at >= horizon) and shown(t)]
        incidents = list(self.state.incidents.values())
        rules = self.writer.decider.settings.rules
        now = self.settings.clock()
        # Shift ends, on-call marks and hours as of now, not as of each technician's last event.
        technicians = [
            with_time(t, rules.roster, self.state.work.get(t.id), now) for t in self.state.technicians.values()
        ]
        callouts = [
            c
            for c in self.state.callouts.values()
            if c.status is CalloutStatus.WAITING and (actor.role is not Role.TECHNICIAN or c.tech_id == actor.tech_id)
        ]
        closed = await self.storage.closed_tickets_since(horizon)
        tickets += [t for t in closed if t.id not in in_memory and shown(t)]
        if actor.role is Role.TECHNICIAN:
            own = {t.id for t in tickets}
            incidents = [i for i in incidents if own.intersection(i.ticket_ids)]
        snapshot = Snapshot(
            seq=seq,
            tickets=[],
            technicians=technicians,
            incidents=incidents,
            calendars=[c.hours() for c in rules.contracts.calendars.values() if not c.always_open],
            callouts=callouts,
        )
        if actor.role is Role.TECHNICIAN:  # a few tickets: not worth keeping (nor evicting the full set for)
            return snapshot.model_copy(update={"tickets": tickets}).model_dump_json()
        return self._ticket_json.snapshot(snapshot, tickets)

    async def _read_commands(self, client: Client) -> None:
        async for raw in client.ws:
            if self.draining:
                # Take no new commands (they were never acked; the client resends them after it
                # reconnects), but keep reading: a paused socket would hold up the closing handshake
                # behind unread frames. The server closes with 1001 once the queued commands are acked.
                continue
            # Every frame counts, garbage too: the limit is what keeps one connection from taking the
            # writer's time from everyone else.
            if client.allowance is not None and not client.allowance.take():
                if client.allowance.exhausted:
                    log.warning("closing %s: it went on sending past its rate limit", client.actor.user)
                    await close_bounded(client.ws, CLOSE_RATE_LIMITED, "rate limit: reconnect and send more slowly")
                    return
                command_id = _command_id_of(raw) if isinstance(raw, str) else None
                message = f"over {self.settings.rate_limit:g} commands/s: not applied; resend it a little later"
                client.send(_error(command_id, ErrorCode.RATE_LIMITED, message))
                continue
            if isinstance(raw, bytes):
                client.send(_error(None, ErrorCode.INVALID, "binary frames are not part of the protocol"))
                continue
            try:
                frame = decode_client_frame(raw)
            except ValidationError as exc:
                client.send(_error(_command_id_of(raw), ErrorCode.INVALID, describe_validation_error(exc)))
                continue
            if isinstance(frame, Hello):
                client.send(_error(None, ErrorCode.INVALID, "hello is only the first frame of a connection"))
            else:
                # Reads go through the writer's queue too, so every connection gets its answers in the
                # order it asked: a `suggest` right after a `create_ticket` finds the new ticket.
                await client.in_flight.acquire()
                self.writer.submit(client, frame)

    # --- revocation ---------------------------------------------------------------------------------------

    async def watch_revocations(self) -> None:
        """Close the connections of revoked tokens (the CLI revokes in the database)."""
        failing = False  # said once per outage: a line a second would bury the log while the database is away
        while True:
            await asyncio.sleep(REVOCATION_POLL_S)
            try:
                revoked = await self.storage.revoked_names()
            except Exception as exc:  # a busy database must not end the watcher
                if not failing:
                    log.warning("cannot read revoked tokens: %s (trying every %g s)", exc, REVOCATION_POLL_S)
                failing = True
                continue
            if failing:
                log.info("revoked tokens can be read again")
                failing = False
            for client in list(self.fanout.clients):
                if client.token_name in revoked:
                    self.fanout.drop(client, CLOSE_BAD_TOKEN, "token revoked")


def _welcome(actor: Actor, seq: int, node: str) -> str:
    welcome = Welcome(role=actor.role, user=actor.user, tech_id=actor.tech_id, seq=seq, node=node or None)
    return welcome.model_dump_json()


def _bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; "" (never a token) for another scheme."""
    authorization = request.headers.get("Authorization")
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _error(command_id: str | None, code: ErrorCode, message: str) -> str:
    return Error(command_id=command_id, code=code, message=message).model_dump_json()


def _command_id_of(raw: str) -> str | None:
    """Best effort, so that even a refused frame's error names the command it answers."""
    # pydantic's own parser, as decoding used: it raises ValueError (not RecursionError) on deep
    # nesting and refuses lone surrogates that could not be serialised back into the error frame.
    try:
        value = from_json(raw)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("command_id"), str) and len(value["command_id"]) <= 128:
        return str(value["command_id"])
    return None
