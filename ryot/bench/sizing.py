"""The model's size from its config, without building it, and whether training it can fit.

`ryot stage3a` prints the parameter count before training: building the real model for that
took 5.3 GB with `embed_dim: 10000000` before failing. Here the model is built on PyTorch's meta
device (shapes only, no storage), and a lower bound of training memory is compared with the
device's memory before any worker starts.
"""

from __future__ import annotations

import os

import torch

from ryot.config import Config, ModelConfig

# fp32 weights, their gradients, and AdamW's two moment buffers: 4 tensors of 4 bytes.
TRAINING_BYTES_PER_PARAMETER = 16
GIB = 2**30


class ModelTooLarge(ValueError):
    """Training this model cannot fit on the device: one line, exit 2."""


def parameter_count(model: ModelConfig) -> int:
    """Ryot's own model's; a factory's is counted where it is built (ryot.optim.workload_check)."""
    from ryot.bench.model import ScaledTransformerModel  # the model imports the config module

    with torch.device("meta"):
        return ScaledTransformerModel(model).count_parameters()


def training_bytes_lower_bound(config: Config, parameters: int) -> int:
    """Parameters with gradients and AdamW state, plus one batch's logits (forward and grad):
    a floor, not an estimate; the activations of every layer come on top."""
    m, t = config.model, config.training
    logits = t.batch_size * m.max_seq_len * m.vocab_size * 4 * 2
    return parameters * TRAINING_BYTES_PER_PARAMETER + logits


def device_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform
        return None


def check_fits(config: Config, source: str, device: torch.device, count: int | None = None) -> int:
    """The parameter count (`count`: a factory model's, counted where it was built); ModelTooLarge
    when training cannot fit in the device's memory."""
    if count is None:
        count = parameter_count(config.model)
    need = training_bytes_lower_bound(config, count)
    have = device_memory_bytes(device)
    if have is not None and need > have:
        m = config.model
        what = (
            f"model.factory = {m.factory}" if m.is_factory
            else f"model (embed_dim={m.embed_dim}, num_layers={m.num_layers}, "
            f"ff_dim={m.ff_dim}, vocab_size={m.vocab_size})"
        )  # fmt: skip
        raise ModelTooLarge(
            f"{source}: {what} has {count:,} parameters; training needs at least "
            f"{need / GIB:,.1f} GiB, the {device.type} has {have / GIB:,.1f} GiB"
        )
    return count
