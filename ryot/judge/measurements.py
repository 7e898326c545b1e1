"""Measurements: everything the criteria judge, computed from the runs of one Stage 3a job.

A speedup is only real at equal quality. So besides the end-to-end speedup, each pair is
judged at its matched loss L*, the worse of its two arms' final validation losses (the same
rows): both arms reach L* by construction, and each arm's time to L* on its own training clock
gives the speedup at equal quality. Quality itself is one number, `criteria.max_loss_delta`:
the validation loss must be non-inferior (equivalence, TOST, is shown beside it). How much the
baseline learned at all decides whether any loss comparison means something. A/A noise comes
from a real A/A: the "aa" run repeats pair 0's baseline with the same seed, compared step by
step. Every clock here is the stack's own: the machine's stalls are taken off it and reported.

A contaminated run (too much of its time contended: ryot.judge.contamination) is re-run, never
judged: each repeat is judged on its last pair whose two runs are both clean, the A/A on its last
clean run. A repeat (or the A/A) with no clean run left makes the machine too busy to judge,
which a criterion of its own turns into INVESTIGATE. The job's warm-up run is never judged. The
wall clock's end-to-end speedup is shown beside the stack clock's, with the runs whose seconds
taken off explain any gap between them beyond the A/A noise.

A broken run (crash, NaN, no training time) is a measurement too: it becomes a divergence
entry, which the judge turns into DEBUG. Nothing here raises on a bad run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ryot.comparison import rules
from ryot.config import Config
from ryot.console import NARROW_ENCODINGS
from ryot.judge import stats
from ryot.judge.fields import Fields, jsonable
from ryot.judge.stats import Estimate
from ryot.train.results import ArmResult

if TYPE_CHECKING:
    from ryot.judge.runs import RunRecord


@dataclass(frozen=True)
class MatchedPair(Fields):
    """One pair judged at its matched loss: the worse of its two arms' final losses."""

    repeat: int
    seed: int
    loss: float  # L*
    baseline_final: float
    optimized_final: float
    baseline_s: float  # the arm's time to L* on its own clock, setup included, stalls off
    optimized_s: float

    @property
    def speedup(self) -> float | None:
        """This pair's speedup at equal quality, 1 - optimized_s / baseline_s."""
        return rules.pair_speedup(self.baseline_s, self.optimized_s)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "speedup": jsonable(self.speedup)}


@dataclass(frozen=True)
class MatchedLossSpeedup:
    estimate: Estimate  # speedup at equal quality, 1 - T_opt(L*)/T_base(L*)
    pairs: tuple[MatchedPair, ...]

    def median_s(self, arm: str) -> float | None:
        """The arm's median time to matched loss over the pairs."""
        return rules.median_time(getattr(p, f"{arm}_s") for p in self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.estimate.to_dict(),
            "pairs": jsonable(self.pairs),
            "median_baseline_s": jsonable(self.median_s("baseline")),
            "median_optimized_s": jsonable(self.median_s("optimized")),
        }


@dataclass(frozen=True)
class Clock(Fields):
    """Each arm's median stack clock (wall less machine stalls, setup included) over its runs
    in the judged pairs: the clock the end-to-end speedup is judged on."""

    baseline_median_s: float | None
    optimized_median_s: float | None


@dataclass(frozen=True)
class LossDelta:
    estimate: Estimate  # optimized - baseline validation loss
    margin: float  # criteria.max_loss_delta
    non_inferior: bool  # the CI's upper bound lies below +margin: the criterion
    equivalent: bool  # TOST: the CI lies inside +-margin; shown beside it
    baseline_spread: float | None  # sample stdev of the baseline pair seeds' val loss

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.estimate.to_dict(),
            "margin": self.margin,
            "non_inferior": self.non_inferior,
            "equivalent": self.equivalent,
            "baseline_spread": stats.finite(self.baseline_spread),
        }


