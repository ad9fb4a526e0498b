"""`dispatch wallboard`: the read-only board for the service desk's wall screen, in a browser.

    dispatch wallboard --web [--host 127.0.0.1] [--port 8080] [--public-url URL] --token VIEWER
                       [--server URL] [--ca-file PEM]     (also DISPATCH_TOKEN, DISPATCH_SERVER, DISPATCH_CA_FILE)
    dispatch wallboard --token VIEWER                     (the same board in this terminal)

It takes a viewer token only, checked with the server before anything is served: the page is open to
whoever reaches the port, and a web page must never carry a dispatcher's power. It listens on loopback
unless `--host` says otherwise.

With `--web`, textual-serve (the optional extra `dispatch-board[web]`) runs `dispatch board` once per
browser connection and streams its screen to xterm.js in the page. The token reaches that process
through its environment (DISPATCH_TOKEN), never its command line, which `ps` shows to every user.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from dispatch.core.models import Role
from dispatch.core.protocol import Welcome
from dispatch.scripting import CommandFailed, ExitCode, Target, open_session, target_of

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "PROG", "add_command", "board_command", "page_address", "run"]

PROG = "dispatch wallboard"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
TITLE = "Dispatch wallboard"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `wallboard` to `dispatch`'s subcommands (with the scripted commands' connection options)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "wallboard",
        help="the read-only board for a wall screen, here or in a browser (--web); viewer token only",
        description="The read-only board for the service desk's wall screen. It takes a viewer token only"
        " (a dispatcher's or technician's is refused before anything is served). With --web it serves the"
        " board to browsers through textual-serve (pip install 'dispatch-board[web]'); each browser gets"
        " its own board, run with the token in its environment, never on its command line. Prefer"
        " DISPATCH_TOKEN to --token here too: an option is visible to `ps`.",
        parents=[common],
    )
    parser.add_argument("--web", action="store_true", help="serve the board to browsers instead of this terminal")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        metavar="ADDR",
        help=f"with --web: the address to listen on (default: {DEFAULT_HOST}, this machine only; --host 0.0.0.0"
        " must be given explicitly to let the wall screen's browser reach it from another machine)",
    )
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"with --web: the port to listen on (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="with --web: the address browsers use to reach this server, when it is not http://HOST:PORT"
        " (behind a reverse proxy; with --host 0.0.0.0 the default is this machine's name)",
    )
    parser.set_defaults(prog_name=PROG)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    # Not 0: the page tells the browser where to open its websocket, so the port must be known up front.
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1..65535, not {port}")
    return port


def run(args: argparse.Namespace) -> int:
    """Check the token is a viewer's, then serve the board (`--web`) or run it here; one line on failure."""
    try:
        target = target_of(args)
        asyncio.run(check_viewer(target))
        if args.web:
            return asyncio.run(serve_web(target, args.ca_file, args.host, args.port, args.public_url))
    except CommandFailed as failed:
        print(f"{PROG}: {failed}", file=sys.stderr)
        return failed.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    from dispatch.app import DispatchApp  # Textual loads only for the board

    app = DispatchApp(target.url, target.token, tls=target.tls)
    app.run()
    return app.return_code or 0


async def check_viewer(target: Target) -> None:
    """`CommandFailed` (3) unless the server welcomes this token as a viewer's."""
    async with open_session(target) as session:
        role = session.welcome.role if isinstance(session.welcome, Welcome) else None
    if role is not Role.VIEWER:
        raise CommandFailed(
            f"this is a {role or 'unknown'} token; a wallboard takes a viewer token only, since a web page must"
            " never carry a dispatcher's power (create one: dispatch-server token create --role viewer --name wall)",
            ExitCode.REFUSED,
        )


def board_command() -> str:
    """The shell command textual-serve runs per browser: the board, with no token in sight of `ps`."""
    return f"{shlex.quote(sys.executable)} -m dispatch board"


def board_environment(target: Target, ca_file: str | None) -> dict[str, str]:
    """What `board_command` reads instead of options: textual-serve passes our environment on."""
    environment = {"DISPATCH_SERVER": target.url, "DISPATCH_TOKEN": target.token}
    if ca_file:
        environment["DISPATCH_CA_FILE"] = str(Path(ca_file).resolve())
    return environment


