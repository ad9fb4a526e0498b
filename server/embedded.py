"""The one way to run a server inside this process: `serve`, `dispatch demo` and the tests all use it.

    async with running(storage, settings, event_log) as server:
        print(server.url)      # bound and accepting: ws://127.0.0.1:54321
        await server.wait()    # until `stop` is set (or the server fails: its error is raised here)

Leaving the block stops the server as SIGTERM does: it stops accepting, commits and acknowledges what
is queued, closes the connections, and only then returns; an error the server stopped on is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any

from server.app import DispatchServer
from server.settings import ServerSettings
from server.storage import Storage

__all__ = ["RunningServer", "running"]


@dataclass
class RunningServer:
    """A server running in this process's event loop, as `running` yields it."""

    url: str
    server: DispatchServer
    storage: Storage
    stop: asyncio.Event
    _task: asyncio.Task[None]

    async def wait(self) -> None:
        """Until the server has stopped: `stop` was set, or it failed (raised here)."""
        # Shielded: a caller cancelled while waiting leaves the stopping to `running`'s exit.
        await asyncio.shield(self._task)


@asynccontextmanager
async def running(
    storage: Storage,
    settings: ServerSettings,
    event_log: IO[str],
    *,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[RunningServer]:
    """Start a server on `storage` (open, and left open: the caller closes it after the block) and
    yield it once it listens. It stops when the block is left, or earlier when `stop` is set.

    An error before it listens (a port in use: OSError; a state that cannot be loaded: StorageError)
    is raised from the `async with` itself."""
    stop = stop or asyncio.Event()
    server = await DispatchServer.start(storage, settings, event_log)
    bound: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def ready(url: str) -> None:
        if not bound.done():
            bound.set_result(url)

    task = asyncio.create_task(server.run(ready, stop), name="dispatch-server")
    try:
        first: list[asyncio.Future[Any]] = [bound, task]
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not bound.done():
            task.result()  # the error it stopped on (a port in use, ...)
            raise RuntimeError("the server stopped before it listened")
    except BaseException:
        stop.set()
        bound.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    try:
        yield RunningServer(bound.result(), server, storage, stop, task)
    finally:
        stop.set()
        # The drain is awaited even if this task is being cancelled: a half-stopped server would
        # leave the storage busy under the caller's feet when it closes it.
        await _finish(task)


async def _finish(task: asyncio.Task[None]) -> None:
    """Await `task` to its end, even through a cancellation of the caller; then raise its error, if any.

    A cancellation of the caller is delivered again once the task has finished."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
        except BaseException:
            break
    if cancelled:
        raise asyncio.CancelledError
    task.result()
