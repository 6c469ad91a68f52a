"""Compiling: check → plan → render → sign → manifest → write, refusing to touch the output on any error."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import __version__
from .api import check_file
from .diagnostics import Diagnostic, DiagnosticsError, has_errors
from .plan import DeploymentPlan, build_plan
from .render import Meta, render_plan_json, render_runbook, render_server, to_windows_text

SIGNABLE = (".ps1", ".psm1", ".psd1")


class Signer(Protocol):
    subject: str
    thumbprint: str
    not_after: str
    timestamped: bool

    def sign_many(self, scripts: list[bytes]) -> list[bytes]: ...


@dataclass(frozen=True)
class CompileResult:
    out: Path
    plan: DeploymentPlan
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    signed: bool = False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest().upper()


def _json_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def build_files(plan: DeploymentPlan, meta: Meta, signer: Signer | None) -> dict[str, bytes]:
    """Every file of the bundle, signed where a signer is given, with the manifests."""
    scripts: dict[str, bytes] = {}
    for server in plan.servers:
        for name, text in render_server(plan, server, meta).items():
            scripts[f"{server.fqdn}/{name}"] = to_windows_text(text)
    if signer is not None:
        names = sorted(p for p in scripts if p.endswith(SIGNABLE))
        for name, signed in zip(names, signer.sign_many([scripts[n] for n in names])):
            scripts[name] = signed

    signing = (
        {"signed": True, "subject": signer.subject, "thumbprint": signer.thumbprint, "not_after": signer.not_after, "timestamped": signer.timestamped}
        if signer
        else {"signed": False}
    )
    files = dict(scripts)
    # Each server's bundle carries its own manifest, checked by its scripts before they act.
    for server in plan.servers:
        prefix = f"{server.fqdn}/"
        entries = [
            {"path": name[len(prefix):], "sha256": _sha256(data), "size": len(data)}
            for name, data in sorted(scripts.items())
            if name.startswith(prefix)
        ]
        files[f"{prefix}manifest.json"] = _json_bytes(
            {"server": server.fqdn, "topology_sha256": meta.digest, "sfbgen": meta.version, "files": entries}
        )
    files["RUNBOOK.md"] = render_runbook(plan, meta, signing).encode("utf-8")
    files["plan.json"] = render_plan_json(plan, meta).encode("utf-8")
    files["MANIFEST.json"] = _json_bytes(
        {
            "sfbgen": meta.version,
            "topology": plan.topology.name.value,
            "topology_sha256": meta.digest,
            "signer": {k: v for k, v in signing.items() if k != "signed"} if signer else None,
            "files": [{"path": name, "sha256": _sha256(data), "size": len(data)} for name, data in sorted(files.items())],
        }
    )
    return files


def compile_file(path: str | Path, out: str | Path, signer: Signer | None = None, write: bool = True) -> CompileResult:
    """Compile the topology at `path` into the bundle folder `out`.

    Raises DiagnosticsError when the topology has errors (the output is then left untouched) and
    UsageError when `out` is a folder sfbgen may not replace.
    """
    from .bundle import write_bundle

    result = check_file(path)
    if not result.ok:
        sources = {result.source.name: result.source.text} if result.source else {}
        raise DiagnosticsError(result.diagnostics, sources)
    assert result.topology is not None and result.source is not None
    plan = build_plan(result.topology)
    meta = Meta.of(result.topology, result.source.name, result.source.digest)
    files = build_files(plan, meta, signer)
    out = Path(out)
    if write:
        marker = {"generator": "sfbgen", "sfbgen": __version__, "topology_sha256": meta.digest}
        write_bundle(out, files, [Path(path)], marker)
    return CompileResult(out, plan, result.diagnostics, files, signer is not None)