@dataclass(frozen=True)
class SeedLearning(Fields):
    """How much one baseline seed learned: its loss drop, its gain over the unigram loss and,
    where the Bayes floor is known, its share of the learnable gap."""

    seed: int
    initial_loss: float | None  # full validation set, before the first step
    final_loss: float | None  # full validation set, final model
    drop: float | None
    unigram_loss: float | None  # what token frequencies alone buy
    bayes_floor: float | None  # the exact Bayes-optimal loss; None: unknown (token data)
    context_learned: float | None  # (unigram - final) / (unigram - floor)
    gain_over_unigram: float | None = None  # unigram - final, nats: measurable on any data

    @property
    def floor_known(self) -> bool:
        return self.bayes_floor is not None

    @property
    def learned(self) -> float | None:
        """What decides how well this seed learned: its context learned where the floor is
        known, else its gain over the unigram loss."""
        return self.context_learned if self.floor_known else self.gain_over_unigram


@dataclass(frozen=True)
class Learning:
    # the seed that learned least (SeedLearning.learned; an unknown one counts lowest)
    worst: SeedLearning | None
    per_seed: tuple[SeedLearning, ...]

    @property
    def floor_known(self) -> bool:
        """Whether every seed knows its Bayes floor (the synthetic language); False where
        the data is not Ryot's (token files) and on a job with no seed at all."""
        return bool(self.per_seed) and all(s.floor_known for s in self.per_seed)

    def to_dict(self) -> dict[str, Any]:
        worst = (self.worst or SeedLearning(0, None, None, None, None, None, None)).to_dict()
        del worst["seed"]  # the worst seed's numbers; which seed it is, per_seed says
        return {**worst, "per_seed": jsonable(self.per_seed)}


@dataclass(frozen=True)
class Memory(Fields):
    baseline: float | None  # peak MiB over the arm's runs
    optimized: float | None
    optimized_rss: float | None
    method: str


@dataclass(frozen=True)
class Encoding(Fields):
    problems: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class Noise(Fields):
    aa: float | None  # |1 - median step-time ratio|, A/A run against pair 0's baseline
    detail: str
    baseline_s: float | None  # pair 0's baseline over the same steps, setup included
    aa_s: float | None  # the A/A run, end to end
    steps: int = 0  # steps compared
    end_to_end: float | None = None  # |1 - T_aa/T_base| over the same steps: one draw, shown


@dataclass(frozen=True)
class RunStalls(Fields):
    label: str
    arm: str
    role: str
    stall_s: float  # taken off this run's clock
    stalled_steps: int
    largest_s: float
    run_queue_wait_s: float | None  # reported only
    involuntary_switches: int | None  # reported only


@dataclass(frozen=True)
class Stalls:
    """Every machine stall of the job, run by run: what was taken off each clock."""

    runs: tuple[RunStalls, ...]
    rule: str

    @property
    def total_s(self) -> float:
        return sum(r.stall_s for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_s": self.total_s,
            # reported only, left on the clock: the runs' together (None: no run measured any)
            "run_queue_wait_s": rules.total(r.run_queue_wait_s for r in self.runs),
            "involuntary_switches": rules.total(r.involuntary_switches for r in self.runs),
            "rule": self.rule,
            "runs": jsonable(self.runs),
        }


STALL_RULE = (
    "a stall is wall time the worker was held off the CPU by the machine, credited only on "
    "evidence the stack cannot produce, the largest of three signals: stopped (its heartbeat "
    "woke >= 50 ms late while the process used < 10% of that time in CPU, and a SIGCONT ended "
    "the gap), the hypervisor's steal time, or other processes' CPU (never the arm's own "
    "process tree) capped by its training threads' run-queue wait; it is taken off that run's "
    "clock, the same rule for every arm, fixed before any outcome. Whatever the stack does "
    "(computing, compiling, sleeping, I/O, locks, the GIL, garbage collection, its helper "
    "threads and processes) stays on the clock."
)


@dataclass(frozen=True)
class ContaminatedRun(Fields):
    """A run left unjudged: too much of its time rests on the stall rule's contention estimate."""

    label: str
    arm: str
    role: str
    repeat: int
    attempt: int
    contended_s: float | None
    share: float | None  # contended_s / the run's wall time (wall_time_s)
    reason: str


