"""Notifications out: short apprise messages about what needs a person, sent without holding up the writer.

The writer tells `Notifier.watch` of every committed batch; `notices` words its events, each message
naming its ticket (id, title, client, incident) and saying what to do, for:
- the operator's URLs (`serve --notify URL`, repeatable): P1 escalations, SLA breaches, bursts, call-outs;
- a technician's own URL (`add_technician`'s `notify`): their assignments and their call-outs;
- a client's contacts (the SLA file's `contacts`): the incident updates sent with `update_clients`.

`watch` only words and queues (a bounded queue: when it is full the new message is dropped). A few
worker tasks send through apprise, one URL at a time, with retries and a doubling backoff. A message that
does not go out (dropped, undeliverable, or still failing after its retries) is one line in the log and
one more in `failures`, which /metrics reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from dispatch.core.contracts import Contracts
from dispatch.core.models import Callout, Ticket
from dispatch.core.protocol import BurstEvent, CalloutEvent, Event, SlaEvent, TicketEvent
from dispatch.core.state import DispatchState
from server.settings import ServerSettings
from server.writer import Committed

__all__ = ["Notice", "Notifier", "Undeliverable", "notices", "send_with_apprise", "shown", "usable"]

log = logging.getLogger("dispatch.server")

# Messages go out this many at once, so one hung endpoint does not hold up everyone's phone.
WORKERS = 4
# More alerts of one kind than this in one batch (forty breaches at the top of a burst) make one message.
MAX_ALERTS_EACH = 3
# Ticket ids a summary names before "…".
MAX_IDS_NAMED = 5

Level = Literal["info", "warning", "failure"]


@dataclass(frozen=True)
class Notice:
    """One message: whom it goes to (apprise URLs), its title and body, and what it is about (for the log)."""

    to: tuple[str, ...]
    title: str
    body: str
    about: str
    # apprise's notify type: some services show it as a colour or an icon.
    level: Level = "info"


@dataclass(frozen=True)
class _Delivery:
    url: str
    notice: Notice


class Undeliverable(Exception):
    """A message that no retry can send (a URL apprise cannot use)."""


# Sends one message to one URL within `timeout` seconds: None when delivered, else the problem in words.
Send = Callable[[str, Notice, float], Awaitable[str | None]]


# --- what to say: pure ---------------------------------------------------------------------------------


def notices(
    events: Sequence[Event], state: DispatchState, contracts: Contracts, operators: Sequence[str]
) -> list[Notice]:
    """The messages a committed batch's `events` call for. `state` is the state after the batch (for
    names, incidents and technicians' URLs), `operators` the `--notify` URLs."""
    words = _Words(state, contracts)
    found: list[Notice] = []
    to_operators: dict[str, list[Notice]] = {}
    updates: dict[tuple[str, str, str | None, datetime], list[Ticket]] = {}
    for event in events:
        if isinstance(event, TicketEvent) and event.kind == "ticket_assigned":
            found += words.assigned(event)
        elif isinstance(event, TicketEvent) and event.kind == "client_updated":
            # One update_clients makes one event per ticket: gathered into one message per client.
            key = (event.actor, event.ticket.incident_id or "", event.note, event.ts)
            updates.setdefault(key, []).append(event.ticket)
        elif isinstance(event, CalloutEvent) and event.kind == "callout_sent":
            found += words.callout_to_technician(event)
            to_operators.setdefault(event.kind, []).append(words.callout_to_operators(event))
        elif isinstance(event, SlaEvent) and event.kind in ("sla_breached", "escalation"):
            alert = words.sla_alert(event)
            if alert is not None:
                to_operators.setdefault(event.kind, []).append(alert)
        elif isinstance(event, BurstEvent):
            to_operators.setdefault(event.kind, []).append(words.burst(event))
    if operators:
        for kind, alerts in to_operators.items():
            for alert in alerts if len(alerts) <= MAX_ALERTS_EACH else [_summary(kind, alerts)]:
                found.append(Notice(tuple(operators), alert.title, alert.body, alert.about, alert.level))
    for (_, incident_id, message, _), tickets in updates.items():
        found += words.client_update(incident_id, message or "", tickets)
    return [notice for notice in found if notice.to]


