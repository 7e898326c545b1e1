"""One place to add an optimization: a new one registered from this file alone is configured,
trained in the optimized arm, ablated in its own arm, charted and evidenced, and gone after."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import pytest
import torch

from ryot.config import ConfigError, config_from_dict
from ryot.console import Console
from ryot.experiment.plan import plan_runs
from ryot.experiment.runners import InProcessRunner
from ryot.experiment.stage3a import run_stage3a
from ryot.optim import build_stack, registry
from ryot.optim.base import Optimization
from ryot.report.html import render_report

CPU = torch.device("cpu")
COLOR = "#ff00aa"  # no built-in arm uses it: its presence in the report is the chart's


@dataclass(frozen=True)
class CountsBatchesConfig:
    every: int = 1


class CountsBatches(Optimization):
    """Changes nothing; counts the batches it saw, which is its measured effect."""

    name = "counts_batches"

    def __init__(self, device, every: int):
        super().__init__(device)
        self.every = every
        self.evidence.settings = {"every": every}
        self.seen = 0

    @property
    def enabled(self) -> bool:
        return True

    def transform_batch(self, step, inputs, targets):
        self.seen += 1
        self.evidence.applied = [f"counted batches (every {self.every})"]
        self.evidence.measurements["batches_seen"] = self.seen
        return inputs, targets


def counted_rows(m, numbers):
    return [("Batches seen", numbers.fmt_int(m.pop("batches_seen", None)))]


COUNTS_BATCHES = registry.Registration(
    name="counts_batches",
    seed_name="BatchCounter",
    cls=CountsBatches,
    build=lambda settings, config, device: CountsBatches(device, settings.every),
    section="batch_counter",
    settings=CountsBatchesConfig,
    color=COLOR,
    evidence_rows=counted_rows,
)


@pytest.fixture
def counts_batches():
    with registry.registered(COUNTS_BATCHES) as registration:
        yield registration


def test_its_config_section_is_read_and_checked(counts_batches, smoke_config):
    data = smoke_config.to_dict()
    data["optimizations"]["batch_counter"] = {"every": 3}
    config = config_from_dict(data, "test.yaml")
    assert config.optimizations.batch_counter == CountsBatchesConfig(every=3)
    assert config_from_dict(config.to_dict()) == config  # round-trips
    data["optimizations"]["batch_counter"] = {"evrey": 3}
    with pytest.raises(ConfigError, match="optimizations.batch_counter.evrey"):
        config_from_dict(data, "test.yaml")


def test_it_joins_the_arms_and_the_plan(counts_batches, smoke_config):
    arms = registry.arms()
    assert arms["counts_batches"] == ("counts_batches",)
    assert arms["optimized"][-1] == "kernel"  # still applied last, after the new one
    assert "counts_batches" in arms["optimized"]
    names = [type(o).__name__ for o in build_stack(smoke_config, "optimized", CPU)]
    assert names == ["SemanticCompressor", "InferenceScalingEngine", "CountsBatches",
                     "KernelOptimizer"]  # fmt: skip
    plan = plan_runs(smoke_config, ["baseline", "optimized"], 1, ablation=True)
    assert [j.arm for j in plan if j.role == "ablation"][-1] == "counts_batches"


def test_it_is_trained_ablated_charted_and_evidenced(counts_batches, smoke_config, tmp_path):
    measurement = replace(smoke_config.measurement, repeats=1, ablation=True)
    config = replace(smoke_config, measurement=measurement)
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    outcome = run_stage3a(
        config, "smoke.yaml", out, CPU, ["baseline", "optimized"], InProcessRunner(CPU),
        Console(io.StringIO()),
    )  # fmt: skip
    c = outcome.comparison
    steps = config.total_steps
    trained = {e["name"]: e for e in c["evidence"]["optimized"]}
    assert trained["counts_batches"]["measurements"] == {"batches_seen": steps}
    assert trained["counts_batches"]["effective"]
    alone = c["evidence"]["counts_batches"]
    assert [e["name"] for e in alone] == ["counts_batches"]
    assert "counts_batches" in c["ablation"]
    ablation_runs = [r for r in c["runs"] if r["role"] == "ablation"]
    assert [r["arm"] for r in ablation_runs][-1] == "counts_batches"
    html = render_report(c)
    assert COLOR in html  # its colour in the ablation chart
    assert "Batches seen" in html and f">{steps}<" in html.replace(" ", "")


def test_it_is_gone_after_the_block(smoke_config):
    with registry.registered(COUNTS_BATCHES):
        pass
    assert "counts_batches" not in registry.arms()
    data = smoke_config.to_dict()
    data["optimizations"]["batch_counter"] = {"every": 3}
    with pytest.raises(ConfigError, match="unknown key 'optimizations.batch_counter'"):
        config_from_dict(data, "test.yaml")
    # a run's own snapshot with that section still loads (a user's optimization, old run)
    assert config_from_dict(data, "run", snapshot=True).optimizations.batch_counter == {"every": 3}


def test_a_second_registration_of_a_name_is_refused(counts_batches):
    with pytest.raises(ValueError, match="already registered"):
        registry.register(COUNTS_BATCHES)