@dataclass(frozen=True)
class Contamination:
    """The contaminated runs of the job, and whether a planned measurement has no clean run left:
    then the machine was too busy to judge."""

    runs: tuple[ContaminatedRun, ...]
    busy: tuple[str, ...]  # "pair 2", "the A/A run": planned, with no clean run left
    max_share: float  # measurement.max_contended_share
    max_reruns: int  # measurement.max_reruns
    reruns: int  # re-runs made: of a pair (both its runs) or of the A/A run

    @property
    def too_busy(self) -> bool:
        return bool(self.busy)

    @property
    def contended_s(self) -> float:
        return sum(r.contended_s or 0.0 for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "too_busy": self.too_busy,
            "busy": list(self.busy),
            "max_share": self.max_share,
            "max_reruns": self.max_reruns,
            "reruns": self.reruns,
            "contended_s": self.contended_s,
            "runs": jsonable(self.runs),
        }


@dataclass(frozen=True)
class TakenOff(Fields):
    """One judged run's seconds taken off its clock: the stall rule's, stopped + contended."""

    label: str
    arm: str
    repeat: int
    stall_s: float  # wall less the stack's clock
    stopped_s: float  # of it: the process stopped outright, measured exactly
    contended_s: float  # of it: the rule's estimate of neighbours' CPU and hypervisor steal


@dataclass(frozen=True)
class WallGap(Fields):
    """The wall clock's end-to-end speedup against the stack clock's. A gap beyond the A/A noise
    is explained by the judged runs' seconds taken off (their stalls), largest first."""

    gap: float | None  # wall_speedup.point - speedup.point; None: either unknown
    noise: float  # what the gap is held against: the A/A noise (0 when unknown)
    exceeds: bool
    runs: tuple[TakenOff, ...]  # empty unless the gap exceeds the noise


@dataclass(frozen=True)
class Measurements(Fields):
    matched_loss: MatchedLossSpeedup
    speedup: Estimate  # end to end, equal steps, on the stack's clock
    throughput: Estimate
    loss_delta: LossDelta
    learning: Learning
    divergence: tuple[str, ...]
    memory: Memory
    encoding: Encoding
    no_effect: tuple[str, ...]
    noise: Noise
    wall_speedup: Estimate  # end to end on the wall clock (stalls on), the same pairs
    wall_gap: WallGap
    contamination: Contamination
    clock: Clock


def throughput(r: ArmResult) -> float:
    """Tokens actually fed per second of training steps (the stack's own step time)."""
    busy = sum(r.step_clock)
    return sum(r.step_tokens) / busy if busy > 0 else 0.0


def measure(config: Config, records: list[RunRecord], artifact_problems: list[str]) -> Measurements:
    """Everything the criteria judge (see ryot.judge.criteria.judge), from the runs of one job."""
    level = config.measurement.confidence
    judged = _Judged.select(records, config.measurement.max_contended_share)
    counted = judged.counted  # every run but the warm-up
    divergence = [p for rec in counted if (p := run_problem(rec) or _not_falling(rec))]
    pairs = [(b, o) for b, o in judged.pairs if not (run_problem(b) or run_problem(o))]
    base = [b.result for b, _ in pairs]
    opt = [o.result for _, o in pairs]

    def estimate(fn: Callable[..., Estimate], what: str, b: list, o: list) -> Estimate:
        if not b:
            return Estimate.empty(level)
        try:
            return fn(b, o, level)
        except ValueError as exc:  # degenerate input from a run: DEBUG, never a crash
            divergence.append(f"{what} not estimable: {exc}")
            return Estimate.empty(level, f"not estimable: {exc}")

    speedup = estimate(
        stats.speedup_estimate,
        "end-to-end speedup",
        [r.clock_s for r in base],
        [r.clock_s for r in opt],
    )
    wall = estimate(
        stats.speedup_estimate,
        "end-to-end speedup by the wall clock",
        [r.wall_time_s for r in base],
        [r.wall_time_s for r in opt],
    )
    tput = estimate(
        stats.improvement_estimate,
        "throughput",
        [throughput(r) for r in base],
        [throughput(r) for r in opt],
    )
    delta = estimate(
        stats.difference_estimate,
        "validation loss delta",
        [r.val_loss for r in base],
        [r.val_loss for r in opt],
    )
    spread = [b.result.val_loss for b, _ in judged.pairs if not run_problem(b)]
    margin = config.criteria.max_loss_delta
    loss = LossDelta(
        delta,
        margin,
        delta.n > 0 and stats.non_inferior(delta, margin),
        delta.n > 0 and stats.tost_equivalent(delta, margin),
        statistics.stdev(spread) if len(spread) >= 2 else None,
    )

    matched = [m for b, o in pairs if (m := _matched(b, o, divergence)) is not None]
    at_quality = estimate(
        stats.speedup_estimate,
        "speedup at equal quality",
        [p.baseline_s for p in matched],
        [p.optimized_s for p in matched],
    )
    noise = _noise(judged)

    return Measurements(
        matched_loss=MatchedLossSpeedup(at_quality, tuple(matched)),
        speedup=speedup,
        throughput=tput,
        loss_delta=loss,
        learning=_learning(judged),
        divergence=tuple(divergence),
        memory=_memory(judged),
        encoding=_encoding(records, artifact_problems),
        no_effect=_no_effect(judged),
        noise=noise,
        wall_speedup=wall,
        wall_gap=_wall_gap(speedup, wall, noise, pairs),
        contamination=judged.contamination(config.measurement.max_reruns),
        clock=_clock(judged),
    )


