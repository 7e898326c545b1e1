"""An older comparison.json brought to today's shape, once, as it is read (the way
pytest-benchmark's normalize_stats upgrades a saved file on load), so that no reader ever
branches on a schema version.

What each older file lacks or names otherwise, and what reading it gives instead:

- Schema 4.0 and older (today's schema is 4.1): no `workload`, and no gain over the unigram
  loss in the learning. Every such run trained Ryot's model on the synthetic language, so its
  workload is derived: the model's name from the file's `model`, its factory (if any) and sizes
  from the config snapshot's model section, the data synthetic with config.data.seed. Each
  learning point's gain_over_unigram is its unigram loss less its final loss
  (ryot.comparison.rules.gain_over_unigram).
- Schema 3.0 and older: names that said less than what they hold.
  What schema 3.0 measured at each pair's matched loss, `measurements.time_to_target`, is
  `measurements.matched_loss`; `comparison.time_to_target_speedup_percent` is
  `comparison.matched_loss_speedup_percent`; the criterion `time_to_target` (and its test's
  node id in `tests`) is `matched_loss_speedup`; a run's wall time, `runs[].result.total_time_s`,
  is `runs[].result.wall_time_s`. An arm summary's (and an ablation row's) stack clock, which a
  3.0 file holds as the seed's `total_time` alone, is also its `clock_s`. What 4.0 no longer
  writes twice is read from wherever the file has it: `confidence_intervals` (measurements'
  estimates), the top-level `noise` (measurements.noise) and `measurements.stalls` (the
  top-level stalls).
- Schema 1.0 (no bench, measurements, noise per step or time to target): its estimates live in
  confidence_intervals alone and become measurements'; their "median" is not today's point
  (the geometric mean of the ratios) and reads None, as does its entropy_floor (not the Bayes
  floor). Its criteria have no summary, its verdict no reasons (empty).
- Schemas 1.0 and 2.0 judged every pair at one target loss (measurements.target) and their
  A/A noise end to end: `Legacy` says so, the model keeps it as typed flags
  (Comparison.at_target, Noise.per_step), since the report words both differently. Each
  pair's `loss` is the target; a time never reached stays None. Their runs have no stall
  accounting: stall_s and clock_s read None (the wall clock is not the stack's clock), and so
  there are no stalls.
- Any file written before the judge recorded them (every one before schema 4.0, some of them
  from every one before `last_runs`): the numbers the judge now writes are derived from the
  file's own runs and summaries with ryot.comparison.rules, the judge's rules: each pair's
  speedup, each arm's median time to the pairs' loss and median stack clock, the run that
  stands for each arm, every run's stalls and their reported-only totals, compile break-even,
  each arm's step-time box, the comparison table's changes and final-loss delta.
- Any file: a value one place holds and its twin lacks is filled from the twin (the top-level
  noise and measurements.noise; the bench's reference losses and the top-level ones; the
  loss delta's verdicts and the seed comparison block's; its margin and the criteria's
  max_loss_delta), so a reader looks in one place.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ryot.comparison import rules
from ryot.comparison.numbers import is_num
from ryot.comparison.runs import Run

SCHEMA_VERSION = "4.1"
READABLE_SCHEMAS = ("1.0", "2.0", "3.0", "4.0", SCHEMA_VERSION)
# Judged every pair at one target loss, A/A noise end to end.
TARGET_SCHEMAS = ("1.0", "2.0")
# The keys every readable file has: today's schema's required keys but those schema 2.0 added.
REQUIRED_KEYS = (
    "schema_version", "stage", "model", "created", "config_name", "num_parameters", "baseline",
    "optimized", "comparison", "criteria", "verdict", "evidence", "ablation", "environment",
    "config", "runs",
)  # fmt: skip
ADDED_IN_2_0 = ("bayes_floor", "unigram_loss", "bench", "measurements", "confidence_intervals",
                "noise")  # fmt: skip
# What the judge writes for every job since schema 3.0 (stalls) and 4.0 (step_time_summary),
# required in 4.0; reading derives them for older files.
WRITTEN_SINCE_3_0 = ("stalls", "step_time_summary")
ADDED_IN_4_1 = ("workload",)  # required in 4.1; reading derives it for older files
SYNTHETIC = "synthetic"
ESTIMATES = ("matched_loss", "speedup", "throughput", "loss_delta")
# Schema 4.0's names for what older files named otherwise: (where, the old key, the new key)
RENAMED = (
    ("measurements", "time_to_target", "matched_loss"),
    ("confidence_intervals", "time_to_target", "matched_loss"),
    ("comparison", "time_to_target_speedup_percent", "matched_loss_speedup_percent"),
)
CRITERION_IDS = {"time_to_target": "matched_loss_speedup"}  # criteria[].id, and its test's id
RESULT_RENAMED = ("total_time_s", "wall_time_s")  # runs[].result: the wall clock's time
PAIRED_ARMS = rules.PAIRED_ARMS
COMPILE_KEY = "compile_seconds"  # an evidence item's measurement of its compile time


def check(d: Any) -> None:
    """ValueError, in one line, unless `d` is a comparison this ryot reads: an object of a
    readable schema version with every key a readable file has."""
    if not isinstance(d, dict):
        raise ValueError("not a comparison (expected a JSON object)")
    version = d.get("schema_version")
    if version not in READABLE_SCHEMAS:
        raise ValueError(
            f"schema_version {version!r} is not one this ryot reads "
            f"({', '.join(READABLE_SCHEMAS)}); a newer ryot wrote it?"
        )
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise ValueError(f"not a comparison (missing {', '.join(missing)})")


@dataclass(frozen=True)
class Legacy:
    """What an older file measured differently, which no number can carry."""

    at_target: bool  # every pair judged at one target loss, not at its own matched loss
    aa_end_to_end: bool  # the A/A noise is one end-to-end draw, not per step


def upgrade(d: dict[str, Any]) -> tuple[dict[str, Any], Legacy]:
    """`d` (a checked comparison) in today's shape, and what it measured differently. `d` is
    left as it is: what changes is copied first."""
    out = dict(d)
    version = out.get("schema_version")
    measurements = _obj(out.get("measurements"))
    legacy = Legacy(
        at_target=version in TARGET_SCHEMAS or isinstance(measurements.get("target"), dict),
        aa_end_to_end=version in TARGET_SCHEMAS,
    )
    _rename(out)
    if not legacy.aa_end_to_end:  # schema 3.0: stall accounting, total_time the stack clock
        _arm_clocks(out)
    _estimates(out)
    _twins(out)
    runs = [Run.from_dict(r) for r in _list(out.get("runs")) if isinstance(r, dict)]
    _pairs(out)
    if "last_runs" not in out:
        shapes = [s for r in runs if (s := r.shape) is not None]
        arms = dict.fromkeys(s.arm for s in shapes)
        found = {arm: rules.last_run(shapes, arm) for arm in arms}
        out["last_runs"] = {arm: index for arm, index in found.items() if index is not None}
    if isinstance(out.get("measurements"), dict) and "clock" not in out["measurements"]:
        _own(out, "measurements")["clock"] = _clock(runs)
    if not isinstance(out.get("stalls"), dict):
        out["stalls"] = _stalls(out, runs)
    _stall_totals(out)
    if not isinstance(out.get("compile_break_even"), list):
        out["compile_break_even"] = _break_even(_obj(out.get("evidence")), runs)
    if not isinstance(out.get("step_time_summary"), dict):
        out["step_time_summary"] = _step_times(runs)
    _changes(out)
    if not isinstance(out.get("workload"), dict):
        out["workload"] = _workload(out)
    _gains(out)
    return out, legacy


# --- helpers: reading the raw file tolerantly, copying what changes -----------------------


def _obj(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _own(d: dict[str, Any], key: str) -> dict[str, Any]:
    """d[key] as a copy of its own (an empty object when it was none), put back into d."""
    d[key] = dict(_obj(d.get(key)))
    return d[key]


# --- schema 4.0's names -------------------------------------------------------------------


def _rename(out: dict[str, Any]) -> None:
    """Each value an older file names otherwise under its schema-4.0 name (RENAMED,
    CRITERION_IDS): what it measured at the matched loss (schema 3.0; at the one target, 2.0)
    and the criterion that judges it, with its test's node id."""
    for where, old, new in RENAMED:
        block = _obj(out.get(where))
        if old in block and new not in block:
            moved = _own(out, where)
            moved[new] = moved.pop(old)
    rows = _list(out.get("criteria"))
    if any(_old_id(_obj(r).get("id")) for r in rows):
        out["criteria"] = [
            {**r, "id": CRITERION_IDS[r["id"]]} if _old_id(_obj(r).get("id")) else r for r in rows
        ]
    tests = out.get("tests")
    if isinstance(tests, dict):
        out["tests"] = {_test_id(k): v for k, v in tests.items()}
    runs = _list(out.get("runs"))
    if any(RESULT_RENAMED[0] in _obj(_obj(r).get("result")) for r in runs):
        out["runs"] = [_renamed_result(r) for r in runs]


