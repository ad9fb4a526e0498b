"""Per-connection limits that keep one client from taking the server's time from the others."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["RATE_LIMIT_STRIKES", "CommandAllowance", "TakeTurns"]

# Strikes (refusals net of what wore them off) after which a connection is closed with 4429.
RATE_LIMIT_STRIKES = 100

Owner = TypeVar("Owner", bound=Hashable)
Item = TypeVar("Item")


class CommandAllowance:
    """A token bucket: `rate` frames per second sustained, up to `burst` at once after a quiet spell;
    and the strikes of a connection that goes on sending once it is refused.

    Each refused frame is a strike; each frame let through takes a quarter of the strikes off (at least
    one). At `strikes_limit` the allowance is `exhausted` and the connection should be closed. The strikes
    decay rather than reset: on a loaded server a token refilled between two frames of a flood used to
    wipe the count, so a client ignoring its refusals was never closed. A quarter, not one: a client
    that backs off with many commands in flight (ours resends each after a growing pause) sees a wave of
    refusals for every frame let through, and must not be taken for one that ignores them."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        strikes_limit: int = RATE_LIMIT_STRIKES,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.strikes_limit = strikes_limit
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._strikes = 0

    @property
    def strikes(self) -> int:
        """Refusals not yet worn off by frames let through."""
        return self._strikes

    @property
    def exhausted(self) -> bool:
        """The connection went on sending past its refusals: close it (4429)."""
        return self._strikes >= self.strikes_limit

    def take(self) -> bool:
        """Spend one frame's allowance; False when there is none left (the frame is refused, a strike)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._strikes -= min(self._strikes, max(1, self._strikes // 4))
            return True
        self._strikes += 1
        return False


class TakeTurns(Generic[Owner, Item]):
    """What waits for the writer: one line per connection, and each batch takes from the lines in turn.

    With one shared FIFO, a client with hundreds of commands in flight would put a dispatcher's single
    reassignment behind all of them; taking turns bounds that wait by the number of busy connections,
    whatever any one of them sends. Each line stays in order, so a connection's own commands do too."""

    def __init__(self) -> None:
        self._lines: dict[Owner, deque[Item]] = {}
        self._size = 0
        self._closed = False
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    def put(self, owner: Owner, item: Item) -> None:
        self._lines.setdefault(owner, deque()).append(item)
        self._size += 1
        self._ready.set()

    def close(self) -> None:
        """Take nothing new; `next_batch` returns what is left, then None."""
        self._closed = True
        self._ready.set()

    async def next_batch(self, limit: int, per_owner: int) -> list[Item] | None:
        """Up to `limit` items, at most `per_owner` from any one line, taken one from each waiting line
        per round; None once closed and empty."""
        while not self._lines:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        batch: list[Item] = []
        taken: dict[Owner, int] = {}
        for _ in range(per_owner):
            for owner in list(self._lines):
                if len(batch) == limit:
                    break
                line = self._lines.pop(owner)
                batch.append(line.popleft())
                taken[owner] = taken.get(owner, 0) + 1
                if line:  # to the back of the turn order, so the next batch starts with the others
                    self._lines[owner] = line
            if len(batch) == limit or not self._lines:
                break
        self._size -= len(batch)
        return batch
