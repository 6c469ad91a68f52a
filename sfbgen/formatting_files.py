"""`sfbgen fmt` on files: read a topology, format it, and write it back only when it changes.

The formatter itself (formatter.py) works on text; this module keeps what a file on disk is: its line
ends (a topology checked out on Windows keeps CRLF), a UTF-8 byte-order mark when it had one, its
permissions, and the file behind a symbolic link (the target is rewritten, the link stays). A file
in UTF-16 stays UTF-16, with its byte-order mark. A file that does not parse is
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
from .display import visible
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


def _encoding(raw: bytes) -> tuple[str, bytes]:
    """How the file is encoded, and its byte-order mark: UTF-16 as Notepad's "Unicode" and Windows
    PowerShell 5.1's `>` write it (the mark says which byte order), else UTF-8 with or without a mark."""
    if raw.startswith(b"\xff\xfe"):
        return "utf-16-le", b"\xff\xfe"
    if raw.startswith(b"\xfe\xff"):
        return "utf-16-be", b"\xfe\xff"
    return "utf-8", b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""


def _canonical_bytes(raw: bytes, text: str) -> bytes:
    """The formatted text encoded as the original file was: its encoding, its mark, its line ends
    (issue 21: a UTF-16 file is written back as UTF-16, byte for byte when it was formatted already)."""
    encoding, mark = _encoding(raw)
    if encoding == "utf-8":
        crlf = b"\r\n" in raw
    else:  # searched in the text: a CR LF pair in UTF-16 is two code units, aligned
        crlf = "\r\n" in raw[len(mark):].decode(encoding, errors="replace")
    if crlf:
        text = text.replace("\n", "\r\n")
    return mark + text.encode(encoding)


def _text_of(formatted: bytes) -> str:
    encoding, mark = _encoding(formatted)
    return formatted[len(mark):].decode(encoding)


def _format_bytes(raw: bytes, name: str) -> tuple[bytes | None, str, list[Diagnostic]]:
    source, diagnostics = decode_source(raw, name)
    if source is None:
        return None, "", diagnostics
    text, errors = format_text(source.text, name)
    if text is None:
        return None, source.text, errors
    return _canonical_bytes(raw, text), source.text, []


def _changed(name: str, before: str, formatted: bytes, show: bool = True) -> Formatted:
    """A file formatting changes, with the unified diff of the change (LF, without the mark) when `show`."""
    if not show:
        return Formatted(FormatOutcome.CHANGED)
    after = _text_of(formatted).replace("\r\n", "\n")
    diff = unified_diff(before.replace("\r\n", "\n").splitlines(keepends=True), after.splitlines(keepends=True),
                        f"a/{visible(name)}", f"b/{visible(name)}")
    return Formatted(FormatOutcome.CHANGED, diff=diff)


# ---------------------------------------------------------------------------------------------------
# The changed regions, in time linear in the text
#
# difflib's SequenceMatcher is quadratic where many lines are alike (the blank lines and braces of a
# mis-indented topology: an hour for 8 MB). Formatting changes a file line by line, in place, so the
# regions it changed are found from anchors instead, as patience diff does (Bram Cohen's; git diff
# --patience): the common first and last lines, then the lines that occur exactly once on each side,
# kept in the longest run that is in order on both (a longest increasing subsequence, n log n). Only
# between two anchors that are close does difflib align what is left; a larger region between anchors
# is shown as replaced whole. The diff is then always right (applying it gives the formatted text),
# if not always the shortest.

SMALL_REGION = 4096  # difflib aligns a region between anchors when len(old) * len(new) is at most this


