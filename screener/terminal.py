"""Text that reaches a terminal: names from the file system are data, never commands.

A file or folder name may hold escape sequences (`ESC[2J` clears the screen, `ESC]0;...BEL`
retitles the window) or bidirectional overrides that reorder what is shown; printed raw they
act on the counsellor's terminal or a log viewer. Every line screener prints, log lines
included, goes through `printable`, which shows such characters as Python escapes.
"""

from __future__ import annotations

import logging
import re

from screener.privacy import mask_urls

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                     r"\ud800-\udfff]")


def printable(text: object) -> str:
    """`text` on one line, with control, bidirectional-formatting and undecodable characters
    (a non-UTF-8 name's bytes) written as `\\x1b`, `\\u202e`, `\\xff`."""
    return _UNSAFE.sub(_escape, str(text))


def printable_lines(text: object) -> str:
    """The same, keeping line breaks: for tables and multi-line messages."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


class PrintableFormatter(logging.Formatter):
    """Log lines, with what their messages quote from file names escaped and from URLs
    masked."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(mask_urls(super().format(record)))


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def log_to_stderr(level: int | None = None) -> None:
    """What `logging.basicConfig` does, with log lines made printable."""
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(LOG_FORMAT))
    logging.basicConfig(handlers=[handler], **({"level": level} if level is not None else {}))

