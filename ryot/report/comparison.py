"""comparison.json (schema 3.0): the seed plan's fields plus measurements, criteria, runs."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import torch

SCHEMA_VERSION = "3.0"
SCHEMA_FILE = "comparison.schema.json"


def load_schema(version: str | None = None) -> dict[str, Any]:
    """The JSON schema of comparison.json: this ryot's (SCHEMA_VERSION), or an older one kept
    beside it (comparison.schema.2.0.json) so that files written before still validate."""
    name = SCHEMA_FILE if version in (None, SCHEMA_VERSION) else f"comparison.schema.{version}.json"
    schema = resources.files("ryot.report").joinpath(name)
    if not schema.is_file():
        raise ValueError(f"no schema for comparison.json schema_version {version!r}")
    return json.loads(schema.read_text(encoding="utf-8"))


def cpu_name() -> str:
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(
    wanted: tuple[str, ...] = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile"),
) -> list[str]:
    """Which of the CPU features that decide bf16 speed this CPU has (/proc/cpuinfo)."""
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware of this run, as measured here."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),  # native bf16 (avx512_bf16, amx_bf16) decides kernel level 2
        "gpu": gpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


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


def timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
