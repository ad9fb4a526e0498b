"""`--version` on both commands: the release and the wire protocol version."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from dispatch.core.protocol import PROTOCOL_VERSION
from tests.support import timeout


@pytest.mark.parametrize("program", ["dispatch", "dispatch-server"])
def test_version_names_the_release_and_the_protocol(program: str) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name(program)), "--version"], capture_output=True, text=True, timeout=timeout(60)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{program} {version('dispatch-board')} (protocol {PROTOCOL_VERSION})\n"
    assert done.stderr == ""