class _Words:
    """How each message is put, from the state the batch left."""

    def __init__(self, state: DispatchState, contracts: Contracts) -> None:
        self.state = state
        self.contracts = contracts

    def ticket(self, ticket: Ticket) -> str:
        """`P1 T-000042 VPN down at Acme Corp (INC-3)`."""
        incident = f" ({ticket.incident_id})" if ticket.incident_id else ""
        return f"{ticket.priority} {ticket.id} {ticket.title} at {ticket.client}{incident}"

    def when(self, instant: datetime, now: datetime, ticket: Ticket | None = None) -> str:
        """`14:32 UTC` today, `Tue 24 Nov 14:32 UTC` on another day, in the zone of the ticket's calendar."""
        zone = ZoneInfo(self.contracts.calendar(ticket.calendar).timezone if ticket else "UTC")
        local = instant.astimezone(zone)
        day = "" if local.date() == now.astimezone(zone).date() else f"{local:%a %d %b} "
        return f"{day}{local:%H:%M} {local.tzname()}"

    def assigned(self, event: TicketEvent) -> list[Notice]:
        ticket = event.ticket
        technician = self.state.technicians.get(ticket.assignee or "")
        if technician is None or technician.notify is None:
            return []
        # Taking the ticket is its response: from now on the resolve target is the one that counts.
        due = self.when(ticket.resolve_by, event.ts, ticket)
        deadline = f"resolve by {due}" if ticket.resolve_by > event.ts else f"its resolve target passed at {due}"
        return [
            Notice(
                (technician.notify,),
                f"{ticket.priority} {ticket.id} assigned to you",
                f"{self.ticket(ticket)} — assigned to you, {deadline}",
                f"{ticket.id} assigned to {technician.id}",
            )
        ]

    def _called_for(self, callout: Callout) -> tuple[str, Ticket | None]:
        ticket = self.state.tickets.get(callout.ticket_id or "")
        if ticket is not None:
            return f" for {self.ticket(ticket)}", ticket
        return (f" ({callout.reason})" if callout.reason else ""), None

    def callout_to_technician(self, event: CalloutEvent) -> list[Notice]:
        callout = event.callout
        technician = self.state.technicians.get(callout.tech_id)
        if technician is None or technician.notify is None:
            return []
        called_for, ticket = self._called_for(callout)
        answer_by = self.when(callout.expires_at, event.ts, ticket)
        return [
            Notice(
                (technician.notify,),
                f"Call-out {callout.id}: can you come in?",
                f"Call-out {callout.id}: you are asked to come in{called_for} — accept or decline by {answer_by}:"
                f" dispatch callout accept {callout.id}",
                f"call-out {callout.id} to {callout.tech_id}",
                "warning",
            )
        ]

    def callout_to_operators(self, event: CalloutEvent) -> Notice:
        callout = event.callout
        called_for, ticket = self._called_for(callout)
        answer_by = self.when(callout.expires_at, event.ts, ticket)
        return Notice(
            (),
            f"Call-out {callout.id} sent to {callout.tech_id}",
            f"Call-out {callout.id} sent to {callout.tech_id}{called_for} — waiting for an answer until {answer_by};"
            " if none comes, call the next person",
            f"call-out {callout.id} to {callout.tech_id}",
        )

    def sla_alert(self, event: SlaEvent) -> Notice | None:
        ticket = self.state.tickets.get(event.ticket_id)
        if ticket is None:
            return None
        due = self.when(event.due, event.ts, ticket)
        if event.kind == "escalation":
            waited = int((event.ts - ticket.created_at).total_seconds() // 60)
            return Notice(
                (),
                f"{ticket.priority} {ticket.id} unassigned",
                f"{self.ticket(ticket)} — unassigned for {waited} min, respond by {due}: assign it now",
                f"{ticket.id} escalated",
                "warning",
            )
        target = "response" if event.target == "respond" else "resolution"
        holder = (
            f"held by {event.assignee}: check on it" if event.assignee else "nobody assigned: assign it now"
        )  # fmt: skip
        return Notice(
            (),
            f"SLA breached: {ticket.priority} {ticket.id}",
            f"{self.ticket(ticket)} — {target} SLA breached (due {due}), {holder}",
            f"{ticket.id} {target} SLA breached",
            "failure",
        )

    def burst(self, event: BurstEvent) -> Notice:
        count = len(event.ticket_ids)
        return Notice(
            (),
            f"Burst: {count} tickets from {event.group} {event.value}",
            f"{count} tickets in {event.window_minutes} min from {event.group} {event.value}"
            f" ({_ids(event.ticket_ids)}) — likely one outage: group them in an incident and tell the client",
            f"burst at {event.group} {event.value}",
            "warning",
        )

    def client_update(self, incident_id: str, message: str, tickets: Iterable[Ticket]) -> list[Notice]:
        incident = self.state.incidents.get(incident_id)
        outage = f"{incident.title} ({incident.id})" if incident else incident_id
        by_client: dict[str, list[Ticket]] = {}
        for ticket in tickets:
            by_client.setdefault(ticket.client, []).append(ticket)
        return [
            Notice(
                tuple(self.contracts.contacts(client)),
                f"Update for {client}: {outage}",
                f"{message}\n\nYour open tickets: " + "; ".join(f"{t.id} {t.title}" for t in client_tickets),
                f"update on {incident_id} to {client}",
            )
            for client, client_tickets in by_client.items()
        ]


def _ids(ticket_ids: Sequence[str]) -> str:
    named = ", ".join(ticket_ids[:MAX_IDS_NAMED])
    return named + (", …" if len(ticket_ids) > MAX_IDS_NAMED else "")


def _summary(kind: str, alerts: list[Notice]) -> Notice:
    """One message for many alerts of one kind (forty breaches at the top of a burst)."""
    what = {"sla_breached": "SLA breaches", "escalation": "P1 tickets unassigned too long",
            "callout_sent": "call-outs sent", "burst_detected": "bursts"}.get(kind, kind)  # fmt: skip
    lines = "\n".join(alert.body for alert in alerts[:MAX_IDS_NAMED])
    more = f"\n… and {len(alerts) - MAX_IDS_NAMED} more" if len(alerts) > MAX_IDS_NAMED else ""
    return Notice((), f"{len(alerts)} {what}", f"{len(alerts)} {what}; look at the board:\n{lines}{more}",
                  f"{len(alerts)} {what}", alerts[0].level)  # fmt: skip


# --- sending: apprise --------------------------------------------------------------------------------


# apprise is imported where it is used: it takes a quarter of a second, which `token create` need not pay.


def _quiet_apprise() -> None:
    # Our log says each failure once, in our words; apprise's own lines still reach each call's result.
    logging.getLogger("apprise").propagate = False


def usable(url: str) -> bool:
    """Whether apprise knows what to do with `url` (a service it supports, the parts that service needs)."""
    import apprise

    _quiet_apprise()
    return apprise.Apprise.instantiate(url) is not None


def shown(url: str) -> str:
    """`url` as a log line may show it: the service and host, in apprise's privacy form (passwords masked),
    without the path or options (an ntfy topic, a webhook's path, are as good as a password)."""
    import apprise

    _quiet_apprise()
    service = apprise.Apprise.instantiate(url)
    if service is None:
        return url.split("://", 1)[0] + "://…"
    private = str(service.url(privacy=True))  # type: ignore[no-untyped-call]  # untyped in apprise 2.3.0
    scheme, _, rest = private.partition("://")
    host, slash, path = rest.split("?", 1)[0].partition("/")
    return f"{scheme}://{host}" + ("/…" if slash and path else "")


async def send_with_apprise(url: str, notice: Notice, timeout: float) -> str | None:
    """Send `notice` to one apprise URL; None when the service took it, else why not."""
    import apprise

    _quiet_apprise()
    bundle = apprise.Apprise()
    if not bundle.add(url):
        raise Undeliverable("apprise cannot use this URL")
    result = await bundle.async_notify(
        body=notice.body, title=notice.title, notify_type=apprise.NotifyType(notice.level), timeout=timeout
    )
    if result:
        return None
    problems = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    return problems[-1] if problems else result.status.name.lower()


# --- the queue and its workers ------------------------------------------------------------------------


class Notifier:
    """Queues the messages of each committed batch and sends them in the background."""

    def __init__(self, settings: ServerSettings, state: DispatchState, send: Send = send_with_apprise) -> None:
        self.settings = settings
        self.state = state
        self._send = send
        self.queue: asyncio.Queue[_Delivery] = asyncio.Queue(maxsize=settings.notify_queue)
        # Counters /metrics reads: messages delivered (one per URL), and those that were not (dropped
        # because the queue was full, undeliverable, failing after every retry, or left at a stop).
        self.sent = 0
        self.failures = 0
        self.dropped = 0
        self._sending = 0
        self._overflowing = False
        self._workers: list[asyncio.Task[None]] = []

    def watch(self, committed: Committed) -> None:
        """The writer's watcher: word the batch's messages and queue them. Never blocks, never raises."""
        try:
            found = notices(committed.events, self.state, self.settings.contracts, self.settings.notify)
        except Exception:
            # A message we cannot word must not stop the writer that calls us.
            log.exception("notifications: cannot word the messages of a batch; none sent for it")
            self.failures += 1
            return
        for notice in found:
            for url in notice.to:
                self._put(_Delivery(url, notice))

    def _put(self, delivery: _Delivery) -> None:
        try:
            self.queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.dropped += 1
            self.failures += 1
            if not self._overflowing:
                log.warning(
                    "notifications: %d waiting, the most allowed: new ones are dropped until some go out (%s)",
                    self.queue.qsize(), delivery.notice.about,
                )  # fmt: skip
            self._overflowing = True
            return
        self._overflowing = False

    def start(self) -> None:
        """Start the workers (in the running event loop)."""
        self._workers = [asyncio.create_task(self._work(), name=f"notify-{n}") for n in range(WORKERS)]

    async def stop(self, within: float) -> None:
        """Give what is queued `within` seconds to go out, then stop; what is left counts as failures."""
        try:
            async with asyncio.timeout(within):
                await self.queue.join()
        except TimeoutError:
            pass
        left = self.queue.qsize() + self._sending
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if left:
            self.failures += left
            log.warning("notifications: %d not sent: the server stopped before they went out", left)

    async def _work(self) -> None:
        while True:
            delivery = await self.queue.get()
            self._sending += 1
            try:
                await self._deliver(delivery)
            finally:
                self._sending -= 1
                self.queue.task_done()

    async def _deliver(self, delivery: _Delivery) -> None:
        settings = self.settings
        tries = 1 + settings.notify_retries
        problem: str | None = None
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(settings.notify_backoff_s * 2 ** (attempt - 1))
            try:
                # Our own bound too: apprise's timeout cannot stop a request that hangs in its thread.
                async with asyncio.timeout(settings.notify_timeout_s + 1):
                    problem = await self._send(delivery.url, delivery.notice, settings.notify_timeout_s)
            except Undeliverable as exc:
                problem, tries = str(exc), attempt + 1
                break
            except TimeoutError:
                problem = f"no answer within {settings.notify_timeout_s:g} s"
            except Exception as exc:  # a service's bug must not end the worker
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                self.sent += 1
                return
        self.failures += 1
        log.warning(
            "notification not sent to %s after %d %s (%s): %s",
            shown(delivery.url), tries, "try" if tries == 1 else "tries", delivery.notice.about, problem,
        )  # fmt: skip
