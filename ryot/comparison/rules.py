"""Rules over a job's runs that the judge applies when it writes comparison.json, and that a
reader applies again, the same way, to a file written before the judge recorded their outcome:
pure functions of a minimal shape of each run (`RunShape`).

In comparison.json a run's shape is its `runs[]` item: index, arm, role, repeat, attempt;
clean = no `contamination` reason; has_result = a `result`; full_length = its role is neither
"warmup" nor "aa" (only those stop early, ryot.experiment.plan).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PAIRED_ARMS = ("baseline", "optimized")
# The warm-up (discarded) and the A/A run (noise) time a prefix of a run: never an arm's run.
SHORT_ROLES = ("warmup", "aa")


@dataclass(frozen=True)
class RunShape:
    """What the rules read of one run."""

    index: int  # runs[].index: the run's 1-based place in the run order
    arm: str
    role: str  # "warmup", "aa", "pair" or "ablation"
    repeat: int  # 0-based pair index
    attempt: int  # 0: the first try; 1, 2, ...: re-runs of a contaminated run
    clean: bool  # not contaminated: its numbers may be judged
    full_length: bool  # trained every planned epoch
    has_result: bool


def judged_attempts(runs: Iterable[RunShape]) -> dict[int, int]:
    """Each repeat's judged attempt: the last one whose baseline and optimized pair runs are
    both there and every pair run of it is clean. A repeat without one is left out (the machine
    was too busy for it)."""
    tries: dict[int, dict[int, list[RunShape]]] = {}
    for run in runs:
        if run.role == "pair":
            tries.setdefault(run.repeat, {}).setdefault(run.attempt, []).append(run)
    judged = {}
    for repeat, attempts in tries.items():
        complete = [
            attempt
            for attempt, pair in attempts.items()
            if set(PAIRED_ARMS) <= {r.arm for r in pair} and all(r.clean for r in pair)
        ]
        if complete:
            judged[repeat] = max(complete)
    return judged


def last_run(runs: Sequence[RunShape], arm: str) -> int | None:
    """The index of the run that stands for `arm` (its training tables, its evidence, the bold
    line of its loss curve): its last full-length run with a result in a judged pair; without
    one (a single-arm job, an ablation arm, a machine too busy to judge), its last full-length
    clean run, else its last full-length run. Never the warm-up or the A/A run. None when the
    arm has no full-length run with a result."""
    own = [
        r
        for r in runs
        if r.arm == arm and r.has_result and r.full_length and r.role not in SHORT_ROLES
    ]
    judged = judged_attempts(runs)
    paired = [r for r in own if r.role == "pair" and judged.get(r.repeat) == r.attempt]
    clean = [r for r in own if r.clean]
    pick = paired or clean or own
    return max(r.index for r in pick) if pick else None
