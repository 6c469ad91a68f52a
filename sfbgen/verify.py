"""Verifying a compiled bundle, as an attacker would be checked: the signed manifest first, then every file.

Before anything else, no two names of the bundle may be one file on Windows (or a macOS controller):
names that differ only in case, Unicode normalization, trailing dots or spaces, a ':' stream, and the
reserved device names are refused, naming both files.

What decides trust is itself signed and checked next: `MANIFEST.psd1` must carry a valid, canonical
Authenticode signature chaining to a root the user trusts, by exactly the certificate the user pinned
(`--signer`, or a trust file), not revoked by any CRL given or carried in the signature. Only then is
its list read — strictly (`sfbgen.manifest`) — its freshness checked when asked (the topology digest,
the compile serial), and the bundle compared with it:

- every file of the bundle is listed by its exact name; a file the servers produce (named exactly in
  the manifest) is accepted only in a bundle verified as deployed (`--deployed`), never in a fresh
  one; anything else (an extra file, a link, a device, a folder where a file should be) fails;
- every listed file is present, a regular file, of the listed size and SHA-256;
- every script is signed by the manifest's signer and chains to a trusted root; any other type that
  runs on Windows fails, and so does any type sfbgen does not write;
- each server's own manifest (what Test-Bundle.ps1 reads there) says the same as the root's, serial
  included.

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
from typing import TypedDict

from cryptography import x509

from . import manifest as mf
from .authenticode import AuthenticodeError, split_signature, verify_script

MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any script or document sfbgen writes
MAX_TREE_ENTRIES = 200_000
DEFAULT_DEADLINE_S = 300.0
_CHUNK = 1024 * 1024


@dataclass
class FileReport:
    path: str
    problems: list[str] = field(default_factory=list)
    note: str = ""
    warnings: list[str] = field(default_factory=list)  # what could not be checked (revocation), said beside an ok

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Trust:
    """What the user trusts: roots for code signing, roots for timestamps, the one signer, and what
    else is known: CRLs, whether the bundle has been used on servers, how fresh it must be."""

    anchors: list[x509.Certificate] = field(default_factory=list)
    tsa_anchors: list[x509.Certificate] = field(default_factory=list)
    # SHA-1 thumbprint the bundle must be signed with. Required for a signed bundle or script: without
    # it any code-signing certificate under the root would do; the refusal names the signer to pin.
    signer: str | None = None
    allow_unsigned: bool = False  # integrity only, for a bundle compiled without a key
    now: dt.datetime | None = None
    deadline_s: float = DEFAULT_DEADLINE_S
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    deployed: bool = False  # the bundle has been used on servers: the files they produce may be in it
    expect_topology: str | None = None  # SHA-256 of the topology the bundle must be compiled from
    not_older_than: int | None = None  # the lowest compile serial accepted


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
            try:
                chunk = os.read(handle, _CHUNK)
            except OSError as exc:
                raise _Refused(f"cannot be read ({exc.strerror or exc})") from exc
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


def _walk(root_fd: int, clock: _Clock, limit: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(regular files, folders, (path, problem)) beneath the bundle, as '/'-separated relative paths;
    links and devices are problems, never followed."""
    files: list[str] = []
    folders: list[str] = []
    problems: list[tuple[str, str]] = []
    stack = [("", os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root_fd))]
    try:
        _walk_stack(stack, clock, limit, files, folders, problems)
    finally:
        for _, fd in stack:  # what an error left open
            os.close(fd)
    return sorted(files), sorted(folders), problems


def _walk_stack(stack, clock: _Clock, limit: int, files: list[str], folders: list[str], problems: list[tuple[str, str]]) -> None:
    count = 0
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
                        problems.append((relative, "a link (links are never followed)"))
                    elif entry.is_dir(follow_symlinks=False):
                        folders.append(relative)
                        if relative.count("/") >= 4:
                            problems.append((relative, "folders nested too deep"))
                            continue
                        stack.append((relative + "/", os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)))
                    elif entry.is_file(follow_symlinks=False):
                        files.append(relative)
                    else:
                        problems.append((relative, "not a plain file (a device, a socket or a pipe)"))
        finally:
            os.close(fd)


