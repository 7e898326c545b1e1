"""Stopping a child process for sure: the worker runner and the serving harness share it."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen, grace_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after `grace_s`; returns the exit code once the process is gone."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
