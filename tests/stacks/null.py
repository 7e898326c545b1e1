"""The null stack: identical math in both arms (nothing enabled anywhere).

    pytest validation/ --ryot-stack tests.stacks.null:build

Its speedup at equal quality must have a CI that contains 0 on any machine: what the judge
reads when there is nothing to find (its verdict is DEBUG: an optimized arm with nothing
enabled is a critical failure, by design).
"""

from __future__ import annotations


def build(config, arm, device):
    return []
