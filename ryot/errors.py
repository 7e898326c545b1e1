"""The usage error and the exit codes every command shares (ryot, pytest validation/, ryot serve).

0 GO (or a lone arm trained fine), 1 INVESTIGATE, 2 a usage or config error found before
anything is written, 3 DEBUG (a crash, a divergence, an optimization with no effect, a full
disk), 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

EXIT_GO, EXIT_INVESTIGATE, EXIT_USAGE, EXIT_CRASH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit 2."""
