"""The compile acceptance suite (`pytest compiled/`) shares the unit suite's smoke config."""

from tests.conftest import smoke_config  # noqa: F401  (a fixture, used by name)
