"""`dispatch`: the board and the scriptable commands around it.

    dispatch --version                                          (also the wire protocol version)
    dispatch board [--server URL[,URL...]] [--token T] [--ca-file PEM]   (also DISPATCH_SERVER,
                                                                 DISPATCH_TOKEN, DISPATCH_CA_FILE)
    dispatch demo
    dispatch ticket new|list, assign, tech list|status, callout, simulate    (dispatch/scripting.py)
    dispatch import FILE.csv|FILE.json [--dry-run]                  (dispatch/importer.py)
    dispatch wallboard --web [--host 127.0.0.1] [--port 8080]       (dispatch/wallboard.py; viewer token only)

Exit status of the scripted commands, documented in dispatch/scripting.py and `dispatch --help`:
0 done, 1 invalid or other failure (import: some rows skipped), 2 usage, 3 token refused or forbidden
(as `dispatch board` on a refused token), 4 not found, 5 conflict, 6 cannot reach the server,
7 rate limited, 130 interrupted, 141 stdout closed early.
"""

from __future__ import annotations

import argparse
import os
import sys

from dispatch import importer, scripting, wallboard
from dispatch.client import DEFAULT_SERVER, server_addresses, tls_context
from dispatch.core.version import version_line

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispatch",
        description="Dispatch board for break-fix IT service.",
        epilog=scripting.EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line("dispatch"))
    commands = parser.add_subparsers(dest="command", required=True)
    board = commands.add_parser("board", help="open the board (dispatcher, technician or wallboard by token)")
    board.add_argument(
        "--server",
        default=os.environ.get("DISPATCH_SERVER", DEFAULT_SERVER),
        metavar="URL",
        help="websocket address; several servers sharing one database: URL,URL,... (on to the next when one is lost)",
    )
    board.add_argument("--token", default=os.environ.get("DISPATCH_TOKEN"), metavar="T")
    board.add_argument(
        "--ca-file",
        default=os.environ.get("DISPATCH_CA_FILE"),
        metavar="PEM",
        help="for wss://: trust this CA (a private one) instead of the system's",
    )
    commands.add_parser("demo", help="an embedded server, an outage burst and the board, all in one")
    common = scripting.connection_options()
    scripting.add_commands(commands, common)
    importer.add_command(commands, common)
    wallboard.add_command(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "board":
        return run_board(args.server, args.token, args.ca_file)
    if args.command == "demo":
        from dispatch.demo import run_demo

        return run_demo()
    if args.command == "wallboard":
        return wallboard.run(args)
    if hasattr(args, "run"):
        return scripting.run(args)
    return EXIT_USAGE


def run_board(server: str, token: str | None, ca_file: str | None = None) -> int:
    if not token:
        print("dispatch board: no token: pass --token or set DISPATCH_TOKEN", file=sys.stderr)
        return EXIT_USAGE
    for address in server_addresses(server) or [server]:
        if not address.startswith(("ws://", "wss://")):
            print(
                f"dispatch board: the server address must start with ws:// or wss://, not {address!r}", file=sys.stderr
            )
            return EXIT_USAGE
    try:
        tls = tls_context(ca_file)
    except ValueError as exc:
        print(f"dispatch board: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from dispatch.app import DispatchApp  # Textual loads only for the board

    app = DispatchApp(server, token, tls=tls)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
