"""Token files that change under a job fail the run during which they changed.

A run reads train.bin through a memory map while it trains, and the next run reads both files
again when it starts: a stack (or anything else on the machine) that rewrote them would change
what later runs, of either arm, learn from and are scored on. The verdict is decided by the
stack, never by what it leaves on disk, so the files' hashes are compared around every run,
between runs and off both arms' clocks (about 0.05 s for the standard library's 22 MB).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ryot.bench import tokens
from ryot.config import Config
from ryot.judge.runs import RunRecord

CHANGED_EXIT_CODE = 3  # the code of a crashed run: the verdict turns DEBUG


@dataclass
class TokenFilesGuard:
    """The token files' hashes as the last run ended (as the job began, before the first)."""

    config: Config
    seen: dict[str, str]

    @classmethod
    def of(cls, config: Config) -> TokenFilesGuard | None:
        """A guard for a job on token files; None on the synthetic language (built in memory)."""
        if config.data.source != "tokens":
            return None
        return cls(config, tokens.fingerprint(config))

    def after(self, record: RunRecord) -> RunRecord:
        """The record, or a failed one when a token file changed while it ran."""
        now = tokens.fingerprint(self.config)
        changed = [name for name in self.seen if now.get(name) != self.seen[name]]
        before, self.seen = self.seen, now
        if not changed:
            return record
        what = "; ".join(f"{n} sha256 {before[n][:12]} -> {now[n][:12]}" for n in changed)
        error = (
            f"the token files changed during this run (data.path = {self.config.data.path}: "
            f"{what}); a job's data must not change under it"
        )
        return replace(record, result=None, exit_code=CHANGED_EXIT_CODE, error=error)
