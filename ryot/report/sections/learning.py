"""Did the baseline learn: loss drop and context learned, per seed, against the bench. Where
the Bayes floor is unknown (token data), the gain over the unigram loss stands in for the
context learned, as the judge's criterion reads it."""

from __future__ import annotations

from typing import Any

from ryot.comparison.measurements import LearningPoint
from ryot.comparison.model import Comparison
from ryot.report.formatting import fmt, fmt_frac_pct, fmt_loss, fmt_text

CONTEXT_NOTE = (
    "Context learned = (unigram loss - validation loss) / (unigram loss - Bayes floor): the "
    "share of what context can buy that the model learned."
)


def _learning_row(d: LearningPoint, floor_known: bool) -> dict[str, str]:
    learned = (
        fmt_frac_pct(d.context_learned, signed=False)
        if floor_known
        else fmt(d.gain_over_unigram, ".4f")
    )
    return {
        "initial": fmt_loss(d.initial_loss),
        "final": fmt_loss(d.final_loss),
        "drop": fmt(d.drop, ".4f"),
        "learned": learned,
    }


def learning_context(c: Comparison) -> dict[str, Any] | None:
    """Did the baseline learn? Its worst seed's loss drop and context learned, between the
    unigram loss (token frequencies alone) and the Bayes floor (the best any model can do);
    where the floor is unknown, its gain over the unigram loss."""
    learn = c.measurements and c.measurements.learning
    # the learning's own reference losses; the run's where it has none (ryot.comparison fills
    # them from each other)
    unigram = learn.unigram_loss if learn else c.unigram_loss
    floor = learn.bayes_floor if learn else c.bayes_floor
    unknown = c.floor_unknown
    if not learn and unigram is None and floor is None and unknown is None:
        return None
    crit = c.config.criteria
    drop_needed = f"needs a drop >= {fmt(crit.min_loss_drop, '.2f')} nats"
    row = _learning_row(learn or LearningPoint(), unknown is None)
    rows = [
        ("Initial validation loss", row["initial"]),
        ("Final validation loss", row["final"]),
        ("Drop in loss (nats)", row["drop"]),
        ("Unigram loss (token frequencies alone)", fmt_loss(unigram)),
    ]
    if unknown is None:
        rows += [
            ("Bayes floor (the best possible)", fmt_loss(floor)),
            ("Context learned", row["learned"]),
        ]
        needs = (
            f"{drop_needed} and context learned >= "
            f"{fmt_frac_pct(crit.min_context_learned, signed=False)}"
        )
        note, learned, worst = CONTEXT_NOTE, "Context learned", "lowest context learned"
    else:
        rows += [
            ("Bayes floor (the best possible)", unknown),
            ("Gain over the unigram loss (nats)", row["learned"]),
        ]
        needs = (
            f"{drop_needed} and a gain over the unigram loss >= "
            f"{fmt(crit.min_gain_over_unigram, '.2f')} nats"
        )
        note = (
            f"{unknown}: no share of the gap to it can be computed, so the criterion reads "
            "what can be measured. Gain over the unigram loss = unigram loss (token "
            "frequencies alone, from the training tokens) - validation loss."
        )
        learned, worst = "Gain over unigram", "lowest gain over the unigram loss"
    seeds = learn.per_seed if learn else ()
    per_seed = [{"seed": fmt_text(d.seed), **_learning_row(d, unknown is None)} for d in seeds]
    bench = c.bench
    params = [
        f"{name} {value}"
        for name, value in (
            ("num topics", bench and bench.num_topics),
            ("topic boost", bench and bench.topic_boost),
            ("branching", bench and bench.branching),
            ("zipf exponent", bench and bench.zipf_exponent),
        )
        if value is not None
    ]
    return {
        "rows": rows,
        "needs": needs,
        "note": note,
        "learned_header": learned,
        "worst": worst,
        "per_seed": per_seed,
        "bench": (bench and bench.description) or "",
        "bench_params": ", ".join(params),
        "measured": bool(learn),
    }
