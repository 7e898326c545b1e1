"""Options for the whole tree: `pytest validation/ [--gpu] [--ryot-config PATH] ...`."""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("ryot", "Ryot Stage 3a validation")
    group.addoption("--gpu", action="store_true", help="train on CUDA (fails at once without it)")
    group.addoption(
        "--ryot-config", default="configs/stage3a.yaml", help="config YAML (default: %(default)s)"
    )
    group.addoption(
        "--ryot-out", default="reports/stage3a", help="run folder to write (default: %(default)s)"
    )
    group.addoption(
        "--ryot-repeats", type=int, default=None, help="interleaved pairs (default: the config's)"
    )
    group.addoption(
        "--ryot-history",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="earlier run folder for the report's history (repeatable)",
    )
