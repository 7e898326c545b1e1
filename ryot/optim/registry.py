"""The one place an optimization is declared: its name, config section, class, ablation arm,
chart colour and evidence rows.

Everything else reads this table: the arms (`baseline`, `optimized` = every registered
optimization, and one ablation arm per optimization holding it alone), the plan's ablation runs,
the stack each arm builds, the report's arm order, colours and evidence rows, and the config's
`optimizations.<section>` keys. An optimization of one's own is registered the same way, from
anywhere, before the run is planned:

    register(Registration(
        name="my_opt", seed_name="MyOptimization", cls=MyOptimization,
        build=lambda settings, config, device: MyOptimization(device, settings.knob),
        section="my_opt", settings=MyOptimizationConfig, color="#1098ad", switch="knob",
    ))

Each built-in lives in its own folder beside this file: its class, its settings dataclass
(settings.py, declared with ryot.config's range checks), its registration and its method card
(README.md). Registering gives the config loader the section: ryot.config never imports this
package, so a process loads a config with `optimizations:` keys after importing ryot.optim.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from ryot.config import Config, register_optimization_section, unregister_optimization_section
from ryot.optim.base import Optimization

Rows = list[tuple[str, str]]
# measurements (a copy: pop what you show) and the report's formatting module -> (label, text)
EvidenceRows = Callable[[dict[str, Any], ModuleType], Rows]


@dataclass(frozen=True)
class Registration:
    name: str  # the ablation arm, the evidence's name and its key in the report: "kernel"
    seed_name: str  # the seed plan's name, shown to users: "KernelOptimizer"
    cls: type[Optimization]
    build: Callable[[Any, Config, torch.device], Optimization]  # (settings, config, device)
    section: str  # config: optimizations.<section>
    settings: type  # that section's frozen dataclass
    color: str  # the report's colour for the ablation arm
    evidence_rows: EvidenceRows | None = None  # its measurements in words in the report
    # Applied after every other optimization: torch.compile must trace the model the others
    # changed (the token dropper's layers). Otherwise the stack keeps registration order.
    applied_last: bool = False
    # The key of its section that switches it on ("level"): a usage error names
    # optimizations.<section>.<switch> and its value (ryot.optim.applicability).
    switch: str = ""

    def settings_of(self, config: Config) -> Any:
        return getattr(config.optimizations, self.section)

    def switch_text(self, config: Config) -> str:
        """'optimizations.semantic_compressor.ratio = 0.25': the setting that turned it on."""
        if not self.switch:
            return f"optimizations.{self.section}"
        value = getattr(self.settings_of(config), self.switch)
        return f"optimizations.{self.section}.{self.switch} = {value}"


BASELINE, OPTIMIZED = "baseline", "optimized"
MAIN_ARM_COLORS = {BASELINE: "#6c757d", OPTIMIZED: "#1c6fd1"}
_registered: dict[str, Registration] = {}


def register(registration: Registration) -> Registration:
    """Add an optimization: it joins the optimized arm and gets its own ablation arm."""
    name = registration.name
    if name in _registered or name in MAIN_ARM_COLORS:
        raise ValueError(f"an optimization named {name!r} is already registered")
    register_optimization_section(registration.section, registration.settings)
    _registered[name] = registration
    return registration


def unregister(name: str) -> None:
    registration = _registered.pop(name)
    if all(r.section != registration.section for r in _registered.values()):
        unregister_optimization_section(registration.section)


@contextlib.contextmanager
def registered(registration: Registration) -> Iterator[Registration]:
    """Registered for the block only: a test's optimization must not outlive the test."""
    register(registration)
    try:
        yield registration
    finally:
        unregister(registration.name)


def registrations() -> list[Registration]:
    """In registration order: the ablation arms' order in the plan and the report."""
    return list(_registered.values())


def applied_order() -> list[Registration]:
    return sorted(_registered.values(), key=lambda r: r.applied_last)


def ablation_arms() -> tuple[str, ...]:
    return tuple(_registered)


def arms() -> dict[str, tuple[str, ...]]:
    """Arm name -> the optimizations it enables, in application order."""
    return {
        BASELINE: (),
        OPTIMIZED: tuple(r.name for r in applied_order()),
        **{name: (name,) for name in _registered},
    }


def arm_order() -> tuple[str, ...]:
    return (BASELINE, OPTIMIZED, *_registered)


def arm_color(arm: str) -> str | None:
    if arm in MAIN_ARM_COLORS:
        return MAIN_ARM_COLORS[arm]
    registration = _registered.get(arm)
    return registration.color if registration else None


def evidence_rows(name: str) -> EvidenceRows | None:
    registration = _registered.get(name)
    return registration.evidence_rows if registration else None


def seed_name(name: str) -> str:
    """'KernelOptimizer (kernel)' for a registered optimization, the name itself otherwise."""
    registration = _registered.get(name)
    return f"{registration.seed_name} ({name})" if registration else name


def build_stack(config: Config, arm: str, device: torch.device) -> list[Optimization]:
    """The optimizations of `arm`, in application order (the default `--stack`)."""
    table = arms()
    if arm not in table:
        raise ValueError(f"unknown arm {arm!r} (choose from {', '.join(table)})")
    return [
        r.build(r.settings_of(config), config, device)
        for r in applied_order()
        if r.name in table[arm]
    ]
