"""One arm, one process: `python -m ryot.train.worker JOB.json` trains and writes RESULT.json.

The protocol starts every run in a fresh interpreter, with fresh cache folders (the parent sets
them: ryot.osutil.fresh_caches), so no run inherits another's warm caches, allocator state or
compiled graphs, on disk or in memory. The worker speaks to its parent through stdout, one JSON
object a line (ASCII, whatever the console encoding), and prints its own human-readable table
to stderr through the encoding-safe console: the parent runs it under a narrow encoding on
purpose, so a console that cannot show a symbol is exercised in every run.

Under torchrun (`python -m torch.distributed.run ... -m ryot.train.worker JOB.json`) every rank
runs this; rank 0 alone speaks to the parent and writes the result (ryot.train.distributed).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import torch

from ryot.config import config_from_dict
from ryot.console import FAIL, OK, Console
from ryot.optim.stack_spec import load_stack_factory
from ryot.osutil import os_error_line, write_json_atomic
from ryot.train.distributed import World
from ryot.train.job import JobSpec
from ryot.train.trainer import Trainer


def emit(kind: str, **payload) -> None:
    sys.stdout.write(json.dumps({"kind": kind, **payload}) + "\n")
    sys.stdout.flush()


def run_job(job: JobSpec) -> int:
    config = config_from_dict(job.config, job.config_source)
    world = World.from_env(torch.device(job.device).type)
    try:
        return _train(job, config, world)
    finally:
        world.close()


def _train(job: JobSpec, config, world: World) -> int:
    device = world.device(torch.device(job.device))
    console = Console(sys.stderr)
    where = f", rank {world.rank} of {world.size} ({world.backend})" if world.distributed else ""
    console.line(f"{job.label}: arm {job.arm}, seed {config.training.seed}, {device}{where}")
    if not world.is_main:  # the other ranks train in silence: rank 0 reports for the job
        console, emit_ = Console(io.StringIO()), _silent
    else:
        emit_ = emit

    def on_epoch(e):
        console.line(
            f"  epoch {e.epoch} \u2502 loss {e.mean_loss:.4f} \u2502 {e.time_s:.2f} s \u2502 "
            f"{e.tokens_per_s:,.0f} tok/s \u2502 {OK if e.status == 'ok' else FAIL}"
        )
        emit_("epoch", **e.__dict__)

    trainer = Trainer(
        config,
        arm=job.arm,
        # On the arm's clock, the stack module's import included: whatever it imports or
        # warms up there is the stack's own time, in both arms.
        stack=lambda: load_stack_factory(job.stack_factory)(config, job.arm, device),
        device=device,
        checkpoint_path=job.checkpoint,
        checkpoint_every=job.checkpoint_every,
        on_epoch=on_epoch,
        on_step=lambda step, total, loss: emit_("step", step=step, total=total, loss=loss),
        world=world,
    )
    result = trainer.run(resume=job.resume, stop_after_epoch=job.stop_after_epoch)
    if world.is_main:
        write_json_atomic(result.to_dict(), job.result)
    emit_("done", diverged=result.diverged)
    return 0


def _silent(kind: str, **payload) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ryot.train.worker JOB.json", file=sys.stderr)
        return 2
    job = JobSpec.from_json(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        return run_job(job)
    except OSError as exc:  # a full disk, say: one line the parent reports, not a traceback
        print(f"worker error: {os_error_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
