"""Verifying a compiled bundle: every file against MANIFEST.json, every script's signature against trust anchors."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from .authenticode import verify_script
from .bundle import MARKER
from .compiler import SIGNABLE

# Files a bundle gains on the servers while it is used: the operator may copy them back.
_RUNTIME_FOLDERS = {"out", "requests", "responses"}
_RUNTIME_FILES = {"CsConfiguration.zip", "EdgeExternal.pfx"}


@dataclass
class FileReport:
    path: str
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_file(path: Path, anchors: list[x509.Certificate], now: dt.datetime | None = None) -> FileReport:
    """Check one script's signature."""
    report = FileReport(str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.problems.append(f"cannot read: {exc.strerror or exc}")
        return report
    verdict = verify_script(data, anchors, now)
    report.problems.extend(verdict.problems)
    if verdict.ok:
        stamp = f", timestamped {verdict.timestamp:%Y-%m-%d %H:%M} UTC" if verdict.timestamp else ""
        report.note = f"signed by {verdict.signer}{stamp}"
    return report


def verify_bundle(root: Path, anchors: list[x509.Certificate], now: dt.datetime | None = None) -> list[FileReport]:
    """Check every file of the bundle at `root`; one report per file, and one for the manifest itself."""
    manifest_path = root / "MANIFEST.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = {entry["path"]: entry for entry in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [FileReport("MANIFEST.json", [f"missing or unreadable: {exc}"])]
    signer = manifest.get("signer") or {}
    reports: list[FileReport] = []
    for relative, entry in sorted(entries.items()):
        report = FileReport(relative)
        reports.append(report)
        path = root / relative
        try:
            data = path.read_bytes()
        except OSError:
            report.problems.append("missing")
            continue
        if len(data) != entry.get("size") or hashlib.sha256(data).hexdigest().upper() != str(entry.get("sha256", "")).upper():
            report.problems.append("altered: does not match MANIFEST.json")
            continue
        if relative.endswith(SIGNABLE):
            if signer:
                verdict = verify_script(data, anchors, now)
                report.problems.extend(verdict.problems)
                if verdict.signed and verdict.thumbprint and verdict.thumbprint != signer.get("thumbprint"):
                    report.problems.append(f"signed by {verdict.signer}, not by the bundle's signer {signer.get('subject')}")
                if verdict.ok:
                    report.note = "signature ok"
            else:
                report.note = "unsigned (the bundle was compiled without a signing certificate)"
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        parts = relative.split("/")
        if relative in entries or relative in ("MANIFEST.json", MARKER):
            continue
        if len(parts) >= 2 and (parts[1] in _RUNTIME_FOLDERS or parts[-1] in _RUNTIME_FILES):
            continue
        reports.append(FileReport(relative, ["not in MANIFEST.json: added after compiling"]))
    return reports