@dataclass(frozen=True)
class _Judged:
    """Which runs the judge reads. Each repeat: its last pair (same repeat and attempt) whose
    two runs are both clean; the A/A: its last clean run; pair 1's baseline for the A/A: the
    judged pair's, else the last clean one. The warm-up run is never read, a contaminated run
    (its record's reason, or over the bound now) never for a number."""

    counted: tuple[RunRecord, ...]  # every run but the warm-up
    dirty: dict[int, str]  # id(record) -> why it is contaminated
    pairs: tuple[tuple[RunRecord, RunRecord], ...]
    aa: RunRecord | None
    base0: RunRecord | None
    busy: tuple[str, ...]
    max_share: float

    @classmethod
    def select(cls, records: list[RunRecord], max_share: float) -> _Judged:
        counted = tuple(r for r in records if r.job.role != "warmup")
        dirty = {id(r): why for r in counted if (why := r.unclean(max_share))}
        judged = rules.judged_attempts(r.shape(id(r) not in dirty) for r in counted)
        arms: dict[tuple[int, int], dict[str, RunRecord]] = {}
        for rec in counted:
            if rec.job.role == "pair":
                arms.setdefault((rec.job.repeat, rec.job.attempt), {})[rec.job.arm] = rec
        pairs = [(arms[at]["baseline"], arms[at]["optimized"]) for at in sorted(judged.items())]
        # a repeat with no judged attempt: the machine was too busy for it
        dirty_repeats = {r.job.repeat for r in counted if r.job.role == "pair" and id(r) in dirty}
        busy = [f"pair {repeat + 1}" for repeat in sorted(dirty_repeats - judged.keys())]
        aa_runs = [r for r in counted if r.job.role == "aa"]
        aa = next((r for r in reversed(aa_runs) if id(r) not in dirty), None)
        if aa_runs and aa is None:
            busy.append("the A/A run")
        clean0 = [
            r
            for r in counted
            if r.job.role == "pair"
            and r.job.arm == "baseline"
            and r.job.repeat == 0
            and id(r) not in dirty
        ]
        base0 = next((b for b, _ in pairs if b.job.repeat == 0), clean0[-1] if clean0 else None)
        return cls(counted, dirty, tuple(pairs), aa, base0, tuple(busy), max_share)

    def clean(self, rec: RunRecord) -> bool:
        return id(rec) not in self.dirty

    def any_dirty_baseline0(self, role: str) -> bool:
        """Whether some baseline run of repeat 0 in this role was contaminated."""
        return any(
            r.job.role == role and r.job.arm == "baseline" and r.job.repeat == 0
            for r in self.counted
            if not self.clean(r)
        )

    def contamination(self, max_reruns: int) -> Contamination:
        runs = []
        for rec in self.counted:
            if id(rec) not in self.dirty:
                continue
            r = rec.result
            span = r.wall_time_s if r is not None else 0.0
            runs.append(ContaminatedRun(
                rec.job.label, rec.job.arm, rec.job.role, rec.job.repeat, rec.job.attempt,
                r.contended_s if r is not None else None,
                r.contended_s / span if r is not None and span > 0 else None,
                self.dirty[id(rec)],
            ))  # fmt: skip
        # a pair's re-run (both its runs) or the A/A's is one of the job's max_reruns
        reruns = len({(r.job.role, r.job.repeat, r.job.attempt) for r in self.counted
                      if r.job.attempt > 0})  # fmt: skip
        return Contamination(tuple(runs), self.busy, self.max_share, max_reruns, reruns)