def _renamed_result(run: Any) -> Any:
    """A run whose result names its wall time total_time_s (schema 3.0 and older), with it
    named wall_time_s."""
    old, new = RESULT_RENAMED
    result = _obj(_obj(run).get("result"))
    if old not in result or new in result:
        return run
    result = dict(result)
    result[new] = result.pop(old)
    return {**run, "result": result}


def _old_id(x: Any) -> bool:
    return isinstance(x, str) and x in CRITERION_IDS


def _test_id(nodeid: str) -> str:
    """A criterion's test node id under its schema-4.0 criterion id."""
    for old, new in CRITERION_IDS.items():
        if nodeid.endswith(f"::test_criterion[{old}]"):
            return nodeid[: -len(f"{old}]")] + f"{new}]"
    return nodeid


def _arm_clocks(out: dict[str, Any]) -> None:
    """Each arm summary's and ablation row's stack clock, clock_s, where a file with stall
    accounting (schema 3.0) holds it as the seed's total_time alone."""
    for arm in PAIRED_ARMS:
        summary = _obj(out.get(arm))
        if summary and "clock_s" not in summary:
            out[arm] = {**summary, "clock_s": summary.get("total_time")}
    rows = _obj(out.get("ablation"))
    if any(isinstance(r, dict) and "clock_s" not in r for r in rows.values()):
        out["ablation"] = {
            arm: {**r, "clock_s": r.get("total_time")}
            if isinstance(r, dict) and "clock_s" not in r
            else r
            for arm, r in rows.items()
        }