def _increasing_run(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of `pairs` (sorted by their first item) whose second items increase."""
    import bisect

    tails: list[int] = []  # tails[k]: the smallest second item ending a run of k + 1
    tail_index: list[int] = []
    previous = [-1] * len(pairs)
    for index, (_, j) in enumerate(pairs):
        k = bisect.bisect_left(tails, j)
        if k == len(tails):
            tails.append(j)
            tail_index.append(index)
        else:
            tails[k] = j
            tail_index[k] = index
        previous[index] = tail_index[k - 1] if k else -1
    run = []
    index = tail_index[-1] if tail_index else -1
    while index >= 0:
        run.append(pairs[index])
        index = previous[index]
    return run[::-1]


def _matching_blocks(a: list[str], b: list[str]) -> list[tuple[int, int, int]]:
    """(i, j, n) blocks of equal lines in order, ending with (len(a), len(b), 0), as difflib gives them."""
    from collections import Counter

    blocks: list[tuple[int, int, int]] = []
    lo_a, lo_b, hi_a, hi_b = 0, 0, len(a), len(b)
    while lo_a < hi_a and lo_b < hi_b and a[lo_a] == b[lo_b]:
        lo_a, lo_b = lo_a + 1, lo_b + 1
    if lo_a:
        blocks.append((0, 0, lo_a))
    tail = 0
    while hi_a > lo_a and hi_b > lo_b and a[hi_a - 1] == b[hi_b - 1]:
        hi_a, hi_b, tail = hi_a - 1, hi_b - 1, tail + 1
    count_a, count_b = Counter(a[lo_a:hi_a]), Counter(b[lo_b:hi_b])
    where_b = {line: j for j, line in enumerate(b[lo_b:hi_b], lo_b) if count_b[line] == 1 and count_a.get(line) == 1}
    anchors = _increasing_run([(i, where_b[line]) for i, line in enumerate(a[lo_a:hi_a], lo_a) if line in where_b])
    start_a, start_b = lo_a, lo_b
    for i, j in [*anchors, (hi_a, hi_b)]:
        _between(a, b, start_a, i, start_b, j, blocks)
        if i < hi_a:
            blocks.append((i, j, 1))
        start_a, start_b = i + 1, j + 1
    if tail:
        blocks.append((hi_a, hi_b, tail))
    merged: list[tuple[int, int, int]] = []
    for i, j, n in blocks:
        if merged and merged[-1][0] + merged[-1][2] == i and merged[-1][1] + merged[-1][2] == j:
            merged[-1] = (merged[-1][0], merged[-1][1], merged[-1][2] + n)
        elif n:
            merged.append((i, j, n))
    return merged + [(len(a), len(b), 0)]


def _between(a, b, lo_a, hi_a, lo_b, hi_b, blocks) -> None:
    """The equal lines of a region between two anchors: its common ends, then difflib if it is small."""
    while lo_a < hi_a and lo_b < hi_b and a[lo_a] == b[lo_b]:
        blocks.append((lo_a, lo_b, 1))
        lo_a, lo_b = lo_a + 1, lo_b + 1
    end = []
    while hi_a > lo_a and hi_b > lo_b and a[hi_a - 1] == b[hi_b - 1]:
        hi_a, hi_b = hi_a - 1, hi_b - 1
        end.append((hi_a, hi_b, 1))
    if (lo_a < hi_a and lo_b < hi_b and (hi_a - lo_a) * (hi_b - lo_b) <= SMALL_REGION
            and not set(a[lo_a:hi_a]).isdisjoint(b[lo_b:hi_b])):
        matcher = difflib.SequenceMatcher(None, a[lo_a:hi_a], b[lo_b:hi_b], autojunk=False)
        blocks.extend((lo_a + i, lo_b + j, n) for i, j, n in matcher.get_matching_blocks() if n)
    blocks.extend(reversed(end))


class _Anchored(difflib.SequenceMatcher):
    """difflib's grouping of changes into hunks, over the blocks found above."""

    def __init__(self, a: list[str], b: list[str]):
        super().__init__(None, a, b, autojunk=False)
        self.matching_blocks = _matching_blocks(a, b)

    def get_matching_blocks(self):
        return self.matching_blocks


def _range(start: int, length: int) -> str:
    beginning = start + 1 if length else start
    return f"{beginning}" if length == 1 else f"{beginning},{length}"


def unified_diff(a: list[str], b: list[str], fromfile: str, tofile: str, context: int = 3) -> str:
    """The unified diff of two lists of lines (with their line ends), as `diff -u` writes it."""
    out: list[str] = []
    for group in _Anchored(a, b).get_grouped_opcodes(context):
        if not out:
            out += [f"--- {fromfile}\n", f"+++ {tofile}\n"]
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2] - first[1])} +{_range(first[3], last[4] - first[3])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in a[i1:i2]]
                continue
            out += ["-" + line for line in a[i1:i2]]
            out += ["+" + line for line in b[j1:j2]]
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)


def format_file(path: Path, write: bool, show_diff: bool = True) -> Formatted:
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
    return _changed(name, before, formatted, show_diff)


def format_stdin(raw: bytes, out: TextIO, write: bool, show_diff: bool = True) -> Formatted:
    """`sfbgen fmt -`: the formatted text on standard output (for editors), or the diff with --check/--diff."""
    formatted, before, errors = _format_bytes(raw, "<stdin>")
    if formatted is None:
        return Formatted(FormatOutcome.FAILED, errors, {"<stdin>": before} if before else {})
    if write:
        out.buffer.write(formatted) if hasattr(out, "buffer") else out.write(_text_of(formatted))
        out.flush()
    if formatted == raw:
        return Formatted(FormatOutcome.UNCHANGED)
    return _changed("<stdin>", before, formatted, show_diff)
