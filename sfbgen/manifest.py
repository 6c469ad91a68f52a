"""Manifests: the signed list of a bundle's files, their SHA-256 and size, and the one signer.

A manifest is a PowerShell data file (`.psd1`), so that it is signed like a script (Authenticode,
checked on the server by Get-AuthenticodeSignature) and read on the server without running code
(Import-PowerShellDataFile). sfbgen writes it in one fixed layout and reads it back only in that
layout, line by line: anything else — a second key, a line out of place, an unknown field — is
refused, so what the verifier checks is exactly what was signed.

- `MANIFEST.psd1` at the bundle root names every file of the bundle (`Scope = '*'`);
- `<server>/manifest.psd1` names the files of that server's folder, for Test-Bundle.ps1 there.
Files that the bundle gains on a server (the configuration export, the CA's answers, exported
certificates) are named exactly under `ProducedOnServer`; they are never scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .powershell import quote

FORMAT = "sfbgen-manifest/3"  # /3 adds the compile serial; /2 (no serial) is still read, so compile can replace such a bundle
OLD_FORMATS = ("sfbgen-manifest/2",)
MAX_SERIAL = 999_999_999_999
ROOT_NAME = "MANIFEST.psd1"
SERVER_NAME = "manifest.psd1"
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_ENTRIES = 500_000

# Types that run on Windows when opened or called: each must be a signed PowerShell script, or is refused.
# The one list of the extensions sfbgen signs and a manifest lists as scripts (compiler.SIGNABLE is
# this tuple): data/platform.json, 'script_extensions' (tests/test_trust.py keeps them equal).
SCRIPT_TYPES = (".ps1", ".psm1", ".psd1")
EXECUTABLE_TYPES = (".ps1xml", ".psc1", ".bat", ".cmd", ".exe", ".dll", ".com", ".scr", ".vbs", ".vbe", ".js", ".jse",
                    ".wsf", ".wsh", ".msi", ".msp", ".hta", ".cpl", ".lnk", ".reg", ".psc2", ".cdxml", ".ps2", ".ps2xml")
# What a bundle holds besides scripts: readable documents, checked by their hash.
DATA_TYPES = (".json", ".md", ".yml", ".sfbgen-bundle")  # .yml: the Ansible orchestration (fleet.py), read by the controller, never run by Windows


@dataclass(frozen=True)
class Entry:
    path: str  # relative, '/'-separated
    sha256: str  # upper-case hex
    size: int


@dataclass
class Manifest:
    scope: str  # a server FQDN, or '*' for the whole bundle
    topology: str  # SHA-256 of the topology source
    signer: str  # SHA-1 thumbprint of the certificate that signs every script; '' when unsigned
    files: list[Entry] = field(default_factory=list)
    produced_on_server: list[str] = field(default_factory=list)
    # The compile serial: the same in the root's and every server's manifest; it grows whenever what the
    # bundle does changes (see `next_serial`), so an older bundle can be told from the current one.
    serial: int = 1
    format: str = FORMAT


# Names Windows does not keep apart, from "Naming Files, Paths, and Namespaces"
# (https://learn.microsoft.com/en-us/windows/win32/fileio/naming-a-file): names differing only in case
# are the same file ("Do not assume case sensitivity"); a name may not end in a space or a period (the
# system strips them); the reserved device names, also when an extension follows (NUL.txt is NUL); ':'
# separates a file's name from one of its streams (File Streams,
# https://learn.microsoft.com/en-us/windows/win32/fileio/file-streams). macOS compares names
# case- and normalization-insensitively, hence the NFKC folding as well.
# The page lists CON, PRN, AUX, NUL, COM1-9, COM\u00b9-\u00b3, LPT1-9 and LPT\u00b9-\u00b3 (the superscripts fold to
# digits under NFKC); CONIN$ and CONOUT$ are the console's names for CreateFile
# (https://learn.microsoft.com/en-us/windows/win32/api/fileapi/nf-fileapi-createfilew, "Consoles"),
# CLOCK$ a device of Windows NT. COM0 and LPT0 are refused too: a stricter rule costs sfbgen nothing.
RESERVED_DEVICE_NAMES = frozenset(["CON", "PRN", "AUX", "NUL", "CLOCK$", "CONIN$", "CONOUT$"]
                                  + [f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789"])


def reserved_device(segment: str) -> str | None:
    """The Windows device that `segment` names ('nul.md' and 'NUL .txt' are NUL; COM\u00b9 is COM1), or None."""
    import unicodedata

    stem = unicodedata.normalize("NFKC", segment.split(":", 1)[0].split(".", 1)[0]).rstrip(" ").upper()
    return stem if stem in RESERVED_DEVICE_NAMES else None


def windows_key(path: str) -> str:
    """What `path` names on Windows (or a macOS controller): two paths with the same key are one file there.

    Per segment: the stream part after ':' dropped, trailing dots and spaces dropped, compatibility
    normalization (NFKC: the Kelvin sign is K, a full-width letter its ASCII one) and case folding."""
    import unicodedata

    out = []
    for segment in path.split("/"):
        segment = segment.split(":", 1)[0].rstrip(". ")
        segment = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", segment).casefold())
        out.append(segment)
    return "/".join(out)


_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def path_problem(path: str) -> str | None:
    """Why `path` is not a normalised relative path inside a bundle, or None."""
    if not path or len(path) > 400:
        return "empty or too long"
    if path == ".sfbgen-bundle":
        return None  # the bundle's marker file, at its root
    if path.startswith("/") or "\\" in path or ":" in path:
        return "not a relative '/'-separated path"
    segments = path.split("/")
    if len(segments) > 4:
        return "too deep"
    for segment in segments:
        if segment in ("", ".", "..") or not _SAFE_SEGMENT.match(segment):
            return f"the segment '{segment}' is not allowed"
        if segment.endswith("."):
            return f"the segment '{segment}' ends with a period, which Windows drops"
        if reserved_device(segment):
            return f"the segment '{segment}' is the Windows device {reserved_device(segment)}"
    return None


def kind_of(path: str) -> str:
    """'script', 'executable', 'data' or 'unknown', by the extension, compared case-insensitively."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(SCRIPT_TYPES):
        return "script"
    if name.endswith(EXECUTABLE_TYPES):
        return "executable"
    if name.endswith(DATA_TYPES) or name == ".sfbgen-bundle":
        return "data"
    return "unknown"