# --- one place for each value -------------------------------------------------------------


def _estimates(out: dict[str, Any]) -> None:
    """measurements' estimates, from confidence_intervals where measurements lacks them (schema
    1.0 has no measurements at all)."""
    ci = _obj(out.get("confidence_intervals"))
    found = {k: ci[k] for k in ESTIMATES if isinstance(ci.get(k), dict) and ci[k]}
    m = _obj(out.get("measurements"))
    lacking = {k: e for k, e in found.items() if not (isinstance(m.get(k), dict) and m[k])}
    if lacking:
        _own(out, "measurements").update(lacking)


def _twins(out: dict[str, Any]) -> None:
    """Each value two places hold, filled from the other where one lacks it."""
    m = _obj(out.get("measurements"))
    top, inner = _obj(out.get("noise")), _obj(m.get("noise"))
    if inner and not top:
        out["noise"] = inner
    if top and not inner and m:
        _own(out, "measurements")["noise"] = top
    bench = _obj(out.get("bench"))
    for k in ("bayes_floor", "unigram_loss"):
        if not is_num(out.get(k)) and is_num(bench.get(k)):
            out[k] = bench[k]
    loss = _obj(m.get("loss_delta"))
    if loss:
        loss = dict(loss)
        seed = _obj(out.get("comparison"))
        for k, twin in (("equivalent", "loss_equivalent"), ("non_inferior", "loss_non_inferior")):
            if k not in loss and twin in seed:
                loss[k] = seed[twin]
        margin = _obj(_obj(out.get("config")).get("criteria")).get("max_loss_delta")
        if not is_num(loss.get("margin")) and is_num(margin):
            loss["margin"] = margin
        _own(out, "measurements")["loss_delta"] = loss
    learning = _obj(_obj(out.get("measurements")).get("learning"))
    if learning:
        learning = dict(learning)
        for k in ("unigram_loss", "bayes_floor"):
            if not is_num(learning.get(k)) and is_num(out.get(k)):
                learning[k] = out[k]
        _own(out, "measurements")["learning"] = learning


