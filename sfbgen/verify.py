"""Verifying a compiled bundle, as an attacker would be checked: the signed manifest first, then every file.

What decides trust is itself signed and checked before anything else: `MANIFEST.psd1` must carry a
valid Authenticode signature chaining to a root the user trusts (and, when asked, by exactly the
certificate named). Only then is its list read — strictly (`sfbgen.manifest`) — and the bundle
compared with it:

- every file of the bundle is listed, or is a file the servers produce, named exactly; anything else
  (an extra file, a link, a device, a folder where a file should be) fails;
- every listed file is present, a regular file, of the listed size and SHA-256;
- every script is signed by the manifest's signer and chains to a trusted root; any other type that
  runs on Windows fails, and so does any type sfbgen does not write;
- each server's own manifest (what Test-Bundle.ps1 reads there) says the same as the root's.

Every input is bounded: paths are normalised and relative, opened beneath the bundle's folder
without following links (O_NOFOLLOW, dir_fd), sizes are checked before reading, files are hashed as
streams, and the whole run has a deadline. Nothing crashes or hangs on a hostile bundle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from . import manifest as mf
from .authenticode import split_signature, verify_script

MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any script or document sfbgen writes
MAX_TREE_ENTRIES = 200_000
DEFAULT_DEADLINE_S = 300.0
_CHUNK = 1024 * 1024


@dataclass
class FileReport:
    path: str
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Trust:
    """What the user trusts: roots for code signing, roots for timestamps, and optionally one signer."""

    anchors: list[x509.Certificate] = field(default_factory=list)
    tsa_anchors: list[x509.Certificate] = field(default_factory=list)
    signer: str | None = None  # SHA-1 thumbprint the bundle must be signed with
    allow_unsigned: bool = False  # integrity only, for a bundle compiled without a key
    now: dt.datetime | None = None
    deadline_s: float = DEFAULT_DEADLINE_S


class _Refused(Exception):
    pass


class _Clock:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise _Refused("the verification took longer than its time limit")


def _open_beneath(root_fd: int, relative: str) -> int:
    """Open `relative` under the folder `root_fd` without following any link, as a regular file."""
    parts = relative.split("/")
    fd = root_fd
    opened: list[int] = []
    try:
        for part in parts[:-1]:
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            opened.append(fd)
        # O_NONBLOCK: a FIFO put where a file should be must not block the open.
        handle = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        raise _Refused("missing" if exc.errno == 2 else f"cannot be opened safely ({exc.strerror}): a link or not a plain file") from exc
    finally:
        for opened_fd in opened:
            os.close(opened_fd)
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode):
        os.close(handle)
        raise _Refused("not a plain file")
    return handle


def _read(root_fd: int, relative: str, limit: int, clock: _Clock, expected_size: int | None = None) -> tuple[bytes, str]:
    """(bytes, SHA-256) of a file beneath the bundle, refused when larger than `limit` (or than expected)."""
    handle = _open_beneath(root_fd, relative)
    try:
        size = os.fstat(handle).st_size
        if size > limit:
            raise _Refused(f"is {size} bytes, more than the {limit} a bundle file may be")
        if expected_size is not None and size != expected_size:
            raise _Refused(f"altered: {size} bytes, the manifest says {expected_size}")
        digest, chunks, total = hashlib.sha256(), [], 0
        while True:
            clock.check()
            chunk = os.read(handle, _CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise _Refused("grew while it was read")
            digest.update(chunk)
            chunks.append(chunk)
        return b"".join(chunks), digest.hexdigest().upper()
    finally:
        os.close(handle)


def _walk(root_fd: int, clock: _Clock, limit: int) -> tuple[list[str], list[str]]:
    """(regular files, problems) beneath the bundle, as '/'-separated relative paths; links and devices
    are problems, never followed."""
    files, problems, count = [], [], 0
    stack = [("", os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root_fd))]
    while stack:
        prefix, fd = stack.pop()
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    clock.check()
                    count += 1
                    if count > limit:
                        raise _Refused(f"the bundle holds more than {limit} entries")
                    relative = prefix + entry.name
                    if entry.is_symlink():
                        problems.append(f"{relative}: a link (links are never followed)")
                    elif entry.is_dir(follow_symlinks=False):
                        if relative.count("/") >= 4:
                            problems.append(f"{relative}: folders nested too deep")
                            continue
                        stack.append((relative + "/", os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)))
                    elif entry.is_file(follow_symlinks=False):
                        files.append(relative)
                    else:
                        problems.append(f"{relative}: not a plain file (a device, a socket or a pipe)")
        finally:
            os.close(fd)
    return sorted(files), problems


def _verdict_problems(data: bytes, trust: Trust, expected_signer: str, now: dt.datetime) -> tuple[list[str], str]:
    verdict = verify_script(data, trust.anchors, now, trust.tsa_anchors, require_bom=True)
    problems = list(verdict.problems)
    if verdict.signed and verdict.thumbprint and verdict.thumbprint != expected_signer:
        problems.append(f"signed by {verdict.thumbprint} ({verdict.signer}), not by the bundle's signer {expected_signer}")
    note = ""
    if verdict.ok:
        note = "signed" + (f", timestamped {verdict.timestamp:%Y-%m-%d %H:%M} UTC" if verdict.timestamp else "")
    return problems, note


def verify_file(path: Path, trust: Trust) -> FileReport:
    """Check one script's signature (a file outside a bundle)."""
    report = FileReport(str(path))
    clock = _Clock(trust.deadline_s)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("not a plain file (links are not followed)")
        folder = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            data, _ = _read(folder, os.path.basename(path), MAX_FILE_BYTES, clock)
        finally:
            os.close(folder)
    except (_Refused, OSError) as exc:
        report.problems.append(str(exc) if isinstance(exc, _Refused) else f"cannot read: {exc.strerror or exc}")
        return report
    verdict = verify_script(data, trust.anchors, trust.now, trust.tsa_anchors)
    report.problems.extend(verdict.problems)
    if verdict.ok and trust.signer and verdict.thumbprint != trust.signer.upper():
        report.problems.append(f"signed by {verdict.thumbprint}, not by {trust.signer}")
    if verdict.ok:
        stamp = f", timestamped {verdict.timestamp:%Y-%m-%d %H:%M} UTC" if verdict.timestamp else ""
        report.note = f"signed by {verdict.signer}{stamp}"
    report.note += "".join(f"; {note}" for note in verdict.notes)
    return report


