from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dispatch.core.models import Role
from tests.support import TIMEOUT_FACTOR, EmbeddedPostgres, ServerProcess, Session


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "serve(*args): extra `dispatch-server serve` options for this test's server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The whole-test limit (pytest-timeout's `timeout` in pyproject.toml) stretches with the waits inside it.
    limit = float(config.getini("timeout") or 0)
    if TIMEOUT_FACTOR != 1 and limit > 0:
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(limit * TIMEOUT_FACTOR))


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL server for the whole run, started when a test first needs it."""
    cluster = EmbeddedPostgres().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres: EmbeddedPostgres) -> str:
    """A fresh, empty database on the run's PostgreSQL, for this test alone."""
    return postgres.create_database()


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The real server on a free loopback port with a fresh SQLite file (options: @pytest.mark.serve), or
    a fresh PostgreSQL database when parametrized indirectly with "postgres"."""
    marker = request.node.get_closest_marker("serve")
    options = marker.args if marker is not None else ()
    database = request.getfixturevalue("postgres_url") if getattr(request, "param", None) == "postgres" else None
    process = ServerProcess(db=tmp_path / "dispatch.db", workdir=tmp_path, options=options, database=database).start()
    yield process
    process.stop()


@pytest.fixture
async def dispatcher(server: ServerProcess) -> AsyncIterator[Session]:
    session = await Session.open(server.url, await server.token(Role.DISPATCHER, "ana"))
    yield session
    await session.close()
