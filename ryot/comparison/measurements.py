"""comparison.json's measurements, typed: everything the criteria judge (ryot.judge.measurements
writes it), each estimate with its interval, the A/A noise, stalls and contamination."""

from __future__ import annotations

from dataclasses import dataclass, field

from ryot.comparison.record import Record, flag, number, numbers, record, records, text, texts


@dataclass(frozen=True)
class Estimate(Record):
    """A point estimate with its confidence interval over n pairs: the geometric mean of the
    ratios (speedups, improvements) or the mean (differences); None: not finite or not
    measured (a schema-1.0 median is not this point: it reads None)."""

    point: float | None = number()
    low: float | None = number()
    high: float | None = number()
    level: float | None = number()  # 0.95
    n: int | None = number()
    method: str | None = text()
    values: tuple[float | None, ...] = numbers()  # per pair; None: not finite


@dataclass(frozen=True)
class MatchedPair(Record):
    """One pair's times to the loss it is judged at: its matched loss L*, the worse of its two
    final losses (a file judged at one target: the target, and a time may be None, never
    reached)."""

    repeat: int | None = number()
    seed: int | None = number()
    loss: float | None = number()
    baseline_final: float | None = number()
    optimized_final: float | None = number()
    baseline_s: float | None = number()
    optimized_s: float | None = number()
    speedup: float | None = number()  # 1 - optimized_s / baseline_s; None: not both finite

    def seconds(self, arm: str) -> float | None:
        return self.baseline_s if arm == "baseline" else self.optimized_s


@dataclass(frozen=True)
class MatchedLossSpeedup(Estimate):
    """The speedup at equal quality, its pairs and each arm's median time to the pairs' loss:
    each pair's matched loss L* (a file judged at one target, `Comparison.at_target`: the
    target; None: no pair, or the median pair never reached the target)."""

    pairs: tuple[MatchedPair, ...] = records(MatchedPair)
    median_baseline_s: float | None = number()
    median_optimized_s: float | None = number()


@dataclass(frozen=True)
class LossDelta(Estimate):
    margin: float | None = number()  # criteria.max_loss_delta
    non_inferior: bool | None = flag()  # the criterion: the CI's upper bound below +margin
    equivalent: bool | None = flag()  # TOST, shown beside: the CI inside +-margin
    baseline_spread: float | None = number()  # stdev of the baseline seeds' validation loss


@dataclass(frozen=True)
class LearningPoint(Record):
    initial_loss: float | None = number()
    final_loss: float | None = number()
    drop: float | None = number()
    unigram_loss: float | None = number()
    bayes_floor: float | None = number()
    context_learned: float | None = number()  # (unigram - final) / (unigram - floor)
    gain_over_unigram: float | None = number()  # unigram - final, nats (schema 4.1)
    seed: int | None = number(omit=True)


@dataclass(frozen=True)
class Learning(LearningPoint):
    """The worst baseline seed's learning (the lowest context learned; where the Bayes floor
    is unknown, the lowest gain over the unigram loss), and each seed's."""

    per_seed: tuple[LearningPoint, ...] = records(LearningPoint)


@dataclass(frozen=True)
class Memory(Record):
    baseline: float | None = number()  # peak MiB over the arm's runs
    optimized: float | None = number()
    optimized_rss: float | None = number()
    method: str | None = text()


@dataclass(frozen=True)
class Encoding(Record):
    problems: tuple[str | None, ...] = texts()
    summary: str | None = text()


@dataclass(frozen=True)
class Noise(Record):
    """A/A noise: a baseline run against pair 0's baseline, same seed. `per_step` (not a key
    of the file): aa is |1 - median step-time ratio| with the end-to-end draw beside it; a file
    before it (schema 2.0 and older) measured aa end to end, one draw."""

    aa: float | None = number()
    detail: str | None = text()
    baseline_s: float | None = number()
    aa_s: float | None = number()
    steps: int | None = number(omit=True)
    end_to_end: float | None = number(omit=True)
    per_step: bool = field(default=True)


@dataclass(frozen=True)
class RunStalls(Record):
    label: str | None = text()
    arm: str | None = text()
    role: str | None = text()
    stall_s: float | None = number()  # taken off the run's clock
    stalled_steps: int | None = number()
    largest_s: float | None = number()
    run_queue_wait_s: float | None = number()  # reported only
    involuntary_switches: int | None = number()


@dataclass(frozen=True)
class Stalls(Record):
    """Every run's machine stalls and the rule that decides what one is; the runs' run-queue
    waits and involuntary context switches together, reported only (None: no run measured
    any)."""

    total_s: float | None = number()
    run_queue_wait_s: float | None = number()
    involuntary_switches: int | None = number()
    rule: str | None = text()
    runs: tuple[RunStalls, ...] = records(RunStalls)


@dataclass(frozen=True)
class ContaminatedRun(Record):
    label: str | None = text()
    arm: str | None = text()
    role: str | None = text()
    repeat: int | None = number()
    attempt: int | None = number()
    contended_s: float | None = number()
    share: float | None = number()  # of the run's wall time
    reason: str | None = text()


@dataclass(frozen=True)
class Contamination(Record):
    too_busy: bool | None = flag()
    busy: tuple[str | None, ...] = texts()  # "pair 2", "the A/A run": no clean run left
    max_share: float | None = number()
    max_reruns: int | None = number()
    reruns: int | None = number()
    contended_s: float | None = number()
    runs: tuple[ContaminatedRun, ...] = records(ContaminatedRun)


@dataclass(frozen=True)
class TakenOff(Record):
    label: str | None = text()
    arm: str | None = text()
    repeat: int | None = number()
    stall_s: float | None = number()
    stopped_s: float | None = number()
    contended_s: float | None = number()


@dataclass(frozen=True)
class WallGap(Record):
    """The wall clock's end-to-end speedup against the stack clock's: the runs whose seconds
    taken off explain a gap beyond the A/A noise."""

    gap: float | None = number()
    noise: float | None = number()
    exceeds: bool | None = flag()
    runs: tuple[TakenOff, ...] = records(TakenOff)


@dataclass(frozen=True)
class Clock(Record):
    """Each arm's median stack clock over its runs in the judged pairs (None: no such run)."""

    baseline_median_s: float | None = number()
    optimized_median_s: float | None = number()

    def median(self, arm: str) -> float | None:
        return self.baseline_median_s if arm == "baseline" else self.optimized_median_s


@dataclass(frozen=True)
class Target(Record):
    """The one target loss every pair was judged at (schema 2.0 and older)."""

    loss: float | None = number()
    worst_baseline_final: float | None = number()
    slack: float | None = number()


@dataclass(frozen=True)
class Measurements(Record):
    target: Target | None = record(Target, omit=True)  # judged at one target loss
    matched_loss: MatchedLossSpeedup | None = record(MatchedLossSpeedup)  # at equal quality
    speedup: Estimate | None = record(Estimate)  # end to end, on the stack clock
    throughput: Estimate | None = record(Estimate)
    loss_delta: LossDelta | None = record(LossDelta)
    learning: Learning | None = record(Learning)
    divergence: tuple[str | None, ...] = texts()
    memory: Memory | None = record(Memory)
    encoding: Encoding | None = record(Encoding)
    no_effect: tuple[str | None, ...] = texts()
    noise: Noise | None = record(Noise)
    wall_speedup: Estimate | None = record(Estimate, omit=True)  # end to end, the wall clock
    wall_gap: WallGap | None = record(WallGap, omit=True)
    contamination: Contamination | None = record(Contamination, omit=True)
    clock: Clock | None = record(Clock, omit=True)
