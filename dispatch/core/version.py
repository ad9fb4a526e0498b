"""What `--version` prints on both commands: the release and the wire protocol version it speaks."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from dispatch.core.protocol import PROTOCOL_VERSION

__all__ = ["DISTRIBUTION", "release", "version_line"]

DISTRIBUTION = "dispatch-board"


def release() -> str:
    """The installed release of dispatch-board, or `unknown` when run from a source tree not installed."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def version_line(program: str) -> str:
    """`dispatch-server 0.1.0 (protocol 1)`: the release, and the wire protocol version it speaks."""
    return f"{program} {release()} (protocol {PROTOCOL_VERSION})"