def _collisions(paths: list[str]) -> list[FileReport]:
    """A report for every name that is not its own file on Windows: a reserved device name, a ':'
    stream, or the same file as another name of the bundle once case, Unicode normalization and
    trailing dots and spaces are folded the way Windows (and a macOS controller) fold them."""
    reports: list[FileReport] = []
    first: dict[str, str] = {}
    for path in sorted(paths):
        device = next((d for d in map(mf.reserved_device, path.split("/")) if d), None)
        if device:
            reports.append(FileReport(path, [f"on Windows this name is the device {device}, not a file (a reserved device name)"]))
        elif ":" in path:
            reports.append(FileReport(path, [f"on Windows this name is a stream of {path.split(':', 1)[0]}, not a file of its own"]))
        key = mf.windows_key(path)
        if key in first:
            reports.append(FileReport(path, [f"the same file as {first[key]} on Windows and macOS ({_how_alike(path, first[key])}): "
                                             "copied there, one replaces the other"]))
        else:
            first[key] = path
    return reports


def _how_alike(a: str, b: str) -> str:
    """What makes two names one on Windows, said so that a reader can see it (letters that look alike named)."""
    import unicodedata

    reasons = []
    if ":" in a + b:
        reasons.append("a ':' stream")
    if any(s.rstrip(". ") != s for name in (a, b) for s in name.split("/")):
        reasons.append("trailing dots or spaces")
    odd = sorted({c for c in a + b if ord(c) > 0x7F})
    if odd:
        reasons.append("Unicode normalization: " + ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in odd[:3]))
    if not reasons or (a != b and a.casefold() == b.casefold()):
        reasons.insert(0, "letters that differ only in case")
    return "; ".join(reasons)


def _verdict_problems(data: bytes, trust: Trust, expected_signer: str, now: dt.datetime) -> tuple[list[str], str]:
    verdict = verify_script(data, trust.anchors, now, trust.tsa_anchors, require_bom=True, canonical=True, crls=trust.crls)
    problems = list(verdict.problems)
    if verdict.signed and verdict.thumbprint and verdict.thumbprint != expected_signer:
        problems.append(f"signed by {verdict.thumbprint} ({verdict.signer}), not by the bundle's signer {expected_signer}")
    note = ""
    if verdict.ok:
        note = "signed" + (f", timestamped {verdict.timestamp:%Y-%m-%d %H:%M} UTC" if verdict.timestamp else "")
    return problems, note


def _pin_hint(thumbprint: str, subject: str) -> str:
    return (f"no signer is pinned: it is signed by {thumbprint} ({subject}). If that is your signing certificate, "
            f"verify again with --signer {thumbprint} (or pin it in a --trust-file)")


def verify_file(path: Path, trust: Trust) -> FileReport:
    """Check one script's signature (a file outside a bundle): the byte-order mark, a canonical
    signature, the pinned signer, the chain and revocation, as for every script of a bundle."""
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
    verdict = verify_script(data, trust.anchors, trust.now, trust.tsa_anchors, require_bom=True, canonical=True, crls=trust.crls)
    report.problems.extend(verdict.problems)
    if verdict.ok and not trust.signer:
        report.problems.append(_pin_hint(verdict.thumbprint, verdict.signer))
    elif verdict.ok and trust.signer and verdict.thumbprint != trust.signer.upper():
        report.problems.append(f"signed by {verdict.thumbprint} ({verdict.signer}), not by {trust.signer.upper()} (--signer)")
    if verdict.ok:
        stamp = f", timestamped {verdict.timestamp:%Y-%m-%d %H:%M} UTC" if verdict.timestamp else ""
        report.note = f"signed by {verdict.signer}{stamp}"
    report.warnings = list(verdict.notes)
    return report


def verify_bundle(root: Path, trust: Trust) -> list[FileReport]:
    """Check the bundle at `root`: one report per file, and one for the manifest first."""
    clock = _Clock(trust.deadline_s)
    now = trust.now or dt.datetime.now(dt.UTC)
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
    except OSError as exc:  # a folder we may not read, a disk error: a refusal, like any other
        where = f" ({os.fsdecode(exc.filename)})" if exc.filename is not None else ""
        return [FileReport(str(root), [f"cannot be read{where}: {exc.strerror or exc}"])]
    finally:
        os.close(root_fd)


