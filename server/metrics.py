"""What an operator's Prometheus scrapes from `GET /metrics`: the queue as it is, and what the writer did.

The counters and the commit histogram hear of every committed batch (a `Writer` watcher, which must
not block: a few increments). The gauges (open and unassigned tickets, connections) are counted from
the server's state when scraped, so no batch pays for counting the queue; a scrape every 15 s does.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from dispatch.core.models import Priority, Role
from dispatch.core.state import DispatchState
from server.fanout import Fanout
from server.notify import Notifier
from server.writer import Committed

__all__ = ["CONTENT_TYPE", "COMMIT_BUCKETS", "ServerMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A commit is one SQLite transaction with an fsync: milliseconds when healthy, seconds when the disk is
# in trouble. The default buckets start at 5 ms and would hide the healthy range.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    """One server's metrics, in a registry of its own: tests run several servers in one process."""

    def __init__(
        self,
        state: DispatchState,
        fanout: Fanout,
        notifier: Notifier | None = None,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "dispatch_commands",
            "Commands the writer answered, by command type and outcome (ok, resent, or the error code).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.sla_breaches = Counter(
            "dispatch_sla_breaches", "Tickets whose respond or resolve target ran out.", registry=self.registry
        )
        self.commit_seconds = Histogram(
            "dispatch_commit_seconds",
            "Deciding and storing one batch of commands (clock looks that changed nothing are left out).",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "dispatch_http_requests",
            "Requests to the HTTP listener (--http-port), by route and status code.",
            ["route", "code"],
            registry=self.registry,
        )
        self.registry.register(_QueueCollector(state, fanout))
        self.registry.register(_LeaderCollector(leading))
        if notifier is not None:
            self.registry.register(_NotificationCollector(notifier))

    def observe(self, committed: Committed) -> None:
        """A Writer watcher: count one committed batch."""
        # One increment per distinct (type, outcome), not per command: a flood's batch holds thousands.
        for (command_type, outcome), count in Tally(committed.outcomes).items():
            self.commands.labels(command_type, outcome).inc(count)
        breaches = sum(1 for event in committed.events if event.kind == "sla_breached")
        if breaches:
            self.sla_breaches.inc(breaches)
        # Idle looks at the SLA clock (every second) would bury the commits someone waited for.
        if committed.outcomes or committed.events:
            self.commit_seconds.observe(committed.seconds)

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format (CONTENT_TYPE)."""
        return generate_latest(self.registry)


class _QueueCollector:
    """The gauges, counted from the state at scrape time. Every priority and role is always listed (zero
    included), so a query or an alert rule never meets a series that is missing rather than 0."""

    def __init__(self, state: DispatchState, fanout: Fanout) -> None:
        self.state = state
        self.fanout = fanout

    def collect(self) -> Iterable[Metric]:
        open_tickets: Tally[Priority] = Tally()
        unassigned: Tally[Priority] = Tally()
        for ticket in self.state.tickets.values():
            if ticket.is_open:
                open_tickets[ticket.priority] += 1
                if ticket.assignee is None:
                    unassigned[ticket.priority] += 1
        yield _by_priority("dispatch_open_tickets", "Open tickets (new, assigned, in progress, on hold).", open_tickets)
        yield _by_priority("dispatch_unassigned_tickets", "Open tickets nobody holds.", unassigned)
        connections = Tally(client.actor.role for client in self.fanout.clients)
        family = GaugeMetricFamily(
            "dispatch_connections", "Websocket clients past their hello, by role.", labels=["role"]
        )
        for role in Role:
            family.add_metric([role.value], connections[role])
        yield family


class _LeaderCollector:
    """Whether this server runs what must run once (always alone on SQLite; the leader among nodes
    sharing a PostgreSQL database): the sum over the nodes should be 1."""

    def __init__(self, leading: Callable[[], bool]) -> None:
        self.leading = leading

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "dispatch_leader",
            "1 if this server runs the SLA clock, shifts, call-outs, burst detection and auto-assign, else 0.",
        )
        family.add_metric([], 1 if self.leading() else 0)
        yield family


class _NotificationCollector:
    """Notifications (`--notify`, technicians' and clients' URLs) delivered and failed, as the notifier
    counts them: a failure is also one line in the log."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "dispatch_notifications", "Notifications by outcome: sent, or failed (dropped, undeliverable, "
            "failing after every retry, or left at a stop).", labels=["outcome"],
        )  # fmt: skip
        family.add_metric(["sent"], self.notifier.sent)
        family.add_metric(["failed"], self.notifier.failures)
        yield family


def _by_priority(name: str, documentation: str, counts: Tally[Priority]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["priority"])
    for priority in Priority:
        family.add_metric([priority.value], counts[priority])
    return family
