"""Shared fixtures for the library's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryot.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session")
def smoke_config() -> Config:
    return load_config(CONFIGS / "smoke.yaml")
