"""Per-connection limits that keep one client from taking the server's time from the others."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["CommandAllowance", "TakeTurns"]

Owner = TypeVar("Owner", bound=Hashable)
Item = TypeVar("Item")


class CommandAllowance:
    """A token bucket: `rate` frames per second sustained, up to `burst` at once after a quiet spell."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one frame's allowance; False when there is none left (the frame is refused)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
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
