"""Environment and reproducibility: versions, hardware, command, config, raw runs."""

from __future__ import annotations

from typing import Any

from ryot.comparison.model import Comparison, Environment
from ryot.report.config_yaml import config_yaml
from ryot.report.formatting import NA, fmt, fmt_created, fmt_int, fmt_loss, fmt_text


def environment_context(c: Comparison, links: dict[str, str]) -> dict[str, Any]:
    """The machine, the command, the resolved config, the artifacts' links and every run."""
    env, cfg = c.environment, c.config
    rows = [
        ("Python", env.python),
        ("PyTorch", env.torch),
        ("Platform", env.platform),
        ("Device", env.device),
        ("CPU", env.cpu),
        ("CPU bf16 features", _flags(env)),
        ("GPU", env.gpu),
        ("CPU count", env.cpu_count),
        ("Threads (parent process)", env.threads),
        ("Threads (training, 0 = torch default)", cfg.training_threads),
        *_workload_rows(c),
        ("Training seed (config)", cfg.training_seed),
        ("Parameters", fmt_int(c.num_parameters)),
        ("Bayes floor (nats)", c.floor_unknown or fmt_loss(c.bayes_floor)),
        ("Unigram loss (nats)", fmt_loss(c.unigram_loss)),
        ("Schema version", c.schema_version),
        ("Created", fmt_created(c.created)),
    ]
    runs = []
    for r in c.runs:
        res = r.result
        stem = f"runs/{int(r.index):02d}-{r.arm}" if r.index is not None else None
        runs.append(
            {
                "index": fmt_text(r.index),
                "arm": fmt_text(r.arm),
                "role": fmt_text(r.role) + (f", re-run {r.attempt}" if r.attempt else ""),
                "repeat": fmt_text(r.repeat),
                "seed": fmt_text(r.seed),
                "encoding": fmt_text(r.console_encoding),
                "exit_code": fmt_text(r.exit_code),
                "ok": r.exit_code == 0 and res is not None,
                "total_time": fmt(res and res.wall_time_s, ".2f"),
                "stalls": fmt(res and res.stall_s, ".2f"),
                "wall": fmt(r.wall_s, ".2f"),
                "val_loss": fmt_loss(res and res.val_loss),
                "peak_memory": fmt(res and res.peak_memory_mb, ".1f"),
                "error": r.error or "",
                "contamination": r.contamination or "",
                "console": f"{stem}.console.txt" if stem else None,
                "result": f"{stem}.result.json" if stem else None,
            }
        )
    return {
        "rows": [(k, NA if v is None or v == "" else str(v)) for k, v in rows],
        "command": c.command or NA,
        "config_path": c.config_path or NA,
        "config_yaml": config_yaml(cfg.raw) if cfg.raw else NA,
        "links": list(links.items()),
        "runs": runs,
    }


def _workload_rows(c: Comparison) -> list[tuple[str, Any]]:
    """What was trained on what: the model (its factory and keyword arguments, for a team's),
    the data, and each token file's size and content hash (two runs compare only on equal
    data)."""
    w = c.workload
    if w is None:  # a malformed file: the config's seed is all there is
        return [("Data seed", c.config.data_seed)]
    model, data = w.model, w.data
    shown = fmt_text(model.name)
    if model.factory:  # a team's model: the factory and what it was called with
        kwargs = ", ".join(f"{k}={v!r}" for k, v in model.factory_kwargs.items())
        factory = "factory" if model.factory == model.name else f"factory {model.factory}"
        shown += f" ({factory}, kwargs: {kwargs or 'none'})"
    rows: list[tuple[str, Any]] = [("Model", shown), ("Data", data.describe())]
    if data.floor_known:
        rows.append(("Data seed", c.config.data_seed if data.seed is None else data.seed))
    for split, f in (data.files or {}).items():
        rows.append((
            f"Data file ({split})",
            f"{fmt_text(f.name)}: {fmt_int(f.tokens)} tokens, sha256 {fmt_text(f.short_hash)}",
        ))  # fmt: skip
    return rows


def _flags(env: Environment) -> str | None:
    """The CPU features that decide bf16 speed; None (not shown) for runs that did not record
    them (schema 2.0 and older)."""
    flags = env.cpu_flags
    if flags is None:
        return None
    native = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    listed = ", ".join(fmt_text(f) for f in flags) or (
        "none of avx512f, avx512_bf16, amx_bf16, amx_tile"
    )
    return f"{listed} ({'native bf16' if native else 'no native bf16: bf16 autocast is skipped'})"
