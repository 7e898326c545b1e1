"""A stack module whose import takes SLEEP_S (as `import torch._dynamo` takes 2-2.7 s)."""

from __future__ import annotations

import time

SLEEP_S = 2.0
time.sleep(SLEEP_S)


def build(config, arm, device):
    return []