# --- numbers the judge writes today, derived for an older file ----------------------------


def _pairs(out: dict[str, Any]) -> None:
    """Each pair's loss (judged at one target: the target) and speedup, and each arm's median
    time to the pairs' loss."""
    m = _obj(out.get("measurements"))
    matched = _obj(m.get("matched_loss"))
    if not matched:
        return
    target = _obj(m.get("target")).get("loss")
    pairs = []
    for p in _list(matched.get("pairs")):
        if isinstance(p, dict):
            p = dict(p)
            if "loss" not in p and is_num(target):
                p["loss"] = target
            if "speedup" not in p:
                p["speedup"] = rules.pair_speedup(p.get("baseline_s"), p.get("optimized_s"))
        pairs.append(p)
    matched = {**matched, "pairs": pairs} if "pairs" in matched else dict(matched)
    found = [p for p in pairs if isinstance(p, dict)]
    for arm in PAIRED_ARMS:
        if f"median_{arm}_s" not in matched:
            matched[f"median_{arm}_s"] = rules.median_time(p.get(f"{arm}_s") for p in found)
    _own(out, "measurements")["matched_loss"] = matched


def _judged_pair_runs(runs: list[Run], arm: str) -> list[Run]:
    judged = rules.judged_attempts(s for r in runs if (s := r.shape) is not None)
    return [
        r
        for r in runs
        if r.arm == arm
        and r.role == "pair"
        and r.result is not None
        and (s := r.shape) is not None
        and judged.get(s.repeat) == s.attempt
    ]


def _clock(runs: list[Run]) -> dict[str, float | None]:
    """Each arm's median stack clock over its runs in the judged pairs."""
    return {
        f"{arm}_median_s": rules.median(r.result.clock_s for r in _judged_pair_runs(runs, arm))
        for arm in PAIRED_ARMS
    }


def _stalls(out: dict[str, Any], runs: list[Run]) -> dict[str, Any] | None:
    """Every run's stalls: measurements' where a paired job has them, else each run's own
    (a single-arm job); None for a file before stall accounting."""
    paired = _obj(out.get("measurements")).get("stalls")
    if isinstance(paired, dict):
        return copy.copy(paired)
    found = []
    for r in runs:
        res = r.result
        if res is None or res.stall_s is None:
            continue
        count, largest = rules.stalled_steps(res.setup_stall_s, res.step_stalls)
        index = "n/a" if r.index is None else r.index
        found.append({
            "label": f"run {index} ({r.arm or 'n/a'}, {r.role or 'n/a'})",
            "arm": r.arm,
            "role": r.role,
            "stall_s": res.stall_s,
            "stalled_steps": count,
            "largest_s": largest,
            "run_queue_wait_s": res.run_queue_wait_s,
            "involuntary_switches": res.involuntary_switches,
        })  # fmt: skip
    if not found:
        return None
    return {"total_s": sum(s["stall_s"] for s in found), "rule": "", "runs": found}


def _stall_totals(out: dict[str, Any]) -> None:
    """The runs' run-queue waits and involuntary context switches together, which stalls lacks
    in a file before the judge wrote them."""
    stalls = _obj(out.get("stalls"))
    missing = [k for k in ("run_queue_wait_s", "involuntary_switches") if k not in stalls]
    if stalls and missing:
        runs = [_obj(r) for r in _list(stalls.get("runs"))]
        own = _own(out, "stalls")
        for k in missing:
            own[k] = rules.total(r.get(k) for r in runs)


def _step_times(runs: list[Run]) -> dict[str, Any]:
    """Each arm's step times as a box plot's numbers, over its runs but the warm-up, arms in
    run order."""
    own = [r for r in runs if r.result is not None and r.role != "warmup" and r.arm is not None]
    found = {}
    for arm in dict.fromkeys(r.arm for r in own):
        seconds = [t for r in own if r.arm == arm for t in r.result.step_times]
        summary = rules.step_time_summary(seconds)
        if summary is not None:
            found[arm] = summary
    return found


