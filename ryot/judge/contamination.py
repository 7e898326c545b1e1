"""A contaminated run is re-run, never judged.

The stall rule takes off exactly the time a worker was stopped, but contention (neighbours'
CPU, hypervisor steal) only by a fair-share estimate, and OpenMP's spin-waiting team pays more
than its fair share: under two CPU hogs the rule took 118-181 s off runs of 299-377 s and still
left clocks 15-40% above the quiet machine's. So a run that needed much of that estimate cannot
be judged at all. The bound is fixed in the config (measurement.max_contended_share) before
any outcome is seen, the same for every arm.
"""

from __future__ import annotations

from ryot.train.results import ArmResult


def contamination(result: ArmResult | None, max_share: float) -> str | None:
    """Why `result` cannot be judged (its contended share over the bound), or None."""
    if result is None:
        return None
    span = result.wall_time_s
    if span <= 0:
        return None
    share = result.contended_s / span
    if share <= max_share:
        return None
    return (
        f"{result.contended_s:.2f} s of its {span:.2f} s ({100 * share:.1f}%) lost to other "
        f"processes or the hypervisor, over the {100 * max_share:g}% bound "
        "(measurement.max_contended_share)"
    )
