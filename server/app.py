"""The dispatch server, wired: storage, the writer, the connections, the SLA clock and a clean stop.

One asyncio process. Each job has its own module: server/connection.py admits connections and reads
their commands; server/writer.py commits batches (decided by the pure dispatch.core.decide) and then
publishes and replies; server/fanout.py knows who is connected. This module only starts and stops them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable
from typing import IO

from websockets.asyncio.server import serve
from websockets.typing import Origin

from dispatch.core.contracts import Contracts
from dispatch.core.protocol import MAX_FRAME_BYTES
from dispatch.core.roster import Roster
from dispatch.core.state import DispatchState
from server.connection import Connections
from server.fanout import CLOSE_WAIT_S, Fanout
from server.http import HttpIntake
from server.metrics import ServerMetrics
from server.nodes import Node
from server.notify import Notifier
from server.pgstorage import PostgresStorage
from server.settings import ServerSettings
from server.storage import Storage
from server.writer import Writer

__all__ = ["DispatchServer", "install_stop_signals"]

log = logging.getLogger("dispatch.server")

# The HTTP upgrade (and the TLS handshake before it) must be done this fast; the hello has its own 5 s.
HANDSHAKE_TIMEOUT_S = 5.0


class DispatchServer:
    """Holds the truth: the in-memory state, the storage, and every connected client."""

    def __init__(self, storage: Storage, state: DispatchState, settings: ServerSettings, event_log: IO[str]) -> None:
        self.storage = storage
        self.state = state
        self.settings = settings
        self.fanout = Fanout(state.seq, event_log)
        self.writer = Writer(storage, state, settings, self.fanout)
        # Told of each stored batch; sends its messages in the background (server/notify.py).
        self.notifier = Notifier(settings, state)
        self.writer.watchers.append(self.notifier.watch)
        self.connections = Connections(storage, state, settings, self.fanout, self.writer)
        self.metrics = ServerMetrics(state, self.fanout, self.notifier, leading=lambda: self.writer.leading)
        self.writer.watchers.append(self.metrics.observe)
        # HTTP intake and /metrics (`--http-port`), and its URL once it listens.
        self.http = (
            HttpIntake(storage, state, settings, self.writer, self.fanout, self.metrics)
            if settings.http_port is not None
            else None
        )
        self.http_url: str | None = None
        # On PostgreSQL, other servers may share the database: hear them, and lead when it is our turn.
        self.node = Node(storage, self.writer, settings) if isinstance(storage, PostgresStorage) else None
        self.connections.others_write = self.node is not None

    @classmethod
    async def start(cls, storage: Storage, settings: ServerSettings, event_log: IO[str]) -> DispatchServer:
        # Closed tickets stay on disk: memory holds what the rules decide over (see forget_closed).
        state = await storage.load_state(settings.clock(), closed_tickets=False)
        server = cls(storage, state, settings, event_log)
        await server.writer.repair_decision_log()
        if server.node is not None:
            await server.node.join()
        return server

    def use_files(self, contracts: Contracts, roster: Roster) -> None:
        """New SLA terms and roster (files reloaded on SIGHUP): tickets created from now on get the new
        terms, open tickets keep the due times they have; shifts and call-outs follow the new roster."""
        self.settings.contracts, self.settings.roster = contracts, roster
        self.writer.use_rules(contracts, roster)

    @property
    def fatal(self) -> BaseException | None:
        """Why the server stopped serving (it could not store a batch), if it did."""
        return self.writer.fatal

    async def run(self, ready: Callable[[str], None], stop: asyncio.Event) -> None:
        """Serve until `stop` is set (SIGTERM/SIGINT), then drain: finish queued commands, close, return."""
        try:
            await self._serve(ready, stop)
        finally:
            if self.node is not None:
                # Its session goes, and the leader lock with it: another node takes over at its next try.
                self.node.leave()

    async def _serve(self, ready: Callable[[str], None], stop: asyncio.Event) -> None:
        writer = asyncio.create_task(self.writer.run(), name="writer")
        watcher = asyncio.create_task(self.connections.watch_revocations(), name="revocations")
        clock = asyncio.create_task(self._run_clock(), name="sla-clock")
        node = asyncio.create_task(self.node.run(), name="node") if self.node is not None else None
        async with serve(
            self.connections.handle,
            self.settings.host,
            self.settings.port,
            max_size=MAX_FRAME_BYTES,
            process_request=self.connections.check_request,
            ssl=self.settings.tls,
            open_timeout=HANDSHAKE_TIMEOUT_S,
            # None admits requests with no Origin header: those do not come from a browser page.
            origins=[None, *(Origin(o) for o in self.settings.allowed_origins)],
            compression=None,  # small JSON frames gain little; deflate doubles our CPU per delivery
            # A client that stopped reading must not hold a shutdown (or a slow-client close) for long.
            close_timeout=CLOSE_WAIT_S,
        ) as ws_server:
            self.connections.ws_server = ws_server
            host, port = next(iter(ws_server.sockets)).getsockname()[:2]
            # Listening on every address (0.0.0.0, ::) says nothing of which machine this is: two
            # hosts would both be "0.0.0.0:8765" in their boards' headers. The host name tells them apart.
            shown = socket.gethostname() if ipaddress.ip_address(host).is_unspecified else host
            self.settings.node = self.settings.node or f"{shown}:{port}"
            scheme = "wss" if self.settings.tls is not None else "ws"
            if self.http is not None and self.settings.http_port is not None:
                try:
                    self.http_url = await self.http.start(self.settings.http_port, self.settings.tls)
                except OSError:
                    self.writer.close()
                    watcher.cancel()
                    clock.cancel()
                    if node is not None:
                        node.cancel()
                    raise
            ready(f"{scheme}://{host}:{port}")
            self.notifier.start()
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([stopped, writer], return_when=asyncio.FIRST_COMPLETED)
            # Stop accepting and stop reading; what is already queued is still committed and acked.
            self.connections.draining = True
            if self.http is not None:
                self.http.draining = True
            ws_server.close(close_connections=False)
            self.writer.close()
            try:
                await writer
            except Exception as exc:
                log.exception("the writer stopped")
                self.writer.fatal = self.writer.fatal or exc
            watcher.cancel()
            clock.cancel()
            stopped.cancel()
            if node is not None:
                node.cancel()
                await asyncio.gather(node, return_exceptions=True)
            if self.http is not None:
                await self.http.stop()  # its requests are answered now: the writer has drained
            await self.writer.record_decision_log_position()
            await self.fanout.close_all(1001, "server shutting down")
            # Last: every stored batch's messages are queued by now; they get a bounded time to go out.
            await self.notifier.stop(self.settings.notify_drain_s)
        if self.fatal is not None:
            raise self.fatal

    async def _run_clock(self) -> None:
        while True:
            await asyncio.sleep(self.settings.clock_interval_s)
            self.writer.tick()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT both mean: stop accepting, finish the in-flight batch, exit 0."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
