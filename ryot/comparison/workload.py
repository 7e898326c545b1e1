"""comparison.json's `workload`, typed: what model was trained on what data.

Two runs answer the same question only on the same workload: the same model (name, factory
and its keyword arguments) on the same data (its source; for token files, each file's content
hash). The history compares them with `Workload.differences`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ryot.comparison.record import JSON, Record, mapping, number, one, record, text
from ryot.comparison.rules import FLOOR_UNKNOWN

SYNTHETIC, TOKENS = "synthetic", "tokens"
HASH_SHOWN = 12  # hex characters of a file's sha256 a reader shows


@dataclass(frozen=True)
class WorkloadModel(Record):
    """The model: Ryot's ScaledTransformerModel (factory None) or a team's factory, called
    with factory_kwargs."""

    name: str | None = text()
    factory: str | None = text()
    factory_kwargs: dict[str, Any] = mapping(JSON, absent={})
    vocab_size: int | None = number()
    max_seq_len: int | None = number()


@dataclass(frozen=True)
class TokenFile(Record):
    """One token file of the data: its name, how many tokens it holds, its content hash."""

    name: str | None = text()
    tokens: int | None = number()
    sha256: str | None = text()

    @property
    def short_hash(self) -> str | None:
        return self.sha256[:HASH_SHOWN] if self.sha256 else None


@dataclass(frozen=True)
class WorkloadData(Record):
    """The data: Ryot's seeded synthetic language (its seed), or a folder of token files (its
    path, their dtype, and each split's file)."""

    source: str | None = text()
    seed: int | None = number(omit=True)
    path: str | None = text(omit=True)
    dtype: str | None = text(omit=True)
    # split ("train", "val") -> its file; None on the synthetic language
    files: dict[str, TokenFile] | None = mapping(one(TokenFile, empty=True), omit=True)

    @property
    def floor_known(self) -> bool:
        """Whether the validation split's Bayes floor is known: on the synthetic language."""
        return self.source == SYNTHETIC

    @property
    def floor_unknown_text(self) -> str:
        """ "Bayes floor unknown (token data)": the words every reader uses."""
        return f"{FLOOR_UNKNOWN} (token data)" if self.source == TOKENS else FLOOR_UNKNOWN

    def identity(self) -> dict[str, Any]:
        """What makes two runs' data the same: the source and, for token files, each file's
        hash and the dtype that reads it; for the synthetic language, its seed."""
        if self.source == TOKENS:
            hashes = {split: f.sha256 for split, f in (self.files or {}).items()}
            return {"source": self.source, "dtype": self.dtype, "files": hashes}
        return {"source": self.source, "seed": self.seed}

    def describe(self) -> str:
        """The data in words: "synthetic language (seed 42)", "token files data/py (uint16)"."""
        if self.source == SYNTHETIC:
            seed = "" if self.seed is None else f" (seed {self.seed})"
            return f"synthetic language{seed}"
        if self.source == TOKENS:
            return f"token files {self.path or 'n/a'} ({self.dtype or 'n/a'})"
        return self.source or "n/a"


@dataclass(frozen=True)
class Workload(Record):
    model: WorkloadModel = record(WorkloadModel, empty=True)
    data: WorkloadData = record(WorkloadData, empty=True)

    def differences(self, other: Workload) -> list[str]:
        """Why `other` is not the same workload, in words (empty: the same)."""
        found = []
        mine, theirs = self.model, other.model
        if (mine.name, mine.factory, mine.factory_kwargs) != (
            theirs.name,
            theirs.factory,
            theirs.factory_kwargs,
        ):
            found.append(f"model {_model_words(theirs)}, not {_model_words(mine)}")
        if self.data.identity() != other.data.identity():
            found.append(f"data {_data_words(other.data)}, not {_data_words(self.data)}")
        return found


def _model_words(m: WorkloadModel) -> str:
    kwargs = ", ".join(f"{k}={v!r}" for k, v in m.factory_kwargs.items())
    return f"{m.name or 'n/a'}" + (f"({kwargs})" if kwargs else "")


def _data_words(d: WorkloadData) -> str:
    if d.source == TOKENS:
        files = ", ".join(
            f"{f.name or split} {f.short_hash or 'n/a'}" for split, f in (d.files or {}).items()
        )
        return f"{d.describe()}: {files or 'no files recorded'}"
    return d.describe()
