"""The team's own data: a folder of nanoGPT-style `train.bin` and `val.bin` (`data.source: tokens`).

Each file is flat token ids of `data.dtype` in the machine's byte order, as nanoGPT's prepare.py
writes them. Training reads windows of `model.max_seq_len + 1` tokens at seeded random offsets
from a memmap, so a file of any size costs only the windows read; validation is fixed windows
at evenly spaced offsets of val.bin.

Both files are checked once, before any run, in one chunked pass each: a bad file must fail as
one line naming the key and the value, not as an index error in every worker. The same pass
hashes the bytes (two runs compare only on equal data) and counts the training tokens, whose
frequencies give the unigram loss every run reports beside its own. The Bayes floor of real
text is unknown, so the reference has none.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ryot.config import Config, DataConfig
from ryot.osutil import describe_os_error

DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
# Tokens per read: a few MB at a time bounds memory whatever the file's size, and is large
# enough that numpy, not the loop, sets the pace (~11M tokens scan in well under a second).
CHUNK_TOKENS = 1 << 22


class TokenDataError(ValueError):
    """A token file is missing, unreadable, malformed or too short: one line, key and value."""


@dataclass(frozen=True)
class TokenFile:
    """What one pass over a token file found."""

    name: str
    tokens: int
    sha256: str
    counts: np.ndarray | None = field(default=None, repr=False)  # (vocab_size,): train only

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "tokens": self.tokens, "sha256": self.sha256}


@dataclass(frozen=True, eq=False)
class TokenTrain:
    """train.bin as the trainer reads it: a batch is `batch_size` window offsets drawn from a
    generator seeded by (seed, step, micro), so both arms, every pair and any resumed run read
    the same windows without loader state."""

    tokens: np.ndarray = field(repr=False)  # the memmap, (n,) of data.dtype
    window: int  # model.max_seq_len + 1

    def batch(self, step, micro, batch_size, accumulation, seed) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step * accumulation + micro)
        high = len(self.tokens) - self.window + 1  # offsets in [0, n - window]
        return torch.randint(0, high, (batch_size,), generator=g, dtype=torch.int64)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        return read_windows(self.tokens, ids.numpy(), self.window)


def read_windows(tokens: np.ndarray, offsets: np.ndarray, window: int) -> torch.Tensor:
    """(len(offsets), window) int64: the windows starting at `offsets`, read from `tokens`."""
    index = np.asarray(offsets, dtype=np.int64)[:, None] + np.arange(window)
    return torch.from_numpy(np.asarray(tokens[index]).astype(np.int64))


def val_offsets(num_tokens: int, num_windows: int) -> np.ndarray:
    """Evenly spaced window starts over val.bin; disjoint when it holds enough tokens."""
    return np.arange(num_windows, dtype=np.int64) * (num_tokens // num_windows)


@dataclass(frozen=True, eq=False)
class TokenData:
    """The token files as a workload's parts. ryot.bench.workload wraps them in its Workload
    and Reference (bayes_floor None): it imports this module, so this one imports nothing of
    it, and the package keeps no import cycle."""

    train: TokenTrain
    val: torch.Tensor  # (num_val_samples, max_seq_len + 1) int64, fixed
    description: str
    unigram_loss: float
    unigram_per_position: list[float]
    data_record: dict[str, Any]


def load(config: Config) -> TokenData:
    """The token files' training split, validation rows and reference, every file checked
    first (TokenDataError: one line)."""
    d, m = config.data, config.model
    folder, window = Path(d.path), m.max_seq_len + 1
    train_file, val_file = scan_files(config)
    train = TokenTrain(np.memmap(folder / "train.bin", dtype=DTYPES[d.dtype], mode="r"), window)
    val_tokens = np.memmap(folder / "val.bin", dtype=DTYPES[d.dtype], mode="r")
    val = read_windows(val_tokens, val_offsets(val_file.tokens, d.num_val_samples), window)
    del val_tokens  # the validation rows are in memory now; no need to keep the map open
    loss = unigram_nll(train_file.counts, val)
    return TokenData(
        train=train,
        val=val,
        description=(
            f"token files {folder} ({d.dtype}): train.bin {train_file.tokens:,} tokens, "
            f"val.bin {val_file.tokens:,} tokens"
        ),
        unigram_loss=float(loss.mean()),
        unigram_per_position=loss.mean(dim=0).tolist(),
        data_record=data_record(config, train_file, val_file),
    )


def fingerprint(config: Config) -> dict[str, str]:
    """Each token file's sha256 as it is now ("unreadable: ..." where it cannot be read): what
    the experiment compares around every run, so that data changed under a job is caught."""
    folder, seen = Path(config.data.path), {}
    for name in ("train.bin", "val.bin"):
        sha = hashlib.sha256()
        try:
            with (folder / name).open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    sha.update(chunk)
            seen[name] = sha.hexdigest()
        except OSError as exc:
            seen[name] = f"unreadable: {describe_os_error(exc)}"
    return seen


def check(config: Config) -> dict[str, Any]:
    """The preflight: both files checked as load() checks them; their data record."""
    return data_record(config, *scan_files(config))


def data_record(config: Config, train: TokenFile, val: TokenFile) -> dict[str, Any]:
    """comparison.json's and the checkpoint's record of the token files."""
    return {
        "source": "tokens",
        "path": config.data.path,
        "dtype": config.data.dtype,
        "files": {"train": train.record(), "val": val.record()},
    }


def unigram_nll(counts: np.ndarray, val: torch.Tensor) -> torch.Tensor:
    """(N, max_seq_len) float64: -log p of each validation target (val[:, 1:]) under the
    training tokens' frequencies, add-one smoothed, so an id never seen in training costs
    log(n + V) nats rather than infinity."""
    counts = torch.from_numpy(counts.astype(np.float64))
    log_p = torch.log((counts + 1) / (counts.sum() + len(counts)))
    return -log_p[val[:, 1:]]


def scan_files(config: Config) -> tuple[TokenFile, TokenFile]:
    """train.bin and val.bin checked against the config: their sizes first (cheap), then one
    chunked pass each."""
    d, m, t = config.data, config.model, config.training
    folder, window = Path(d.path), m.max_seq_len + 1
    where = f"data.path = {d.path}"
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "no such folder"
        raise TokenDataError(f"{where}: {why}")
    train_tokens, val_tokens = (
        _num_tokens(folder, "train.bin", d),
        _num_tokens(folder, "val.bin", d),
    )
    train_need = t.batch_size * window
    if train_tokens < train_need:
        raise TokenDataError(
            f"{where}: train.bin has {train_tokens:,} tokens; one batch needs "
            f"training.batch_size x (model.max_seq_len + 1) = {t.batch_size} x {window} = "
            f"{train_need:,}"
        )
    val_need = d.num_val_samples * window
    if val_tokens < val_need:
        raise TokenDataError(
            f"data.num_val_samples = {d.num_val_samples}: val.bin has {val_tokens:,} tokens; "
            f"{d.num_val_samples} windows of model.max_seq_len + 1 = {window} need {val_need:,}"
        )
    train = _scan(folder, "train.bin", config, count=True)
    return train, _scan(folder, "val.bin", config, count=False)


def _num_tokens(folder: Path, name: str, d: DataConfig) -> int:
    """The file's length in tokens, once it is known to be a readable, non-empty file of
    whole tokens."""
    where, path = f"data.path = {d.path}", folder / name
    if not path.exists():
        raise TokenDataError(f"{where}: {name} not found")
    if not path.is_file():
        raise TokenDataError(f"{where}: {name} is not a file")
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise TokenDataError(
            f"{where}: {name} is not readable ({describe_os_error(exc)})"
        ) from None
    if size == 0:
        raise TokenDataError(f"{where}: {name} is empty")
    itemsize = np.dtype(DTYPES[d.dtype]).itemsize
    if size % itemsize:
        raise TokenDataError(
            f"{where}: {name} is {size:,} bytes, not a whole number of {d.dtype} tokens"
        )
    return size // itemsize


def _scan(folder: Path, name: str, config: Config, count: bool) -> TokenFile:
    """Hash and range-check one file, and count its ids (train.bin), a chunk at a time."""
    d, vocab = config.data, config.model.vocab_size
    where, dtype = f"data.path = {d.path}", np.dtype(DTYPES[d.dtype])
    sha = hashlib.sha256()
    counts = np.zeros(vocab, dtype=np.int64) if count else None
    done = 0
    try:
        with (folder / name).open("rb") as handle:
            while chunk := handle.read(CHUNK_TOKENS * dtype.itemsize):
                sha.update(chunk)
                ids = np.frombuffer(chunk, dtype=dtype)
                if int(ids.max()) >= vocab:
                    first = int(np.argmax(ids >= vocab))
                    raise TokenDataError(
                        f"{where}: {name} holds token id {int(ids[first])} (at token "
                        f"{done + first:,}) >= model.vocab_size = {vocab}"
                    )
                if counts is not None:
                    counts += np.bincount(ids, minlength=vocab)
                done += len(ids)
    except OSError as exc:
        raise TokenDataError(f"{where}: cannot read {name} ({describe_os_error(exc)})") from None
    return TokenFile(name, done, sha.hexdigest(), counts)
