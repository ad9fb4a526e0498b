"""HTTP intake and `/metrics` (`serve --http-port P`): tickets and monitoring alerts in, the queue out.

websockets' HTTP handling takes no request bodies, so this second listener (aiohttp) takes them. Every
request is turned into the same commands a websocket client sends, for the same writer, with the same
roles, rate limit and durability: a request is answered once its commands are committed.

    POST /v1/tickets                 create_ticket's fields (+ dedupe_key)  201 / 200 if de-duplicated
    POST /v1/alerts/alertmanager     Alertmanager's webhook, version 4      200 {"tickets", "skipped"}
    POST /v1/alerts/grafana          Grafana alerting's webhook             200 {"tickets", "skipped"}
    GET  /metrics                    Prometheus' text format (a token unless from loopback)
    GET  /healthz                    as on the websocket port

Each firing alert becomes a `create_ticket` keyed by the alert's fingerprint (`dedupe_key`), so an
alert sent again raises the open ticket's `duplicates`; each resolved one an `add_note` "cleared at
source" on the open ticket with that key, under a command id made from the alert, so a resent
notification adds no second note.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import ipaddress
import logging
import ssl
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import from_json

from dispatch.core.models import Priority, Role, Ticket
from dispatch.core.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ack,
    AddNote,
    CreateTicket,
    Error,
    ErrorCode,
    decode_server_frame,
)
from dispatch.core.state import Actor, DispatchState
from dispatch.core.text import MAX_DEDUPE_KEY, MAX_NAME, MAX_TITLE, clean_text
from server.fanout import CLOSE_WAIT_S, Fanout
from server.limits import CommandAllowance
from server.metrics import CONTENT_TYPE, ServerMetrics
from server.settings import ServerSettings
from server.storage import Storage, StorageUnavailable, TokenRecord
from server.writer import Writer

__all__ = [
    "CLEARED_NOTE",
    "MAX_BODY_BYTES",
    "AlertmanagerPayload",
    "GrafanaPayload",
    "HttpIntake",
    "HttpListenError",
    "HttpSender",
    "SourceAlert",
    "alert_client",
    "alert_title",
    "priority_of",
]

log = logging.getLogger("dispatch.server")

# The same bound as a websocket frame; larger bodies get 413 unread.
MAX_BODY_BYTES = MAX_FRAME_BYTES
CLEARED_NOTE = "cleared at source"
INTAKE_ROLES = frozenset({Role.INTAKE, Role.DISPATCHER})
UNKNOWN_CLIENT = "unknown"
# labels.severity -> priority; anything else (or none) is P4.
SEVERITY_PRIORITY: Mapping[str, Priority] = {
    "critical": Priority.P1,
    "error": Priority.P2,
    "major": Priority.P2,
    "warning": Priority.P3,
}
# An ack's or error's code -> the request's status.
ERROR_STATUS: Mapping[ErrorCode, HTTPStatus] = {
    ErrorCode.INVALID: HTTPStatus.BAD_REQUEST,
    ErrorCode.FORBIDDEN: HTTPStatus.FORBIDDEN,
    ErrorCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    ErrorCode.CONFLICT: HTTPStatus.CONFLICT,
    ErrorCode.RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    ErrorCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}


class HttpListenError(OSError):
    """The HTTP port could not be bound (serve says so in one line, naming --http-port)."""


# --- the payloads, as far as they are read --------------------------------------------------------------


class _Payload(BaseModel):
    # Monitoring systems add fields from release to release: what is not read here is ignored.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class SourceAlert(_Payload):
    """One alert of an Alertmanager or Grafana notification (the fields intake reads)."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: str = Field("", alias="startsAt")
    # Same labels, same fingerprint: the key that makes a re-sent alert a duplicate, not a new ticket.
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DEDUPE_KEY)]


class AlertmanagerPayload(_Payload):
    """Alertmanager's webhook notification, payload version 4."""

    version: Literal["4"]
    alerts: list[SourceAlert]
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")


class GrafanaPayload(_Payload):
    """Grafana alerting's webhook notification (Alertmanager's shape; its own `version`, "1")."""

    alerts: list[SourceAlert]
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")


Notification = AlertmanagerPayload | GrafanaPayload


def priority_of(severity: str | None) -> Priority:
    """critical -> P1, error or major -> P2, warning -> P3, anything else (or no severity) -> P4."""
    return SEVERITY_PRIORITY.get((severity or "").strip().lower(), Priority.P4)


def alert_title(alert: SourceAlert) -> str:
    """`annotations.summary`, else `labels.alertname`, else the fingerprint; cut to a title's length."""
    for candidate in (alert.annotations.get("summary"), alert.labels.get("alertname")):
        text = clean_text(candidate or "")
        if text:
            return _cut(text, MAX_TITLE)
    return f"alert {alert.fingerprint}"[:MAX_TITLE]