def _changes(out: dict[str, Any]) -> None:
    """The comparison table's numbers, which the seed's comparison block lacks in a file before
    the judge wrote them: each metric's change and the final training loss's delta."""
    seed = _obj(out.get("comparison"))
    if not seed or ("changes" in seed and "final_loss_delta" in seed):
        return
    seed = _own(out, "comparison")
    if "changes" not in seed:
        seed["changes"] = rules.changes(out)
    if "final_loss_delta" not in seed:
        base, opt = (_obj(out.get(arm)).get("final_loss") for arm in PAIRED_ARMS)
        seed["final_loss_delta"] = rules.difference(base, opt)


def _break_even(evidence: dict[str, Any], runs: list[Run]) -> list[dict[str, Any]]:
    """One row per evidence item that measured its compile seconds, in evidence order: the
    median full-length step of the baseline and of the item's arm, over every run but the
    warm-up (a length warmup's short steps are cheaper for reasons not the compiler's)."""
    own = [r for r in runs if r.result is not None and r.role != "warmup"]

    def steps(arm: str, tokens: Any) -> list[float]:
        of_arm = [r.result for r in own if r.arm == arm]
        return rules.steps_at(((res.step_times, res.step_tokens) for res in of_arm), tokens)

    fed = [k for r in own if r.arm == "baseline" for k in r.result.step_tokens if is_num(k)]
    full = int(max(fed)) if fed else None
    base_steps = steps("baseline", full)
    base = rules.median(base_steps)
    rows = []
    for arm, items in evidence.items():
        for item in _list(items):
            measured = _obj(_obj(item).get("measurements"))
            if COMPILE_KEY not in measured:
                continue
            secs = measured[COMPILE_KEY] if is_num(measured[COMPILE_KEY]) else None
            arm_steps = steps(arm, full)
            opt = rules.median(arm_steps)
            rows.append({
                "arm": arm,
                "optimization": str(item.get("name")),
                "compile_s": secs,
                "baseline_step_s": base,
                "arm_step_s": opt,
                "baseline_steps": len(base_steps),
                "arm_steps": len(arm_steps),
                "full_tokens": full,
                "steps": rules.break_even_steps(secs, base, opt),
            })  # fmt: skip
    return rows


def _workload(out: dict[str, Any]) -> dict[str, Any]:
    """What model was trained on what data, for a file before schema 4.1 said: Ryot's model (or
    the config's factory) on the synthetic language, with the config snapshot's seed."""
    config = _obj(out.get("config"))
    model, data = _obj(config.get("model")), _obj(config.get("data"))
    factory = model.get("factory")
    factory = factory if isinstance(factory, str) and factory else None
    name = out.get("model")
    return {
        "model": {
            "name": name if isinstance(name, str) else factory,
            "factory": factory,
            "factory_kwargs": copy.deepcopy(_obj(model.get("factory_kwargs"))),
            "vocab_size": model.get("vocab_size"),
            "max_seq_len": model.get("max_seq_len"),
        },
        "data": {"source": SYNTHETIC, "seed": data.get("seed")},
    }


def _gains(out: dict[str, Any]) -> None:
    """Each learning point's gain over the unigram loss, where a file before schema 4.1 lacks
    it: the judge's rule on the point's own unigram and final losses."""
    learning = _obj(_obj(out.get("measurements")).get("learning"))
    points = [learning, *(_obj(p) for p in _list(learning.get("per_seed")))]
    if not learning or all("gain_over_unigram" in p for p in points):
        return

    def gained(p: Any) -> Any:
        if not isinstance(p, dict) or "gain_over_unigram" in p:
            return p
        return {
            **p,
            "gain_over_unigram": rules.gain_over_unigram(
                p.get("unigram_loss"), p.get("final_loss")
            ),
        }

    learning = dict(gained(learning))  # a copy of its own: the file is left as it is
    if isinstance(learning.get("per_seed"), list):
        learning["per_seed"] = [gained(p) for p in learning["per_seed"]]
    _own(out, "measurements")["learning"] = learning
