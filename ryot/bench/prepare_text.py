"""`ryot prepare-text`: real text for `data.source: tokens`, shipped as a recipe, not as data.

The text is the Python standard library's own .py sources, which every machine that runs Ryot
already has: about 11 MB of real, structured text (Python 3.11), under the Python license, with
nothing to download. Tokens are bytes (ids 0..255, model.vocab_size 256), so no tokenizer is
needed either. Each file goes whole to one split (every tenth file, in sorted order, to
val.bin), so validation text is never a continuation of a training file.

The result is the same bytes on every run on the same Python version: the files are sorted by
relative path and meta.json records the version and a hash of the file list, so two folders
can be compared without comparing the tokens.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ryot.osutil import describe_os_error

DEFAULT_OUT = Path("data/stdlib-text")
VAL_EVERY = 10  # the file with sorted index i goes to val.bin when i % 10 == 9
# Not the language as the rest of the library writes it (tests, test data, demos), or not the
# standard library at all (third-party packages installed beside it).
EXCLUDED_FOLDERS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idlelib", "turtledemo", "__pycache__"}
)


class PrepareTextError(ValueError):
    """The output folder cannot be written, or the sources cannot be read: one line."""


def stdlib_sources() -> list[Path]:
    """The .py files of this Python's standard library, tests and demos left out, sorted by
    their relative POSIX path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [s for s in subfolders if s not in EXCLUDED_FOLDERS]
        found += [Path(folder, f) for f in files if f.endswith(".py")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def prepare_text(out: Path, sources: list[Path] | None = None) -> dict[str, Any]:
    """Write out/train.bin, out/val.bin (uint16 bytes) and out/meta.json; return the meta.

    Nothing is replaced until all three are written in full, and a failure leaves no temp file
    and no folder this call created.
    """
    stdlib = sources is None
    files = stdlib_sources() if stdlib else [Path(s) for s in sources]
    if len(files) < VAL_EVERY:
        raise PrepareTextError(
            f"sources: {len(files)} files; val.bin takes every {VAL_EVERY}th, so at least "
            f"{VAL_EVERY} are needed"
        )
    root = Path(os.path.commonpath([f.parent for f in files]))
    names = sorted((f.relative_to(root).as_posix(), f) for f in files)
    out = Path(out)
    created = _make_folder(out)
    temps: dict[str, Path] = {}
    try:
        splits = _write_splits(out, names, temps)
        meta = {
            "vocab_size": 256,
            "dtype": "uint16",
            "source": (
                f"the .py sources of the Python {platform.python_version()} standard library "
                "(no tests, idlelib or turtledemo), one byte per token"
                if stdlib
                else f"{len(names)} files under {root.as_posix()}, one byte per token"
            ),
            "python": platform.python_version(),
            "files": len(names),
            "files_sha256": _sha256("\n".join(n for n, _ in names).encode("utf-8")),
            **splits,
        }
        text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
        temps["meta.json"] = _temp(out, "meta.json")
        temps["meta.json"].write_text(text, encoding="utf-8", newline="\n")
        for name in ("train.bin", "val.bin", "meta.json"):  # meta last: it vouches for the rest
            os.replace(temps.pop(name), out / name)
    except OSError as exc:
        _undo(temps, created)
        why = describe_os_error(exc)
        raise PrepareTextError(f"--out = {out}: cannot write there ({why})") from None
    except BaseException:
        _undo(temps, created)
        raise
    return meta


def _write_splits(out: Path, names: list[tuple[str, Path]], temps: dict[str, Path]) -> dict:
    """Stream each source's bytes, as uint16 tokens, to its split's temp file; a file at a
    time, so memory holds one source file, not the corpus."""
    handles, shas, counts, num_files = {}, {}, {}, {}
    for split in ("train", "val"):
        temps[f"{split}.bin"] = _temp(out, f"{split}.bin")
        shas[split], counts[split], num_files[split] = hashlib.sha256(), 0, 0
    try:
        for split in ("train", "val"):
            handles[split] = temps[f"{split}.bin"].open("wb")
        for i, (_, path) in enumerate(names):
            split = "val" if i % VAL_EVERY == VAL_EVERY - 1 else "train"
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise PrepareTextError(
                    f"sources: cannot read {path} ({describe_os_error(exc)})"
                ) from None
            tokens = np.frombuffer(data, dtype=np.uint8).astype(np.uint16).tobytes()
            handles[split].write(tokens)
            shas[split].update(tokens)
            counts[split] += len(data)
            num_files[split] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return {
        split: {
            "files": num_files[split],
            "tokens": counts[split],
            "sha256": shas[split].hexdigest(),
        }
        for split in ("train", "val")
    }


def _make_folder(out: Path) -> list[Path]:
    """Create `out` (and its missing parents); return those it created, deepest first."""
    if out.exists() and not out.is_dir():
        raise PrepareTextError(f"--out = {out}: exists and is not a folder")
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _undo({}, created)
        why = describe_os_error(exc)
        raise PrepareTextError(f"--out = {out}: cannot create it ({why})") from None
    return created


def _temp(out: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; the data is for reading
    return Path(tmp)


def _undo(temps: dict[str, Path], created: list[Path]) -> None:
    for tmp in temps.values():
        tmp.unlink(missing_ok=True)
    for folder in created:  # deepest first; only if still empty
        try:
            folder.rmdir()
        except OSError:
            pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder for train.bin, val.bin and meta.json (default: {DEFAULT_OUT.as_posix()})",
    )


def run(args: argparse.Namespace, stream: TextIO) -> int:
    """Prepare the text and say how to use it; a problem is a UsageError (one line, exit 2)."""
    from ryot.errors import UsageError

    try:
        meta = prepare_text(args.out)
    except PrepareTextError as exc:
        raise UsageError(_ascii(str(exc))) from None
    train, val, out = meta["train"], meta["val"], args.out.as_posix()
    lines = [
        f"Wrote {out}: {meta['files']} files of Python {meta['python']}'s standard library, "
        f"train.bin {train['tokens']:,} tokens (sha256 {train['sha256'][:12]}), "
        f"val.bin {val['tokens']:,} tokens (sha256 {val['sha256'][:12]})",
        f"Use it with: data.source: tokens, data.path: {out}, model.vocab_size: 256",
    ]
    for line in lines:
        print(_ascii(line), file=stream)
    return 0


def _ascii(text: str) -> str:
    # a path may hold any character; the console may take none beyond ASCII
    return text.encode("ascii", "backslashreplace").decode("ascii")
