"""Did the baseline learn: loss drop and context learned, per seed, against the bench."""

from __future__ import annotations

from typing import Any

from ryot.comparison.measurements import LearningPoint
from ryot.comparison.model import Comparison
from ryot.report.formatting import fmt, fmt_frac_pct, fmt_loss, fmt_text


def _learning_row(d: LearningPoint) -> dict[str, str]:
    return {
        "initial": fmt_loss(d.initial_loss),
        "final": fmt_loss(d.final_loss),
        "drop": fmt(d.drop, ".4f"),
        "context": fmt_frac_pct(d.context_learned, signed=False),
    }


def learning_context(c: Comparison) -> dict[str, Any] | None:
    """Did the baseline learn? Its worst seed's loss drop and context learned, between the
    unigram loss (token frequencies alone) and the Bayes floor (the best any model can do)."""
    learn = c.measurements and c.measurements.learning
    # the learning's own reference losses; the run's where it has none (ryot.comparison fills
    # them from each other)
    unigram = learn.unigram_loss if learn else c.unigram_loss
    floor = learn.bayes_floor if learn else c.bayes_floor
    if not learn and unigram is None and floor is None:
        return None
    crit = c.config.criteria
    needs = (
        f"needs a drop >= {fmt(crit.min_loss_drop, '.2f')} nats and context learned >= "
        f"{fmt_frac_pct(crit.min_context_learned, signed=False)}"
    )
    row = _learning_row(learn or LearningPoint())
    rows = [
        ("Initial validation loss", row["initial"]),
        ("Final validation loss", row["final"]),
        ("Drop in loss (nats)", row["drop"]),
        ("Unigram loss (token frequencies alone)", fmt_loss(unigram)),
        ("Bayes floor (the best possible)", fmt_loss(floor)),
        ("Context learned", row["context"]),
    ]
    seeds = learn.per_seed if learn else ()
    per_seed = [{"seed": fmt_text(d.seed), **_learning_row(d)} for d in seeds]
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
        "per_seed": per_seed,
        "bench": (bench and bench.description) or "",
        "bench_params": ", ".join(params),
        "measured": bool(learn),
    }
