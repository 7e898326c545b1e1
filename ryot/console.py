"""Encoding-safe console output: Unicode where the stream can show it, ASCII where it cannot.

The seed run crashed on a cp1252 console printing a check mark. Every line here goes through
`Console.line`, which encodes it for the stream first and falls back to ASCII tokens.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

# Unicode symbol -> ASCII fallback, applied only when the stream cannot encode the symbol.
FALLBACKS = {
    "\u2713": "[OK]",  # check mark
    "\u2705": "[OK]",
    "\u2717": "[FAIL]",  # ballot x
    "\u274c": "[FAIL]",
    "\u26a0": "WARN",  # warning sign
    "\u2502": "|",  # box drawing vertical
    "\u2500": "-",  # box drawing horizontal
    "\u2550": "=",  # double horizontal
    "\u2192": "->",
    "\u00b1": "+/-",
    "\u2026": "...",
    "\u2248": "~",
    "\u2265": ">=",
    "\u2264": "<=",
}

OK, FAIL, WARN = "\u2713", "\u2717", "\u26a0"
# Workers alternate between these console encodings: each run proves the ASCII fallbacks.
NARROW_ENCODINGS = ("cp1252", "ascii")
RULE_HEAVY, RULE_LIGHT, BAR = "\u2550", "\u2500", "\u2502"


def encodable(text: str, encoding: str | None) -> bool:
    try:
        text.encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def to_encoding(text: str, encoding: str | None) -> str:
    """`text` made representable in `encoding`: known symbols become ASCII tokens, others '?'."""
    if encodable(text, encoding):
        return text
    for symbol, ascii_text in FALLBACKS.items():
        if not encodable(symbol, encoding):
            text = text.replace(symbol, ascii_text)
    enc = encoding or "ascii"
    try:
        return text.encode(enc, errors="replace").decode(enc)
    except LookupError:
        return text.encode("ascii", errors="replace").decode("ascii")


class Console:
    """Prints to a stream (stdout by default) and mirrors every line to a UTF-8 log file."""

    def __init__(self, stream: TextIO | None = None, log_path: Path | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.encoding = getattr(self.stream, "encoding", None) or "ascii"
        self.log_path = log_path
        self._progress_shown = False

    @property
    def interactive(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def line(self, text: str = "") -> None:
        self._clear_progress()
        self.stream.write(to_encoding(text, self.encoding) + "\n")
        self.stream.flush()
        if self.log_path is not None:
            try:
                with self.log_path.open("a", encoding="utf-8") as log:
                    log.write(text + "\n")
            except OSError:
                # A full disk must not turn the message about it into a traceback: the
                # console still shows every line; the log stops here.
                self.log_path = None

    def rule(self, heavy: bool = True, width: int = 72) -> None:
        self.line((RULE_HEAVY if heavy else RULE_LIGHT) * width)

    def heading(self, title: str) -> None:
        self.rule()
        self.line(title)
        self.rule()

    def progress(self, text: str) -> None:
        """A transient status line, shown only on a terminal and never logged; cut to the
        terminal's width, since a line that wraps cannot be redrawn in place."""
        if not self.interactive:
            return
        self.stream.write("\r" + to_encoding(text, self.encoding)[: self._width()] + "\x1b[K")
        self.stream.flush()
        self._progress_shown = True

    def _width(self) -> int:
        """The columns of the terminal this stream writes to (not stdout's), less one."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        if columns <= 0:  # a pseudo-terminal nobody sized, say
            columns = shutil.get_terminal_size((100, 24)).columns
        return max(20, columns - 1)

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.stream.write("\r\x1b[K")
            self._progress_shown = False

    def row(self, cells: list[str], widths: list[int]) -> None:
        self.line(
            f" {BAR} ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        )

    def table(self, header: list[str], rows: list[list[str]], widths: list[int]) -> None:
        self.row(header, widths)
        self.line(RULE_LIGHT * (sum(widths) + 3 * (len(widths) - 1)))
        for cells in rows:
            self.row(cells, widths)