def render(manifest: Manifest) -> str:
    """The manifest's text (LF line ends; the compiler writes it as the scripts are written)."""
    lines = [
        "# sfbgen manifest: every file of " + ("this bundle" if manifest.scope == "*" else "this server's bundle folder")
        + ", its SHA-256 and size, and the one",
        "# certificate that signs its scripts. Checked by Test-Bundle.ps1 on the server and by",
        "# `sfbgen verify --trust` before anything runs. Do not edit: any change breaks its signature.",
        "@{",
        f"    Format = {quote(FORMAT)}",
        f"    Scope = {quote(manifest.scope)}",
        f"    Topology = {quote(manifest.topology)}",
        f"    Serial = {int(manifest.serial)}",
        f"    Signer = {quote(manifest.signer)}",
        "    Files = @(",
    ]
    for entry in manifest.files:
        lines.append(f"        @{{ Path = {quote(entry.path)}; Sha256 = {quote(entry.sha256)}; Size = {entry.size} }}")
    lines.append("    )")
    lines.append("    ProducedOnServer = @(")
    for name in manifest.produced_on_server:
        lines.append(f"        {quote(name)}")
    lines.append("    )")
    lines.append("}")
    return "\n".join(lines) + "\n"


class ManifestError(ValueError):
    pass


