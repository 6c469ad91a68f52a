"""`sfbgen fmt` on files: read a topology, format it, and write it back only when it changes.

The formatter itself (formatter.py) works on text; this module keeps what a file on disk is: its line
ends (a topology checked out on Windows keeps CRLF), a UTF-8 byte-order mark when it had one, its
permissions, and the file behind a symbolic link (the target is rewritten, the link stays). A file
in UTF-16 is rewritten as UTF-8, the encoding every other tool reads. A file that does not parse is
left untouched and its syntax errors reported.
"""

from __future__ import annotations

import difflib
import enum
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .diagnostics import Diagnostic
from .formatter import format_text
from .source import decode_source, read_source


class FormatOutcome(enum.Enum):
    UNCHANGED = "unchanged"
    CHANGED = "changed"  # formatted (or, with --check/--diff, would be)
    FAILED = "failed"  # unreadable or not parseable: nothing written


@dataclass
class Formatted:
    state: FormatOutcome
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    diff: str = ""


def _canonical_bytes(raw: bytes, text: str) -> bytes:
    """The formatted text encoded as the original file was: its line ends, its UTF-8 mark."""
    crlf = b"\r\n" in raw
    if crlf:
        text = text.replace("\n", "\r\n")
    bom = "\ufeff" if raw.startswith(b"\xef\xbb\xbf") else ""
    return (bom + text).encode("utf-8")


def _format_bytes(raw: bytes, name: str) -> tuple[bytes | None, str, list[Diagnostic]]:
    source, diagnostics = decode_source(raw, name)
    if source is None:
        return None, "", diagnostics
    text, errors = format_text(source.text, name)
    if text is None:
        return None, source.text, errors
    return _canonical_bytes(raw, text), source.text, []


def _changed(name: str, before: str, formatted: bytes) -> Formatted:
    """A file formatting changes, with the unified diff of the change (LF, without the mark)."""
    after = formatted.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
    diff = "".join(difflib.unified_diff(
        before.replace("\r\n", "\n").splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/{name}", tofile=f"b/{name}"))
    return Formatted(FormatOutcome.CHANGED, diff=diff)


def format_file(path: Path, write: bool) -> Formatted:
    name = str(path)
    source, diagnostics = read_source(path)
    if source is None:
        return Formatted(FormatOutcome.FAILED, diagnostics)
    target = path.resolve()  # a link stays a link: its target is what gets rewritten
    raw = target.read_bytes()
    formatted, before, errors = _format_bytes(raw, name)
    if formatted is None:
        return Formatted(FormatOutcome.FAILED, errors, {name: before})
    if formatted == raw:
        return Formatted(FormatOutcome.UNCHANGED)
    if write:
        from .signing import write_new_file

        write_new_file(target, formatted, stat.S_IMODE(os.stat(target).st_mode))
    return _changed(name, before, formatted)


def format_stdin(raw: bytes, out: TextIO, write: bool) -> Formatted:
    """`sfbgen fmt -`: the formatted text on standard output (for editors), or the diff with --check/--diff."""
    formatted, before, errors = _format_bytes(raw, "<stdin>")
    if formatted is None:
        return Formatted(FormatOutcome.FAILED, errors, {"<stdin>": before} if before else {})
    if write:
        out.buffer.write(formatted) if hasattr(out, "buffer") else out.write(formatted.decode("utf-8"))
        out.flush()
    if formatted == raw:
        return Formatted(FormatOutcome.UNCHANGED)
    return _changed("<stdin>", before, formatted)
