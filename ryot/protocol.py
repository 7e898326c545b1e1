"""The Stage 3a experiment: which runs, in which order, in which processes, and what they mean.

Runs are interleaved B O B O ... `repeats` times, so machine drift hits both arms alike; pair i
shares seed (training.seed + i): same init, same batches. Each ablation arm then runs once.
Every run is a fresh subprocess (`ryot.worker`) under a narrow console encoding. Every run's
raw result is kept. `measurements` turns the runs into the numbers the criteria judge.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ryot import stats
from ryot.config import Config
from ryot.console import Console
from ryot.optim import build_stack
from ryot.train import ArmResult, Trainer

ABLATION_ARMS = ("kernel", "compression", "scaling")
# Workers alternate between these console encodings: each run proves the ASCII fallbacks.
NARROW_ENCODINGS = ("cp1252", "ascii")


@dataclass
class RunJob:
    index: int  # 1-based position in the plan
    arm: str
    repeat: int  # 0-based pair index; ablation runs use 0
    config: Config  # with this run's seed
    role: str  # "pair" or "ablation"

    @property
    def label(self) -> str:
        return f"run {self.index} ({self.arm}, {self.role} {self.repeat + 1})"


@dataclass
class RunRecord:
    job: RunJob
    result: ArmResult | None
    exit_code: int
    encoding: str
    wall_s: float
    error: str = ""
    stderr_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.job.index,
            "arm": self.job.arm,
            "repeat": self.job.repeat,
            "role": self.job.role,
            "seed": self.job.config.training.seed,
            "exit_code": self.exit_code,
            "console_encoding": self.encoding,
            "wall_s": self.wall_s,
            "error": self.error,
            "result": self.result.to_dict() if self.result else None,
        }


def plan_runs(config: Config, arms: list[str], repeats: int, ablation: bool) -> list[RunJob]:
    """Interleaved pairs of the requested main arms, then each ablation arm once."""
    jobs: list[RunJob] = []
    main = [a for a in arms if a not in ABLATION_ARMS]
    extra = [a for a in arms if a in ABLATION_ARMS]
    if ablation and "optimized" in main:
        extra += [a for a in ABLATION_ARMS if a not in extra]
    for r in range(repeats):
        seeded = replace(config, training=replace(config.training, seed=config.training.seed + r))
        for arm in main:
            jobs.append(RunJob(len(jobs) + 1, arm, r, seeded, "pair"))
    for arm in extra:
        jobs.append(RunJob(len(jobs) + 1, arm, 0, config, "ablation"))
    return jobs


StackFactory = Callable[[Config, str, torch.device], list]


@dataclass
class SubprocessRunner:
    """Runs each job in a fresh `python -m ryot.worker` process."""

    device: torch.device
    out: Path
    stack_factory: str = "ryot.optim:build_stack"
    console: Console | None = None
    timeout_s: float = 3600.0
    runs_dir: Path = field(init=False)

    def __post_init__(self):
        self.runs_dir = self.out / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    def run(self, job: RunJob, checkpoint: Path | None, resume: Path | None = None) -> RunRecord:
        encoding = NARROW_ENCODINGS[(job.index - 1) % len(NARROW_ENCODINGS)]
        stem = self.runs_dir / f"{job.index:02d}-{job.arm}"
        result_path = stem.with_suffix(".result.json")
        result_path.unlink(missing_ok=True)
        spec = {
            "label": job.label,
            "arm": job.arm,
            "config": job.config.to_dict(),
            "config_source": f"{job.config.name} (run {job.index})",
            "device": str(self.device),
            "result": str(result_path),
            "checkpoint": str(checkpoint) if checkpoint else None,
            "checkpoint_every": job.config.training.num_epochs,
            "resume": str(resume) if resume else None,
            "stack_factory": self.stack_factory,
        }
        job_path = stem.with_suffix(".job.json")
        job_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        env = {**os.environ, "PYTHONIOENCODING": f"{encoding}:strict"}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ryot.worker", str(job_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            encoding="ascii",
            errors="replace",
        )
        stderr_lines: list[str] = []
        drain = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
        drain.start()
        for line in proc.stdout:
            self._relay(job, line)
        try:
            code = proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        drain.join(timeout=10)
        wall = time.perf_counter() - started
        stderr = "".join(stderr_lines)
        stem.with_suffix(".console.txt").write_text(stderr, encoding="utf-8")
        result = None
        error = ""
        if code == 0 and result_path.is_file():
            result = ArmResult.from_dict(json.loads(result_path.read_text(encoding="utf-8")))
        else:
            last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            error = f"worker exited {code}: {last[0]}"
        return RunRecord(job, result, code, encoding, wall, error, stderr[-4000:])

    def _relay(self, job: RunJob, line: str) -> None:
        if self.console is None:
            return
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return
        if msg.get("kind") == "epoch" and msg.get("mean_loss") is not None:
            self.console.progress(
                f"  {job.label}: epoch {msg['epoch']} done, loss {msg['mean_loss']:.4f}, "
                f"{msg['tokens_per_s']:,.0f} tok/s"
            )
        elif msg.get("kind") == "step":
            self.console.progress(
                f"  {job.label}: step {msg['step']}/{msg['total']}  loss {msg['loss']:.4f}"
            )


@dataclass
class InProcessRunner:
    """Runs jobs in this process: for tests, with a warm-up so the first run pays no import."""

    device: torch.device
    stack_factory: StackFactory = build_stack

    def __post_init__(self):
        self._warmed = False

    def run(self, job: RunJob, checkpoint: Path | None, resume: Path | None = None) -> RunRecord:
        if not self._warmed:
            warm = replace(job.config, training=replace(job.config.training, num_epochs=1))
            Trainer(warm, stack=[], device=self.device).run()
            self._warmed = True
        started = time.perf_counter()
        trainer = Trainer(
            job.config,
            arm=job.arm,
            stack=self.stack_factory(job.config, job.arm, self.device),
            device=self.device,
            checkpoint_path=checkpoint,
            checkpoint_every=job.config.training.num_epochs,
        )
        try:
            result = trainer.run(resume=resume)
        except Exception as exc:  # a crash is a measurement too: the verdict turns DEBUG
            return RunRecord(job, None, 3, "in-process", time.perf_counter() - started,
                             f"{type(exc).__name__}: {exc}")  # fmt: skip
        return RunRecord(job, result, 0, "in-process", time.perf_counter() - started)


def execute(
    jobs: list[RunJob],
    runner,
    out: Path,
    console: Console | None = None,
    resume: Path | None = None,
) -> list[RunRecord]:
    """Run the plan in order; the last run of each arm leaves DIR/checkpoints/ARM.pt."""
    last_of_arm = {job.arm: job.index for job in jobs}
    records = []
    for job in jobs:
        checkpoint = (
            out / "checkpoints" / f"{job.arm}.pt" if last_of_arm[job.arm] == job.index else None
        )
        if console:
            console.line(f"{job.label} of {len(jobs)}: training ...")
        record = runner.run(job, checkpoint, resume)
        records.append(record)
        if console:
            if record.result is None:
                console.line(f"  {job.label}: FAILED ({record.error})")
            else:
                r = record.result
                console.line(
                    f"  {job.label}: {r.total_time_s:.2f} s end-to-end, val loss "
                    f"{r.val_loss if r.val_loss is not None else float('nan'):.4f}"
                    + (f", DIVERGED: {r.divergence}" if r.diverged else "")
                )
    return records


def _pairs(records: list[RunRecord]) -> list[tuple[ArmResult, ArmResult]]:
    by_repeat: dict[int, dict[str, ArmResult]] = {}
    for rec in records:
        if rec.job.role == "pair" and rec.result is not None:
            by_repeat.setdefault(rec.job.repeat, {})[rec.job.arm] = rec.result
    return [
        (arms["baseline"], arms["optimized"])
        for _, arms in sorted(by_repeat.items())
        if "baseline" in arms and "optimized" in arms
    ]


def _estimate(fn, base: list[float], opt: list[float], level: float) -> dict[str, Any]:
    if not base:
        return {"median": None, "low": None, "high": None, "n": 0, "values": [],
                "level": level, "method": "no complete pair"}  # fmt: skip
    return fn(base, opt, level).to_dict()


def throughput(r: ArmResult) -> float:
    """Tokens actually fed per second of training steps."""
    return sum(r.step_tokens) / r.train_time_s if r.train_time_s > 0 else 0.0


def measurements(config: Config, records: list[RunRecord], artifacts_ok: list[str]) -> dict:
    """Everything the criteria judge, computed from the runs (see ryot.criteria.judge)."""
    level = config.measurement.confidence
    pairs = [(b, o) for b, o in _pairs(records) if not (b.diverged or o.diverged)]
    base_t = [b.total_time_s for b, _ in pairs]
    opt_t = [o.total_time_s for _, o in pairs]
    speedup = _estimate(stats.speedup_estimate, base_t, opt_t, level)
    tput = _estimate(
        stats.improvement_estimate, [throughput(b) for b, _ in pairs],
        [throughput(o) for _, o in pairs], level,
    )  # fmt: skip
    loss = _estimate(
        stats.difference_estimate, [b.val_loss for b, _ in pairs], [o.val_loss for _, o in pairs],
        level,
    )  # fmt: skip

    divergence = []
    for rec in records:
        r = rec.result
        if r is None:
            divergence.append(f"{rec.job.label} crashed: {rec.error}")
        elif r.diverged:
            divergence.append(f"{rec.job.label} diverged: {r.divergence}")
        elif len(r.epochs) > 1 and not r.epochs[-1].mean_loss < r.epochs[0].mean_loss:
            divergence.append(
                f"{rec.job.label}: loss did not fall ({r.epochs[0].mean_loss:.4f} -> "
                f"{r.epochs[-1].mean_loss:.4f})"
            )

    def peak(arm: str) -> float | None:
        values = [rec.result.peak_memory_mb for rec in records
                  if rec.job.arm == arm and rec.result is not None]  # fmt: skip
        return max(values) if values else None

    methods = {rec.result.memory_method for rec in records if rec.result is not None}
    rss = [
        rec.result.peak_rss_mb
        for rec in records
        if rec.job.arm == "optimized" and rec.result and rec.result.peak_rss_mb is not None
    ]

    no_effect = []
    for rec in records:
        if rec.result is None or rec.job.arm == "baseline":
            continue
        enabled = [e for e in rec.result.evidence if e["enabled"]]
        if not enabled:
            no_effect.append(f"{rec.job.label}: no optimization enabled in a non-baseline arm")
        for e in enabled:
            for f in e["findings"]:
                no_effect.append(f"{rec.job.label}: {e['name']} {f['kind']}: {f['detail']}")
    no_effect = sorted(set(no_effect), key=no_effect.index)

    enc_problems = list(artifacts_ok)
    narrow = [rec for rec in records if rec.encoding in NARROW_ENCODINGS]
    for rec in narrow:
        if rec.exit_code != 0 and "UnicodeEncodeError" in rec.stderr_tail:
            enc_problems.append(f"{rec.job.label} crashed on its {rec.encoding} console")
    summary = (
        f"{len(narrow)} run(s) printed through cp1252/ascii consoles without error; "
        "artifacts read back as strict UTF-8."
        if narrow
        else "runs were in-process; artifacts read back as strict UTF-8."
    )

    base_times = [b.total_time_s for b, _ in _pairs(records)]
    aa = stats.aa_noise(base_times) if len(base_times) >= 2 else None
    noise_detail = (
        f"largest relative time difference between consecutive baseline runs "
        f"({len(base_times)} runs): what pure noise looks like as a 'speedup'."
        if aa is not None
        else "needs at least 2 baseline runs (measurement.repeats >= 2)."
    )
    return {
        "speedup": speedup,
        "throughput": tput,
        "loss_delta": loss,
        "divergence": divergence,
        "memory": {
            "baseline": peak("baseline"),
            "optimized": peak("optimized"),
            "optimized_rss": max(rss) if rss else None,
            "method": ", ".join(sorted(methods)) or "n/a",
        },  # fmt: skip
        "encoding": {"problems": enc_problems, "summary": summary},
        "no_effect": no_effect,
        "noise": {"aa": aa, "detail": noise_detail, "baseline_times": base_times},
    }


def summarize_arm(results: list[ArmResult]) -> dict[str, Any] | None:
    """The seed plan's per-arm fields, medians over repeats where there are several."""
    results = [r for r in results if r is not None]
    if not results:
        return None
    med = statistics.median
    return {
        "total_time": med(r.total_time_s for r in results),
        "avg_epoch_time": med(r.train_time_s / max(1, len(r.epochs)) for r in results),
        "final_loss": med(r.final_loss for r in results if r.final_loss is not None)
        if any(r.final_loss is not None for r in results)
        else None,
        "val_loss": med(r.val_loss for r in results if r.val_loss is not None)
        if any(r.val_loss is not None for r in results)
        else None,
        "losses": [e.mean_loss for e in results[0].epochs],
        "throughput": med(throughput(r) for r in results),
        "samples_per_s": med(
            sum(e.samples for e in r.epochs) / r.train_time_s if r.train_time_s else 0.0
            for r in results
        ),
        "setup_time": med(r.setup_time_s for r in results),
        "peak_memory_mb": max(r.peak_memory_mb for r in results),
        "peak_rss_mb": max(
            (r.peak_rss_mb for r in results if r.peak_rss_mb is not None), default=None
        ),  # fmt: skip
        "runs": len(results),
    }