STALL_RESOLUTION_S = 0.01  # the stall detector's resolution: less is no stall


def _wall_gap(clock: Estimate, wall: Estimate, noise: Noise,
              pairs: list[tuple[RunRecord, RunRecord]]) -> WallGap:  # fmt: skip
    """The wall clock's speedup against the stack clock's; beyond the A/A noise, the judged
    runs whose stalls (wall less clock) explain the difference, largest first."""
    bound = noise.aa if noise.aa is not None and math.isfinite(noise.aa) else 0.0
    if clock.n == 0 or wall.n == 0:
        return WallGap(None, bound, False, ())
    gap = wall.point - clock.point
    if not abs(gap) > bound:
        return WallGap(gap, bound, False, ())
    runs = [
        TakenOff(rec.job.label, rec.job.arm, rec.job.repeat, r.stall_s, r.stopped_s, r.contended_s)
        for pair in pairs
        for rec in pair
        if (r := rec.result).stall_s >= STALL_RESOLUTION_S
    ]
    runs.sort(key=lambda t: t.stall_s, reverse=True)
    return WallGap(gap, bound, True, tuple(runs))


def run_problem(rec: RunRecord) -> str | None:
    """Why this run cannot be measured (crash, divergence, NaN, no training time), else None."""
    r, label = rec.result, rec.job.label
    if r is None:
        return f"{label} crashed: {rec.error}"
    if r.diverged:
        return f"{label} diverged: {r.divergence}"
    if stats.finite(r.val_loss) is None:
        return f"{label}: validation loss is {r.val_loss} (NaN, infinite or missing)"
    if not (r.train_time_s > 0 and math.isfinite(r.wall_time_s)):
        return f"{label}: training time is {r.train_time_s} s; nothing measurable was trained"
    if sum(r.step_tokens) <= 0:
        return f"{label}: no tokens were fed to the model"
    return None


def _not_falling(rec: RunRecord) -> str | None:
    """A measurable run whose training loss did not fall: a critical note, but its numbers stand."""
    e = rec.result.epochs
    if len(e) < 2:
        return None
    # None: a NaN loss, stored as null
    first, last = stats.finite(e[0].mean_loss), stats.finite(e[-1].mean_loss)
    if first is not None and last is not None and last < first:
        return None
    shown = ("n/a" if x is None else f"{x:.4f}" for x in (first, last))
    return f"{rec.job.label}: loss did not fall ({' -> '.join(shown)})"


def _seed(rec: RunRecord) -> int:
    return rec.job.config.training.seed


def _point(p: Any, key: str) -> Any:
    return p[key] if isinstance(p, dict) else getattr(p, key)


def _final_curve_loss(r: ArmResult) -> float | None:
    return stats.finite(_point(r.curve[-1], "val_loss")) if r.curve else None


def _time_to(r: ArmResult, loss: float) -> float:
    clock = [_point(p, "clock_s") for p in r.curve]
    return stats.time_to_loss(clock, [_point(p, "val_loss") for p in r.curve], loss)


