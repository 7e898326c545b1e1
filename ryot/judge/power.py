"""The plan's error rates, by simulation from a real run's own recorded times.

How often would this plan (n interleaved pairs, a t interval at the configured confidence, GO
when its lower bound clears the threshold; while the interval holds the threshold, up to
measurement.extra_repeats more pairs, one at a time, each followed by the same test) say GO
for a stack whose true speedup is exactly the threshold (a false GO), and how often would it
miss a stack that is 15 points better at zero loss cost (a false NO-GO)? Both are drawn from
what one real job recorded:

- run-to-run noise: each arm's pair runs, on their stall-free clocks, give log deviations from
  that arm's mean; their pooled spread is the noise of one synthetic run (log-normal);
- stalls: each synthetic run is stalled with the probability the job's runs were (0.5 s or
  more; at least one run in six, as seen on this workplace's VMs), by the largest stall the job
  recorded (at least 6 s, the size of the pauses seen here);
- contamination: each synthetic run is contaminated (too much of its time contended:
  ryot.judge.contamination) with the probability the job's pair and A/A runs were, at least
  one in six like the stalls. A contaminated pair (either run) or A/A run is re-run, a fresh
  draw, while the job's re-runs last (measurement.max_reruns, pairs and A/A together; today's
  default for a file written before it); a pair or A/A with no clean run left makes the
  machine too busy to judge: not GO. A contaminated run is never judged, so what it would have
  measured does not matter; the contention a clean run still had (under the bound) is ignored
  here.

The same experiments are judged twice: with the stall rule (stalled time off the clock, as the
StallMonitor measures it; its error, under 0.2 s in tests/test_stalls.py, is ignored here) and
without it, to show what the rule buys; then with the stall rule and the contamination rule
together, the plan as it runs, with the share of experiments the machine was too busy to
judge. At zero loss cost the matched loss is each arm's final loss, so the speedup at equal
quality and the end-to-end speedup are the same number here.

The quality criterion has noise of its own: the paired validation-loss deltas vary from seed to
seed (measurements.loss_delta.values). Its error rates are drawn from their recorded spread
(normal deltas, the same t interval and the same extra pairs while it holds the margin): how
often a stack that costs exactly criteria.max_loss_delta passes as non-inferior, and how often
one at zero loss cost fails. That leg is simulated on its own: the speed legs above assume the
losses equal, and a loss spread also moves each pair's matched loss, which is not simulated.

    python -m ryot.judge.power RUN_DIR [--draws 20000] [--seed 1] [--max-reruns N]
                                       [--extra-repeats N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

from ryot.comparison.model import Comparison, Run
from ryot.config import MeasurementConfig

MIN_STALL_S = 6.0
MIN_STALL_SHARE = 1 / 6
COUNTED_STALL_S = 0.5  # a run stalled for less (the detector's 10-30 ms per run) is not stalled
MARGIN = 0.15  # the "clearly faster" stack: threshold + 15 points
MIN_CONTAMINATED_SHARE = 1 / 6
# measurement's defaults, for a comparison.json written before the contamination rule
DEFAULT_MAX_CONTENDED_SHARE = MeasurementConfig().max_contended_share
DEFAULT_MAX_RERUNS = MeasurementConfig().max_reruns
# today's plan, for a comparison.json written before extra pairs: the question is this plan's
DEFAULT_EXTRA_REPEATS = MeasurementConfig().extra_repeats


@dataclass(frozen=True)
class Noise:
    """What one job recorded: the noise of a run and its stalls."""

    sigma: float  # pooled sd of log run time around each arm's mean (stall-free clocks)
    runs: int  # pair runs it came from
    clock_s: float  # the baseline's mean stall-free end-to-end time
    stall_share: float  # fraction of synthetic runs stalled
    stall_s: float  # the size of each stall
    contaminated_share: float = MIN_CONTAMINATED_SHARE  # fraction of synthetic runs contaminated


@dataclass(frozen=True)
class Rates:
    pairs: int
    threshold: float  # fraction, e.g. 0.25
    level: float
    draws: int
    seed: int
    false_go: float  # P(GO | true speedup = threshold), with the stall rule
    false_no_go: float  # P(not GO | true speedup = threshold + 15 points), with the rule
    false_go_without_rule: float
    false_no_go_without_rule: float
    # the plan as it runs: the stall rule, and contaminated pairs re-run within max_reruns
    max_reruns: int = DEFAULT_MAX_RERUNS
    false_go_with_reruns: float = 0.0
    false_no_go_with_reruns: float = 0.0
    too_busy: float = 0.0  # share of experiments left without a clean pair or A/A (at +15)
    extra_repeats: int = 0  # pairs the plan may add while undecided
    mean_pairs: float = 0.0  # pairs judged, on average, at a true speedup of threshold + 15


@dataclass(frozen=True)
class LossNoise:
    """What one job recorded of its quality: the spread of the paired loss deltas."""

    sd: float  # sample sd of the per-pair validation-loss deltas (optimized - baseline), nats
    pairs: int  # the deltas it came from


@dataclass(frozen=True)
class QualityRates:
    margin: float  # criteria.max_loss_delta
    level: float
    draws: int
    false_pass: float  # P(non-inferior | true delta = +margin)
    false_fail: float  # P(not non-inferior | true delta = 0)
    mean_pairs: float  # pairs judged, on average, at a true delta of 0


def contaminated(run: Run, max_share: float) -> bool:
    """Whether a comparison.json run was contaminated: its reason, or its contended share over
    the bound (ryot.judge.contamination; 0 in files written before it was measured)."""
    r = run.result
    span = r.wall_time_s if r else None
    contended = (r.contended_s if r else None) or 0.0
    over = span is not None and span > 0 and contended / span > max_share
    return run.contaminated or over


def recorded_noise(c: Comparison) -> Noise:
    """The run-to-run noise and the stalls of one job's pair runs, and how often its pair and
    A/A runs were contaminated (a comparison.json, read as a Comparison). The noise is the
    clean runs' alone: a contaminated run is never judged."""
    max_share = c.config.measurement.max_contended_share
    if max_share is None:
        max_share = DEFAULT_MAX_CONTENDED_SHARE
    judged = [run for run in c.runs if run.role in ("pair", "aa") and run.result is not None]
    dirty = sum(contaminated(run, max_share) for run in judged)
    by_arm: dict[str, list[float]] = {}
    stalls, runs = [], 0
    for run in judged:
        r = run.result
        if run.role != "pair" or contaminated(run, max_share):
            continue
        # the stall-free clock; a file before stall accounting (schema 2.0) has the wall clock's
        clock = r.clock_s if r.clock_s is not None else r.wall_time_s
        if not (clock is not None and clock > 0):
            continue
        by_arm.setdefault(str(run.arm), []).append(math.log(clock))
        runs += 1
        stalls.append(float(r.stall_s or 0.0))
    devs = [x - float(np.mean(xs)) for xs in by_arm.values() for x in xs]
    dof = len(devs) - len(by_arm)
    if dof < 1 or "baseline" not in by_arm:
        raise ValueError("too few pair runs to measure noise (two of one arm, and a baseline)")
    sigma = math.sqrt(sum(d * d for d in devs) / dof)
    stalled = sum(s >= COUNTED_STALL_S for s in stalls) / len(stalls)
    return Noise(
        sigma=sigma,
        runs=runs,
        clock_s=float(np.exp(np.mean(by_arm["baseline"]))),
        stall_share=max(stalled, MIN_STALL_SHARE),
        stall_s=max([MIN_STALL_S, *stalls]),
        contaminated_share=max(dirty / len(judged), MIN_CONTAMINATED_SHARE),
    )


