"""How a server is set up: every option of `dispatch-server serve`, with its default, in one place.

`DEFAULTS` is what `dispatch-server serve --help` shows and what its options default to, so a default
is written once, here. Configuration files named by options (`--policy`, and the SLA and roster files
to come) are read with `read_config_file`, and validated in dispatch.core.config.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

from dispatch.core.allocation import AllocationPolicy
from dispatch.core.config import ConfigError, unreadable
from dispatch.core.contracts import Contracts
from dispatch.core.protocol import DEFAULT_HOST, DEFAULT_PORT
from dispatch.core.roster import Roster

__all__ = ["DEFAULTS", "Clock", "ServerSettings", "read_config_file", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServerSettings:
    """Everything a running server is told; every field has the default `serve` uses."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Each client's SLA terms (`--sla FILE`); without a file, the built-in targets round the clock.
    contracts: Contracts = field(default_factory=Contracts)
    # People's time (`--roster FILE`): shifts, on call, fatigue rules, call-outs; re-read on SIGHUP.
    roster: Roster = field(default_factory=Roster)
    allocation: AllocationPolicy = field(default_factory=AllocationPolicy)
    clock: Clock = utc_now
    auto_assign: bool = False
    # With auto-assign: a P1 nobody free can take may displace not-yet-started P3/P4 work.
    preempt: bool = False
    # One JSON line per allocation; None keeps no decision log.
    decision_log: IO[str] | None = None
    # How often the SLA clock looks for warnings, breaches and escalations.
    clock_interval_s: float = 1.0
    # A create_ticket with a dedupe key joins an open ticket with that key created this recently.
    dedupe_window_minutes: float = 60.0
    # This many open tickets with no incident from one client (site, category) within the window is a
    # burst; 0 turns burst detection off.
    burst_threshold: int = 5
    burst_window_minutes: float = 10.0
    # wss when set; /healthz is then served over HTTPS on the same port.
    tls: ssl.SSLContext | None = None
    # Web pages (their Origin header) allowed to open a websocket. Requests without an Origin header,
    # i.e. not from a browser (the board, scripts), are always let through; any other is refused with 403,
    # so a page a dispatcher happens to visit cannot ride on the server being reachable.
    allowed_origins: tuple[str, ...] = ()
    # Frames (commands) per second one connection may sustain, in bursts of twice that; 0 turns the
    # limit off. Generous for a person and for `dispatch import`, which backs off when told.
    rate_limit: float = 500.0
    # Open connections in all (HTTP 503 beyond) and per token (close 4409 beyond, after the hello).
    max_connections: int = 1000
    max_connections_per_token: int = 64
    # A second listener (aiohttp) for HTTP intake (tickets, Alertmanager and Grafana alerts) and
    # /metrics, on the same host; None: none, 0: a free port.
    http_port: int | None = None
    # The alert label that names the client an alert is about (else the notification's common labels).
    client_label: str = "client"
    # Notifications (server/notify.py): apprise URLs that hear of P1 escalations, SLA breaches, bursts and
    # call-outs (`--notify`, repeatable). Technicians' own URLs come with add_technician, clients' contacts
    # from the SLA file.
    notify: tuple[str, ...] = ()
    # Messages (one per URL) waiting to go out at most; beyond, new ones are dropped and counted as failures.
    notify_queue: int = 1000
    # Tries after a failed one, the wait before the first of them (doubling each time), how long one try
    # may take, and how long what is queued may take to go out when the server stops.
    notify_retries: int = 3
    notify_backoff_s: float = 2.0
    notify_timeout_s: float = 10.0
    notify_drain_s: float = 5.0
    # This server's name among several on one PostgreSQL (`--node`), told to clients in `welcome`;
    # empty: its HOST:PORT once it listens.
    node: str = ""
    # On PostgreSQL: how often a node that is not the leader tries to take the leader lock (and the
    # leader checks it still holds it). A dead leader's lock is free as soon as PostgreSQL notices.
    leader_retry_s: float = 2.0


# The defaults, for `serve`'s options and help. Read it, never change it: it is shared.
DEFAULTS: Final = ServerSettings()


def read_config_file(path: str) -> str:
    """The text of a configuration file an option names; a one-line ConfigError if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise unreadable(path, exc) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8)") from None
