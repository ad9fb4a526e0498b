"""What the board shows until the server says who we are."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from dispatch.client import LinkState, server_addresses


class ConnectingScreen(Screen[None]):
    """Shown until the server says who we are; says why it cannot connect while it retries."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._text = self._words(None)

    def compose(self) -> ComposeResult:
        yield Static(self._text, id="connecting")

    def show(self, link: LinkState) -> None:
        """Say how the link stands; before the screen is composed (it is pushed by the same failure it
        reports), the words wait for the compose."""
        self._text = self._words(link)
        if self.is_mounted:
            self.query_one("#connecting", Static).update(self._text)

    def _words(self, link: LinkState | None) -> str:
        if link is not None and not link.connected and link.attempt:
            # Several servers: the link says why for each, one a line.
            where = f"{self.url}: " if len(server_addresses(self.url)) < 2 else "any server:\n"
            return f"Cannot reach {where}{link.detail}\nretrying, attempt {link.attempt} (Ctrl+Q quits)"
        return f"Connecting to {self.url} …"
