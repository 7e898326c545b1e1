"""The operating system, used so that nothing is lost: atomic writes, one-line OSError text,
SIGTERM taking Ctrl-C's path, stopping a child process for sure, and fresh cache folders.

Every stage writes through here: the worker its result, the job comparison.json, the report its
HTML; the worker runner and the serving harness both stop their children with `stop`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_text_atomic(text: str, path: Path) -> None:
    """Write UTF-8 text through a temp file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run artifacts are for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(data: dict[str, Any], path: Path) -> None:
    """comparison.json and worker results: strict JSON (NaN and infinities become null)."""
    text = json.dumps(_clean(data), indent=2, ensure_ascii=False, allow_nan=False)
    write_text_atomic(text + "\n", path)


def describe_os_error(exc: OSError) -> str:
    """One phrase for an OSError: 'no space left on device' rather than errno 28's repr."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or str(exc)


def os_error_line(exc: OSError) -> str:
    """'no space left on device writing PATH': the phrase, and the file when there is one."""
    where = f" writing {exc.filename}" if exc.filename else ""
    return f"{describe_os_error(exc)}{where}"


def interrupt_on_sigterm():
    """SIGTERM takes Ctrl-C's path (workers stopped, run set aside); returns the handler it
    replaced, or None where signals cannot be set (not the main thread)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        return None


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


# Where PyTorch and its toolchain keep what they compiled, and where other code keeps its
# caches by convention: torch.compile's inductor (FX graph, AOT autograd and C++ caches),
# Triton's kernels, torch.utils.cpp_extension's builds, XDG caches and temporary files.
CACHE_VARIABLES = (
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "TORCH_EXTENSIONS_DIR",
    "PYTORCH_KERNEL_CACHE_PATH",
    "XDG_CACHE_HOME",
    "TMPDIR",
)


@contextlib.contextmanager
def fresh_caches(prefix: str = "ryot-caches-") -> Iterator[dict[str, str]]:
    """The environment variables that point every known cache at new, empty folders, removed
    afterwards: a process started with them finds nothing an earlier one compiled or built."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        env = {}
        for name in CACHE_VARIABLES:
            folder = root / name.lower()
            folder.mkdir()
            env[name] = str(folder)
        yield env
    finally:
        shutil.rmtree(root, ignore_errors=True)
