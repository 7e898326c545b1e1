"""The machine a run was measured on, as measured here: versions, CPU model and the bf16 flags,
GPU, threads; and the run's timestamp."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch


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


def timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
