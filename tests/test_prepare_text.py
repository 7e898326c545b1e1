"""Tests for `ryot prepare-text` (ryot.bench.prepare_text): the split rule, the file order,
meta.json, byte-identical reruns, and errors that leave nothing half-written."""

from __future__ import annotations

import argparse
import errno
import hashlib
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest

from ryot.bench import prepare_text as prep
from ryot.bench.prepare_text import PrepareTextError, prepare_text, stdlib_sources
from ryot.errors import UsageError

NAMES = [f"pkg{i % 3}/mod_{i:02d}.py" for i in range(23)]


def make_sources(root: Path) -> list[Path]:
    """23 files in three folders, each with its own content, returned in shuffled order."""
    paths = []
    for i, name in enumerate(NAMES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"# file {name}\nx = {i}\n".encode() + "é\n".encode())
        paths.append(path)
    paths[5].write_bytes(bytes(range(256)))  # every byte value is a token below 256
    random.Random(0).shuffle(paths)
    return paths


def read_tokens(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint16)


def test_split_rule_and_sorted_order(tmp_path: Path):
    sources = make_sources(tmp_path / "src")
    prepare_text(tmp_path / "out", sources)
    ordered = sorted(NAMES)
    train = [n for i, n in enumerate(ordered) if i % 10 != 9]
    val = [n for i, n in enumerate(ordered) if i % 10 == 9]
    assert val == [ordered[9], ordered[19]]
    for split, names in (("train", train), ("val", val)):
        expected = b"".join((tmp_path / "src" / n).read_bytes() for n in names)
        tokens = read_tokens(tmp_path / "out" / f"{split}.bin")
        assert tokens.tolist() == list(expected)
    all_tokens = np.concatenate(
        [read_tokens(tmp_path / "out" / f) for f in ("train.bin", "val.bin")]
    )
    assert all_tokens.max() == 255 and all_tokens.min() == 0


def test_meta_json(tmp_path: Path):
    meta = prepare_text(tmp_path / "out", make_sources(tmp_path / "src"))
    saved = json.loads((tmp_path / "out" / "meta.json").read_text(encoding="utf-8"))
    assert saved == meta
    assert meta["vocab_size"] == 256 and meta["dtype"] == "uint16"
    assert meta["files"] == 23 and meta["python"]
    listing = "\n".join(sorted(NAMES)).encode("utf-8")
    assert meta["files_sha256"] == hashlib.sha256(listing).hexdigest()
    assert "23 files under" in meta["source"]
    for split, num_files in (("train", 21), ("val", 2)):
        data = (tmp_path / "out" / f"{split}.bin").read_bytes()
        assert meta[split] == {
            "files": num_files,
            "tokens": len(data) // 2,
            "sha256": hashlib.sha256(data).hexdigest(),
        }


def test_rerun_gives_identical_bytes(tmp_path: Path):
    sources = make_sources(tmp_path / "src")
    prepare_text(tmp_path / "a", sources)
    prepare_text(tmp_path / "b", list(reversed(sources)))
    prepare_text(tmp_path / "a", sources)  # over its own earlier output
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "meta.json",
        "train.bin",
        "val.bin",
    ]


def test_the_output_is_read_by_the_token_workload(tmp_path: Path):
    from ryot.bench.tokens import check
    from ryot.config import config_from_dict

    meta = prepare_text(tmp_path / "out", make_sources(tmp_path / "src"))
    config = config_from_dict({
        "model": {"vocab_size": 256, "max_seq_len": 7},
        "data": {"source": "tokens", "path": str(tmp_path / "out"), "num_val_samples": 2},
        "training": {"batch_size": 2},
        "measurement": {"curve_samples": 2},
    })  # fmt: skip
    files = check(config)["files"]
    for split in ("train", "val"):
        assert files[split]["sha256"] == meta[split]["sha256"]
        assert files[split]["tokens"] == meta[split]["tokens"]


def test_stdlib_sources():
    sources = stdlib_sources()
    assert len(sources) > 100
    root = Path(prep.sysconfig.get_paths()["stdlib"])
    names = [p.relative_to(root).as_posix() for p in sources]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert "os.py" in names and "json/__init__.py" in names
    assert all(n.endswith(".py") for n in names)
    for name in names:
        parts = set(name.split("/")[:-1])
        assert not parts & {"test", "tests", "idlelib", "turtledemo", "site-packages"}, name


def test_too_few_sources(tmp_path: Path):
    with pytest.raises(PrepareTextError, match="sources: 9 files; .* at least 10"):
        prepare_text(tmp_path / "out", make_sources(tmp_path / "src")[:9])
    assert not (tmp_path / "out").exists()


def test_out_is_a_file(tmp_path: Path):
    out = tmp_path / "taken"
    out.write_text("x", encoding="utf-8")
    with pytest.raises(PrepareTextError) as info:
        prepare_text(out, make_sources(tmp_path / "src"))
    assert str(info.value) == f"--out = {out}: exists and is not a folder"
    assert out.read_text(encoding="utf-8") == "x"


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    sources = make_sources(tmp_path / "src")
    out = tmp_path / "new" / "deeper"
    real_temp, calls = prep._temp, []

    def full_disk(folder, name):
        calls.append(name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_temp(folder, name)

    monkeypatch.setattr(prep, "_temp", full_disk)
    with pytest.raises(PrepareTextError) as info:
        prepare_text(out, sources)
    assert str(info.value) == f"--out = {out}: cannot write there (no space left on device)"
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]  # both new folders removed


def test_a_failed_rerun_keeps_the_earlier_files(tmp_path: Path):
    sources = make_sources(tmp_path / "src")
    out = tmp_path / "out"
    prepare_text(out, sources)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    sources[3].unlink()
    with pytest.raises(PrepareTextError, match=f"sources: cannot read {sources[3]}"):
        prepare_text(out, sources)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # and no temp file


def test_command(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(prep, "stdlib_sources", lambda: make_sources(tmp_path / "src"))
    parser = argparse.ArgumentParser()
    prep.add_arguments(parser)
    assert parser.parse_args([]).out == Path("data/stdlib-text")
    out = tmp_path / "dätä"
    stream = io.StringIO()
    assert prep.run(parser.parse_args(["--out", str(out)]), stream) == 0
    text = stream.getvalue()
    text.encode("ascii")  # only ASCII, whatever the path
    lines = text.splitlines()
    assert len(lines) == 2
    assert "23 files" in lines[0] and "train.bin" in lines[0] and "val.bin" in lines[0]
    assert "data.source: tokens" in lines[1] and "model.vocab_size: 256" in lines[1]
    assert "data.path: " in lines[1]
    assert (out / "meta.json").is_file()

    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        prep.run(parser.parse_args(["--out", str(tmp_path / "file")]), stream)
