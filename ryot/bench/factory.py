"""`model.factory: MODULE:FUNCTION`: the team's own causal LM, built and probed before any run.

The factory is called as `FUNCTION(vocab_size=..., max_seq_len=..., **model.factory_kwargs)` and
must return an nn.Module mapping int64 ids (B, T) to logits (B, T, vocab_size), causally. Every
way it can be wrong (no module, no attribute, not callable, raises, returns something else, the
wrong shape, NaN, a peek at later tokens, a length it refuses) is one FactoryError line naming
`model.factory`, found by a few forwards before any worker trains it: a usage error, not a DEBUG
verdict after every run has failed, nor a GO for a model that could read the answer.

check_factory is meant to run in a throwaway process, as --stack's check does: a factory may
compile or cache things that must not be left warm for the workers, whose clocks would then
never see that cost. This module only builds and probes.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ryot.config import ModelConfig

PROBE_BATCH = 2
PROBE_SEED = 0
# Logits at earlier positions may move by float noise when a later token changes (a kernel's
# reduction order); a real peek moves them by far more than this share of the logits' scale.
CAUSAL_RTOL = 1e-4
MAX_EXC_CHARS = 200
_MISSING = object()


class FactoryError(ValueError):
    """A model.factory that cannot build a usable causal LM: one line naming the spec."""


def _where(model_config: ModelConfig) -> str:
    return f"model.factory = {model_config.factory}"


def _one_line(text: str, limit: int = MAX_EXC_CHARS) -> str:
    text = " ".join(str(text).split())  # a traceback-like message must not break the line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_factory(model_config: ModelConfig) -> Callable[..., Any]:
    """model.factory 'module:function' -> the callable that builds the model."""
    where = _where(model_config)
    module_name, sep, name = model_config.factory.partition(":")
    if not sep or not module_name or not name:
        raise FactoryError(f"{where}: expected MODULE:FUNCTION, e.g. examples.nanogpt:build")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the team's module may raise anything on import
        raise FactoryError(f"{where}: cannot import {module_name!r} ({_describe(exc)})") from None
    factory = getattr(module, name, _MISSING)
    if factory is _MISSING:
        raise FactoryError(f"{where}: module {module_name!r} has no attribute {name!r}")
    if not callable(factory):
        raise FactoryError(f"{where}: {name!r} is a {type(factory).__name__}, not a function")
    return factory


def _factory_kwargs(model_config: ModelConfig) -> dict[str, Any]:
    given = {"vocab_size": model_config.vocab_size, "max_seq_len": model_config.max_seq_len}
    for key in given:
        if key in model_config.factory_kwargs:
            value = model_config.factory_kwargs[key]
            raise FactoryError(
                f"model.factory_kwargs.{key} = {value!r}: model.{key} gives it; set that instead"
            )
    return {**given, **model_config.factory_kwargs}


def build(model_config: ModelConfig) -> nn.Module:
    """A fresh model from the factory (seed first for a reproducible init)."""
    where = _where(model_config)
    factory = load_factory(model_config)
    kwargs = _factory_kwargs(model_config)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise FactoryError(
            f"{where}: cannot take the keywords {', '.join(kwargs)} ({_describe(exc)})"
        ) from None
    except ValueError:
        pass  # no signature to inspect (a builtin): the call below tells
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise FactoryError(f"{where}: the factory raised {_describe(exc)}") from None
    if not isinstance(model, nn.Module):
        raise FactoryError(f"{where}: returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _forward(model: nn.Module, ids: torch.Tensor, where: str, vocab_size: int) -> torch.Tensor:
    """Logits of `ids`, checked: a floating (B, T, V) tensor of finite values."""
    shown = _shape(ids.shape)
    try:
        logits = model(ids)
    except Exception as exc:
        raise FactoryError(f"{where}: forward of ids {shown} raised {_describe(exc)}") from None
    said = f"{where}: forward of int64 ids {shown} returned"
    if not isinstance(logits, torch.Tensor):
        raise FactoryError(f"{said} a {type(logits).__name__}, not a tensor of logits")
    expected = (*ids.shape, vocab_size)
    if tuple(logits.shape) != expected:
        raise FactoryError(
            f"{said} logits of shape {_shape(logits.shape)}; expected {_shape(expected)}"
        )
    if not logits.is_floating_point():
        raise FactoryError(f"{said} logits of dtype {logits.dtype}; expected a floating dtype")
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise FactoryError(
            f"{said} non-finite logits ({bad} of {logits.numel()} values are NaN or inf)"
        )
    return logits


def _check_causal(
    model: nn.Module, ids: torch.Tensor, logits: torch.Tensor, where: str, vocab_size: int
) -> None:
    """Changing the token at p must leave the logits at every position before p unchanged."""
    T = ids.shape[1]
    # The float noise a changed token may cause elsewhere scales with the logits and the dtype.
    eps = max(CAUSAL_RTOL, 4 * torch.finfo(logits.dtype).eps)
    logits = logits.float()
    atol = eps * max(1.0, float(logits.abs().max()))
    # A forward that is not a function of its ids (dropout left on in eval mode) would read
    # as a peek at every position: say what it is instead.
    again = _forward(model, ids, where, vocab_size).float()
    apart = float((again - logits).abs().max())
    if apart > atol:
        raise FactoryError(
            f"{where}: forward of int64 ids {_shape(ids.shape)} is not deterministic in eval "
            f"mode: the same ids gave logits {apart:.3g} apart, so causality cannot be checked"
        )
    for p in dict.fromkeys((T - 1, T // 2)):  # the last position, then the middle one
        if p == 0:
            continue  # nothing before it
        changed = ids.clone()
        changed[:, p] = (changed[:, p] + 1) % vocab_size
        moved = _forward(model, changed, where, vocab_size).float()
        diff = (moved[:, :p] - logits[:, :p]).abs().amax(dim=(0, 2))  # (p,)
        over = (diff > atol).nonzero()
        if len(over):
            raise FactoryError(
                f"{where}: not causal: changing the token at position {p} changed the logits "
                f"at position {int(over[0])} (max difference {float(diff.max()):.3g})"
            )


def check_model(
    model: nn.Module, model_config: ModelConfig, lengths: Sequence[int] | None = None
) -> None:
    """Probe `model` in eval mode: for each length T (default max_seq_len), int64 ids (2, T)
    must give finite floating logits (2, T, vocab_size), causally. Leaves the model's modes and
    torch's global RNG as they were."""
    where = _where(model_config)
    V, L = model_config.vocab_size, model_config.max_seq_len
    lengths = [L] if lengths is None else list(lengths)
    for T in lengths:
        if not 1 <= T <= L:
            raise ValueError(f"lengths: {T} is not in [1, model.max_seq_len = {L}]")
    device = _device(model)
    modes = [(module, module.training) for module in model.modules()]
    cuda = [device.index or 0] if device.type == "cuda" else []
    # A model may draw random numbers in its forward: the probe must not shift the run's stream.
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        model.eval()
        try:
            generator = torch.Generator().manual_seed(PROBE_SEED)
            for T in lengths:
                ids = torch.randint(0, V, (PROBE_BATCH, T), generator=generator).to(device)
                logits = _forward(model, ids, where, V)
                _check_causal(model, ids, logits, where, V)
        finally:
            for module, training in modes:
                module.training = training


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters, each tied tensor once (nn.Module.parameters() dedups)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_factory(model_config: ModelConfig, lengths: Sequence[int] | None = None) -> int:
    """Build the factory's model and probe it; returns its trainable parameter count."""
    model = build(model_config)
    check_model(model, model_config, lengths)
    return parameter_count(model)
