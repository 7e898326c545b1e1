"""The scale-out acceptance suite (`pytest scaleout/`) shares the unit suite's smoke config."""

from tests.conftest import smoke_config  # noqa: F401  (a fixture, used by name)
