"""The Stage 3a plan: which runs, in which order, in which processes, and what they mean.

A short warm-up run of the baseline goes first and is discarded: the first run of a job is
slower (a cold page cache, first-touch work), and no arm may take that for its own. Then one
more baseline run with pair 0's seed, the A/A run, right before pair 0's baseline: what pure
noise between two neighbouring runs looks like as a speedup. Then runs are interleaved in
pairs whose order alternates, B O, O B, B O ..., `repeats` times, so machine drift and
position effects hit both arms alike; pair i shares seed (training.seed + i): same init, same
batches. Each ablation arm then runs once. Every run is a fresh subprocess
(`ryot.train.worker`) under a narrow console encoding, alternating run by run, so each arm sees
every encoding (ryot.experiment.runners). While the speed at equal quality is undecided after
the pairs, up to `measurement.extra_repeats` more pairs follow, one at a time, in the same
alternating order (`extra_pair`). Every run's raw result is kept; the judge
(ryot.judge.measurements) turns them into what the criteria judge.
"""

from __future__ import annotations

from dataclasses import replace

from ryot.config import Config
from ryot.judge.runs import RunJob
from ryot.optim import registry

AA_FRACTION = 0.1


def plan_runs(config: Config, arms: list[str], repeats: int, ablation: bool) -> list[RunJob]:
    """The discarded warm-up run, the A/A baseline when both arms are paired, interleaved
    pairs of the requested main arms in alternating order, then each ablation arm once."""
    jobs: list[RunJob] = []
    ablation_arms = registry.ablation_arms()  # one per registered optimization
    main = [a for a in arms if a not in ablation_arms]
    extra = [a for a in arms if a in ablation_arms]
    if ablation and "optimized" in main:
        extra += [a for a in ablation_arms if a not in extra]
    if "baseline" in main and "optimized" in main and config.measurement.warmup_epochs:
        # The job's first run is slower than any other (run 1's first epoch: 7.1-7.3 s against
        # 5.8-5.9 s in every other baseline of the committed Xeon example), and it would always
        # be the baseline: a short baseline run goes first and is never judged.
        epochs = min(config.measurement.warmup_epochs, config.training.num_epochs)
        jobs.append(RunJob(1, "baseline", 0, config, "warmup", epochs))
    if "baseline" in main and "optimized" in main:
        # Timing the first AA_FRACTION of the epochs is the same A/A measurement (identical work,
        # evaluations included, same seed) at a fraction of the cost: the whole suite must fit
        # in 12 minutes. A run without the evaluations is not identical work: the baseline's
        # step-0 evaluation warms caches before its first timed step (measured: 23% "noise").
        # It runs right before pair 1's baseline, the run it is compared with: the noise of two
        # neighbouring runs, as a pair's two runs are. At the job's end it also read the
        # machine's drift over the whole job (14.5% on an AMD EPYC whose steps slowed from
        # 0.85 s to 1.2 s within minutes, with nothing else running).
        epochs = max(1, round(AA_FRACTION * config.training.num_epochs))
        jobs.append(RunJob(len(jobs) + 1, "baseline", 0, config, "aa", epochs))
    for r in range(repeats):
        jobs += pair_jobs(config, main, r, len(jobs) + 1)
    for arm in extra:
        jobs.append(RunJob(len(jobs) + 1, arm, 0, config, "ablation"))
    return jobs


def pair_jobs(config: Config, arms: list[str], repeat: int, index: int) -> list[RunJob]:
    """Pair `repeat` (0-based) of the main arms, from plan index `index`: seed training.seed +
    repeat for both arms, and the order alternating pair by pair (B O, O B, ...)."""
    seeded = replace(config, training=replace(config.training, seed=config.training.seed + repeat))
    order = arms if repeat % 2 == 0 else arms[::-1]
    return [RunJob(index + i, arm, repeat, seeded, "pair") for i, arm in enumerate(order)]
