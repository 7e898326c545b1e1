"""The plan's error rates, by simulation from a real run's own recorded times.

How often would this plan (n interleaved pairs, a t interval at the configured confidence, GO
when its lower bound clears the threshold) say GO for a stack whose true speedup is exactly the
threshold (a false GO), and how often would it miss a stack that is 15 points better at zero
loss cost (a false NO-GO)? Both are drawn from what one real job recorded:

- run-to-run noise: each arm's pair runs, on their stall-free clocks, give log deviations from
  that arm's mean; their pooled spread is the noise of one synthetic run (log-normal);
- stalls: each synthetic run is stalled with the probability the job's runs were (0.5 s or
  more; at least one run in six, as seen on this workplace's VMs), by the largest stall the job
  recorded (at least 6 s, the size of the pauses seen here).

The same experiments are judged twice: with the stall rule (stalled time off the clock, as the
StallMonitor measures it; its error, under 0.2 s in tests/test_stalls.py, is ignored here) and
without it, to show what the rule buys. At zero loss cost the matched loss is each arm's final
loss, so the speedup at equal quality and the end-to-end speedup are the same number here.

    python -m ryot.judge.power RUN_DIR [--draws 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import t as student_t

MIN_STALL_S = 6.0
MIN_STALL_SHARE = 1 / 6
COUNTED_STALL_S = 0.5  # a run stalled for less (the detector's 10-30 ms per run) is not stalled
MARGIN = 0.15  # the "clearly faster" stack: threshold + 15 points


@dataclass(frozen=True)
class Noise:
    """What one job recorded: the noise of a run and its stalls."""

    sigma: float  # pooled sd of log run time around each arm's mean (stall-free clocks)
    runs: int  # pair runs it came from
    clock_s: float  # the baseline's mean stall-free end-to-end time
    stall_share: float  # fraction of synthetic runs stalled
    stall_s: float  # the size of each stall


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


def recorded_noise(comparison: dict[str, Any]) -> Noise:
    """The run-to-run noise and the stalls of one job's pair runs (comparison.json)."""
    by_arm: dict[str, list[float]] = {}
    stalls, runs = [], 0
    for run in comparison.get("runs", []):
        r = run.get("result")
        if run.get("role") != "pair" or not r:
            continue
        clock = r.get("clock_s", r.get("total_time_s"))  # schema 2.0 runs have no clock_s
        if not (isinstance(clock, (int, float)) and clock > 0):
            continue
        by_arm.setdefault(run["arm"], []).append(math.log(clock))
        runs += 1
        stalls.append(float(r.get("stall_s") or 0.0))
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
    )


def go_rate(noise: Noise, true_speedup: float, pairs: int, threshold: float, level: float,
            draws: int, rng: np.random.Generator, rule: bool) -> float:  # fmt: skip
    """Share of `draws` synthetic experiments the plan judges GO."""
    shape = (draws, pairs)
    base = noise.clock_s * np.exp(rng.normal(0.0, noise.sigma, shape))
    opt = noise.clock_s * (1.0 - true_speedup) * np.exp(rng.normal(0.0, noise.sigma, shape))
    if not rule:  # the stalls stay on the clock
        base = base + noise.stall_s * (rng.random(shape) < noise.stall_share)
        opt = opt + noise.stall_s * (rng.random(shape) < noise.stall_share)
    logs = np.log(opt / base)
    half = student_t.ppf((1 + level) / 2, pairs - 1) * logs.std(axis=1, ddof=1) / math.sqrt(pairs)
    low = -np.expm1(logs.mean(axis=1) + half)  # the speedup's lower bound
    return float(np.mean(low >= threshold))


def error_rates(noise: Noise, pairs: int, threshold: float, level: float, draws: int = 20000,
                seed: int = 1) -> Rates:  # fmt: skip
    rng = np.random.default_rng(seed)

    def rate(speedup: float, rule: bool) -> float:
        return go_rate(noise, speedup, pairs, threshold, level, draws, rng, rule)

    return Rates(
        pairs, threshold, level, draws, seed,
        false_go=rate(threshold, True),
        false_no_go=1.0 - rate(threshold + MARGIN, True),
        false_go_without_rule=rate(threshold, False),
        false_no_go_without_rule=1.0 - rate(threshold + MARGIN, False),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ryot.judge.power", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="a Stage 3a run folder (its comparison.json)")
    parser.add_argument("--draws", type=int, default=20000, help="experiments per rate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    path = args.run_dir / "comparison.json"
    try:
        comparison = json.loads(path.read_text(encoding="utf-8"))
        noise = recorded_noise(comparison)
        config = comparison["config"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"ryot.judge.power: {path}: {exc}", file=sys.stderr)
        return 2
    threshold = config["criteria"]["min_speedup_percent"] / 100
    pairs, level = config["measurement"]["repeats"], config["measurement"]["confidence"]
    rates = error_rates(noise, pairs, threshold, level, args.draws, args.seed)
    print(f"recorded noise: {json.dumps(asdict(noise))}")
    print(
        f"{pairs} pairs, {100 * level:g}% t interval, GO when its lower bound >= "
        f"{100 * threshold:g}%; {args.draws} experiments each, seed {args.seed}:"
    )
    print(f"  false GO    (true speedup {100 * threshold:g}%): {100 * rates.false_go:.2f}% "
          f"(without the stall rule {100 * rates.false_go_without_rule:.2f}%)")  # fmt: skip
    print(f"  false NO-GO (true speedup {100 * (threshold + MARGIN):g}%, zero loss cost): "
          f"{100 * rates.false_no_go:.2f}% (without the stall rule "
          f"{100 * rates.false_no_go_without_rule:.2f}%)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