def _signed_manifest(root_fd: int, relative: str, trust: Trust, clock: _Clock, now: dt.datetime,
                     expected_signer: str | None, expected_size: int | None = None) -> tuple[mf.Manifest, FileReport, str]:
    """Read a manifest, check its signature (before its text is read) and parse it; refusals raise _Refused.

    `expected_signer`: a server's manifest must be signed by the bundle's signer; the bundle's own
    manifest (None) by the signer the user pinned."""
    report = FileReport(relative)
    data, sha = _read(root_fd, relative, mf.MAX_MANIFEST_BYTES, clock, expected_size)
    try:
        text, encoded = split_signature(data)
    except (AuthenticodeError, UnicodeDecodeError) as exc:
        raise _Refused(f"{relative} has an unreadable signature block ({exc}). Nothing in this bundle can be trusted") from exc
    signer = ""
    if encoded is not None:
        verdict = verify_script(data, trust.anchors, now, trust.tsa_anchors, require_bom=True, canonical=True, crls=trust.crls)
        who = f" (signed by {verdict.thumbprint}, {verdict.signer})" if verdict.thumbprint else ""
        if verdict.problems:
            raise _Refused(f"{relative}{who}: " + "; ".join(verdict.problems) + ". Nothing in this bundle can be trusted")
        signer = verdict.thumbprint
        pinned = expected_signer or (trust.signer.upper() if trust.signer else None)
        if pinned is None:
            raise _Refused(f"{relative}: " + _pin_hint(verdict.thumbprint, verdict.signer))
        if signer != pinned:
            raise _Refused(f"{relative} is signed by {signer} ({verdict.signer}), not by {pinned}"
                           + (" (--signer)" if expected_signer is None else " (the bundle's signer)"))
        report.note = ("signed" + (f", timestamped {verdict.timestamp:%Y-%m-%d %H:%M} UTC" if verdict.timestamp else "")
                       + f" by {signer}")
        report.warnings = list(verdict.notes)
    elif not trust.allow_unsigned:
        raise _Refused(f"{relative} is not signed: nothing proves who made this bundle (verify an unsigned bundle with --unsigned, for its integrity only)")
    else:
        report.note = "unsigned: integrity only, not who made it (--unsigned)"
    try:
        listing = mf.parse(text)
    except mf.ManifestError as exc:
        raise _Refused(f"{relative} is not a manifest sfbgen writes: {exc}") from exc
    if listing.format != mf.FORMAT:
        raise _Refused(f"{relative} is of an older sfbgen ({listing.format}, without a compile serial): compile the bundle again")
    if listing.signer != signer:
        if signer:
            raise _Refused(f"{relative} names the signer {listing.signer or 'nobody'}, but is signed by {signer}")
        raise _Refused(f"{relative} names the signer {listing.signer} but carries no signature")
    return listing, report, sha


def _verify_bundle(root_fd: int, trust: Trust, clock: _Clock, now: dt.datetime) -> list[FileReport]:
    # First of all, names Windows would merge: whatever else is true of the bundle, it cannot be copied whole.
    found, folders, walk_problems = _walk(root_fd, clock, MAX_TREE_ENTRIES)
    collisions = _collisions(found + folders + [path for path, _ in walk_problems])
    if collisions:
        return collisions
    listing, head, _ = _signed_manifest(root_fd, mf.ROOT_NAME, trust, clock, now, None)
    if listing.scope != "*":
        raise _Refused(f"{mf.ROOT_NAME} is a server's manifest ({listing.scope}), not the bundle's")
    if trust.expect_topology and listing.topology.lower() != trust.expect_topology.lower():
        raise _Refused(f"{mf.ROOT_NAME} is of a bundle compiled from another topology (SHA-256 {listing.topology[:16]}...), "
                       f"not the one expected ({trust.expect_topology.lower()[:16]}..., --expect-topology): an older or another bundle")
    if trust.not_older_than is not None and listing.serial < trust.not_older_than:
        raise _Refused(f"{mf.ROOT_NAME} has the compile serial {listing.serial}, older than {trust.not_older_than} "
                       "(--not-older-than): an older bundle in place of the current one")
    head.note += f"; serial {listing.serial}, topology {listing.topology[:12]}"
    signer = listing.signer
    reports = [head]
    entries = {entry.path: entry for entry in listing.files}
    produced = set(listing.produced_on_server)
    reports += [FileReport(path, [problem]) for path, problem in walk_problems]
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
                        if not data.startswith(b"\xef\xbb\xbf"):
                            report.problems.append("the script does not start with the UTF-8 byte-order mark sfbgen writes")
                        report.note = "unsigned (integrity only)"
            if sha != entry.sha256:
                report.problems.append("altered: its SHA-256 is not the manifest's")
        except _Refused as exc:
            report.problems.append(str(exc))
    for path in found:
        if path in entries or path == mf.ROOT_NAME:
            continue
        if path in produced:
            if trust.deployed:
                reports.append(FileReport(path, note="produced on the server, not verifiable here (--deployed)"))
            else:
                reports.append(FileReport(path, ["a file the servers produce, in a bundle that has not been deployed: a freshly "
                                                 "compiled bundle holds none, so someone else put it here (verify a bundle "
                                                 "servers have used with --deployed)"]))
        else:
            reports.append(FileReport(path, [f"not in {mf.ROOT_NAME}: added after compiling"]))
    return reports


