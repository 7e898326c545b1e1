"""The key numbers under the two speedups (the speedups themselves: summary.headline_figures)."""

from __future__ import annotations

from ryot.report.fields import as_dict, estimate, get_path, is_num, judged_at_target, measurement
from ryot.report.formatting import (
    fmt,
    fmt_ci,
    fmt_frac_pct,
    fmt_int,
    fmt_loss,
    fmt_loss_delta,
    fmt_seconds,
)


def _aa_metric(c: dict) -> tuple[str, str, str]:
    """A/A noise: per step (median step-time ratio, schema 3.0) or end to end (2.0)."""
    noise = as_dict(c.get("noise"))
    value = fmt_frac_pct(noise.get("aa"), signed=False)
    if is_num(noise.get("steps")) or "end_to_end" in noise:
        e2e = fmt_frac_pct(noise.get("end_to_end"), signed=False)
        text = (
            f"median step-time ratio over {fmt_int(noise.get('steps'))} steps, same seed; "
            f"end to end {e2e} (one draw)"
        )
        return "A/A noise (per step)", value, text
    aa_s, base_s = fmt_seconds(noise.get("aa_s")), fmt_seconds(noise.get("baseline_s"))
    if is_num(noise.get("aa_s")) or is_num(noise.get("baseline_s")):
        text = f"A/A run {aa_s} vs baseline {base_s}, same seed"
    else:
        text = str(noise.get("detail") or "baseline against baseline, same seed")
    return "A/A noise", value, text


def key_numbers(c: dict, rows: list[dict], failed: list[dict]) -> list[tuple[str, str, str]]:
    """The key numbers under the two speedups: (label, value, small print)."""
    if not (c.get("confidence_intervals") or c.get("measurements")):
        return []
    loss, tput = estimate(c, "loss_delta"), estimate(c, "throughput")
    learn = measurement(c, "learning")
    margin = loss.get("margin")
    equivalent = loss.get("equivalent", get_path(c, "comparison", "loss_equivalent"))
    verdict = "equivalence n/a"
    if isinstance(equivalent, bool):
        verdict = "equivalent" if equivalent else "NOT equivalent"
    ci = fmt_ci(loss.get("level"), loss.get("low"), loss.get("high"), fmt_loss_delta)
    if judged_at_target(c):
        quality = ("Val loss delta (TOST)", f"{ci} vs ±{fmt(margin, '.4f')}: {verdict}")
    else:
        non_inferior = loss.get("non_inferior", get_path(c, "comparison", "loss_non_inferior"))
        judged = "non-inferiority n/a"
        if isinstance(non_inferior, bool):
            judged = "non-inferior" if non_inferior else "NOT non-inferior"
        quality = (
            "Val loss delta (non-inferiority)",
            f"{ci}, upper bound < +{fmt(margin, '.4f')}: {judged}; TOST ±{fmt(margin, '.4f')}: "
            f"{verdict}",
        )
    drop_text = (
        f"loss {fmt_loss(learn.get('initial_loss'))} → {fmt_loss(learn.get('final_loss'))}"
        f" (drop {fmt(learn.get('drop'), '.3f')} nats), worst baseline seed"
    )
    return [
        (quality[0], fmt_loss_delta(loss.get("point")), quality[1]),
        ("Context learned", fmt_frac_pct(learn.get("context_learned"), signed=False), drop_text),
        (
            "Throughput",
            fmt_frac_pct(tput.get("point")),
            fmt_ci(tput.get("level"), tput.get("low"), tput.get("high")),
        ),
        _aa_metric(c),
        (
            "Criteria passed",
            f"{len(rows) - len(failed)} / {len(rows)}",
            f"{sum(bool(r.get('critical')) for r in failed)} critical failed",
        ),
    ]
