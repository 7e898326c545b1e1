"""`--stack MODULE:FUNCTION`: the user's own optimization-stack factory, checked before training.

A factory is called as `factory(config, arm, device)` in every worker and must return a list of
`ryot.optim.base.Optimization`. Every way it can be wrong (no module, no attribute, not callable,
wrong signature, raises, returns something else) is found here, in the parent, before any file
is written: a usage error (exit 2) rather than a DEBUG verdict after every run has failed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from ryot.config import Config
from ryot.optim.base import Optimization

DEFAULT_STACK = "ryot.optim:build_stack"


class StackSpecError(ValueError):
    """A --stack that cannot build a stack: one line naming the spec and what is wrong."""


def load_stack_factory(spec: str) -> Callable[..., Any]:
    """'module:function' -> the callable that builds an arm's optimization stack."""
    where = f"--stack {spec}"
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise StackSpecError(f"{where}: expected MODULE:FUNCTION, e.g. {DEFAULT_STACK}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything on import
        raise StackSpecError(
            f"{where}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    factory = getattr(module, name, None)
    if factory is None:
        raise StackSpecError(f"{where}: module {module_name!r} has no attribute {name!r}")
    if not callable(factory):
        raise StackSpecError(f"{where}: {name!r} is a {type(factory).__name__}, not a function")
    return factory


def check_stack_factory(
    spec: str, config: Config, arms: list[str], device: torch.device
) -> Callable[..., Any]:
    """Load the factory and build each arm's stack once, as a worker would; returns it."""
    factory = load_stack_factory(spec)
    where = f"--stack {spec}"
    try:
        inspect.signature(factory).bind(config, arms[0], device)
    except TypeError as exc:
        raise StackSpecError(f"{where}: must accept (config, arm, device): {exc}") from None
    except ValueError:
        pass  # no signature to inspect (a builtin): the call below tells
    for arm in arms:
        try:
            stack = factory(config, arm, device)
        except Exception as exc:
            raise StackSpecError(
                f"{where}: raised {type(exc).__name__} for arm {arm!r}: {exc}"
            ) from None
        try:
            if not isinstance(stack, list) or not all(isinstance(o, Optimization) for o in stack):
                kinds = (
                    ", ".join(sorted({type(o).__name__ for o in stack}))
                    if isinstance(stack, list)
                    else type(stack).__name__
                )
                raise StackSpecError(
                    f"{where}: returned {kinds or 'nothing'} for arm {arm!r}; expected a list "
                    "of ryot.optim.base.Optimization"
                )
        finally:
            for opt in stack if isinstance(stack, list) else []:
                if isinstance(opt, Optimization):
                    opt.close()  # undo any process-wide switch made while building
    return factory
