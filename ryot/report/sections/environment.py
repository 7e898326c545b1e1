"""Environment and reproducibility: versions, hardware, command, config, raw runs."""

from __future__ import annotations

from typing import Any

from ryot.report.config_yaml import config_yaml
from ryot.report.fields import as_dict, as_list, is_num, reference
from ryot.report.formatting import NA, fmt, fmt_created, fmt_int, fmt_loss


def environment_context(c: dict, links: dict[str, str]) -> dict[str, Any]:
    """The machine, the command, the resolved config, the artifacts' links and every run."""
    env = as_dict(c.get("environment"))
    cfg = as_dict(c.get("config"))
    training, data = as_dict(cfg.get("training")), as_dict(cfg.get("data"))
    rows = [
        ("Python", env.get("python")),
        ("PyTorch", env.get("torch")),
        ("Platform", env.get("platform")),
        ("Device", env.get("device")),
        ("CPU", env.get("cpu")),
        ("CPU bf16 features", _flags(env)),
        ("GPU", env.get("gpu")),
        ("CPU count", env.get("cpu_count")),
        ("Threads (parent process)", env.get("threads")),
        ("Threads (training, 0 = torch default)", training.get("threads")),
        ("Training seed (config)", training.get("seed")),
        ("Data seed", data.get("seed")),
        ("Parameters", fmt_int(c.get("num_parameters"))),
        ("Bayes floor (nats)", fmt_loss(reference(c, "bayes_floor"))),
        ("Unigram loss (nats)", fmt_loss(reference(c, "unigram_loss"))),
        ("Schema version", c.get("schema_version")),
        ("Created", fmt_created(c.get("created"))),
    ]
    runs = []
    for r in as_list(c.get("runs")):
        if not isinstance(r, dict):
            continue
        res = as_dict(r.get("result"))
        stem = f"runs/{int(r['index']):02d}-{r.get('arm')}" if is_num(r.get("index")) else None
        runs.append(
            {
                "index": str(r.get("index", NA)),
                "arm": str(r.get("arm", NA)),
                "role": str(r.get("role", NA))
                + (f", re-run {r['attempt']}" if is_num(r.get("attempt")) and r["attempt"] else ""),
                "repeat": str(r.get("repeat", NA)),
                "seed": str(r.get("seed", NA)),
                "encoding": str(r.get("console_encoding", NA)),
                "exit_code": str(r.get("exit_code", NA)),
                "ok": r.get("exit_code") == 0 and bool(res),
                "total_time": fmt(res.get("total_time_s"), ".2f"),
                "stalls": fmt(res.get("stall_s"), ".2f"),
                "wall": fmt(r.get("wall_s"), ".2f"),
                "val_loss": fmt_loss(res.get("val_loss")),
                "peak_memory": fmt(res.get("peak_memory_mb"), ".1f"),
                "error": str(r.get("error") or ""),
                "contamination": str(r.get("contamination") or ""),
                "console": f"{stem}.console.txt" if stem else None,
                "result": f"{stem}.result.json" if stem else None,
            }
        )
    return {
        "rows": [(k, NA if v is None or v == "" else str(v)) for k, v in rows],
        "command": str(c.get("command") or NA),
        "config_path": str(c.get("config_path") or NA),
        "config_yaml": config_yaml(cfg) if cfg else NA,
        "links": list(links.items()),
        "runs": runs,
    }


def _flags(env: dict[str, Any]) -> str | None:
    """The CPU features that decide bf16 speed; None (not shown) for runs that did not record
    them (schema 2.0 and older)."""
    flags = env.get("cpu_flags")
    if flags is None:
        return None
    native = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    listed = ", ".join(flags) or "none of avx512f, avx512_bf16, amx_bf16, amx_tile"
    return f"{listed} ({'native bf16' if native else 'no native bf16: bf16 autocast is skipped'})"