def _matched(b: RunRecord, o: RunRecord, divergence: list[str]) -> MatchedPair | None:
    """The pair at its matched loss L* = the worse of the two final curve losses (same rows):
    both arms reach it by construction, so neither time is infinite."""
    finals = {}
    for rec in (b, o):
        final = _final_curve_loss(rec.result)
        if final is None:
            divergence.append(f"{rec.job.label}: its loss curve has no final finite point")
            return None
        finals[rec.job.arm] = final
    loss = max(finals.values())
    tb, to = _time_to(b.result, loss), _time_to(o.result, loss)
    return MatchedPair(b.job.repeat, _seed(b), loss, finals["baseline"], finals["optimized"],
                       tb, to)  # fmt: skip


def _clock(judged: _Judged) -> Clock:
    """The median stack clock of each arm's runs in the judged pairs (a crashed run has none)."""

    def median(arm: str) -> float | None:
        runs = [rec.result for pair in judged.pairs for rec in pair if rec.job.arm == arm]
        return rules.median(r.clock_s for r in runs if r is not None)

    return Clock(median("baseline"), median("optimized"))


def _learning(judged: _Judged) -> Learning:
    """Each judged pair's baseline: how much it learned."""
    per_seed = []
    for rec, _ in judged.pairs:
        r = rec.result
        if r is None:
            continue
        initial, final = stats.finite(r.initial_val_loss), stats.finite(r.val_loss)
        unigram, floor = stats.finite(r.unigram_loss), stats.finite(r.bayes_floor)
        drop = rules.difference(final, initial)
        learned = rules.context_learned(unigram, floor, final)
        gain = rules.gain_over_unigram(unigram, final)
        per_seed.append(
            SeedLearning(_seed(rec), initial, final, drop, unigram, floor, learned, gain)
        )
    # An unknown amount counts as the lowest: a baseline that cannot show learning did not learn.
    worst = min(per_seed, default=None, key=lambda s: -math.inf if s.learned is None else s.learned)
    return Learning(worst, tuple(per_seed))


def _memory(judged: _Judged) -> Memory:
    """Peak memory over every clean run of each arm (the warm-up's is not read)."""
    records = [r for r in judged.counted if r.result is not None and judged.clean(r)]

    def peak(arm: str) -> float | None:
        values = [rec.result.peak_memory_mb for rec in records if rec.job.arm == arm]
        return max(values) if values else None

    methods = {rec.result.memory_method for rec in records}
    rss = [
        rec.result.peak_rss_mb
        for rec in records
        if rec.job.arm == "optimized" and rec.result.peak_rss_mb is not None
    ]
    return Memory(
        peak("baseline"),
        peak("optimized"),
        max(rss) if rss else None,
        ", ".join(sorted(methods)) or "n/a",
    )


def _encoding(records: list[RunRecord], artifact_problems: list[str]) -> Encoding:
    problems = list(artifact_problems)
    narrow = [rec for rec in records if rec.encoding in NARROW_ENCODINGS]
    for rec in narrow:
        if rec.exit_code != 0 and "UnicodeEncodeError" in rec.stderr_tail:
            problems.append(f"{rec.job.label} crashed on its {rec.encoding} console")
    used = sorted({rec.encoding for rec in narrow})
    summary = (
        f"{len(narrow)} run(s) printed through {'/'.join(used)} consoles without error; "
        "artifacts read back as strict UTF-8."
        if narrow
        else "runs were in-process; artifacts read back as strict UTF-8."
    )
    return Encoding(tuple(problems), summary)


def _no_effect(judged: _Judged) -> tuple[str, ...]:
    """Every finding of enabled optimizations, and any non-baseline arm with nothing enabled,
    in every clean run (a contaminated run's re-run says the same of the same stack)."""
    found = []
    for rec in judged.counted:
        if rec.result is None or rec.job.arm == "baseline" or not judged.clean(rec):
            continue
        enabled = [e for e in rec.result.evidence if e["enabled"]]
        if not enabled:
            found.append(f"{rec.job.label}: no optimization enabled in a non-baseline arm")
        for e in enabled:
            for f in e["findings"]:
                found.append(f"{rec.job.label}: {e['name']} {f['kind']}: {f['detail']}")
    return tuple(dict.fromkeys(found))


