"""ryot/experiment/session.py's publish step: comparison.json is written once per run, by the
CLI's path (here) as by the pytest plugin's (tests/test_pytest_plugin.py, which counts too)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from ryot import cli, osutil
from ryot.report.schema import load_schema
from tests.conftest import SMOKE


def count_writes(monkeypatch, name: str = "comparison.json") -> list[Path]:
    """Every write of a file called `name` through ryot.osutil, the writer of every artifact
    (write_json_atomic goes through write_text_atomic), from now on: the list of paths."""
    writes: list[Path] = []
    real = osutil.write_text_atomic

    def counting(text: str, path: Path) -> None:
        if Path(path).name == name:
            writes.append(Path(path))
        real(text, path)

    monkeypatch.setattr(osutil, "write_text_atomic", counting)
    return writes


def test_a_cli_job_writes_comparison_json_once(in_process, tmp_path, monkeypatch):
    writes = count_writes(monkeypatch)
    out = tmp_path / "run"
    cli.main(["stage3a", "--config", SMOKE, "--out", str(out), "--repeats", "1"])
    assert len(writes) == 1
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert data["verdict"] is not None and data["job_wall_s"] > 0
    assert (data["tests"], data["benchmarks"]) == (None, None)  # the CLI runs no test suite
    runs = {r["index"]: r for r in data["runs"]}
    assert {runs[i]["role"] for i in data["last_runs"].values()} == {"pair"}
    jsonschema.Draft202012Validator(load_schema()).validate(data)
