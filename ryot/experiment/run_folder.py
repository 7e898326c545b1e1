"""A run folder that no failed, interrupted or concurrent run can damage or mix.

A run writes into a fresh staging folder beside DIR (`.DIR.staging`) and, once complete, is moved
into place whole: the earlier run in DIR is renamed aside, the staging folder renamed to DIR, the
earlier run deleted. A run that fails (a job without a result, an error, an interrupt) never
replaces a complete earlier run: its files go to `.DIR.incomplete` for inspection and DIR stays
byte for byte as it was. Into an empty or new DIR a failed run is still published, so its DEBUG
report is where the user asked for it; an interrupted one never is.

One run at a time per DIR: an exclusive lock on `.DIR.lock` (released by the OS when the process
dies, so a killed run leaves no stale lock). Renames within one parent folder are atomic on
POSIX; a crash between the two renames leaves the earlier run as `.DIR.previous`, which the next
run into DIR puts back before anything else.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ryot.osutil import describe_os_error

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

# What only a ryot run folder holds: DIR is replaced whole, so it must never be someone's folder.
RUN_MARKERS = ("comparison.json", "monitor.log", "runs", "checkpoints")


class RunDirError(Exception):
    """DIR cannot be used for this run (busy, not a run folder, not writable): exit 2."""


def is_run_folder(path: Path) -> bool:
    return any((path / marker).exists() for marker in RUN_MARKERS)


def is_complete_run(path: Path) -> bool:
    return (path / "comparison.json").is_file()


class RunFolder:
    """Staging, locking and publishing for the run folder `final`."""

    def __init__(self, final: Path):
        self.final = Path(final)
        parent, name = self.final.parent, self.final.name
        self.staging = parent / f".{name}.staging"
        self.incomplete = parent / f".{name}.incomplete"
        self.previous = parent / f".{name}.previous"
        self.lock_path = parent / f".{name}.lock"
        self._lock_file = None

    def __enter__(self) -> RunFolder:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Lock DIR, check it may be replaced, and create an empty staging folder."""
        where = f"--out {self.final}"
        if self.final.exists() and not self.final.is_dir():
            raise RunDirError(f"{where}: exists and is not a folder")
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as exc:
            raise RunDirError(f"{where}: cannot write there ({describe_os_error(exc)})") from None
        try:
            self._recover()
            if self.final.is_dir() and any(self.final.iterdir()):
                if not is_run_folder(self.final):
                    raise RunDirError(
                        f"{where}: not empty and not a ryot run folder (no "
                        f"{', '.join(RUN_MARKERS)}); it would be replaced: choose another --out"
                    )
            remove_tree(self.staging)
            (self.staging / "checkpoints").mkdir(parents=True)
            probe = self.staging / ".write-test"
            probe.write_text("", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            self.release()
            raise RunDirError(f"{where}: cannot write there ({describe_os_error(exc)})") from None
        except RunDirError:
            self.release()
            raise

    def _lock(self) -> None:
        handle = self.lock_path.open("a+", encoding="utf-8")
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(
                f"--out {self.final}: another ryot run is writing there ({holder}); wait for it "
                "or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _recover(self) -> None:
        """Put back an earlier run left aside by a crash in the middle of `publish`."""
        if self.previous.is_dir():
            if self.final.exists():
                remove_tree(self.previous)
            else:
                self.previous.rename(self.final)

    def keeps_earlier_run(self, any_job_failed: bool) -> bool:
        """A run with a failed job never replaces a complete earlier run (it is set aside)."""
        return any_job_failed and self.final.is_dir() and is_complete_run(self.final)

    def publish(self) -> Path:
        """Move the staging folder into place whole; returns DIR."""
        if self.final.exists():
            remove_tree(self.previous)
            self.final.rename(self.previous)
        self.staging.rename(self.final)
        remove_tree(self.previous)
        return self.final

    def set_aside(self) -> Path:
        """Keep a failed or interrupted run's files as `.DIR.incomplete`; DIR is untouched."""
        remove_tree(self.incomplete)
        if self.staging.exists():
            self.staging.rename(self.incomplete)
        return self.incomplete

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the lock
            self._lock_file = None


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
