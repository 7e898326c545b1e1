"""The worker's job spec: what the parent writes is what the worker reads."""

from __future__ import annotations

import json
from pathlib import Path

from ryot.train.job import JobSpec


def test_a_job_spec_round_trips_through_its_json(tmp_path):
    spec = JobSpec(label="run 2", arm="optimized", config={"name": "smoke"}, device="cpu",
                   result=tmp_path / "r.json", checkpoint=tmp_path / "o.pt", checkpoint_every=3,
                   stop_after_epoch=1, stack_factory="tests.sabotage:nan_stack")  # fmt: skip
    assert JobSpec.from_json(spec.to_json()) == spec
    data = json.loads(spec.to_json())
    assert data["result"] == str(tmp_path / "r.json") and data["resume"] is None


def test_keys_a_job_leaves_out_take_the_defaults():
    spec = JobSpec.from_json(json.dumps({
        "label": "run 1", "arm": "baseline", "config": {}, "device": "cpu", "result": "r.json",
        "checkpoint": "", "unknown": 1,
    }))  # fmt: skip
    assert spec.result == Path("r.json") and spec.checkpoint is None and spec.resume is None
    assert spec.config_source == "<job>" and spec.stack_factory == "ryot.optim:build_stack"
    assert spec.checkpoint_every is None and spec.stop_after_epoch is None
