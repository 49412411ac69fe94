"""``apprentice serve -c FILE [--host H] [--port P] [--loop L]``: run the HTTP gateway.

Prints one line ``apprentice gateway listening on http://HOST:PORT`` to stdout once
the socket is bound (with ``--port 0`` the real port), so scripts and tests can
wait on it; just before it, one line to stderr names the event loop that serves
(``apprentice gateway event loop: uvloop 0.23.0``; :mod:`apprentice.gateway.event_loop`
says how it is chosen). SIGTERM and SIGINT shut down cleanly: in-flight requests
finish, a running training subprocess is stopped, the store is closed. After a SIGKILL
the next ``serve`` resumes from the store (phase, window, spend, versions).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any, get_args

from apprentice import config


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the gateway (task API, OpenAI-compatible API, admin, metrics)"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--host", default=None, help="bind address (default: gateway.host)")
    parser.add_argument("--port", type=int, default=None, help="port (default: gateway.port)")
    parser.add_argument(
        "--loop",
        choices=get_args(config.EventLoopChoice),
        default=None,
        help="event loop; auto: uvloop when installed (default: gateway.event_loop)",
    )
    parser.set_defaults(func=run)


async def serve(cfg: config.ApprenticeConfig, host: str, port: int) -> None:
    """Start the app and the HTTP server; return when SIGTERM/SIGINT arrives."""
    from apprentice.gateway import event_loop, server
    from apprentice.gateway.facade import Apprentice
    from apprentice.gateway.http import build_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Apprentice.from_config(cfg) as app:
        # Slow-client limits (header/body timeouts, max_connections) live in listen().
        listener = await server.listen(build_app(app.gateway), cfg.gateway, host, port)
        bound = listener.port
        server.tune_process()  # GC and GIL settings for serving (p99), after start-up
        print(
            f"apprentice gateway event loop: {event_loop.describe(loop)}",
            file=sys.stderr,
            flush=True,
        )
        print(f"apprentice gateway listening on http://{host}:{bound}", flush=True)
        try:
            await stop.wait()
        finally:
            await listener.close()


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    host = args.host or cfg.gateway.host
    port = cfg.gateway.port if args.port is None else args.port
    from apprentice.gateway import errors, event_loop

    try:
        event_loop.run(serve(cfg, host, port), args.loop or cfg.gateway.event_loop)
    except errors.GatewayError as exc:
        print(f"error: {exc.message} [{exc.docs}]", file=sys.stderr)
        return 1
    except OSError as exc:  # the port is taken, say
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
