"""Showing untrusted text to a person: every value printed on a terminal or written into Markdown goes through here.

A file name planted in a bundle, an attribute of an imported document or a role read from an old
plan.json can hold a carriage return, a terminal escape or a bidirectional override. Printed raw, such
a value can overwrite what was printed before it ("0 failed"), hide text, or forge lines of a report.
`visible` makes every such character visible instead, so what the reader sees is what the value holds.
"""

from __future__ import annotations

import os
import re

# C0 and C1 controls (CR, LF, ESC, NEL, CSI...), DEL, and the Unicode format characters that change how
# text around them is shown: bidirectional embeddings, overrides and isolates, zero-width characters, the
# line and paragraph separators, the byte-order mark.
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    "\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def visible(value: object) -> str:
    """`value` as text with every control, escape and invisible formatting character shown as `\\xNN` or `\\uNNNN`.

    Ordinary text, including letters of any script and Windows paths (`D:\\units`), is returned
    unchanged. Where something is escaped, a literal backslash-x or backslash-u already in the value is
    doubled, so that an escape written here cannot be forged by one."""
    text = value if isinstance(value, str) else str(value)
    if _INVISIBLE.search(text) is None:
        return text
    text = text.replace("\\x", "\\\\x").replace("\\u", "\\\\u")
    return _INVISIBLE.sub(_escape, text)


def _code_point(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def code_points(text: str, keep_tabs: bool = False) -> str:
    """`text` with the same characters as `visible` escapes written as code points (`\\u001b`), the form
    diagnostics and their source lines use; nothing doubled, so a source line reads as written.
    `keep_tabs` leaves tabs alone (a line indented with tabs is shown as the user wrote it)."""
    if _INVISIBLE.search(text) is None:
        return text
    if keep_tabs:
        return _INVISIBLE.sub(lambda m: "\t" if m.group() == "\t" else _code_point(m), text)
    return _INVISIBLE.sub(_code_point, text)


def visible_path(path: str | bytes | os.PathLike[str]) -> str:
    """A file name from the file system (bytes or str, possibly not UTF-8), shown with `visible`."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return visible(os.fspath(path) if not isinstance(path, str) else path)


def is_visible(text: str) -> bool:
    """True when `visible(text)` shows `text` unchanged."""
    return visible(text) == text


def printable(text: str) -> str:
    """`text` that a strict UTF-8 stream can take: any lone surrogate (a file name that was not UTF-8,
    a string read from JSON) shown as with `visible`, and nothing else changed. For whole blocks of
    output (Markdown, JSON) whose values were made visible already."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return re.sub("[\ud800-\udfff]", _escape, text)


def json_text(document: object, **options) -> str:
    """`json.dumps(document, ensure_ascii=False, **options)`, unless it holds a lone surrogate (a file
    name that was not UTF-8): then every non-ASCII character is written as a JSON escape, so that the
    text is valid JSON and any UTF-8 stream can take it."""
    import json

    text = json.dumps(document, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(document, ensure_ascii=True, **options)
