"""Tests for ryot.config: the shipped configs, the strict loader's errors, and fuzzing."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ryot.config import (
    Config,
    ConfigError,
    ModelConfig,
    OptimizationsConfig,
    config_from_dict,
    load_config,
)
from ryot.optim.kernel.settings import KernelOptimizerConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))

FUZZ = settings(max_examples=200, deadline=None)
# The file-writing fuzzers reuse pytest's tmp_path: each example rewrites the same file.
FUZZ_FILES = settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- helpers


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line(msg: str) -> None:
    assert msg, "empty error message"
    assert msg.splitlines() == [msg], f"message is not one line: {msg!r}"


def load_error(path: Path, *fragments: str) -> str:
    """load_config(path) must raise a one-line ConfigError naming the file and `fragments`."""
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    msg = str(excinfo.value)
    assert_one_line(msg)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


def leaf_paths(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in d.items():
        if isinstance(value, dict):
            paths.extend(leaf_paths(value, (*prefix, key)))
        else:
            paths.append((*prefix, key))
    return paths


def get_at(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        d = d[key]
    return d


def replaced(d: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(d)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


DEFAULT_DICT = Config().to_dict()
LEAVES = leaf_paths(DEFAULT_DICT)


# ---------------------------------------------------------------- shipped configs


def test_shipped_configs_are_found():
    names = {p.name for p in SHIPPED}
    assert {"stage3a.yaml", "smoke.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads_and_round_trips(path: Path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_stage3a_seed_values():
    cfg = load_config(CONFIG_DIR / "stage3a.yaml")
    m, t = cfg.model, cfg.training
    assert (m.vocab_size, m.embed_dim, m.num_heads, m.num_layers) == (2048, 512, 8, 4)
    assert (m.ff_dim, m.max_seq_len) == (1024, 128)
    assert t.batch_size == 16
    assert (t.num_epochs, t.steps_per_epoch) == (10, 10)
    assert cfg.total_steps == 100
    assert isinstance(t.learning_rate, float)
    # warmup then cosine decay, tuned for the baseline (docs/tuning.md)
    assert 0 < t.lr_warmup_steps < cfg.total_steps and 0 < t.lr_min_ratio < 1
    assert t.seed == 42
    assert cfg.data.seed == 42


def test_defaults_match_stage3a_model():
    # The dataclass defaults are the seed model: ModelConfig() is what stage3a.yaml spells out.
    assert load_config(CONFIG_DIR / "stage3a.yaml").model == ModelConfig()


def test_to_dict_is_plain_nested_dict():
    d = Config().to_dict()
    assert isinstance(d["model"], dict)
    assert isinstance(d["optimizations"]["kernel_optimizer"], dict)
    assert config_from_dict(d) == Config()


def test_partial_dict_takes_defaults():
    cfg = config_from_dict({"model": {"num_layers": 2}, "optimizations": {"kernel_optimizer": {}}})
    assert cfg.model == ModelConfig(num_layers=2)
    assert cfg.optimizations == OptimizationsConfig(kernel_optimizer=KernelOptimizerConfig())
    assert cfg.training == Config().training


def test_int_is_accepted_for_float_and_stored_as_float():
    cfg = config_from_dict({"training": {"learning_rate": 1}})
    assert cfg.training.learning_rate == 1.0
    assert isinstance(cfg.training.learning_rate, float)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------- loader errors


def test_missing_file(tmp_path: Path):
    load_error(tmp_path / "nope.yaml", "not found")


def test_directory_is_not_readable(tmp_path: Path):
    load_error(tmp_path, "cannot read")


@pytest.mark.parametrize("text", ["", "# nothing here\n\n", "---\n"])
def test_empty_or_comment_only_file_is_an_error(tmp_path: Path, text: str):
    """Not "every default": that is the full 9-minute Stage 3a run, started by a typo."""
    load_error(write(tmp_path, text), "the config is empty")


@pytest.mark.parametrize(
    "text, line, key, first",
    [
        ("name: a\nname: b\n", 2, "'name'", 1),
        ("training:\n  learning_rate: 0.1\n  seed: 1\n  learning_rate: 0.2\n", 4,
         "'learning_rate'", 2),
        ("model: {vocab_size: 8, vocab_size: 9}\n", 1, "'vocab_size'", 1),
    ],
)  # fmt: skip
def test_duplicate_key_is_an_error(tmp_path: Path, text: str, line: int, key: str, first: int):
    load_error(write(tmp_path, text), f"line {line}: duplicate key {key} (first at line {first})")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model:\n  vocab_size: 8\ndata:\n  branching: 9\n",
         "data.branching = 9 exceeds model.vocab_size = 8"),
        ("model:\n  vocab_size: 16\ndata:\n  branching: 4\n  num_topics: 17\n",
         "data.num_topics = 17 exceeds model.vocab_size = 16"),
        ("data:\n  num_train_samples: 8\ntraining:\n  batch_size: 9\n",
         "training.batch_size = 9 exceeds data.num_train_samples = 8"),
        ("training:\n  num_epochs: 2\n  steps_per_epoch: 3\n  lr_warmup_steps: 7\n",
         "training.lr_warmup_steps = 7 exceeds the total steps = 6"),
        ("data:\n  num_val_samples: 8\nmeasurement:\n  curve_samples: 9\n",
         "measurement.curve_samples = 9 exceeds data.num_val_samples = 8"),
    ],
)  # fmt: skip
def test_cross_field_rules_are_checked_at_load_time(tmp_path: Path, text: str, expected: str):
    load_error(write(tmp_path, "name: x\n" + text), expected)


def test_unknown_top_level_key(tmp_path: Path):
    msg = load_error(write(tmp_path, "name: x\nnmae: y\n"), "unknown key", "'nmae'")
    assert "name" in msg  # the known keys are listed


def test_unknown_nested_key(tmp_path: Path):
    path = write(tmp_path, "model:\n  embd_dim: 512\n")
    load_error(path, "unknown key", "model.embd_dim", "embed_dim")


def test_unknown_deeply_nested_key(tmp_path: Path):
    path = write(tmp_path, "optimizations:\n  kernel_optimizer:\n    levle: 1\n")
    load_error(path, "optimizations.kernel_optimizer.levle")


def test_unknown_key_with_newline_is_one_line(tmp_path: Path):
    load_error(write(tmp_path, 'model:\n  "a\\nb": 1\n'), "unknown key", "model.a")


@pytest.mark.parametrize(
    ("text", "key", "bad"),
    [
        ("model:\n  num_layers: four\n", "model.num_layers", "'four'"),
        ('model:\n  num_layers: "4"\n', "model.num_layers", "'4'"),
        ("model:\n  num_layers: true\n", "model.num_layers", "True"),
        ("model:\n  num_layers: 4.0\n", "model.num_layers", "4.0"),
        ("model:\n  num_layers: [4]\n", "model.num_layers", "[4]"),
        ("model:\n  num_layers:\n", "model.num_layers", "None"),
        (
            "optimizations:\n  kernel_optimizer:\n    level: false\n",
            "kernel_optimizer.level",
            "False",
        ),
        ("training:\n  learning_rate: fast\n", "training.learning_rate", "'fast'"),
        ("training:\n  learning_rate: true\n", "training.learning_rate", "True"),
        ("training:\n  learning_rate: .nan\n", "training.learning_rate", "nan"),
        ("training:\n  learning_rate: .inf\n", "training.learning_rate", "inf"),
        ("measurement:\n  ablation: 1\n", "measurement.ablation", "1"),
        ("measurement:\n  ablation: 'yes please'\n", "measurement.ablation", "'yes please'"),
        ("name: 3\n", "name", "3"),
        ("data:\n  seed: 1.5\n", "data.seed", "1.5"),
    ],
)
def test_wrong_type(tmp_path: Path, text: str, key: str, bad: str):
    load_error(write(tmp_path, text), key, bad, "expected")


@pytest.mark.parametrize(
    ("text", "key", "bad"),
    [
        ("optimizations:\n  kernel_optimizer:\n    level: 7\n", "kernel_optimizer.level", "7"),
        ("optimizations:\n  kernel_optimizer:\n    level: -1\n", "kernel_optimizer.level", "-1"),
        (
            "optimizations:\n  semantic_compressor:\n    ratio: 1.0\n",
            "optimizations.semantic_compressor.ratio",
            "1.0",
        ),
        (
            "optimizations:\n  semantic_compressor:\n    score: bogus\n",
            "optimizations.semantic_compressor.score",
            "'bogus'",
        ),
        ("model:\n  vocab_size: 1\n", "model.vocab_size", "1"),
        ("model:\n  num_heads: 0\n", "model.num_heads", "0"),
        ("model:\n  dropout: -0.1\n", "model.dropout", "-0.1"),
        ("training:\n  learning_rate: 0\n", "training.learning_rate", "0.0"),
        ("training:\n  weight_decay: -1\n", "training.weight_decay", "-1.0"),
        ("measurement:\n  confidence: 1\n", "measurement.confidence", "1.0"),
    ],
)
def test_out_of_range(tmp_path: Path, text: str, key: str, bad: str):
    load_error(write(tmp_path, text), f"{key} = {bad}", "must be")


def test_embed_dim_not_divisible_by_heads(tmp_path: Path):
    path = write(tmp_path, "model:\n  embed_dim: 30\n  num_heads: 4\n")
    load_error(path, "model.embed_dim = 30", "model.num_heads = 4", "divisible")


def test_inference_scaling_min_seq_len_above_max(tmp_path: Path):
    text = (
        "model:\n  max_seq_len: 16\n"
        "optimizations:\n  inference_scaling:\n    warmup_steps: 5\n    min_seq_len: 32\n"
    )
    load_error(write(tmp_path, text), "inference_scaling.min_seq_len = 32", "max_seq_len = 16")


def test_optimization_sections_are_registered_by_ryot_optim():
    # ryot.config never imports ryot.optim: loaded alone, it knows no section and says why.
    data = "{'optimizations': {'kernel_optimizer': {}}}"
    code = f"import ryot.config as c; c.config_from_dict({data})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8")
    assert "unknown key 'optimizations.kernel_optimizer'" in done.stderr
    assert "ryot.optim, which registers them, is not imported" in done.stderr


def test_yaml_syntax_error_names_line(tmp_path: Path):
    path = write(tmp_path, "name: ok\nmodel:\n  vocab_size: 64\n   embed_dim: 32\n")
    load_error(path, "line 4", "YAML syntax error")


def test_yaml_unclosed_flow_sequence_names_line(tmp_path: Path):
    path = write(tmp_path, "name: ok\nmodel:\n  vocab_size: [1, 2\ndata: {}\n")
    load_error(path, "line 4", "YAML syntax error")


def test_yaml_python_tag_is_rejected(tmp_path: Path):
    load_error(write(tmp_path, "name: !!python/object:os.system x\n"), "line 1")


@pytest.mark.parametrize("value", ["2001-13-45", "0x_", "0b_"])
def test_yaml_values_the_parser_cannot_build(tmp_path: Path, value: str):
    # PyYAML raises a bare ValueError while constructing these (bad date, empty hex/binary).
    load_error(write(tmp_path, f"name: {value}\n"))


def test_yaml_nested_too_deep(tmp_path: Path):
    load_error(write(tmp_path, "[" * 1000 + "]" * 1000))


def test_yaml_timestamp_is_not_a_string(tmp_path: Path):
    load_error(write(tmp_path, "name: 2001-12-14\n"), "name", "expected a string")


def test_non_utf8_bytes(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    load_error(path, "UTF-8", "byte 9")


def test_top_level_list(tmp_path: Path):
    load_error(write(tmp_path, "- name\n- model\n"), "expected a mapping", "['name', 'model']")


def test_top_level_scalar(tmp_path: Path):
    load_error(write(tmp_path, "just a string\n"), "expected a mapping", "'just a string'")


@pytest.mark.parametrize("value", ["5", "[1, 2]", "text"])
def test_section_not_a_mapping(tmp_path: Path, value: str):
    load_error(write(tmp_path, f"model: {value}\n"), "model", "expected a mapping")


def test_huge_int_for_float_field(tmp_path: Path):
    huge = "1" * 400
    load_error(write(tmp_path, f"training:\n  learning_rate: {huge}\n"), "training.learning_rate")


def test_config_from_dict_source_in_message():
    with pytest.raises(ConfigError) as excinfo:
        config_from_dict({"model": {"num_layers": "four"}}, source="inline")
    msg = str(excinfo.value)
    assert_one_line(msg)
    assert msg.startswith("inline: ")
    assert "model.num_layers" in msg and "'four'" in msg


# ---------------------------------------------------------------- property tests

SECTION_KEYS = sorted({k for path in LEAVES for k in path} | {"name"})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**1000, max_value=2**1100),
    st.floats(),
    st.text(max_size=20),
)
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(SECTION_KEYS) | st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=20,
)


def checked_call(data: Any) -> Config | None:
    """config_from_dict(data) returns a Config or raises a one-line ConfigError; else fail."""
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        assert_one_line(str(exc))
        return None
    assert isinstance(cfg, Config)
    return cfg


@FUZZ
@given(nested)
def test_fuzz_arbitrary_structures(data: Any):
    checked_call(data)


@FUZZ
@given(st.dictionaries(st.sampled_from(SECTION_KEYS), nested, max_size=7))
def test_fuzz_arbitrary_sections(data: Any):
    checked_call(data)


junk = st.one_of(
    st.text(max_size=30),
    st.floats(),  # nan and +-inf included
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**1020, max_value=2**1100),
    st.integers(min_value=2**1020, max_value=2**1100).map(lambda n: -n),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers() | st.none(), max_size=3),
)


@FUZZ
@given(st.sampled_from(LEAVES), junk)
def test_fuzz_one_bad_leaf(path: tuple[str, ...], value: Any):
    data = replaced(DEFAULT_DICT, path, value)
    dotted = ".".join(path)
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        msg = str(exc)
        assert_one_line(msg)
        assert dotted in msg
        return
    # Accepted: the value is stored as given (ints widened to float for float fields).
    stored = get_at(cfg.to_dict(), path)
    if type(stored) is float and type(value) is int:
        assert stored == float(value)
    else:
        assert type(stored) is type(value) and stored == value
    if isinstance(stored, float):
        assert math.isfinite(stored)
    assert config_from_dict(cfg.to_dict()) == cfg


@FUZZ
@given(st.sampled_from(LEAVES))
def test_fuzz_one_missing_leaf_takes_its_default(path: tuple[str, ...]):
    data = copy.deepcopy(DEFAULT_DICT)
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    assert config_from_dict(data) == Config()


# fmt: off
yaml_fragments = st.sampled_from(
    [
        "name:", "model:", "training:", "optimizations:", "kernel_optimizer:",
        "level:", "vocab_size:", "learning_rate:", " ", "  ", "\n", "\t", "-", ":", "[",
        "]", "{", "}", ",", "'", '"', "#", "&a", "*a", "!!", "!!str", "!!python/name:x",
        "|", ">", "%YAML 1.1", "---", "...", "?", "<<", "1", "0", "-1", "1.5", ".nan",
        ".inf", "true", "null", "~", "0x_", "0b_", "0o7", "0x1F", "1_000", "1:30",
        "2001-12-14", "2001-13-45", "1e400", "9" * 320, "\\", "\\x", "\x00", "\x85",
        "\u2028", "\ufeff", "é", "\U0001f600",
    ]
)
# fmt: on
yaml_like = st.lists(yaml_fragments, max_size=30).map("".join)


def checked_load(path: Path) -> None:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        msg = str(exc)
        assert_one_line(msg)
        assert str(path) in msg
        return
    assert isinstance(cfg, Config)


@FUZZ_FILES
@given(st.binary(max_size=200))
def test_fuzz_load_random_bytes(tmp_path: Path, data: bytes):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    checked_load(path)


@FUZZ_FILES
@given(st.text(st.characters(codec="utf-8"), max_size=200) | yaml_like)
def test_fuzz_load_random_text(tmp_path: Path, text: str):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    checked_load(path)


def test_a_retired_key_is_an_error_naming_it_and_why(tmp_path: Path):
    path = tmp_path / "old.yaml"
    path.write_text("criteria:\n  target_slack: 0.025\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: criteria.target_slack is retired with schema 3.0")
    assert message.endswith("remove it") and "\n" not in message


def test_a_run_snapshot_with_a_retired_key_still_loads():
    """Old checkpoints and comparison.json files carry their config: they must still load."""
    old = {"criteria": {"max_loss_delta": 0.2, "target_slack": 0.025}}
    assert config_from_dict(old, "checkpoint", snapshot=True).criteria.max_loss_delta == 0.2
    with pytest.raises(ConfigError, match="target_slack is retired"):
        config_from_dict(old, "a user's config")
