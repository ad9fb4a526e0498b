"""Several servers on one PostgreSQL: hearing each other, and choosing the one that leads.

Every node takes commands and decides them itself (server/writer.py folds in what the others stored at
the start of each write turn). What is left here is done once per node, over a `NodeSession` of its own:
- when another node commits a batch (NOTIFY), queue a catch-up so this node's boards see it promptly
  even when nobody writes here;
- every `leader_retry_s`, try the leader lock: the node holding it runs what must run once (the SLA
  clock's alerts, shifts, call-outs, burst detection, auto-assign). A node that dies or loses the
  database loses the lock with its session, and another takes over at its next try.
"""

from __future__ import annotations

import asyncio
import logging

from dispatch.core.protocol import event_adapter
from server.pgstorage import NodeSession, PostgresStorage
from server.settings import ServerSettings
from server.storage import StorageUnavailable
from server.writer import Writer

__all__ = ["Node"]

log = logging.getLogger("dispatch.server")


class Node:
    """This server's membership among the nodes sharing its PostgreSQL database."""

    def __init__(self, storage: PostgresStorage, writer: Writer, settings: ServerSettings) -> None:
        self.storage = storage
        self.writer = writer
        self.settings = settings
        self._session: NodeSession | None = None
        # Not the leader until the lock says so: a node never assumes it is alone on the database.
        self.writer.lead(False)

    async def join(self) -> None:
        """The first try, before the server takes commands: a node alone leads from its first batch."""
        await self._try()

    async def run(self) -> None:
        """Until cancelled: keep a session, listen, and lead when the lock is free."""
        while True:
            await asyncio.sleep(self.settings.leader_retry_s)
            await self._try()

    def leave(self) -> None:
        """The server stops: let the session (and the leader lock, if held) go at once."""
        self._drop_session()

    async def _try(self) -> None:
        try:
            await self._keep_session()
        except StorageUnavailable as exc:
            if self._session is not None:
                log.warning("lost this node's database session: %s", exc)
            self._drop_session()

    async def _keep_session(self) -> None:
        if self._session is None:
            self._session = await NodeSession.open(self.storage, self.writer.catch_up)
            # Batches stored while this node was not listening were announced to nobody here.
            self.writer.catch_up()
        leading = await self._session.lead()
        if leading and not self.writer.leading:
            recent = [event_adapter.validate_json(p) for p in await self.storage.recent_bursts()]
            self.writer.lead(True, recent)
            log.info("this node is the leader now: it runs the SLA clock, shifts, call-outs, bursts, auto-assign")
        elif not leading:
            self._follow()

    def _follow(self) -> None:
        if self.writer.leading:
            self.writer.lead(False)
            log.warning("this node is no longer the leader")

    def _drop_session(self) -> None:
        self._follow()
        if self._session is not None:
            self._session.close()
            self._session = None
