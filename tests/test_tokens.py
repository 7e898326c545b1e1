"""Tests for the team's token files (ryot.bench.tokens): windows, validation rows, the unigram
reference, the data record, and one one-line error per way a folder can be wrong."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ryot.bench import tokens
from ryot.bench.tokens import TokenDataError
from ryot.bench.workload import Reference, TrainSplit, Workload
from ryot.config import config_from_dict

SEQ_LEN, VOCAB = 7, 50  # windows of 8 tokens


def write_tokens(folder: Path, train, val, dtype=np.uint16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.asarray(train, dtype=dtype).tofile(folder / "train.bin")
    np.asarray(val, dtype=dtype).tofile(folder / "val.bin")
    return folder


def make_config(folder: Path, vocab=VOCAB, seq_len=SEQ_LEN, batch_size=4, num_val=4, **data):
    return config_from_dict({
        "model": {"vocab_size": vocab, "max_seq_len": seq_len},
        "data": {"source": "tokens", "path": str(folder), "num_val_samples": num_val, **data},
        "training": {"batch_size": batch_size},
        "measurement": {"curve_samples": min(num_val, 32)},
    })  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_tokens(tmp_path / "data", rng.integers(0, VOCAB, 1000), np.arange(100) % VOCAB)


def test_windows_are_a_pure_function_of_seed_step_and_micro(folder: Path):
    train = tokens.load(make_config(folder)).train
    a = train.batch(3, 1, 16, 2, 42)
    assert a.dtype == torch.int64 and a.shape == (16,)
    assert torch.equal(a, tokens.load(make_config(folder)).train.batch(3, 1, 16, 2, 42))
    assert 0 <= int(a.min()) and int(a.max()) <= 1000 - (SEQ_LEN + 1)
    assert not torch.equal(a, train.batch(4, 1, 16, 2, 42))  # another step
    assert not torch.equal(a, train.batch(3, 0, 16, 2, 42))  # another micro-batch
    assert not torch.equal(a, train.batch(3, 1, 16, 2, 43))  # another seed


def test_windows_reach_both_ends_of_the_file(tmp_path: Path):
    folder = write_tokens(tmp_path, np.zeros(16), np.zeros(32))
    train = tokens.load(make_config(folder, batch_size=2)).train
    seen = torch.cat([train.batch(s, 0, 64, 1, 1) for s in range(4)])
    assert set(seen.tolist()) == set(range(16 - (SEQ_LEN + 1) + 1))


def test_rows_are_the_files_windows(folder: Path):
    train = tokens.load(make_config(folder)).train
    offsets = train.batch(0, 0, 5, 1, 7)
    rows = train.rows(offsets)
    data = np.fromfile(folder / "train.bin", dtype=np.uint16)
    assert rows.dtype == torch.int64 and rows.shape == (5, SEQ_LEN + 1)
    for row, start in zip(rows.tolist(), offsets.tolist(), strict=True):
        assert row == data[start : start + SEQ_LEN + 1].tolist()


def test_val_windows_are_fixed_disjoint_and_evenly_spaced(folder: Path):
    val = tokens.load(make_config(folder, num_val=4)).val
    # 100 tokens, 4 windows of 8: starts 0, 25, 50, 75 (val.bin holds i % 50 at i)
    assert val.dtype == torch.int64 and val.shape == (4, SEQ_LEN + 1)
    assert val[:, 0].tolist() == [0, 25, 0, 25]
    expected = [[(start + j) % VOCAB for j in range(SEQ_LEN + 1)] for start in (0, 25, 50, 75)]
    assert val.tolist() == expected
    assert torch.equal(val, tokens.load(make_config(folder, num_val=4)).val)
    starts = tokens.val_offsets(100, 12)  # as many windows as fit: still disjoint
    assert np.all(np.diff(starts) == 8) and starts[-1] + 8 <= 100


def test_unigram_loss_matches_a_hand_computation(tmp_path: Path):
    # train: id 0 three times, id 1 once, vocab 3 -> add-one p = (4, 2, 1) / 7
    folder = write_tokens(tmp_path, [0, 0, 1, 0], [0, 1, 2, 1])
    data = tokens.load(make_config(folder, vocab=3, seq_len=3, batch_size=1, num_val=1))
    nll = [-math.log(2 / 7), -math.log(1 / 7), -math.log(2 / 7)]  # targets 1, 2, 1
    assert data.unigram_loss == pytest.approx(sum(nll) / 3)
    assert data.unigram_per_position == pytest.approx(nll)
    assert (
        data.description == f"token files {folder} (uint16): train.bin 4 tokens, val.bin 4 tokens"
    )


def test_data_record_names_the_files_and_their_hashes(folder: Path):
    config = make_config(folder)
    record = tokens.load(config).data_record
    assert record == tokens.check(config)
    assert record["source"] == "tokens" and record["path"] == str(folder)
    assert record["dtype"] == "uint16"
    assert record["files"]["train"]["name"] == "train.bin"
    assert record["files"]["train"]["tokens"] == 1000
    assert record["files"]["val"]["tokens"] == 100
    digest = hashlib.sha256((folder / "val.bin").read_bytes()).hexdigest()
    assert record["files"]["val"]["sha256"] == digest


def test_hash_changes_with_content(folder: Path):
    before = tokens.check(make_config(folder))["files"]
    data = np.fromfile(folder / "train.bin", dtype=np.uint16)
    data[500] = (data[500] + 1) % VOCAB
    data.tofile(folder / "train.bin")
    after = tokens.check(make_config(folder))["files"]
    assert after["train"]["sha256"] != before["train"]["sha256"]
    assert after["val"] == before["val"]


def test_a_file_larger_than_a_chunk_is_scanned_whole(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tokens, "CHUNK_TOKENS", 64)
    train = np.zeros(1000)
    train[700] = VOCAB  # in the eleventh chunk
    folder = write_tokens(tmp_path, train, np.zeros(100))
    with pytest.raises(TokenDataError, match=r"token id 50 \(at token 700\)"):
        tokens.check(make_config(folder))
    train[700] = 3
    write_tokens(tmp_path, train, np.zeros(100))
    workload = tokens.load(make_config(folder))
    assert workload.data_record["files"]["train"]["tokens"] == 1000
    # the counts saw every chunk: one 3 among 999 zeros
    expected = -math.log((999 + 1) / (1000 + VOCAB))
    assert workload.unigram_loss == pytest.approx(expected)


def test_uint32_tokens(tmp_path: Path):
    vocab = 70_000  # beyond uint16
    folder = write_tokens(tmp_path, np.arange(100) + 69_900, np.arange(64) + 69_000, np.uint32)
    workload = tokens.load(make_config(folder, vocab=vocab, dtype="uint32"))
    assert workload.val[0].tolist() == list(range(69_000, 69_008))
    rows = workload.train.rows(torch.tensor([0, 92]))
    assert rows[1].tolist() == list(range(69_992, 70_000))
    assert workload.data_record["dtype"] == "uint32"
    assert "(uint32)" in workload.description


def check_error(config, expected: str) -> None:
    with pytest.raises(TokenDataError) as info:
        tokens.check(config)
    message = str(info.value)
    assert "\n" not in message
    assert message == expected


def test_missing_folder_and_files(tmp_path: Path):
    missing = tmp_path / "nowhere"
    check_error(make_config(missing), f"data.path = {missing}: no such folder")
    write_tokens(tmp_path, np.zeros(100), np.zeros(100))
    (tmp_path / "train.bin").unlink()
    check_error(make_config(tmp_path), f"data.path = {tmp_path}: train.bin not found")
    (tmp_path / "train.bin").mkdir()
    check_error(make_config(tmp_path), f"data.path = {tmp_path}: train.bin is not a file")


def test_unreadable_file(folder: Path):
    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    (folder / "val.bin").chmod(0)
    try:
        check_error(
            make_config(folder),
            f"data.path = {folder}: val.bin is not readable (Permission denied)",
        )
    finally:
        (folder / "val.bin").chmod(0o644)


def test_empty_and_ragged_files(tmp_path: Path):
    write_tokens(tmp_path, np.zeros(100), [])
    check_error(make_config(tmp_path), f"data.path = {tmp_path}: val.bin is empty")
    (tmp_path / "train.bin").write_bytes(b"\0" * 1001)
    check_error(
        make_config(tmp_path),
        f"data.path = {tmp_path}: train.bin is 1,001 bytes, not a whole number of uint16 tokens",
    )
    write_tokens(tmp_path, np.zeros(25), np.zeros(25), np.uint16)  # 50 bytes: 12.5 uint32
    check_error(
        make_config(tmp_path, dtype="uint32"),
        f"data.path = {tmp_path}: train.bin is 50 bytes, not a whole number of uint32 tokens",
    )


def test_token_id_out_of_range(tmp_path: Path):
    write_tokens(tmp_path, [1] * 12 + [300] + [1] * 87, np.zeros(100))
    check_error(
        make_config(tmp_path, vocab=256),
        f"data.path = {tmp_path}: train.bin holds token id 300 (at token 12) "
        ">= model.vocab_size = 256",
    )


def test_files_too_short(tmp_path: Path):
    write_tokens(tmp_path, np.zeros(1000), np.zeros(5000))
    check_error(
        make_config(tmp_path, seq_len=128, batch_size=16),
        f"data.path = {tmp_path}: train.bin has 1,000 tokens; one batch needs "
        "training.batch_size x (model.max_seq_len + 1) = 16 x 129 = 2,064",
    )
    write_tokens(tmp_path, np.zeros(3000), np.zeros(5000))
    check_error(
        make_config(tmp_path, seq_len=128, batch_size=16, num_val=128),
        "data.num_val_samples = 128: val.bin has 5,000 tokens; 128 windows of "
        "model.max_seq_len + 1 = 129 need 16,512",
    )


def test_load_raises_the_same_error(tmp_path: Path):
    with pytest.raises(TokenDataError, match="no such folder"):
        tokens.load(make_config(tmp_path / "nowhere"))


def test_unreadable_file_as_root_too(folder: Path, monkeypatch):
    # the same message where chmod cannot make a file unreadable (root): open() refused
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.name == "val.bin":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    check_error(
        make_config(folder), f"data.path = {folder}: val.bin is not readable (Permission denied)"
    )


def test_the_parts_make_a_workload(folder: Path):
    # how ryot.bench.workload wraps them (this module cannot import it: it imports this one)
    data = tokens.load(make_config(folder))
    reference = Reference(
        data.description, data.unigram_loss, unigram_per_position=data.unigram_per_position
    )
    workload = Workload(data.train, data.val, reference, data.data_record)
    split: TrainSplit = workload.train
    assert split.rows(split.batch(0, 0, 2, 1, 0)).shape == (2, SEQ_LEN + 1)
    assert math.isnan(reference.context_learned(1.0))  # no Bayes floor for real text
