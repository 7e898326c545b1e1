"""`ryot serve RUN_DIR`: serve a GO run's checkpoint over HTTP (FastAPI under uvicorn).

Exit codes: 0 stopped cleanly (SIGTERM: requests in flight finish, new ones are refused),
2 usage or input error (a bad flag, a missing or corrupt checkpoint or comparison.json, a run
whose verdict is not GO without --allow-no-go, a port that cannot be bound), 130 interrupted
(Ctrl-C). This module imports no server dependency at the top: `ryot stage3a` builds the same
parser and must not pay for FastAPI.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from pathlib import Path

from ryot.config import MAX_BODY_BYTES, MIN_BODY_BYTES

DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_WAIT_MS = 5.0
MAX_BATCH_LIMIT = 1024  # a KV cache for more rows than this is a typo, not a plan
MAX_WAIT_LIMIT_MS = 10_000.0
GRACEFUL_SHUTDOWN_S = 60  # longest a request in flight may still take after SIGTERM


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a `ryot stage3a` run")
    parser.add_argument(
        "--arm",
        default="optimized",
        choices=("optimized", "baseline"),
        help="which checkpoint to serve (default: optimized)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        metavar="N",
        help=f"most prompts decoded together, and per request (default: {DEFAULT_MAX_BATCH})",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=DEFAULT_MAX_WAIT_MS,
        metavar="M",
        help=f"how long a batch waits for more requests (default: {DEFAULT_MAX_WAIT_MS:g})",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        metavar="B",
        help="larger request bodies are answered 413 (default: the run's serving.max_body_bytes,"
        " 1 MiB unless its config set one)",
    )
    parser.add_argument(
        "--allow-no-go",
        action="store_true",
        help="serve a run whose verdict is not GO (/health says so)",
    )


class _Usage(Exception):
    pass


def _check_flags(args: argparse.Namespace) -> None:
    if not 1 <= args.max_batch <= MAX_BATCH_LIMIT:
        raise _Usage(f"--max-batch: must be in [1, {MAX_BATCH_LIMIT}], got {args.max_batch}")
    if not 0 <= args.max_wait_ms <= MAX_WAIT_LIMIT_MS:  # also False for NaN
        raise _Usage(
            f"--max-wait-ms: must be in [0, {MAX_WAIT_LIMIT_MS:g}], got {args.max_wait_ms}"
        )
    if args.max_body_bytes is not None and not (
        MIN_BODY_BYTES <= args.max_body_bytes <= MAX_BODY_BYTES
    ):
        raise _Usage(
            f"--max-body-bytes: must be in [{MIN_BODY_BYTES}, {MAX_BODY_BYTES}], "
            f"got {args.max_body_bytes}"
        )
    if not 0 <= args.port <= 65535:
        raise _Usage(f"--port: must be in [0, 65535], got {args.port}")
    if not args.run_dir.is_dir():
        raise _Usage(f"{args.run_dir}: not a run folder (no such directory)")


def bind(host: str, port: int) -> socket.socket:
    """Listen before anything is announced: a busy port is a one-line error, not a traceback."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise _Usage(f"--host {host}: cannot resolve it ({exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _Usage(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def _log_one_line_each() -> None:
    """The server's own events (a client gone mid-body, a failed decode) as single stderr lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ryot serve: %(message)s"))
    logger = logging.getLogger("ryot.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run(args: argparse.Namespace) -> int:
    from ryot.errors import UsageError  # the CLI turns it into one line and exit 2

    try:
        return _serve(args)
    except _Usage as exc:
        raise UsageError(str(exc)) from None


def _serve(args: argparse.Namespace) -> int:
    _check_flags(args)
    from ryot.serve.served_run import ServeError, gate, load_model, read_verdict
    from ryot.train.trainer import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    try:
        verdict = read_verdict(args.run_dir)
        gate(verdict, args.run_dir, args.allow_no_go)
        served = load_model(args.run_dir, args.arm, device)
    except ServeError as exc:
        raise _Usage(str(exc)) from None
    try:
        import uvicorn

        from ryot.serve.app import create_app
    except ImportError as exc:
        raise _Usage(f"ryot serve needs {exc.name}: pip install ryot (a dependency)") from None

    sock = bind(args.host, args.port)
    app = create_app(
        served,
        verdict,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_body_bytes=args.max_body_bytes,
        allow_no_go=args.allow_no_go,
    )
    _log_one_line_each()
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    note = "" if verdict.status == "GO" else f" (verdict {verdict.status}: --allow-no-go)"
    print(
        f"Serving {served.checkpoint} ({served.num_parameters:,} parameters, {device}){note}",
        flush=True,
    )
    # Tests and scripts read the URL from this line: with --port 0 it is the only place it shows.
    print(f"Listening on http://{shown}:{port}", flush=True)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            app.state.start_draining()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    # uvicorn raises the signal it stopped for again once it has shut down gracefully. SIGTERM
    # is a requested stop: our handler makes that a clean exit 0. SIGINT keeps Python's own
    # handler, so Ctrl-C still ends in KeyboardInterrupt: exit 130 from ryot.cli.
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: None)
    try:
        Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    print("ryot serve: stopped", file=sys.stderr, flush=True)
    return 0
