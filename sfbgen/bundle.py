"""Writing the output folder atomically: an existing bundle is replaced whole, or not at all.

The new bundle is written into a temporary folder beside the destination, then swapped into place:
on Linux with one atomic `renameat2(RENAME_EXCHANGE)`, elsewhere with two renames, whose only
in-between state (destination missing, previous bundle parked beside it) is repaired on the next run.
A folder sfbgen did not create is never touched.

The bundle builder (`compiler.build_bundle`) hands every file to a `Sink` its caller chooses: `DiskSink`
(this atomic writer), `MemorySink` (a dict, for tests and tools), `TeeSink` (both) or `CountingSink`.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Protocol

from .diagnostics import UsageError

MARKER = ".sfbgen-bundle"
_TMP_PREFIX = ".sfbgen-tmp-"
_OLD_PREFIX = ".sfbgen-old-"


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write one file whole or not at all: a private temporary file beside it, then renamed over it."""
    from .signing import write_new_file

    write_new_file(path, data, 0o644)


def marker_bytes(marker: dict) -> bytes:
    """The marker file's bytes: one fixed form, so that the signed manifest can list it."""
    return (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _parked(out: Path, prefix: str) -> list[Path]:
    return sorted(out.parent.glob(f"{prefix}{out.name}-*"))


def recover(out: Path) -> None:
    """Finish or undo a swap that a killed run left half done."""
    if not out.exists():
        previous = _parked(out, _OLD_PREFIX)
        if previous:
            os.rename(previous[-1], out)
    for leftover in _parked(out, _TMP_PREFIX) + _parked(out, _OLD_PREFIX):
        shutil.rmtree(leftover, ignore_errors=True)


def check_destination(out: Path, inputs: list[Path]) -> None:
    """Refuse an output folder that is not ours, or whose replacement would remove an input (the
    topology, the signing key or certificate)."""
    resolved = out.resolve()
    for source in inputs:
        source = source.resolve()
        if source == resolved or resolved in source.parents:
            raise UsageError(f"the output folder {out} contains the input {source}; choose another --out")
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise UsageError(f"refusing to use {out} as the output folder; choose a folder of its own")
    if out.is_symlink():
        raise UsageError(f"{out} is a link; sfbgen writes bundles only to a real folder: choose another --out")
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{out} exists and is not a folder; choose another --out")
        if any(out.iterdir()):
            problem = _not_our_bundle(out)
            if problem:
                raise UsageError(
                    f"{out} exists and is not a bundle sfbgen made ({problem}); "
                    "sfbgen replaces only its own bundles: choose an empty or new folder"
                )


def _not_our_bundle(out: Path) -> str | None:
    """Why `out` is not a whole sfbgen bundle, or None. A marker file alone proves nothing (anyone can
    write one): every file in the folder must be one its manifest lists or names as produced on a
    server, so that replacing the folder can remove nothing sfbgen did not write."""
    from . import manifest as mf
    from .authenticode import split_signature

    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        if not isinstance(marker, dict) or marker.get("generator") != "sfbgen":
            return f"its {MARKER} file is not sfbgen's"
    except (OSError, ValueError):
        return f"no {MARKER} file"
    listed: set[str] = {MARKER}
    try:
        if (out / mf.ROOT_NAME).is_file():
            listing = mf.parse(split_signature((out / mf.ROOT_NAME).read_bytes())[0])
            listed |= {e.path for e in listing.files} | set(listing.produced_on_server) | {mf.ROOT_NAME}
        else:  # a bundle of sfbgen 0.1 (MANIFEST.json)
            legacy = json.loads((out / "MANIFEST.json").read_text(encoding="utf-8"))
            listed |= {entry["path"] for entry in legacy["files"]} | {"MANIFEST.json"}
            listed |= {p.relative_to(out).as_posix() for p in out.glob("*/manifest.json")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its manifest cannot be read: {exc}"
    for path in out.rglob("*"):
        if path.is_symlink() or (path.is_file() and path.relative_to(out).as_posix() not in listed):
            return f"{path.relative_to(out).as_posix()} is not one of its files"
    return None


_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        # The process's own symbol table holds libc's; find_library would run ldconfig to find it.
        _libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    result = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    return result == 0


class Sink(Protocol):
    """Where the bundle builder (`compiler.build_bundle`) puts each file it makes, in the bundle's order.

    `in_workers`: whether `add` may run in a forked worker (writing a file may; filling a dict of this
    process may not), so that a large topology's server files never cross a pipe.
    """

    in_workers: bool

    def add(self, relative: str, data: bytes) -> None: ...


class MemorySink:
    """The bundle in memory: `files`, path -> bytes, in the order they were made (tests, tools)."""

    in_workers = False

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def add(self, relative: str, data: bytes) -> None:
        self.files[relative] = data


class CountingSink:
    """Keeps no file: for a caller that wants only the count (and the checks made on the way)."""

    in_workers = True

    def add(self, relative: str, data: bytes) -> None:
        pass


class TeeSink:
    """Every file to each of `sinks`, in order: the bundle on disk and in memory at once."""

    def __init__(self, *sinks: Sink):
        self.sinks = sinks
        self.in_workers = all(sink.in_workers for sink in sinks)

    def add(self, relative: str, data: bytes) -> None:
        for sink in self.sinks:
            sink.add(relative, data)


class DiskSink:
    """Writes files into a temporary folder beside `out`; `commit` swaps it into place.

    Used as a context manager: leaving the block without `commit` (an error, an interrupt) removes the
    temporary folder and leaves `out` as it was.
    """

    in_workers = True  # a forked worker writes its files into the temporary folder itself

    def __init__(self, out: Path, inputs: list[Path]):
        self.out = Path(out)
        nearest = next(p for p in (self.out.parent, *self.out.parent.parents) if p.exists())
        if not nearest.is_dir():
            raise UsageError(f"{nearest} is a file, so {out} cannot be a folder; choose another --out")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        recover(self.out)
        check_destination(self.out, inputs)
        self.tmp = self.out.parent / f"{_TMP_PREFIX}{self.out.name}-{os.getpid()}"
        self._root = ""
        self._made: set[str] = set()
        self._committed = False

    def __enter__(self) -> DiskSink:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        self._root = os.fspath(self.tmp)
        self._made = {self._root}
        return self

    def add(self, relative: str, data: bytes) -> None:
        # Plain strings rather than Path objects: `add` runs once per file, thousands of times.
        target = os.path.join(self._root, relative)
        folder = os.path.dirname(target)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        # O_EXCL: the temporary folder is ours alone, so every name is new; a clash is a bug, not a race.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def commit(self) -> None:
        out, tmp = self.out, self.tmp
        if out.exists():
            if _exchange(tmp, out):
                self._committed = True
                shutil.rmtree(tmp, ignore_errors=True)  # now the previous bundle
                return
            parked = out.parent / f"{_OLD_PREFIX}{out.name}-{os.getpid()}"
            os.rename(out, parked)
            os.rename(tmp, out)
            self._committed = True
            shutil.rmtree(parked, ignore_errors=True)
        else:
            os.rename(tmp, out)
            self._committed = True

    def __exit__(self, *exc) -> None:
        if not self._committed:
            shutil.rmtree(self.tmp, ignore_errors=True)


BundleWriter = DiskSink  # its former name (sfbgen/patching.py)
