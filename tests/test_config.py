"""Configuration: the policy file validated in one line (dispatch/core/config.py, AllocationPolicy), and
`serve`'s defaults read from one place (server/settings.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from dispatch.core.allocation import AllocationPolicy
from dispatch.core.config import ConfigError, load_toml
from dispatch.core.durations import Duration
from server.cli import build_parser
from server.settings import DEFAULTS, read_config_file
from tests.support import timeout

DISPATCH_SERVER = str(Path(sys.executable).with_name("dispatch-server"))
KEYS = "affinity, availability, busy_factor, escalate_after_minutes, load, on_site_factor, urgency"


@pytest.mark.parametrize(
    ("toml", "changed"),
    [
        ("", {}),
        ("[allocation]\n", {}),
        ("[allocation]\nload = 0.8\nescalate_after_minutes = 5\n", {"load": 0.8, "escalate_after_minutes": 5.0}),
        ("[allocation]\nbusy_factor = 0\non_site_factor = 1\n", {"busy_factor": 0.0, "on_site_factor": 1.0}),
        ("[allocation]\navailability = 1\nload = 0\n", {"availability": 1.0, "load": 0.0}),  # integers are numbers
        ("[allocation]\nescalate_after_minutes = 1440\n", {"escalate_after_minutes": 1440.0}),
        ("[allocation]\nescalate_after_minutes = 0.5\n", {"escalate_after_minutes": 0.5}),
    ],
)
def test_policy_files_that_are_read(toml: str, changed: dict[str, float]) -> None:
    policy = AllocationPolicy.from_toml(toml, "policy.toml")
    assert policy == AllocationPolicy(**changed)
    assert policy.availability == changed.get("availability", 0.35)


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        ("[allocation]\nbusy_factor = 7\n", "policy.toml: [allocation] busy_factor = 7: must be between 0 and 1"),
        ("[allocation]\nload = -1\n", "policy.toml: [allocation] load = -1: must be between 0 and 1"),
        ("[allocation]\nurgency = 1.5\n", "policy.toml: [allocation] urgency = 1.5: must be between 0 and 1"),
        ("[alocation]\nload = 0.5\n", "policy.toml: [alocation]: unknown table; allowed: [allocation]"),
        ("[allocation]\nlaod = 0.8\n", f"policy.toml: [allocation] laod = 0.8: unknown key; allowed: {KEYS}"),
        ("load = 0.8\n", "policy.toml: load = 0.8: unknown key; allowed: [allocation]"),
        ("allocation = 5\n", "policy.toml: allocation = 5: must be a table"),
        ('[allocation]\nload = "0.5"\n', 'policy.toml: [allocation] load = "0.5": must be a number between 0 and 1'),
        ("[allocation]\nload = true\n", "policy.toml: [allocation] load = true: must be a number between 0 and 1"),
        ("[allocation]\nload = nan\n", "policy.toml: [allocation] load = nan: must be a number between 0 and 1"),
        ("[allocation]\nload = [1]\n", "policy.toml: [allocation] load = [1]: must be a number between 0 and 1"),
        (
            "[allocation]\nescalate_after_minutes = 0\n",
            "policy.toml: [allocation] escalate_after_minutes = 0: must be more than 0 and at most 1440",
        ),
        (
            "[allocation]\nescalate_after_minutes = inf\n",
            "policy.toml: [allocation] escalate_after_minutes = inf: must be a number more than 0 and at most 1440",
        ),
        (
            "[allocation]\nload = 2\nurgency = 2\n",
            "policy.toml: [allocation] load = 2: must be between 0 and 1 (and 1 more mistake)",
        ),
        (
            "[allocation.weights]\nload = 1\n",
            f"policy.toml: [allocation.weights]: unknown table; allowed: {KEYS}",
        ),
        (
            "[allocation\n",
            "policy.toml: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 12)",
        ),
        (
            "[allocation]\nload = \n",
            "policy.toml: not valid TOML: Invalid value (at line 2, column 8)",
        ),
    ],
)
def test_policy_file_mistakes_are_one_line(toml: str, line: str) -> None:
    with pytest.raises(ConfigError) as refused:
        AllocationPolicy.from_toml(toml, "policy.toml")
    assert str(refused.value) == line


# The helper is for every configuration file; a made-up one in the shape of those to come (tables of
# tables, lists, text) shows how their mistakes read.
class _Tier(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    respond: Duration
    calendar: str = "24x7"


class _Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    members: list[str]
    capacity: int = Field(3, ge=1, le=50)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    tiers: dict[str, _Tier] = {}
    rotations: list[_Rotation] = []
    enabled: bool = True


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        (
            "[tiers.gold]\nrespond = 15\n",
            '[tiers.gold] respond = 15: must be a duration in quotes, e.g. "30m", "2h", "1d"',
        ),
        (
            '[tiers.gold]\nrespond = "5x"\n',
            "[tiers.gold] respond = \"5x\": '5x' is not a duration: use e.g. 30m, 2h, 1d",
        ),
        ('[tiers.gold]\ncalendar = "x"\n', "[tiers.gold] respond: required, missing"),
        (
            '[tiers.gold]\nrespond = "1h"\nresolve = "4h"\n',
            '[tiers.gold] resolve = "4h": unknown key; allowed: calendar, respond',
        ),
        ('[[rotations]]\nmembers = ["a", 2]\n', "[rotations[0]] members[1] = 2: must be text in quotes"),
        (
            "[[rotations]]\nmembers = []\ncapacity = 0\n",
            "[rotations[0]] capacity = 0: must be between 1 and 50",
        ),
        (
            "[[rotations]]\nmembers = []\ncapacity = 1.5\n",
            "[rotations[0]] capacity = 1.5: must be a whole number between 1 and 50",
        ),
        ('enabled = "yes"\n', 'enabled = "yes": must be true or false'),
        ("rotations = 3\n", "rotations = 3: must be a list"),
        ("[bogus]\n", "[bogus]: unknown table; allowed: enabled, [[rotations]], [tiers]"),
    ],
)
def test_the_helper_names_the_key_in_any_file(toml: str, line: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_toml(_File, toml, "sla.toml")
    assert str(refused.value) == f"sla.toml: {line}"


def test_a_duration_in_a_file_is_read_by_the_one_parser() -> None:
    read = load_toml(_File, '[tiers.gold]\nrespond = "1h30m"\n', "sla.toml")
    assert read.tiers["gold"].respond == timedelta(hours=1, minutes=30)


def test_a_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"^.*/nope\.toml: cannot read: No such file or directory$"):
        read_config_file(missing)
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"binary\.toml: not a text file \(UTF-8\)$"):
        read_config_file(str(tmp_path / "binary.toml"))


def _serve(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DISPATCH_SERVER, "--db", str(tmp_path / "d.db"), "serve", "--port", "0", *options],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("file", "content", "line"),
    [
        ("bad.toml", "[allocation]\nbusy_factor = 7\n", "[allocation] busy_factor = 7: must be between 0 and 1"),
        ("typo.toml", "[alocation]\nload = 0.5\n", "[alocation]: unknown table; allowed: [allocation]"),
        (
            "broken.toml",
            "[allocation\n",
            "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 12)",
        ),
        ("missing.toml", None, "cannot read: No such file or directory"),
    ],
)
def test_serve_refuses_a_bad_policy_file_in_one_line(tmp_path: Path, file: str, content: str | None, line: str) -> None:
    if content is not None:
        (tmp_path / file).write_text(content)
    done = _serve(tmp_path, "--policy", file)
    assert done.returncode == 2
    assert done.stderr == f"dispatch-server: {file}: {line}\n"
    assert done.stdout == ""
    # Refused before the database is opened: nothing was created.
    assert not (tmp_path / "d.db").exists()


def test_serve_options_default_to_the_settings_defaults() -> None:
    args = build_parser().parse_args(["--db", "d.db", "serve"])
    assert (args.host, args.port) == (DEFAULTS.host, DEFAULTS.port)
    assert args.dedupe_window == DEFAULTS.dedupe_window_minutes
    assert (args.burst_threshold, args.burst_window) == (DEFAULTS.burst_threshold, DEFAULTS.burst_window_minutes)
    assert args.rate_limit == DEFAULTS.rate_limit
    assert (args.max_connections, args.max_connections_per_token) == (
        DEFAULTS.max_connections,
        DEFAULTS.max_connections_per_token,
    )


def test_serve_help_shows_the_settings_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--db", "d.db", "serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines where it likes
    for default in (
        f"(default {DEFAULTS.host})",
        f"(default {DEFAULTS.port})",
        f"(default {DEFAULTS.dedupe_window_minutes:g})",
        f"(default {DEFAULTS.burst_threshold}; 0: off)",
        f"(default {DEFAULTS.burst_window_minutes:g})",
        f"(default {DEFAULTS.rate_limit:g}; 0: no limit)",
        f"(default {DEFAULTS.max_connections})",
        f"(default {DEFAULTS.max_connections_per_token})",
    ):
        assert default in shown