def page_address(host: str, port: int, public_url: str | None = None) -> str:
    """Where browsers reach the page; the page opens its websocket to the same place."""
    if public_url:
        return public_url.rstrip("/")
    if host in WILDCARD_HOSTS:
        # 0.0.0.0 is where we listen, not where a browser on the wall screen can connect to.
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


# textual-serve's page loads Roboto Mono from Google's servers; the wall screen may have no way out to
# the internet, and should not tell Google it is watching the queue. The package ships the font itself.
_REMOTE_FONT = re.compile(r'\s*<link\s+rel="stylesheet"\s+href="https://fonts\.googleapis\.com[^"]*"\s*/>')
_LOCAL_FONT = """
    <style>
      @font-face {
        font-family: "Roboto Mono";
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
        font-weight: 100 700;
      }
    </style>
    <link rel="preload" as="font" type="font/ttf" crossorigin
      href="{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf" />"""


# A wall screen has nobody to press "Restart" when its session ends (the wallboard was restarted, or
# someone pressed Ctrl+Q on the wall's keyboard): reload once the wallboard answers again.
_RECONNECT = """
    <script>
      new MutationObserver((changes, observer) => {
        if (!document.body.classList.contains("-closed")) return;
        observer.disconnect();
        const retry = () => fetch(window.location.href, { cache: "no-store" }).then(
          (response) => (response.ok ? window.location.reload() : setTimeout(retry, 5000)),
          () => setTimeout(retry, 5000),
        );
        setTimeout(retry, 2000);
      }).observe(document.body, { attributes: true, attributeFilter: ["class"] });
    </script>
  </body>"""


def page_template(packaged: str) -> str:
    """textual-serve's page with the font served from here instead of from Google, and reloading by
    itself when its session ends."""
    page, fonts = _REMOTE_FONT.subn(lambda _: _LOCAL_FONT, packaged, count=1)
    page, ends = re.subn(r"\s*</body>", lambda _: _RECONNECT, page, count=1)
    if (not fonts and "fonts.googleapis.com" in packaged) or not ends:
        raise RuntimeError("textual-serve's page changed: update dispatch/wallboard.py's page_template")
    return page


async def serve_web(target: Target, ca_file: str | None, host: str, port: int, public_url: str | None) -> int:
    """Serve the board to browsers until SIGINT or SIGTERM; each connection's board ends with it."""
    try:
        import aiohttp_jinja2
        import jinja2
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:
        raise CommandFailed("--web needs textual-serve: pip install 'dispatch-board[web]'", ExitCode.USAGE) from None

    class WallboardServer(Server):
        # Each browser's connection, to end on shutdown: aiohttp would otherwise wait its shutdown timeout
        # (60 s) for websockets that never finish by themselves, the wall screen's least of all.
        browsers: set[asyncio.Task[Any]] = set()

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            task = asyncio.current_task()
            assert task is not None
            self.browsers.add(task)
            try:
                return await super().handle_websocket(request)
            finally:
                self.browsers.discard(task)

        async def on_startup(self, app: web.Application) -> None:
            pass  # not textual-serve's banner: one line once we listen (below)

        async def on_shutdown(self, app: web.Application) -> None:
            # Cancelled, textual-serve tells the browser's board to quit and waits for it to exit.
            for task in self.browsers:
                task.cancel()
            await asyncio.gather(*self.browsers, return_exceptions=True)

    address = page_address(host, port, public_url)
    os.environ.update(board_environment(target, ca_file))
    server = WallboardServer(board_command(), host=host, port=port, title=TITLE, public_url=address)
    # textual-serve's own serve() binds inside aiohttp's run_app and says nothing once it listens; we run
    # the same application ourselves, so that the line below means "browsers can connect now" and a port
    # in use is one line instead of a traceback.
    app = await server._make_app()
    packaged = Path(server.templates_path, "app_index.html").read_text(encoding="utf-8")
    aiohttp_jinja2.get_env(app).loader = jinja2.DictLoader({"app_index.html": page_template(packaged)})
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise CommandFailed(f"cannot listen on {host}:{port} ({exc.strerror or exc})", ExitCode.FAILED) from None
        print(f"wallboard on {address}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        # Closes each browser's websocket, which tells its board to quit and waits for it.
        await runner.cleanup()
    return ExitCode.OK
