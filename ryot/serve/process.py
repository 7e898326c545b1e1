"""Run `ryot serve` as a child process and always stop it: for the tests and the Stage 3b suite.

The child listens on --port 0 (a free port the OS picks, no race between finding and binding
one) and announces its URL on stdout. Stopping sends SIGTERM (a graceful drain) and kills the
child if it is not gone within the grace period, so no caller can leave a server running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ryot.osutil import stop

_URL = re.compile(r"Listening on (http://\S+)")


class ServerFailed(RuntimeError):
    """The server process exited or stayed silent instead of serving."""


class ServerProcess:
    """`with ServerProcess(run_dir, ...) as server:` -> server.url; stopped on exit, always."""

    def __init__(
        self,
        run_dir: Path,
        extra_args: Sequence[str] = (),
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
    ):
        self.args = [sys.executable, "-m", "ryot", "serve", str(run_dir), "--host", "127.0.0.1"]
        self.args += ["--port", "0", *extra_args]
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.output: list[str] = []  # stdout and stderr lines, for failure messages
        self.returncode: int | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        env = os.environ | {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
        found = threading.Event()

        def read() -> None:  # drains the pipe for the child's whole life: it never blocks
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip("\n"))
                match = _URL.search(line)
                if match and self.url is None:
                    self.url = match.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read, name="ryot-serve-output", daemon=True).start()
        try:
            if not found.wait(self.start_timeout_s) or self.url is None:
                raise ServerFailed(f"ryot serve did not start: {self.tail()}")
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self) -> dict:
        """Poll /health until it answers 200; the server's health document."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerFailed(f"ryot serve exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    return json.loads(response.read().decode("utf-8"))
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerFailed(f"/health never answered: {self.tail()}") from None
                time.sleep(0.1)

    def terminate(self) -> None:
        """SIGTERM: the server stops taking requests and finishes those in flight."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        """Terminate gracefully, kill after stop_timeout_s; the exit code."""
        if self.proc is not None:
            self.returncode = stop(self.proc, self.stop_timeout_s)
        return self.returncode

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self.output[-lines:]) or "(no output)"
