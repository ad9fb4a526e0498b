from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dispatch.core.models import Role
from tests.support import ServerProcess, Session


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The real server on a free loopback port with a fresh SQLite file."""
    process = ServerProcess(db=tmp_path / "dispatch.db", workdir=tmp_path).start()
    yield process
    process.stop()


@pytest.fixture
async def dispatcher(server: ServerProcess) -> AsyncIterator[Session]:
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    yield session
    await session.close()