def _compare(root: mf.Manifest, server: mf.Manifest, folder: str, report: FileReport) -> None:
    """A server's manifest must list exactly what the bundle's lists for that folder, with the same serial."""
    prefix = folder + "/"
    expected = {e.path[len(prefix):]: (e.sha256, e.size) for e in root.files if e.path.startswith(prefix) and e.path != prefix + mf.SERVER_NAME}
    actual = {e.path: (e.sha256, e.size) for e in server.files}
    if server.scope != folder or server.signer != root.signer:
        report.problems.append(f"it describes {server.scope} signed by {server.signer or 'nobody'}, not {folder} signed by {root.signer or 'nobody'}")
    if server.serial != root.serial:
        report.problems.append(f"its compile serial is {server.serial}, not the bundle's {root.serial}: a server folder of another compile")
    if expected != actual:
        report.problems.append(f"its file list differs from {mf.ROOT_NAME}'s")
    produced = sorted(p[len(prefix):] for p in root.produced_on_server if p.startswith(prefix))
    if produced != sorted(server.produced_on_server):
        report.problems.append(f"its files produced on the server differ from {mf.ROOT_NAME}'s")


# ---------------------------------------------------------------------------------------------------
# What the user gives to trust: certificates, a pinned signer, CRLs, freshness


class TrustInputError(ValueError):
    """An input of `sfbgen verify` that cannot be read or does not fit the others (a usage error)."""


MAX_TRUST_INPUT_BYTES = 16 * 1024 * 1024  # a CRL of a large CA can be several MB; a certificate is a few KB
_THUMBPRINT_HEX = frozenset("0123456789ABCDEF")


def _thumbprint(value: object, what: str) -> str:
    text = str(value).replace(" ", "").replace(":", "").upper() if isinstance(value, str) else ""
    if len(text) not in (40, 64) or not set(text) <= _THUMBPRINT_HEX:
        raise TrustInputError(f"{what} is not a certificate thumbprint (40 hexadecimal digits, SHA-1; or 64, SHA-256)")
    return text


