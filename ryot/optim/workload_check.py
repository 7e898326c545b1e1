"""Before any run: the workload the config names can be trained, and every optimization the
config turns on can apply to it.

Every way a team's model or data can be wrong is found here, before a file is written: a usage
error (exit 2, one line naming the key and the value), never a DEBUG verdict after every run
failed, and never an optimization that silently did nothing.

- Token files (data.source: tokens) are read here, in the parent: Ryot's own code (missing or
  unreadable files, a token id past model.vocab_size, fewer tokens than one batch needs).
- Ryot's model is sized on the meta device first (a huge config must not be built), then built
  once for the optimizations' applicability.
- A factory's model is the team's code: it is built, probed (output shape, causality) and
  checked against the optimizations in a throwaway process with fresh cache folders, like a
  --stack (ryot.optim.stack_spec): its import must not warm anything the workers' clocks
  would then never see. That process reports the parameter count; the memory check follows.

    python -m ryot.optim.workload_check DEVICE < CONFIG.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from ryot.bench.sizing import check_fits
from ryot.config import Config, ConfigError, config_from_dict
from ryot.osutil import fresh_caches


class WorkloadError(ValueError):
    """The model or data cannot be trained, or an optimization cannot apply: one line."""


def check_workload(config: Config, source: str, device: torch.device) -> int:
    """Check the data, the model and the optimizations' applicability; the parameter count.
    ModelTooLarge (ryot.bench.sizing) or WorkloadError at the first problem."""
    if config.data.source == "tokens":
        from ryot.bench.tokens import TokenDataError, check

        try:
            check(config)
        except TokenDataError as exc:
            raise WorkloadError(f"{source}: {exc}") from None
    if not config.model.is_factory:
        count = check_fits(config, source, device)  # on the meta device: nothing allocated
        _check_model_here(config, device, source)
        return count
    count = _check_factory_process(config, device, source)
    return check_fits(config, source, device, count)


def _check_model_here(config: Config, device: torch.device, source: str) -> int:
    """Build the model (the factory's after its probes) and ask each enabled optimization
    whether it applies; the parameter count."""
    from ryot.bench.workload import build_model
    from ryot.optim.applicability import inapplicable

    if config.model.is_factory:
        from ryot.bench.factory import FactoryError, check_model

        try:
            model = build_model(config.model)
            check_model(model, config.model)
        except FactoryError as exc:
            raise WorkloadError(f"{source}: {exc}") from None
    else:
        torch.manual_seed(config.training.seed)
        model = build_model(config.model)
    problem = inapplicable(config, model, device)
    if problem is not None:
        raise WorkloadError(f"{source}: {problem}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _check_factory_process(config: Config, device: torch.device, source: str) -> int:
    command = [sys.executable, "-m", "ryot.optim.workload_check", str(device), source]
    timeout = config.measurement.worker_timeout_s
    with fresh_caches(prefix="ryot-model-check-") as caches:
        try:
            proc = subprocess.run(
                command,
                input=json.dumps(config.to_dict()),
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                env={**os.environ, **caches, "PYTHONIOENCODING": "utf-8"},
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise WorkloadError(
                f"{source}: model.factory = {config.model.factory}: building and checking the "
                f"model took over {timeout:g} s (measurement.worker_timeout_s)"
            ) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        fallback = f"{source}: model.factory = {config.model.factory}: its check exited "
        raise WorkloadError(lines[-1] if lines else fallback + str(proc.returncode))
    try:
        return int(json.loads(proc.stdout.strip().splitlines()[-1])["num_parameters"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise WorkloadError(
            f"{source}: model.factory = {config.model.factory}: its check printed no "
            "parameter count (does the module print to stdout on import?)"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """The throwaway process of check_workload: a JSON line with the parameter count and exit
    0, or one line on stderr and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m ryot.optim.workload_check DEVICE SOURCE", file=sys.stderr)
        return 2
    device, source = torch.device(argv[0]), argv[1]
    import ryot.optim  # noqa: F401  registers the optimizations' config sections

    factory = "?"
    try:
        config = config_from_dict(json.loads(sys.stdin.read()), source, snapshot=True)
        factory = config.model.factory
        count = _check_model_here(config, device, source)
    except (WorkloadError, ConfigError) as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return 2
    except Exception as exc:  # the team's code may fail in any way: still one line
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        print(f"{source}: model.factory = {factory}: {detail}", file=sys.stderr)
        return 2
    print(json.dumps({"num_parameters": count}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
