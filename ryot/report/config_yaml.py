"""The resolved config as YAML text, for the report's environment section."""

from __future__ import annotations

from typing import Any

import yaml

SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: 20x faster


def config_yaml(cfg: dict[str, Any]) -> str:
    """The config in its own key order, non-ASCII kept, lines wrapped at 100 columns."""
    return yaml.dump(cfg, Dumper=SAFE_DUMPER, sort_keys=False, allow_unicode=True, width=100)