def _read_input(path: Path, what: str, limit: int = MAX_TRUST_INPUT_BYTES) -> bytes:
    # Messages hold the path as it is: the command line shows them with `visible`.
    try:
        with open(path, "rb") as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise TrustInputError(f"cannot read the {what} {os.fspath(path)}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise TrustInputError(f"the {what} {os.fspath(path)} is larger than {limit // (1024 * 1024)} MiB")
    return data


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """CRLs from PEM (one or many) or DER bytes."""
    if b"-----BEGIN" in data:
        import re

        blocks = re.findall(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", data, re.S)
        if not blocks:
            raise ValueError("no '-----BEGIN X509 CRL-----' block")
        return [x509.load_pem_x509_crl(block) for block in blocks]
    return [x509.load_der_x509_crl(data)]


class TrustPins(TypedDict):
    """What a trust file pins (read_trust_file)."""

    signer: str
    roots: list[str] | None
    not_older_than: int | None


def read_trust_file(data: bytes) -> TrustPins:
    """The pins of a trust file: {"signer": THUMBPRINT, "roots": [THUMBPRINT, ...], "not_older_than": N};
    only "signer" is required, and nothing else may be in it."""
    import json

    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TrustInputError(f"the trust file is not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise TrustInputError('the trust file is not a JSON object: {"signer": THUMBPRINT, "roots": [THUMBPRINT, ...]}')
    unknown = sorted(set(document) - {"signer", "roots", "not_older_than"})
    if unknown:
        raise TrustInputError(f"the trust file has fields sfbgen does not know: {', '.join(map(str, unknown[:5]))}")
    if "signer" not in document:
        raise TrustInputError('the trust file pins no "signer"')
    pins: TrustPins = {"signer": _thumbprint(document["signer"], "the trust file's signer"), "roots": None, "not_older_than": None}
    if pins["signer"] and len(pins["signer"]) != 40:
        raise TrustInputError("the trust file's signer must be a SHA-1 thumbprint (40 hexadecimal digits), as Windows shows it")
    if "roots" in document:
        roots = document["roots"]
        if not isinstance(roots, list) or not roots or len(roots) > 100:
            raise TrustInputError('the trust file\'s "roots" is not a list of 1 to 100 thumbprints')
        pins["roots"] = [_thumbprint(root, "a root of the trust file") for root in roots]
    if "not_older_than" in document:
        value = document["not_older_than"]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= mf.MAX_SERIAL:
            raise TrustInputError(f'the trust file\'s "not_older_than" is not a serial from 1 to {mf.MAX_SERIAL}')
        pins["not_older_than"] = value
    return pins


def trust_inputs(trust: list[Path], trust_tsa: list[Path], signer: str | None, trust_file: Path | None,
                 crls: list[Path], expect_topology: Path | None, not_older_than: int | None) -> Trust:
    """The Trust that `sfbgen verify`'s options describe; TrustInputError when one cannot be read or
    contradicts another."""
    from cryptography.hazmat.primitives import hashes

    from .authenticode import load_certificates

    def certificates(files: list[Path], what: str) -> list[x509.Certificate]:
        found = []
        for path in files:
            try:
                found.extend(load_certificates(_read_input(path, what, 1024 * 1024)))
            except ValueError as exc:
                if isinstance(exc, TrustInputError):
                    raise
                raise TrustInputError(f"cannot read the {what} {os.fspath(path)}: {exc}") from exc
        return found

    anchors = certificates(trust, "trust anchor")
    pinned_signer = _thumbprint(signer, "--signer") if signer else None
    if pinned_signer and len(pinned_signer) != 40:
        raise TrustInputError("--signer must be a SHA-1 thumbprint (40 hexadecimal digits), as Windows shows it")
    if trust_file is not None:
        pins = read_trust_file(_read_input(trust_file, "trust file", 1024 * 1024))
        if pinned_signer and pinned_signer != pins["signer"]:
            raise TrustInputError(f"--signer {pinned_signer} is not the signer the trust file pins ({pins['signer']})")
        pinned_signer = pins["signer"]
        if pins["roots"] is not None:
            for anchor in anchors:
                prints = {anchor.fingerprint(hashes.SHA1()).hex().upper(), anchor.fingerprint(hashes.SHA256()).hex().upper()}
                if not prints & set(pins["roots"]):
                    raise TrustInputError(f"the --trust certificate {anchor.subject.rfc4514_string()} "
                                          f"({anchor.fingerprint(hashes.SHA1()).hex().upper()}) is not one of the roots the trust file pins")
        if pins["not_older_than"] is not None:
            not_older_than = max(not_older_than or 0, pins["not_older_than"])
    if not_older_than is not None and not 1 <= not_older_than <= mf.MAX_SERIAL:
        raise TrustInputError(f"--not-older-than must be a serial from 1 to {mf.MAX_SERIAL}")
    revocation_lists = []
    for path in crls:
        try:
            revocation_lists.extend(load_crls(_read_input(path, "CRL")))
        except ValueError as exc:
            if isinstance(exc, TrustInputError):
                raise
            raise TrustInputError(f"cannot read the CRL {os.fspath(path)}: {exc}") from exc
    digest = None
    if expect_topology is not None:
        import hashlib

        from .source import MAX_SOURCE_BYTES

        digest = hashlib.sha256(_read_input(expect_topology, "topology", MAX_SOURCE_BYTES)).hexdigest()
    return Trust(anchors, certificates(trust_tsa, "timestamp anchor"), pinned_signer, crls=revocation_lists,
                 expect_topology=digest, not_older_than=not_older_than)
