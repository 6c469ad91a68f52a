"""Showing untrusted text to a person: every value printed on a terminal or written into Markdown goes through here.

A file name planted in a bundle, an attribute of an imported document or a role read from an old
plan.json can hold a carriage return, a terminal escape or a bidirectional override. Printed raw, such
a value can overwrite what was printed before it ("0 failed"), hide text, or forge lines of a report.
`visible` makes every such character visible instead, so what the reader sees is what the value holds.
"""

from __future__ import annotations

import os
import re
import unicodedata

# C0 and C1 controls (CR, LF, ESC, NEL, CSI...), DEL, and the Unicode format characters that change how
# text around them is shown: bidirectional embeddings, overrides and isolates, zero-width characters, the
# line and paragraph separators, the byte-order mark.
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    "\udc80-\udcff]"
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

    Ordinary text, including letters of any script, is returned unchanged."""
    text = value if isinstance(value, str) else str(value)
    if _INVISIBLE.search(text) is None and "\\x" not in text and "\\u" not in text:
        return text
    # A literal backslash-x in the value is doubled, so an escape we write cannot be forged by one.
    text = text.replace("\\x", "\\\\x").replace("\\u", "\\\\u")
    return _INVISIBLE.sub(_escape, text)


def visible_path(path: object) -> str:
    """A file name from the file system (bytes or str, possibly not UTF-8), shown with `visible`."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return visible(os.fspath(path) if not isinstance(path, str) else path)


def is_visible(text: str) -> bool:
    """True when `visible(text)` shows `text` unchanged."""
    return visible(text) == text