def alert_client(alert: SourceAlert, common_labels: Mapping[str, str], client_label: str) -> str:
    """The alert's `client_label` label, else the notification's common one, else "unknown"."""
    for candidate in (alert.labels.get(client_label), common_labels.get(client_label)):
        text = clean_text(candidate or "")
        if text:
            return _cut(text, MAX_NAME)
    return UNKNOWN_CLIENT


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- who a request comes from ------------------------------------------------------------------------------


class _NotAnswered(Exception):
    """The server stopped before the command's batch was decided."""


class HttpSender:
    """One token's HTTP requests: one line at the writer, as one websocket connection's commands are, and
    the requests waiting for their answers, by command id."""

    def __init__(self, actor: Actor, allowance: CommandAllowance | None) -> None:
        self.actor = actor
        self.allowance = allowance
        self._waiting: dict[str, deque[asyncio.Future[str]]] = {}

    def expect(self, command_id: str) -> asyncio.Future[str]:
        """A future for the answer to a command about to be submitted."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # A deque: two requests may carry the same command id (a resent alert); answers come in order.
        self._waiting.setdefault(command_id, deque()).append(future)
        return future

    def answered(self, text: str) -> None:
        """The writer's answer (an ack or error frame) to one of this token's commands."""
        command_id = _command_id_of(text)
        line = self._waiting.get(command_id or "")
        if not line:
            log.warning("http: an answer nobody waits for: %.200s", text)
            return
        future = line.popleft()
        if not line:
            del self._waiting[command_id or ""]
        if not future.done():
            future.set_result(text)

    def abandon(self) -> None:
        """At shutdown: whatever is still unanswered never will be (503: resend)."""
        for line in self._waiting.values():
            for future in line:
                if not future.done():
                    future.set_exception(_NotAnswered())
        self._waiting.clear()


def _command_id_of(frame: str) -> str | None:
    value = from_json(frame)
    return value.get("command_id") if isinstance(value, dict) else None


class _Refused(Exception):
    """A request answered with `status` and `{"error": message}`; nothing was applied."""

    def __init__(self, status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# --- the listener -------------------------------------------------------------------------------------------


class HttpIntake:
    """The HTTP listener: its routes, the tokens' senders, and start and stop."""

    def __init__(
        self,
        storage: Storage,
        state: DispatchState,
        settings: ServerSettings,
        writer: Writer,
        fanout: Fanout,
        metrics: ServerMetrics,
    ) -> None:
        self.storage = storage
        self.state = state
        self.settings = settings
        self.writer = writer
        self.fanout = fanout
        self.metrics = metrics
        # Set when shutdown begins: requests get 503 and nothing more is submitted.
        self.draining = False
        self._senders: dict[tuple[str, Role, str | None], HttpSender] = {}
        self._runner: web.AppRunner | None = None

    # --- start and stop -----------------------------------------------------------------------------------

    async def start(self, port: int, tls: ssl.SSLContext | None) -> str:
        """Listen on the server's host and `port` (0: a free one); the URL, once bound."""
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._answer_refusals])
        app.add_routes([
            web.post("/v1/tickets", self.post_ticket),
            web.post("/v1/alerts/alertmanager", self._alerts(AlertmanagerPayload, "alertmanager")),
            web.post("/v1/alerts/grafana", self._alerts(GrafanaPayload, "grafana")),
            web.get("/metrics", self.get_metrics),
            web.get("/healthz", self.get_health),
        ])  # fmt: skip
        # No access log: an Alertmanager posting every few seconds would drown the allocation lines.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_WAIT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.settings.host, port, ssl_context=tls).start()
        except OSError as exc:
            await runner.cleanup()
            reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise HttpListenError(exc.errno, f"--http-port {port} on {self.settings.host}: {reason}") from None
        self._runner = runner
        host, bound = runner.addresses[0][:2]
        scheme = "https" if tls is not None else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{bound}"

    async def stop(self) -> None:
        """After the writer has drained: answer what it never will, then close the listener."""
        self.draining = True
        for sender in self._senders.values():
            sender.abandon()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- routes -------------------------------------------------------------------------------------------

    async def post_ticket(self, request: web.Request) -> web.Response:
        """create_ticket's fields as a JSON object; `command_id` or an `Idempotency-Key` header makes a
        retried request safe (the first answer again), `dedupe_key` a repeated report a duplicate."""
        sender = await self._sender_for(request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _Refused(HTTPStatus.BAD_REQUEST, "the body must be a JSON object of create_ticket's fields")
        command_id = request.headers.get("Idempotency-Key") or f"http-{uuid.uuid4().hex}"
        try:
            command = CreateTicket.model_validate({"type": "create_ticket", "command_id": command_id, **body})
        except ValidationError as exc:
            raise _Refused(HTTPStatus.BAD_REQUEST, _describe(exc)) from None
        (answer,) = await self._apply(sender, [command])
        if isinstance(answer, Error):
            raise _Refused(ERROR_STATUS.get(answer.code, HTTPStatus.BAD_REQUEST), answer.message)
        deduplicated = bool(answer.deduplicated)
        return web.json_response(
            {"ticket_id": answer.ticket_id, "deduplicated": deduplicated},
            status=HTTPStatus.OK if deduplicated else HTTPStatus.CREATED,
        )

    def _alerts(
        self, payload_type: type[Notification], source: str
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def post_alerts(request: web.Request) -> web.Response:
            sender = await self._sender_for(request)
            body = await _json_body(request)
            try:
                notification = payload_type.model_validate(body)
            except ValidationError as exc:
                raise _Refused(HTTPStatus.BAD_REQUEST, _describe(exc)) from None
            return await self._apply_alerts(sender, notification, source)

        return post_alerts

    async def get_metrics(self, request: web.Request) -> web.Response:
        """No token from this machine (unless through a proxy); any live token from anywhere else."""
        if not _from_this_machine(request):
            token = _bearer_token(request)
            if not token or await self.storage.find_token(token) is None:
                raise _Refused(
                    HTTPStatus.UNAUTHORIZED,
                    "metrics from another machine need an Authorization: Bearer <token> header",
                    {"WWW-Authenticate": 'Bearer realm="dispatch"'},
                )
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def get_health(self, request: web.Request) -> web.Response:
        healthy = self.writer.fatal is None and not self.draining
        status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        text = (
            f"{status.phrase.lower()} seq={self.state.seq} connections={len(self.fanout.clients)} "
            f"protocol={PROTOCOL_VERSION}\n"
        )
        return web.Response(status=status, text=text)

    # --- alerts -------------------------------------------------------------------------------------------

    async def _apply_alerts(self, sender: HttpSender, notification: Notification, source: str) -> web.Response:
        commands: list[tuple[int, CreateTicket | AddNote]] = []
        skipped: list[dict[str, Any]] = []
        open_by_key: dict[str, str] | None = None
        for index, alert in enumerate(notification.alerts):
            if alert.status == "firing":
                try:
                    commands.append((index, self._ticket_for(alert, notification.common_labels)))
                except ValidationError as exc:  # a fingerprint of blanks or control characters
                    skipped.append({"index": index, "reason": _describe(exc)})
                continue
            if open_by_key is None:  # once per request, not once per resolved alert
                open_by_key = self._open_tickets_by_key()
            ticket_id = open_by_key.get(clean_text(alert.fingerprint))
            if ticket_id is None:
                reason = f"resolved, and no open ticket has fingerprint {alert.fingerprint}"
                skipped.append({"index": index, "reason": reason})
                continue
            # Made from the alert, so a resent notification is answered as before and adds no second note.
            digest = hashlib.sha256(f"{source}\n{alert.fingerprint}\n{alert.starts_at}".encode()).hexdigest()
            note = AddNote(command_id=f"cleared-{source}-{digest[:32]}", ticket_id=ticket_id, text=CLEARED_NOTE)
            commands.append((index, note))
        answers = await self._apply(sender, [command for _, command in commands])
        tickets: list[dict[str, Any]] = []
        for (index, command), answer in zip(commands, answers, strict=True):
            if isinstance(answer, Error):
                skipped.append({"index": index, "reason": answer.message})
            elif isinstance(command, AddNote):
                tickets.append({"index": index, "ticket_id": answer.ticket_id, "outcome": "cleared"})
            else:
                outcome = "deduplicated" if answer.deduplicated else "created"
                tickets.append({"index": index, "ticket_id": answer.ticket_id, "outcome": outcome})
        skipped.sort(key=lambda entry: int(entry["index"]))
        log.info(
            "%s: %d alerts from %s: %s", source, len(notification.alerts), sender.actor.user,
            ", ".join(f"{n} {o}" for o, n in _tally(tickets, skipped).items()) or "none",
        )  # fmt: skip
        return web.json_response({"tickets": tickets, "skipped": skipped})

    def _ticket_for(self, alert: SourceAlert, common_labels: Mapping[str, str]) -> CreateTicket:
        return CreateTicket(
            command_id=f"http-{uuid.uuid4().hex}",
            title=alert_title(alert),
            client=alert_client(alert, common_labels, self.settings.client_label),
            priority=priority_of(alert.labels.get("severity") or common_labels.get("severity")),
            dedupe_key=alert.fingerprint,
        )

    def _open_tickets_by_key(self) -> dict[str, str]:
        """Each dedupe key's newest open ticket: where a resolved alert's note goes."""
        newest: dict[str, Ticket] = {}
        for ticket in self.state.tickets.values():
            key = ticket.dedupe_key
            if key is not None and ticket.is_open:
                if key not in newest or (ticket.created_at, ticket.id) > (newest[key].created_at, newest[key].id):
                    newest[key] = ticket
        return {key: ticket.id for key, ticket in newest.items()}

    # --- the writer ---------------------------------------------------------------------------------------

    async def _apply(self, sender: HttpSender, commands: list[CreateTicket | AddNote]) -> list[Ack | Error]:
        """Submit the commands and wait for their answers, which come once their batch is committed."""
        # No await between this check and the last submit: once shutdown has begun (and the writer
        # may have stopped taking commands), nothing is submitted, and a request is never half-queued.
        if self.draining:
            raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "the server is shutting down: nothing applied; resend")
        futures = []
        for command in commands:
            futures.append(sender.expect(command.command_id))
            self.writer.submit(sender, command)
        try:
            texts = await asyncio.gather(*futures)
        except _NotAnswered:
            raise _Refused(
                HTTPStatus.SERVICE_UNAVAILABLE, "the server stopped before answering: resend (nothing is applied twice)"
            ) from None
        answers: list[Ack | Error] = []
        for text in texts:
            frame = decode_server_frame(text)
            assert isinstance(frame, Ack | Error), frame
            answers.append(frame)
        return answers

    async def _sender_for(self, request: web.Request) -> HttpSender:
        """The sender of an intake or dispatcher token, whose allowance this request has spent."""
        token = _bearer_token(request)
        record: TokenRecord | None = await self.storage.find_token(token) if token else None
        if record is None:
            message = "bad or revoked token" if token else "an Authorization: Bearer <token> header is required"
            raise _Refused(HTTPStatus.UNAUTHORIZED, message, {"WWW-Authenticate": 'Bearer realm="dispatch"'})
        if record.role not in INTAKE_ROLES:
            article = "an" if record.role.value[0] in "aeiou" else "a"
            raise _Refused(
                HTTPStatus.FORBIDDEN, f"{article} {record.role.value} token may not send tickets or alerts"
            )  # fmt: skip
        key = (record.name, record.role, record.tech_id)
        sender = self._senders.get(key)
        if sender is None:
            rate = self.settings.rate_limit
            allowance = CommandAllowance(rate, burst=max(1.0, 2 * rate)) if rate > 0 else None
            sender = self._senders[key] = HttpSender(Actor(record.name, record.role, record.tech_id), allowance)
        # One request is one frame's worth of the token's allowance, however many alerts it carries.
        if sender.allowance is not None and not sender.allowance.take():
            raise _Refused(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"over {self.settings.rate_limit:g} requests/s for this token: nothing applied; resend a little later",
                {"Retry-After": "1"},
            )
        return sender

    @web.middleware
    async def _answer_refusals(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """A refusal as `{"error": ...}` with its status; every answer counted by route and status."""
        try:
            response = await handler(request)
        except _Refused as refused:
            response = web.json_response({"error": refused.message}, status=refused.status, headers=refused.headers)
        except StorageUnavailable:
            # The token could not be checked (PostgreSQL unreachable): nothing was applied.
            message = "the database cannot be reached: nothing applied; resend it in a moment"
            response = web.json_response({"error": message}, status=HTTPStatus.SERVICE_UNAVAILABLE,
                                         headers={"Retry-After": "1"})  # fmt: skip
        except web.HTTPException as exc:  # 404, 405 from the router
            self._count(request, exc.status)
            raise
        self._count(request, response.status)
        return response

    def _count(self, request: web.Request, status: int) -> None:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        self.metrics.http_requests.labels(route, str(status)).inc()


def _tally(tickets: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in tickets:
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    if skipped:
        counts["skipped"] = len(skipped)
    return counts


async def _json_body(request: web.Request) -> Any:
    """The request's JSON body: 413 over MAX_BODY_BYTES (unread when it says so up front), 400 if not JSON."""
    too_large = _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    try:
        # pydantic's parser, as the websocket's: deep nesting is a ValueError, not a RecursionError.
        return from_json(raw)
    except ValueError:
        raise _Refused(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None


def _describe(error: ValidationError) -> str:
    """The first problem in words: `alerts.0.status: Input should be 'firing' or 'resolved'`."""
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{location}: {first['msg']}{suffix}"


def _bearer_token(request: web.Request) -> str:
    """The token of an `Authorization: Bearer <token>` header; "" without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _from_this_machine(request: web.Request) -> bool:
    """A loopback peer that is not a proxy passing on someone else's request."""
    if any(header in request.headers for header in ("Forwarded", "X-Forwarded-For", "X-Real-IP")):
        return False
    try:
        return request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        return False
