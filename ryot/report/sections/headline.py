"""The key numbers under the two speedups (the speedups themselves: summary.headline_figures)."""

from __future__ import annotations

from ryot.comparison.measurements import Estimate, Learning, LossDelta, Noise
from ryot.comparison.model import Comparison, Criterion
from ryot.report.formatting import (
    fmt,
    fmt_ci,
    fmt_frac_pct,
    fmt_int,
    fmt_loss,
    fmt_loss_delta,
    fmt_seconds,
)


def _aa_metric(c: Comparison) -> tuple[str, str, str]:
    """A/A noise: per step (median step-time ratio, with the end-to-end draw beside it) or,
    measured before that (schema 2.0 and older), end to end."""
    noise = c.noise or Noise()
    value = fmt_frac_pct(noise.aa, signed=False)
    if noise.per_step:
        e2e = fmt_frac_pct(noise.end_to_end, signed=False)
        text = (
            f"median step-time ratio over {fmt_int(noise.steps)} steps, same seed; "
            f"end to end {e2e} (one draw)"
        )
        return "A/A noise (per step)", value, text
    aa_s, base_s = fmt_seconds(noise.aa_s), fmt_seconds(noise.baseline_s)
    if noise.aa_s is not None or noise.baseline_s is not None:
        text = f"A/A run {aa_s} vs baseline {base_s}, same seed"
    else:
        text = noise.detail or "baseline against baseline, same seed"
    return "A/A noise", value, text


def key_numbers(
    c: Comparison, rows: list[Criterion], failed: list[Criterion]
) -> list[tuple[str, str, str]]:
    """The key numbers under the two speedups: (label, value, small print)."""
    m = c.measurements
    if m is None:
        return []
    loss, tput = m.loss_delta or LossDelta(), m.throughput or Estimate()
    learn = m.learning or Learning()
    margin = loss.margin
    verdict = "equivalence n/a"
    if loss.equivalent is not None:
        verdict = "equivalent" if loss.equivalent else "NOT equivalent"
    ci = fmt_ci(loss.level, loss.low, loss.high, fmt_loss_delta)
    if c.at_target:
        quality = ("Val loss delta (TOST)", f"{ci} vs ±{fmt(margin, '.4f')}: {verdict}")
    else:
        judged = "non-inferiority n/a"
        if loss.non_inferior is not None:
            judged = "non-inferior" if loss.non_inferior else "NOT non-inferior"
        quality = (
            "Val loss delta (non-inferiority)",
            f"{ci}, upper bound < +{fmt(margin, '.4f')}: {judged}; TOST ±{fmt(margin, '.4f')}: "
            f"{verdict}",
        )
    drop_text = (
        f"loss {fmt_loss(learn.initial_loss)} → {fmt_loss(learn.final_loss)}"
        f" (drop {fmt(learn.drop, '.3f')} nats), worst baseline seed"
    )
    learned = ("Context learned", fmt_frac_pct(learn.context_learned, signed=False), drop_text)
    if c.floor_unknown is not None:  # what the criterion reads instead: the gain, in nats
        gain = fmt(learn.gain_over_unigram, ".3f", " nats")
        learned = ("Gain over unigram", gain, f"{drop_text}; {c.floor_unknown}")
    return [
        (quality[0], fmt_loss_delta(loss.point), quality[1]),
        learned,
        ("Throughput", fmt_frac_pct(tput.point), fmt_ci(tput.level, tput.low, tput.high)),
        _aa_metric(c),
        (
            "Criteria passed",
            f"{len(rows) - len(failed)} / {len(rows)}",
            f"{sum(bool(r.critical) for r in failed)} critical failed",
        ),
    ]
