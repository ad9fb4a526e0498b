"""The board's side of the wire: one websocket to the server, reconnecting with backoff.

No Textual here: the board's worker runs `ServerLink.run` and turns its callbacks into messages.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from dispatch.core.protocol import (
    CLOSE_BAD_TOKEN,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Command,
    Error,
    ErrorCode,
    Hello,
    ServerFrame,
    Welcome,
    decode_server_frame,
)

__all__ = [
    "ServerLink",
    "Backoff",
    "backoff_delay",
    "CommandSession",
    "LinkState",
    "AccessRefused",
    "new_command_id",
    "tls_context",
    "DEFAULT_SERVER",
    "server_addresses",
]

DEFAULT_SERVER = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}"
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 15.0
# A command refused as `rate_limited` was not applied: it is sent again, with the same id, this many times.
RATE_LIMITED_RETRIES = 8


class AccessRefused(Exception):
    """The server closed with 4401: the token is wrong or revoked. Final; retrying cannot help."""


@dataclass(frozen=True)
class LinkState:
    """What the header shows about the connection."""

    connected: bool
    attempt: int = 0  # reconnect attempt number while not connected
    detail: str = ""
    # Why the server closed the connection, in its own words ("the database cannot be reached: try again
    # later"), "" when it gave none or was not reached.
    reason: str = ""
    # The server we are on (its `welcome.node`), when several addresses were given: "" with one.
    node: str = ""


def server_addresses(text: str) -> list[str]:
    """The addresses in `--server`/DISPATCH_SERVER: one URL, or several separated by commas (servers
    sharing one database), in the order to try them."""
    return [address.strip() for address in text.split(",") if address.strip()]


def new_command_id() -> str:
    return uuid.uuid4().hex


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """What to trust for wss://: the system's authorities, or only `ca_file` (a private CA's PEM).

    Raises ValueError with a one-line reason when the file cannot be read as certificates."""
    if not ca_file:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # ssl.SSLError included
        reason = exc.strerror or getattr(exc, "reason", None) or str(exc)
        raise ValueError(f"cannot use {ca_file} as a CA file: {reason}") from None


Backoff = Callable[[int], float]
"""Seconds to wait before reconnect attempt number `attempt` (1, 2, ...)."""


def backoff_delay(attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential backoff with full jitter, so a hundred boards do not return in lockstep."""
    return draw(0, min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))