def verify_bundle(root: Path, trust: Trust) -> list[FileReport]:
    """Check the bundle at `root`: one report per file, and one for the manifest first."""
    clock = _Clock(trust.deadline_s)
    now = trust.now or dt.datetime.now(dt.timezone.utc)
    try:
        info = os.lstat(root)
        if not stat.S_ISDIR(info.st_mode):
            return [FileReport(str(root), ["not a folder (links are not followed)"])]
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        return [FileReport(str(root), [f"cannot open: {exc.strerror or exc}"])]
    try:
        return _verify_bundle(root_fd, trust, clock, now)
    except _Refused as exc:
        return [FileReport(str(root), [str(exc)])]
    finally:
        os.close(root_fd)


def _signed_manifest(root_fd: int, relative: str, trust: Trust, clock: _Clock, now: dt.datetime,
                     expected_signer: str | None, expected_size: int | None = None) -> tuple[mf.Manifest, FileReport, str]:
    """Read, check the signature of, and parse a manifest; problems go in the report."""
    report = FileReport(relative)
    data, sha = _read(root_fd, relative, mf.MAX_MANIFEST_BYTES, clock, expected_size)
    text, encoded = split_signature(data)
    if encoded is None and not trust.allow_unsigned:
        raise _Refused(f"{relative} is not signed: nothing proves who made this bundle (verify an unsigned bundle with --unsigned, for its integrity only)")
    try:
        listing = mf.parse(text)
    except mf.ManifestError as exc:
        raise _Refused(f"{relative} is not a manifest sfbgen writes: {exc}") from exc
    if encoded is not None:
        signer = expected_signer or listing.signer
        problems, note = _verdict_problems(data, trust, signer, now)
        if problems:
            raise _Refused(f"{relative}: " + "; ".join(problems) + ". Nothing in this bundle can be trusted")
        if listing.signer != signer:
            raise _Refused(f"{relative} names the signer {listing.signer}, but is signed by {signer}")
        if trust.signer and signer != trust.signer.upper():
            raise _Refused(f"{relative} is signed by {signer}, not by {trust.signer.upper()} (--signer)")
        report.note = note + f" by {signer}"
    elif listing.signer:
        raise _Refused(f"{relative} names the signer {listing.signer} but carries no signature")
    else:
        report.note = "unsigned: integrity only, not who made it (--unsigned)"
    return listing, report, sha


