"""Did the baseline learn: loss drop and context learned, per seed, against the bench."""

from __future__ import annotations

from typing import Any

from ryot.report.fields import as_dict, as_list, get_path, is_num, measurement, reference
from ryot.report.formatting import NA, fmt, fmt_frac_pct, fmt_loss


def _learning_row(d: dict) -> dict[str, str]:
    return {
        "initial": fmt_loss(d.get("initial_loss")),
        "final": fmt_loss(d.get("final_loss")),
        "drop": fmt(d.get("drop"), ".4f"),
        "context": fmt_frac_pct(d.get("context_learned"), signed=False),
    }


def learning_context(c: dict) -> dict[str, Any] | None:
    """Did the baseline learn? Its worst seed's loss drop and context learned, between the
    unigram loss (token frequencies alone) and the Bayes floor (the best any model can do)."""
    learn, bench = measurement(c, "learning"), as_dict(c.get("bench"))
    unigram = learn.get("unigram_loss") if is_num(learn.get("unigram_loss")) else None
    floor = learn.get("bayes_floor") if is_num(learn.get("bayes_floor")) else None
    unigram = unigram if unigram is not None else reference(c, "unigram_loss")
    floor = floor if floor is not None else reference(c, "bayes_floor")
    if not learn and not is_num(unigram) and not is_num(floor):
        return None
    crit = as_dict(get_path(c, "config", "criteria"))
    needs = (
        f"needs a drop >= {fmt(crit.get('min_loss_drop'), '.2f')} nats and context learned >= "
        f"{fmt_frac_pct(crit.get('min_context_learned'), signed=False)}"
    )
    row = _learning_row(learn)
    rows = [
        ("Initial validation loss", row["initial"]),
        ("Final validation loss", row["final"]),
        ("Drop in loss (nats)", row["drop"]),
        ("Unigram loss (token frequencies alone)", fmt_loss(unigram)),
        ("Bayes floor (the best possible)", fmt_loss(floor)),
        ("Context learned", row["context"]),
    ]
    per_seed = [
        {"seed": str(d.get("seed", NA)), **_learning_row(d)}
        for d in as_list(learn.get("per_seed"))
        if isinstance(d, dict)
    ]
    params = [
        f"{k.replace('_', ' ')} {bench[k]}"
        for k in ("num_topics", "topic_boost", "branching", "zipf_exponent")
        if bench.get(k) is not None
    ]
    return {
        "rows": rows,
        "needs": needs,
        "per_seed": per_seed,
        "bench": str(bench.get("description") or ""),
        "bench_params": ", ".join(params),
        "measured": bool(learn),
    }