class ServerLink:
    """Owns the websocket: connects, says hello with the last applied seq, reads frames, reconnects.

    A connection counts as up only once the server's `welcome` arrives: a server that accepts the
    socket and then closes (a refused hello, a full server, a proxy in front of a dead one) is a
    failed attempt, so the backoff keeps growing and the board never flashes "connected".

    `url` may list several servers sharing one database, separated by commas: each attempt after a
    failed one or a lost connection goes to the next, and resumes there from the last applied seq
    (every server has the same log, so nothing is missed or applied twice)."""

    def __init__(
        self, url: str, token: str, *, ssl_context: ssl.SSLContext | None = None, backoff: Backoff = backoff_delay
    ) -> None:
        self.urls = server_addresses(url) or [url]
        self._next = 0
        self.token = token
        self.ssl_context = ssl_context
        self.backoff = backoff
        self._ws: ClientConnection | None = None  # set once welcomed: commands go out only then

    async def run(
        self,
        last_seq: Callable[[], int | None],
        on_frame: Callable[[ServerFrame], Awaitable[None] | None],
        on_state: Callable[[LinkState], None],
    ) -> None:
        """Run until cancelled or refused. Raises `AccessRefused` on close code 4401."""
        attempt = 0
        # Why each server failed last: with several, a person is told about all of them, not only the
        # last one tried ("the database cannot be reached" on one, "connection refused" on the other).
        failures: dict[str, str] = {}
        while True:
            url = self.urls[self._next]
            reason = ""
            try:
                async with connect(
                    url,
                    max_size=None,
                    open_timeout=10,
                    compression=None,
                    **_tls_option(url, self.ssl_context),
                ) as ws:
                    await ws.send(Hello(token=self.token, last_seq=last_seq()).model_dump_json())
                    async for raw in ws:
                        try:
                            frame = decode_server_frame(raw)
                        except ValidationError:
                            continue  # a newer server's extra frame: ignore rather than crash the board
                        if isinstance(frame, Welcome) and self._ws is None:
                            self._ws = ws
                            attempt = 0
                            failures.clear()
                            node = (frame.node or url) if len(self.urls) > 1 else ""
                            on_state(LinkState(connected=True, node=node))
                        result = on_frame(frame)
                        if result is not None:
                            await result
                    # The loop ends quietly on a clean close (1000, 1001: the server restarts).
                    if ws.close_code == CLOSE_BAD_TOKEN:
                        raise AccessRefused(ws.close_reason or "bad or missing token")
                    detail, reason = _closed(ws.close_code, ws.close_reason), ws.close_reason or ""
            except ConnectionClosed as closed:
                if closed.rcvd is not None and closed.rcvd.code == CLOSE_BAD_TOKEN:
                    raise AccessRefused(closed.rcvd.reason or "bad or missing token") from None
                detail = _closed(closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else "connection lost"
                reason = closed.rcvd.reason if closed.rcvd else ""
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                detail = _describe(exc)
            except InvalidURI:
                raise AccessRefused(f"not a websocket address: {url}") from None
            finally:
                self._ws = None
            # The next server, if there are several: this one is down, or took us as far as it could.
            self._next = (self._next + 1) % len(self.urls)
            if len(self.urls) > 1:
                failures[url] = detail
                detail = "\n".join(f"{each}: {failures[each]}" for each in self.urls if each in failures)
            attempt += 1
            on_state(LinkState(connected=False, attempt=attempt, detail=detail, reason=reason))
            await asyncio.sleep(self.backoff(attempt))

    async def send(self, frame: BaseModel | dict[str, Any]) -> bool:
        """Send one frame; False when not connected (the caller keeps it pending and says so)."""
        ws = self._ws
        if ws is None:
            return False
        text = frame.model_dump_json() if isinstance(frame, BaseModel) else json.dumps(frame)
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def resync(self) -> None:
        """Drop the connection so that `run` reconnects and the server sends what we missed."""
        if self._ws is not None:
            await self._ws.close(1000, "resync")


def _closed(code: int | None, reason: str | None) -> str:
    # The reason is what says what to do: "token 'wall' has too many open connections", "too slow ...".
    return f"server closed the connection: {reason} ({code})" if reason else f"server closed the connection ({code})"


def _tls_option(url: str, context: ssl.SSLContext | None) -> dict[str, Any]:
    # websockets refuses ssl=None for wss:// and any context for ws://: pass it only for wss, so a
    # DISPATCH_CA_FILE exported for the production server does not break a ws:// one.
    return {"ssl": context} if context is not None and url.startswith("wss://") else {}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "server not reachable (connection refused)"
    if isinstance(exc, TimeoutError):
        return "server did not answer in time"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted ({exc.verify_message}); a private CA? pass --ca-file"
    return str(exc) or type(exc).__name__


class CommandSession:
    """A scripted client: sends commands and awaits their replies; used by the CLI and the simulator.

    async with await CommandSession.open(url, token) as session:
        reply = await session.call(CreateTicket(...))
    """

    def __init__(self, ws: ClientConnection, welcome: ServerFrame, snapshot: ServerFrame | None) -> None:
        self.ws = ws
        self.welcome = welcome
        self.snapshot = snapshot
        self._replies: dict[str, asyncio.Future[ServerFrame]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, token: str, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
    ) -> CommandSession:
        """Connect and say hello; raises `AccessRefused` on a bad token, `OSError` when unreachable."""
        try:
            ws = await connect(
                url, max_size=None, open_timeout=timeout, compression=None, **_tls_option(url, ssl_context)
            )
        except InvalidURI:
            raise AccessRefused(f"not a websocket address: {url}") from None
        except InvalidHandshake as exc:
            raise OSError(f"{url} did not accept a websocket connection: {exc}") from None
        await ws.send(Hello(token=token).model_dump_json())
        try:
            welcome = decode_server_frame(await asyncio.wait_for(ws.recv(), timeout))
            snapshot = decode_server_frame(await asyncio.wait_for(ws.recv(), timeout))
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == CLOSE_BAD_TOKEN:
                raise AccessRefused("the server refused the token") from None
            # The server's reason, once ("the database cannot be reached: try again later"), not
            # websockets' account of the close frames both ways.
            raise OSError(_closed(closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else "connection lost") from None
        return cls(ws, welcome, snapshot)

    async def __aenter__(self) -> CommandSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        # Keep reading while closing: a reader stopped first would let flow control pause the socket,
        # and the close handshake would wait out its timeout behind unread events.
        await self.ws.close()
        self._reader.cancel()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                command_id = _reply_id(raw)
                if command_id is not None and command_id in self._replies:
                    future = self._replies.pop(command_id)
                    if not future.done():
                        future.set_result(decode_server_frame(raw))
        except ConnectionClosed:
            pass
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection lost"))

    async def call(self, command: Command, timeout: float = 30.0) -> ServerFrame:
        """Send one command and return its reply (ack, error, suggestions or history).

        Over the server's rate limit the command was not applied; it is resent after a growing pause,
        so a fast script (an import) slows down to the rate it is allowed instead of failing."""
        for attempt in range(RATE_LIMITED_RETRIES):
            reply = await self._call_once(command, timeout)
            if not (isinstance(reply, Error) and reply.code is ErrorCode.RATE_LIMITED):
                break
            if attempt < RATE_LIMITED_RETRIES - 1:
                await asyncio.sleep(random.uniform(0.5, 1.0) * min(2.0, 0.05 * 2**attempt))
        return reply

    async def _call_once(self, command: Command, timeout: float) -> ServerFrame:
        command_id = command.command_id
        future: asyncio.Future[ServerFrame] = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        try:
            await self.ws.send(command.model_dump_json())
            return await asyncio.wait_for(future, timeout)
        finally:
            # Never leave a future behind: one whose connection dropped would be reported as unretrieved.
            self._replies.pop(command_id, None)


def _reply_id(raw: str | bytes) -> str | None:
    # Replies start with their type; events (the bulk of the stream) are skipped without parsing.
    head = raw[:40] if isinstance(raw, str) else raw[:40].decode(errors="replace")
    if '"type":"event"' in head:
        return None
    try:
        value = json.loads(raw).get("command_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