def _verify_bundle(root_fd: int, trust: Trust, clock: _Clock, now: dt.datetime) -> list[FileReport]:
    listing, head, _ = _signed_manifest(root_fd, mf.ROOT_NAME, trust, clock, now, None)
    if listing.scope != "*":
        raise _Refused(f"{mf.ROOT_NAME} is a server's manifest ({listing.scope}), not the bundle's")
    signer = listing.signer
    reports = [head]
    entries = {entry.path: entry for entry in listing.files}
    produced = set(listing.produced_on_server)
    found, walk_problems = _walk(root_fd, clock, min(MAX_TREE_ENTRIES, len(entries) + len(produced) + 1000))
    reports += [FileReport(problem.split(":")[0], [problem.split(": ", 1)[1]]) for problem in walk_problems]
    for path, entry in sorted(entries.items()):
        report = FileReport(path)
        reports.append(report)
        kind = mf.kind_of(path)
        try:
            if kind == "executable":
                raise _Refused("a type that runs on Windows and that sfbgen never writes")
            if kind == "unknown":
                raise _Refused("a type sfbgen never writes")
            if path.rsplit("/", 1)[-1] == mf.SERVER_NAME:
                server_listing, server_report, sha = _signed_manifest(root_fd, path, trust, clock, now, signer or None, entry.size)
                _compare(listing, server_listing, path.rsplit("/", 1)[0], report)
                report.note = server_report.note
            else:
                data, sha = _read(root_fd, path, MAX_FILE_BYTES, clock, entry.size)
                if kind == "script":
                    if signer:
                        problems, note = _verdict_problems(data, trust, signer, now)
                        report.problems += problems
                        report.note = note
                    else:
                        report.note = "unsigned (integrity only)"
            if sha != entry.sha256:
                report.problems.append(f"altered: its SHA-256 is not the manifest's")
        except _Refused as exc:
            report.problems.append(str(exc))
    listed_lower = {path.lower() for path in entries} | {mf.ROOT_NAME.lower()}
    for path in found:
        if path.lower() in listed_lower:
            continue
        if path in produced:
            reports.append(FileReport(path, note="produced on the server, not verifiable here"))
        else:
            reports.append(FileReport(path, [f"not in {mf.ROOT_NAME}: added after compiling"]))
    return reports


def _compare(root: mf.Manifest, server: mf.Manifest, folder: str, report: FileReport) -> None:
    """A server's manifest must list exactly what the bundle's lists for that folder."""
    prefix = folder + "/"
    expected = {e.path[len(prefix):]: (e.sha256, e.size) for e in root.files if e.path.startswith(prefix) and e.path != prefix + mf.SERVER_NAME}
    actual = {e.path: (e.sha256, e.size) for e in server.files}
    if server.scope != folder or server.signer != root.signer:
        report.problems.append(f"it describes {server.scope} signed by {server.signer or 'nobody'}, not {folder} signed by {root.signer or 'nobody'}")
    if expected != actual:
        report.problems.append(f"its file list differs from {mf.ROOT_NAME}'s")
    produced = sorted(p[len(prefix):] for p in root.produced_on_server if p.startswith(prefix))
    if produced != sorted(server.produced_on_server):
        report.problems.append(f"its files produced on the server differ from {mf.ROOT_NAME}'s")
