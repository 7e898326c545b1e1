"""comparison.json's contract (schema 4.1, SCHEMA_VERSION): the seed plan's fields plus the
workload, measurements, criteria, runs. The experiment writes it; the report reads only it. The
schemas of older versions are kept beside it, so the files they describe still validate."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

# One home: the version the typed model (ryot.comparison) upgrades every older file to.
from ryot.comparison.upgrade import SCHEMA_VERSION

SCHEMA_FILE = "comparison.schema.json"


def load_schema(version: str | None = None) -> dict[str, Any]:
    """The JSON schema of comparison.json: this ryot's (SCHEMA_VERSION), or an older one kept
    beside it (comparison.schema.2.0.json, 3.0, 4.0) so that files written before still
    validate."""
    name = SCHEMA_FILE if version in (None, SCHEMA_VERSION) else f"comparison.schema.{version}.json"
    schema = resources.files("ryot.report").joinpath(name)
    if not schema.is_file():
        raise ValueError(f"no schema for comparison.json schema_version {version!r}")
    return json.loads(schema.read_text(encoding="utf-8"))
