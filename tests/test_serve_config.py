"""The optional `serving:` config section: defaults, strict keys and values."""

from __future__ import annotations

import pytest

from ryot.config import ConfigError, ServingConfig, config_from_dict, load_config


def test_section_is_optional_and_shipped_configs_fit_their_model():
    assert config_from_dict({}).serving == ServingConfig()
    for path in ("configs/smoke.yaml", "configs/stage3a.yaml"):
        config = load_config(path)
        s = config.serving
        assert s.prompt_len + s.max_new_tokens <= config.model.max_seq_len, path
        assert s.concurrency <= s.requests and s.max_batch >= 1


@pytest.mark.parametrize(
    "section, message",
    [
        ({"max_batchh": 4}, "unknown key 'serving.max_batchh'"),
        ({"max_batch": 0}, "serving.max_batch = 0 must be in [1, 1024]"),
        ({"max_batch": 2.5}, "serving.max_batch: expected an integer, got 2.5"),
        ({"max_wait_ms": -1}, "serving.max_wait_ms = -1.0 must be in [0, 10000]"),
        ({"min_batching_gain": "4x"}, "serving.min_batching_gain: expected a number, got '4x'"),
        ({"requests": True}, "serving.requests: expected an integer, got True"),
        ({"max_body_bytes": 100}, "serving.max_body_bytes = 100 must be in [1024, 1073741824]"),
        ({"max_body_bytes": 1.5e6}, "serving.max_body_bytes: expected an integer, got 1500000.0"),
        ("yes", "serving: expected a mapping of keys"),
    ],
)
def test_bad_serving_values_are_one_line_errors(section, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"serving": section}, "x.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)