def recorded_loss_noise(c: Comparison) -> LossNoise | None:
    """The spread of the job's judged paired loss deltas; None with fewer than two."""
    delta = c.measurements.loss_delta if c.measurements else None
    values = [v for v in (delta.values if delta else ()) if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return None
    return LossNoise(sd=float(np.std(values, ddof=1)), pairs=len(values))


def quality_rates(loss: LossNoise, pairs: int, margin: float, level: float, draws: int = 20000,
                  seed: int = 1, extra: int = 0) -> QualityRates:  # fmt: skip
    """The non-inferiority criterion's error rates on the recorded loss spread: the t interval
    of the mean paired delta, passing when its upper bound is below `margin`, with one more
    pair at a time while the interval holds the margin (ryot.judge.criteria.undecided), at
    most `extra` more."""
    rng = np.random.default_rng(seed)

    def passed(true_delta: float) -> tuple[np.ndarray, np.ndarray]:
        deltas = rng.normal(true_delta, loss.sd, (draws, pairs + extra))
        return _sequential(
            deltas, pairs, level,
            passes=lambda low, high: high < margin,
            holds=lambda low, high: (low < margin) & (margin <= high),
        )  # fmt: skip

    at_margin, _ = passed(margin)
    at_zero, ran = passed(0.0)
    return QualityRates(
        margin, level, draws,
        false_pass=float(np.mean(at_margin)),
        false_fail=1.0 - float(np.mean(at_zero)),
        mean_pairs=float(np.mean(ran)),
    )  # fmt: skip


def go_rate(noise: Noise, true_speedup: float, pairs: int, threshold: float, level: float,
            draws: int, rng: np.random.Generator, rule: bool) -> float:  # fmt: skip
    """Share of `draws` synthetic experiments the plan judges GO."""
    go, _ = _go(noise, true_speedup, pairs, threshold, level, draws, rng, rule)
    return float(np.mean(go))


def too_busy(share: float, pairs: int | np.ndarray, max_reruns: int, draws: int,
             rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Which of `draws` synthetic jobs the machine was too busy to judge: each run contaminated
    with probability `share`; each pair (either run) and then the A/A run re-run, a fresh draw,
    while the job's `max_reruns` last; one left without a clean run makes the job too busy.
    `pairs`: the pairs each job ran (one count for all, or one per job)."""
    ran = np.broadcast_to(np.asarray(pairs), (draws,))
    left = np.full(draws, max_reruns)
    busy = np.zeros(draws, dtype=bool)
    units = [(1.0 - (1.0 - share) ** 2, ran > i) for i in range(int(ran.max()))]
    for q, has in [*units, (share, np.ones(draws, dtype=bool))]:
        pending = has.copy()
        while pending.any():
            pending &= rng.random(draws) < q
            rerun = pending & (left > 0)
            left -= rerun
            busy |= pending & ~rerun
            pending = rerun
    return busy


def _go(noise: Noise, true_speedup: float, pairs: int, threshold: float, level: float,
        draws: int, rng: np.random.Generator, rule: bool,
        extra: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Which of `draws` synthetic experiments, each judged on clean pairs, clear the threshold,
    and how many pairs each ran: `pairs`, then one more at a time while the interval holds the
    threshold, at most `extra` more (the plan's sequential look: ryot.judge.criteria.undecided)."""
    shape = (draws, pairs + extra)
    base = noise.clock_s * np.exp(rng.normal(0.0, noise.sigma, shape))
    opt = noise.clock_s * (1.0 - true_speedup) * np.exp(rng.normal(0.0, noise.sigma, shape))
    if not rule:  # the stalls stay on the clock
        base = base + noise.stall_s * (rng.random(shape) < noise.stall_share)
        opt = opt + noise.stall_s * (rng.random(shape) < noise.stall_share)
    # on the mean log ratio's interval (low, high), the speedup's bounds are -expm1(high) and
    # -expm1(low)
    return _sequential(
        np.log(opt / base), pairs, level,
        passes=lambda low, high: -np.expm1(high) >= threshold,
        holds=lambda low, high: (-np.expm1(high) < threshold) & (threshold <= -np.expm1(low)),
    )  # fmt: skip


def _sequential(samples: np.ndarray, pairs: int, level: float, passes, holds,
                ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The plan's sequential look on (draws, pairs + extra) per-pair samples: each row judged
    on the t interval (low, high) of the mean of its first `pairs` samples, then of one more
    at a time while `holds(low, high)`, until its columns run out. Which rows `passes(low,
    high)` at a look they reached, and how many pairs each ran."""
    draws, most = samples.shape
    ok = np.zeros(draws, dtype=bool)
    ran = np.full(draws, pairs)
    open_ = np.ones(draws, dtype=bool)  # still undecided
    for n in range(pairs, most + 1):
        x = samples[:, :n]
        half = student_t.ppf((1 + level) / 2, n - 1) * x.std(axis=1, ddof=1) / math.sqrt(n)
        low, high = x.mean(axis=1) - half, x.mean(axis=1) + half
        ok |= open_ & passes(low, high)
        open_ &= holds(low, high)
        if n < most:
            ran += open_
    return ok, ran


def error_rates(noise: Noise, pairs: int, threshold: float, level: float, draws: int = 20000,
                seed: int = 1, max_reruns: int = DEFAULT_MAX_RERUNS,
                extra_repeats: int = 0) -> Rates:  # fmt: skip
    rng = np.random.default_rng(seed)

    def rate(speedup: float, rule: bool) -> float:
        go, _ = _go(noise, speedup, pairs, threshold, level, draws, rng, rule, extra_repeats)
        return float(np.mean(go))

    def with_reruns(speedup: float) -> tuple[float, float, float]:
        """GO rate of the plan as it runs, its share of jobs too busy to judge, and the mean
        number of pairs it ran."""
        go, ran = _go(noise, speedup, pairs, threshold, level, draws, rng, True, extra_repeats)
        busy = too_busy(noise.contaminated_share, ran, max_reruns, draws, rng)
        return float(np.mean(go & ~busy)), float(np.mean(busy)), float(np.mean(ran))

    go_at_threshold, _, _ = with_reruns(threshold)
    go_clearly_faster, busy, mean_pairs = with_reruns(threshold + MARGIN)
    return Rates(
        pairs, threshold, level, draws, seed,
        false_go=rate(threshold, True),
        false_no_go=1.0 - rate(threshold + MARGIN, True),
        false_go_without_rule=rate(threshold, False),
        false_no_go_without_rule=1.0 - rate(threshold + MARGIN, False),
        max_reruns=max_reruns,
        false_go_with_reruns=go_at_threshold,
        false_no_go_with_reruns=1.0 - go_clearly_faster,
        too_busy=busy,
        extra_repeats=extra_repeats,
        mean_pairs=mean_pairs,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ryot.judge.power", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="a Stage 3a run folder (its comparison.json)")
    parser.add_argument("--draws", type=int, default=20000, help="experiments per rate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--max-reruns",
        type=int,
        default=None,
        help="re-runs per job (default: the run's measurement.max_reruns, else "
        f"{DEFAULT_MAX_RERUNS})",
    )
    parser.add_argument(
        "--extra-repeats",
        type=int,
        default=None,
        help="pairs the plan may add while undecided (default: the run's "
        f"measurement.extra_repeats, else today's {DEFAULT_EXTRA_REPEATS})",
    )
    args = parser.parse_args(argv)
    path = args.run_dir / "comparison.json"
    try:
        c = Comparison.from_dict(json.loads(path.read_text(encoding="utf-8")))
        noise = recorded_noise(c)
        loss = recorded_loss_noise(c)
        plan, threshold = c.config.measurement, c.config.criteria.min_speedup_percent
        if threshold is None or plan.repeats is None or plan.confidence is None:
            raise ValueError(
                "its config has no criteria.min_speedup_percent, measurement.repeats or "
                "measurement.confidence"
            )
    except (OSError, ValueError) as exc:
        print(f"ryot.judge.power: {path}: {exc}", file=sys.stderr)
        return 2
    threshold, pairs, level = threshold / 100, plan.repeats, plan.confidence
    reruns = args.max_reruns
    if reruns is None:
        reruns = DEFAULT_MAX_RERUNS if plan.max_reruns is None else plan.max_reruns
    extra = args.extra_repeats
    if extra is None:
        extra = DEFAULT_EXTRA_REPEATS if plan.extra_repeats is None else plan.extra_repeats
    rates = error_rates(noise, pairs, threshold, level, args.draws, args.seed, reruns, extra)
    print(f"recorded noise: {json.dumps(asdict(noise))}")
    print(
        f"{pairs} pairs (up to {extra} more while the interval holds the threshold), "
        f"{100 * level:g}% t interval, GO when its lower bound >= {100 * threshold:g}%; "
        f"{args.draws} experiments each, seed {args.seed}:"
    )
    print(f"  false GO    (true speedup {100 * threshold:g}%): {100 * rates.false_go:.2f}% "
          f"(without the stall rule {100 * rates.false_go_without_rule:.2f}%)")  # fmt: skip
    print(f"  false NO-GO (true speedup {100 * (threshold + MARGIN):g}%, zero loss cost): "
          f"{100 * rates.false_no_go:.2f}% (without the stall rule "
          f"{100 * rates.false_no_go_without_rule:.2f}%)")  # fmt: skip
    print(f"with the contamination rule too (each run contaminated with probability "
          f"{100 * noise.contaminated_share:.1f}%, its pair or A/A re-run while the job's "
          f"{rates.max_reruns} re-runs last):")  # fmt: skip
    print(f"  false GO    {100 * rates.false_go_with_reruns:.2f}%")
    print(f"  false NO-GO {100 * rates.false_no_go_with_reruns:.2f}% (too busy to judge: "
          f"{100 * rates.too_busy:.2f}% of jobs; {rates.mean_pairs:.2f} pairs a job on "
          "average)")  # fmt: skip
    margin = c.config.criteria.max_loss_delta
    if loss is None or margin is None:
        print("the loss criterion: not simulated (fewer than two paired loss deltas recorded, "
              "or no criteria.max_loss_delta)")  # fmt: skip
        return 0
    q = quality_rates(loss, pairs, margin, level, args.draws, args.seed, extra)
    print(f"the loss criterion on the recorded loss spread (sd {loss.sd:.4f} nats over "
          f"{loss.pairs} paired deltas; CI upper bound < +{margin:g}), same plan:")  # fmt: skip
    print(f"  passes a stack that costs +{margin:g} nats: {100 * q.false_pass:.2f}%")
    print(f"  fails one at zero loss cost:     {100 * q.false_fail:.2f}% ({q.mean_pairs:.2f} "
          "pairs a job on average)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
