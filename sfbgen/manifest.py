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

FORMAT = "sfbgen-manifest/2"
ROOT_NAME = "MANIFEST.psd1"
SERVER_NAME = "manifest.psd1"
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_ENTRIES = 500_000

# Types that run on Windows when opened or called: each must be a signed PowerShell script, or is refused.
SCRIPT_TYPES = (".ps1", ".psm1", ".psd1")  # data/platform.json, 'script_extensions' (tests/test_trust.py keeps them equal)
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
    values = {}
    for key in ("Format", "Scope", "Topology", "Signer"):
        match = _FIELD.match(lines[position]) if position < len(lines) else None
        if not match or match.group(1) != key:
            raise ManifestError(f"line {position + 1}: expected {key} = '...'")
        values[key] = _unquote(match.group(2))
        position += 1
    if values["Format"] != FORMAT:
        raise ManifestError(f"the format is {values['Format']!r}, not {FORMAT!r}")
    if values["Signer"] and not re.fullmatch(r"[0-9A-F]{40}", values["Signer"]):
        raise ManifestError("the signer is not a SHA-1 thumbprint")
    manifest = Manifest(values["Scope"], values["Topology"], values["Signer"])
    expect("    Files = @(")
    seen: set[str] = set()
    while position < len(lines) and lines[position] != "    )":
        match = _ENTRY.match(lines[position])
        if not match:
            raise ManifestError(f"line {position + 1}: not a file entry")
        path = _unquote(match.group(1))
        problem = path_problem(path)
        if problem:
            raise ManifestError(f"line {position + 1}: the path {path!r}: {problem}")
        if path.lower() in seen:
            raise ManifestError(f"line {position + 1}: {path} is listed twice")
        seen.add(path.lower())
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
        if problem or kind_of(name) in ("script", "executable") or name.lower() in seen:
            raise ManifestError(f"line {position + 1}: {name!r} cannot be a file produced on the server")
        seen.add(name.lower())
        manifest.produced_on_server.append(name)
        position += 1
    expect("    )")
    expect("}")
    if position != len(lines):
        raise ManifestError(f"line {position + 1}: text after the manifest")
    return manifest
