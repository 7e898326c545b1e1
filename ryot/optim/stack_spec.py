"""`--stack MODULE:FUNCTION`: the user's own optimization-stack factory, checked before training.

A factory is called as `factory(config, arm, device)` in every worker and must return a list of
`ryot.optim.base.Optimization`. Every way it can be wrong (no module, no attribute, not callable,
wrong signature, raises, returns something else) is found before any file is written: a usage
error (exit 2) rather than a DEBUG verdict after every run has failed.

The check runs in a throwaway process with its own fresh cache folders (ryot.osutil.fresh_caches),
never in the parent: a constructor that builds an extension or compiles a kernel must not leave
it warm for the workers, whose clocks would then never see that cost.

    python -m ryot.optim.stack_spec MODULE:FUNCTION DEVICE ARM [ARM ...] < CONFIG.json
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch

from ryot.config import Config, ConfigError, config_from_dict
from ryot.optim.base import Optimization
from ryot.osutil import fresh_caches

DEFAULT_STACK = "ryot.optim:build_stack"


class StackSpecError(ValueError):
    """A --stack that cannot build a stack: one line naming the spec and what is wrong."""


def parse_stack_spec(spec: str) -> tuple[str, str]:
    """'module:function' -> (module, function), importing nothing."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise StackSpecError(f"--stack {spec}: expected MODULE:FUNCTION, e.g. {DEFAULT_STACK}")
    return module_name, name


def load_stack_factory(spec: str) -> Callable[..., Any]:
    """'module:function' -> the callable that builds an arm's optimization stack."""
    where = f"--stack {spec}"
    module_name, name = parse_stack_spec(spec)
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
    """Check that `spec` builds each arm's stack, as a worker would, in a throwaway process
    (Ryot's own stack needs no check). Returns the factory, imported in this process only when
    first called (by the suite's step benchmark, after every judged run)."""
    if spec == DEFAULT_STACK:
        return load_stack_factory(spec)
    parse_stack_spec(spec)  # a malformed spec needs no process to say so
    command = [sys.executable, "-m", "ryot.optim.stack_spec", spec, str(device), *arms]
    with fresh_caches(prefix="ryot-stack-check-") as caches:
        try:
            proc = subprocess.run(
                command,
                input=json.dumps(config.to_dict()),
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                env={**os.environ, **caches, "PYTHONIOENCODING": "utf-8"},
                timeout=config.measurement.worker_timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise StackSpecError(
                f"--stack {spec}: building the stacks took over "
                f"{config.measurement.worker_timeout_s:g} s (measurement.worker_timeout_s)"
            ) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"--stack {spec}: its check exited {proc.returncode}"
        raise StackSpecError(last)
    return _Lazy(spec)


class _Lazy:
    """A factory imported on its first call, not before."""

    def __init__(self, spec: str):
        self.spec = spec
        self._factory: Callable[..., Any] | None = None

    def __call__(self, *args, **kwargs):
        if self._factory is None:
            self._factory = load_stack_factory(self.spec)
        return self._factory(*args, **kwargs)


def check_in_this_process(
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


def main(argv: list[str] | None = None) -> int:
    """The throwaway process of check_stack_factory: exit 0, or 2 and one line on stderr."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3:
        print("usage: python -m ryot.optim.stack_spec SPEC DEVICE ARM...", file=sys.stderr)
        return 2
    spec, device, arms = argv[0], torch.device(argv[1]), argv[2:]
    try:
        config = config_from_dict(json.loads(sys.stdin.read()), "<stack check>")
        check_in_this_process(spec, config, arms, device)
    except (StackSpecError, ConfigError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
