"""Reading a topology file: every way a file can be unusable becomes a diagnostic, never an exception."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .diagnostics import Diagnostic, Span, diagnostic

# A real topology of the largest deployments is well under a megabyte; refusing anything much larger
# keeps time and memory bounded whatever the input.
MAX_SOURCE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Source:
    name: str  # as the user named it: diagnostics print this
    text: str  # decoded, without a byte-order mark
    digest: str  # SHA-256 of the raw bytes: identifies the topology in every generated file


def _locate_bad_utf8(raw: bytes, error: UnicodeDecodeError) -> Span:
    before = raw[: error.start]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
    return Span.point(line, column)


def read_source(path: str | Path) -> tuple[Source | None, list[Diagnostic]]:
    """Read and decode `path`; return the source, or None and the diagnostics saying why not."""
    name = str(path)
    p = Path(path)
    here = Span.point(1, 1)

    def fail(code: str, problem: str, fix: str, span: Span = here):
        return None, [diagnostic(code, span, problem, fix, name)]

    try:
        if p.is_dir():
            return fail("SFB001", f"'{name}' is a directory, not a topology file", "name a .sfb file")
        size = p.stat().st_size
        if size > MAX_SOURCE_BYTES:
            return fail(
                "SFB004",
                f"the file is {size // (1024 * 1024)} MB; sfbgen reads topologies up to "
                f"{MAX_SOURCE_BYTES // (1024 * 1024)} MB",
                "check that this is the topology file and not a log or an image",
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        return fail("SFB001", f"no such file: '{name}'", "check the path")
    except OSError as exc:
        return fail("SFB001", f"cannot read '{name}': {exc.strerror or exc}", "check the path and its permissions")

    return decode_source(raw, name)


def decode_source(raw: bytes, name: str) -> tuple[Source | None, list[Diagnostic]]:
    """Decode the bytes of a topology file; return the source, or None and the diagnostics saying why not."""
    import hashlib

    here = Span.point(1, 1)

    def fail(code: str, problem: str, fix: str, span: Span = here):
        return None, [diagnostic(code, span, problem, fix, name)]

    if len(raw) > MAX_SOURCE_BYTES:
        return fail("SFB004", f"the text is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MB", "check that this is the topology file")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        # UTF-16 with a byte-order mark: what Notepad's "Unicode" and Windows PowerShell 5.1's '>' and
        # Out-File write. The mark says exactly how to read it.
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            return fail("SFB002", "the file starts with a UTF-16 byte-order mark but is not valid UTF-16", "save the topology as UTF-8 text")
        if "\x00" in text:
            return fail("SFB003", "the file is binary, not text", "save the topology as UTF-8 text")
        text = text.removeprefix("\ufeff")
        if not text.strip():
            return fail("SFB005", "the file is empty", 'start with: topology "Name" { ... }')
        return Source(name, text, hashlib.sha256(raw).hexdigest()), []
    if b"\x00" in raw[:65536]:
        return fail("SFB003", "the file is binary or UTF-16 without a byte-order mark, not UTF-8 text", "save the topology as UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return fail(
            "SFB002",
            f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            "save the topology as UTF-8 text",
            _locate_bad_utf8(raw, exc),
        )
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return fail("SFB005", "the file is empty", 'start with: topology "Name" { ... }')
    return Source(name, text, hashlib.sha256(raw).hexdigest()), []