_LITERAL = r"'((?:[^'\r\n]|'')*)'"
_FIELD = re.compile(r"^    (Format|Scope|Topology|Signer) = " + _LITERAL + r"$")
_SERIAL = re.compile(r"^    Serial = ([1-9][0-9]{0,11})$")
_ENTRY = re.compile(r"^        @\{ Path = " + _LITERAL + r"; Sha256 = '([0-9A-F]{64})'; Size = (0|[1-9][0-9]{0,11}) \}$")
_NAME = re.compile(r"^        " + _LITERAL + r"$")


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def parse(text: str) -> Manifest:
    """Read a manifest written by `render`, strictly; raise ManifestError on anything else."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    position = 0
    while position < len(lines) and lines[position].startswith("# "):
        position += 1

    def expect(line: str) -> None:
        nonlocal position
        if position >= len(lines) or lines[position] != line:
            raise ManifestError(f"line {position + 1}: expected {line!r}")
        position += 1

    expect("@{")
    values: dict[str, str] = {}
    serial = 0  # a manifest of format /2 has none
    for key in ("Format", "Scope", "Topology", "Serial", "Signer"):
        if key == "Serial":
            if values["Format"] in OLD_FORMATS:
                continue
            match = _SERIAL.match(lines[position]) if position < len(lines) else None
            if not match:
                raise ManifestError(f"line {position + 1}: expected Serial = <a number from 1>")
            serial = int(match.group(1))
            position += 1
            continue
        match = _FIELD.match(lines[position]) if position < len(lines) else None
        if not match or match.group(1) != key:
            raise ManifestError(f"line {position + 1}: expected {key} = '...'")
        values[key] = _unquote(match.group(2))
        position += 1
        if key == "Format" and values["Format"] != FORMAT and values["Format"] not in OLD_FORMATS:
            raise ManifestError(f"the format is {values['Format']!r}, not {FORMAT!r}")
    if values["Signer"] and not re.fullmatch(r"[0-9A-F]{40}", values["Signer"]):
        raise ManifestError("the signer is not a SHA-1 thumbprint")
    manifest = Manifest(values["Scope"], values["Topology"], values["Signer"], serial=serial, format=values["Format"])
    expect("    Files = @(")
    seen: dict[str, str] = {}
    while position < len(lines) and lines[position] != "    )":
        match = _ENTRY.match(lines[position])
        if not match:
            raise ManifestError(f"line {position + 1}: not a file entry")
        path = _unquote(match.group(1))
        problem = path_problem(path)
        if problem:
            raise ManifestError(f"line {position + 1}: the path {path!r}: {problem}")
        if windows_key(path) in seen:
            raise ManifestError(f"line {position + 1}: {path} is listed twice (as {seen[windows_key(path)]}, the same file on Windows)")
        seen[windows_key(path)] = path
        manifest.files.append(Entry(path, match.group(2), int(match.group(3))))
        position += 1
        if len(manifest.files) > MAX_ENTRIES:
            raise ManifestError("too many entries")
    expect("    )")
    expect("    ProducedOnServer = @(")
    while position < len(lines) and lines[position] != "    )":
        match = _NAME.match(lines[position])
        if not match:
            raise ManifestError(f"line {position + 1}: not a file name")
        name = _unquote(match.group(1))
        problem = path_problem(name)
        if problem or kind_of(name) in ("script", "executable") or windows_key(name) in seen:
            raise ManifestError(f"line {position + 1}: {name!r} cannot be a file produced on the server")
        seen[windows_key(name)] = name
        manifest.produced_on_server.append(name)
        position += 1
    expect("    )")
    expect("}")
    if position != len(lines):
        raise ManifestError(f"line {position + 1}: text after the manifest")
    return manifest


# ---------------------------------------------------------------------------------------------------
# The compile serial


@dataclass(frozen=True)
class Previous:
    """What the bundle already in --out says of itself."""

    serial: int
    topology: str
    signer: str
    version: str


def previous_bundle(out) -> Previous | None:
    """The serial, topology digest, signer and sfbgen version of the bundle at `out`, or None when
    there is none (or one of sfbgen 0.1, without a readable MANIFEST.psd1)."""
    import json
    import os

    from .authenticode import AuthenticodeError, split_signature

    root = os.path.join(os.fspath(out), ROOT_NAME)
    try:
        if os.path.islink(os.fspath(out)) or not os.path.isfile(root) or os.path.islink(root):
            return None
        if os.path.getsize(root) > MAX_MANIFEST_BYTES:
            return None
        with open(root, "rb") as stream:
            listing = parse(split_signature(stream.read())[0])
    except (OSError, ValueError, AuthenticodeError):
        return None
    version = ""
    try:
        with open(os.path.join(os.fspath(out), ".sfbgen-bundle"), "rb") as stream:
            marker = json.loads(stream.read(64 * 1024))
        version = str(marker.get("sfbgen", "")) if isinstance(marker, dict) else ""
    except (OSError, ValueError):
        pass
    return Previous(listing.serial, listing.topology, listing.signer, version)


def next_serial(out, topology: str, signer: str, version: str, requested: int | None = None) -> int:
    """The serial of the bundle about to replace the one at `out`.

    Derived (`requested` None): 1 for a first bundle; the previous serial when the topology (its
    digest), the signer and the sfbgen version are all the same (the same work: the same scripts);
    otherwise the previous serial + 1. Given: it may not go back, nor stay the same when the work changes."""
    from .diagnostics import UsageError

    previous = previous_bundle(out)
    changed = previous is None or (previous.topology, previous.signer, previous.version) != (topology, signer, version)
    if requested is None:
        if previous is None:
            return 1
        return min(previous.serial + (1 if changed else 0), MAX_SERIAL) or 1
    if not 1 <= requested <= MAX_SERIAL:
        raise UsageError(f"--serial must be a number from 1 to {MAX_SERIAL}")
    if previous is not None and (requested < previous.serial or (requested == previous.serial and changed)):
        raise UsageError(f"--serial {requested} is not newer than the bundle already in {out} (serial {previous.serial}); "
                         f"give {previous.serial + 1} or more, or leave --serial out to derive it")
    return requested