def _noise(judged: _Judged) -> Noise:
    """A real A/A: the "aa" run against pair 0's baseline, same seed, step by step; both clean."""
    aa, base0 = judged.aa, judged.base0
    if aa is None or base0 is None:
        dirty = [
            what
            for what, run, role in (("A/A run", aa, "aa"), ("pair 1's baseline", base0, "pair"))
            if run is None and judged.any_dirty_baseline0(role)
        ]
        if dirty:
            return Noise(
                None,
                f"not measurable: every {' and every '.join(dirty)} was contaminated (too much "
                "of its time contended), and a contaminated run is never judged.",
                None,
                None,
            )
        return Noise(
            None, "no A/A run: the plan needs pair 1's baseline and its 'aa' repeat.", None, None
        )
    problem = run_problem(aa) or run_problem(base0)
    if problem:
        return Noise(None, f"not measurable: {problem}", None, None)
    # The A/A run stops early (the plan's time budget): it is compared with the same steps of
    # pair 0's baseline, the same work with the same seed.
    a, b = aa.result, base0.result
    steps = len(a.step_times)
    tb, ta = b.clock_at(steps), a.clock_s
    noise = stats.aa_noise(b.step_clock[:steps], a.step_clock)
    end_to_end = stats.aa_noise([tb], [ta])
    return Noise(
        noise,
        f"|1 - median step-time ratio| over the first {steps} steps of {base0.job.label} and "
        f"its A/A repeat {aa.job.label} (seed {_seed(base0)}, identical work): what pure noise "
        f"looks like as a speedup; end to end the same steps read "
        f"{100 * end_to_end:.1f}% ({tb:.2f} s vs {ta:.2f} s), one draw.",
        tb,
        ta,
        steps,
        end_to_end,
    )


def stalls(records: list[RunRecord]) -> Stalls:
    """Every run's stalls, the warm-up's and the contaminated runs' included: all reported."""
    runs = []
    for rec in records:
        r = rec.result
        if r is None:
            continue
        stalled, largest = rules.stalled_steps(r.setup_stall_s, r.step_stalls)
        runs.append(RunStalls(rec.job.label, rec.job.arm, rec.job.role, r.stall_s, stalled,
                              largest, r.run_queue_wait_s, r.involuntary_switches))  # fmt: skip
    return Stalls(tuple(runs), STALL_RULE)


@dataclass(frozen=True)
class ArmSummary(Fields):
    """The seed plan's per-arm fields, medians over the arm's runs; every time on the stack's
    own clock (machine stalls off): total_time, the seed's name for it, is clock_s."""

    total_time: float | None
    clock_s: float | None
    avg_epoch_time: float | None
    final_loss: float | None
    val_loss: float | None
    losses: tuple[float | None, ...]  # the first run's, epoch by epoch
    throughput: float | None
    samples_per_s: float | None
    setup_time: float | None
    peak_memory_mb: float
    peak_rss_mb: float | None
    runs: int


def summarize_arm(results: list[ArmResult | None]) -> ArmSummary | None:
    """The seed plan's per-arm fields, medians over repeats where there are several."""
    results = [r for r in results if r is not None]
    if not results:
        return None

    def med(values) -> float | None:
        return rules.median(values)  # of the numbers: a NaN would poison the median

    clock = med(r.clock_s for r in results)
    return ArmSummary(
        total_time=clock,
        clock_s=clock,
        avg_epoch_time=med(sum(r.step_clock) / max(1, len(r.epochs)) for r in results),
        final_loss=med(r.final_loss for r in results),
        val_loss=med(r.val_loss for r in results),
        losses=tuple(e.mean_loss for e in results[0].epochs),
        throughput=med(throughput(r) for r in results),
        samples_per_s=med(
            sum(e.samples for e in r.epochs) / sum(r.step_clock) if sum(r.step_clock) else 0.0
            for r in results
        ),
        setup_time=med(r.setup_time_s for r in results),
        peak_memory_mb=max(r.peak_memory_mb for r in results),
        peak_rss_mb=max(
            (r.peak_rss_mb for r in results if r.peak_rss_mb is not None), default=None
        ),
        runs=len(results),
    )
