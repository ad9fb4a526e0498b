"""server.embedded.running: the one way `serve`, the demo and the tests start a server in-process."""

from __future__ import annotations

import asyncio
import io
import socket
from pathlib import Path

import pytest

from dispatch.core.models import Role
from server.embedded import running
from server.settings import ServerSettings
from server.storage import Storage
from tests.support import Session, ticket_frame, timeout


async def _storage(tmp_path: Path) -> Storage:
    storage = await Storage.open(tmp_path / "d.db")
    await storage.create_token("ana", Role.DISPATCHER, None, "token-ana")
    return storage


async def test_it_yields_once_listening_and_drains_when_left(tmp_path: Path) -> None:
    storage = await _storage(tmp_path)
    try:
        async with running(storage, ServerSettings(port=0), io.StringIO()) as server:
            session = await Session.open(server.url, "token-ana")
            ack = await session.ok(ticket_frame())
            await session.close()
        # Left: the socket is closed, and what was acknowledged is stored.
        with pytest.raises(OSError):
            await Session.open(server.url, "token-ana")
        assert (await storage.load_state()).seq == ack["seq"]
    finally:
        await storage.close()


async def test_setting_stop_ends_wait(tmp_path: Path) -> None:
    storage = await _storage(tmp_path)
    stop = asyncio.Event()
    try:
        async with running(storage, ServerSettings(port=0), io.StringIO(), stop=stop) as server:
            stop.set()  # as SIGTERM does for `serve`
            await asyncio.wait_for(server.wait(), timeout(10))
    finally:
        await storage.close()


async def test_a_port_in_use_is_raised_from_the_async_with(tmp_path: Path) -> None:
    storage = await _storage(tmp_path)
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(OSError) as refused:
                async with running(storage, ServerSettings(port=taken.getsockname()[1]), io.StringIO()):
                    pytest.fail("the block must not run")
        assert "address already in use" in str(refused.value).lower()
        # Nothing was left running: the only tasks are this test's.
        assert {t for t in asyncio.all_tasks() if t.get_name() == "dispatch-server"} == set()
    finally:
        await storage.close()
