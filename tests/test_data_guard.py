"""Token files changed under a job: the run during which they changed fails, and the verdict
is DEBUG (ryot.experiment.data_guard). A stack that rewrote train.bin or val.bin would change
what the later runs of both arms learn from and are scored on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ryot.config import load_config
from ryot.experiment.plan import plan_runs
from ryot.experiment.runners import execute
from ryot.judge import criteria as crit
from ryot.judge.measurements import measure
from tests.test_clock import ScriptedRunner
from tests.test_workloads import tokens_config, write_tokens

ARMS = ["baseline", "optimized"]


class RewritingRunner(ScriptedRunner):
    """Runs take 10 s (baseline) and 7 s (optimized); the `at`-th run rewrites `name` in place
    (the same size: only its contents change), as a stack could while it trains."""

    def __init__(self, folder, at: int, name: str):
        super().__init__(lambda n, job: 10.0 if job.arm == "baseline" else 7.0)
        self.folder, self.at, self.name = folder, at, name

    def run(self, job, checkpoint, resume=None):
        record = super().run(job, checkpoint, resume)
        if self.calls == self.at:
            path = self.folder / self.name
            ids = np.fromfile(path, dtype=np.uint16)
            np.zeros_like(ids).tofile(path)  # every id 0: trivially learnable
        return record


def _config(tmp_path):
    folder = write_tokens(tmp_path / "data")
    config = load_config(tokens_config(tmp_path, folder))
    m = replace(config.measurement, repeats=2, extra_repeats=0, max_contended_share=0.05)
    return replace(config, measurement=m), folder


def test_train_bin_rewritten_during_a_run_fails_that_run_and_turns_the_verdict(tmp_path):
    config, folder = _config(tmp_path)
    jobs = plan_runs(config, ARMS, 2, ablation=False)
    optimized = next(j.index for j in jobs if j.arm == "optimized")
    records = execute(jobs, RewritingRunner(folder, optimized, "train.bin"), tmp_path / "run")
    failed = [r for r in records if r.result is None]
    assert [r.job.index for r in failed] == [optimized]  # that run only: later ones are judged
    error = failed[0].error
    assert error.startswith("the token files changed during this run (data.path = ")
    assert "train.bin sha256 " in error and "val.bin" not in error and "\n" not in error
    rows = crit.judge(measure(config, records, []), config.criteria)
    assert crit.verdict(rows) == "DEBUG"
    assert not next(r for r in rows if r.id == "no_divergence").passed


def test_val_bin_rewritten_is_caught_too_and_unchanged_files_fail_nothing(tmp_path):
    config, folder = _config(tmp_path)
    jobs = plan_runs(config, ARMS, 2, ablation=False)
    records = execute(jobs, RewritingRunner(folder, 2, "val.bin"), tmp_path / "run")
    assert [(r.job.index, "val.bin sha256" in r.error) for r in records if r.result is None] == [
        (2, True)
    ]
    clean = execute(jobs, RewritingRunner(folder, 0, "val.bin"), tmp_path / "again")
    assert all(r.result is not None for r in clean)


def test_a_token_file_removed_during_a_run_is_a_change(tmp_path):
    config, folder = _config(tmp_path)
    jobs = plan_runs(config, ARMS, 1, ablation=False)

    class Removing(ScriptedRunner):
        def run(self, job, checkpoint, resume=None):
            record = super().run(job, checkpoint, resume)
            if self.calls == 1:
                (folder / "val.bin").unlink()
            return record

    records = execute(jobs, Removing(lambda n, job: 10.0), tmp_path / "run")
    assert "val.bin sha256 " in records[0].error and "-> unreadable" in records[0].error
