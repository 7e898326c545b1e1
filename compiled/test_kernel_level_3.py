"""The compile acceptance suite, `pytest compiled/`: kernel level 3 really compiles the model
with torch.compile's default backend (Dynamo, AOT autograd and Inductor's generated C++), once
across a length warmup's four sequence lengths.

A cold Inductor compile of the smoke model, forward and backward, costs 85 s of a core on the
2-core AMD EPYC (the compiled kernels are cached in /tmp only after it): too much for the unit
suite's 3 minutes, so it lives beside it and CI runs both. The unit suite keeps the same run
with Dynamo's eager backend (tests/test_optim.py), which proves the tracing, the dynamic
sequence length and the counting in a few seconds; only this proves what Inductor adds (its own
guards could recompile) and that the generated code trains.
"""

from __future__ import annotations

from tests.test_optim import assert_level_3_compiles_once_across_warmup_lengths


def test_kernel_level_3_compiles_once_across_warmup_lengths(smoke_config):
    assert_level_3_compiles_once_across_warmup_lengths(smoke_config)
