"""Compiling: check → plan → render → sign → manifest → write, refusing to touch the output on any error."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import __version__
from .api import check_file
from .diagnostics import Diagnostic, DiagnosticsError
from .plan import DeploymentPlan, ServerPlan, build_plan
from .render import Meta, Renderer, json_lines, to_windows_text

SIGNABLE = (".ps1", ".psm1", ".psd1")


class Signer(Protocol):
    subject: str
    thumbprint: str
    not_after: str
    timestamped: bool

    def sign(self, script: bytes) -> bytes: ...


@dataclass(frozen=True)
class CompileResult:
    out: Path
    plan: DeploymentPlan
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # empty unless asked for (keep_files)
    signed: bool = False
    file_count: int = 0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest().upper()


def _json_bytes(document: dict) -> bytes:
    return json_lines(document).encode("utf-8")


def _signing_summary(signer: Signer | None) -> dict:
    if signer is None:
        return {"signed": False}
    return {"signed": True, "subject": signer.subject, "thumbprint": signer.thumbprint,
            "not_after": signer.not_after, "timestamped": signer.timestamped}


def _server_files(renderer: Renderer, server: ServerPlan, signer: Signer | None) -> list[tuple[str, bytes]]:
    """One server's bundle: its scripts (signed when a signer is given) and its manifest.json."""
    scripts = []
    for name, text in renderer.server(server).items():
        data = to_windows_text(text)
        if signer is not None and name.endswith(SIGNABLE):
            data = signer.sign(data)
        scripts.append((name, data))
    # The server's own manifest, which its scripts check before they act.
    manifest = {
        "server": server.fqdn,
        "topology_sha256": renderer.meta.digest,
        "sfbgen": renderer.meta.version,
        "files": [{"path": name, "sha256": _sha256(data), "size": len(data)} for name, data in sorted(scripts)],
    }
    prefix = server.fqdn + "/"
    return [(prefix + name, data) for name, data in scripts] + [(prefix + "manifest.json", _json_bytes(manifest))]


def iter_bundle(plan: DeploymentPlan, meta: Meta, signer: Signer | None) -> Iterator[tuple[str, bytes]]:
    """Every file of the bundle, in a fixed order, produced one server at a time; MANIFEST.json last."""
    renderer = Renderer(plan, meta)
    entries: list[dict] = []

    def emit(path: str, data: bytes):
        entries.append({"path": path, "sha256": _sha256(data), "size": len(data)})
        return path, data

    if signer is not None and len(plan.servers) > 8:
        # RSA signing releases the GIL: a second thread keeps the other core busy.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            batches = pool.map(lambda s: _server_files(renderer, s, signer), plan.servers)
            for batch in batches:
                for path, data in batch:
                    yield emit(path, data)
    else:
        for server in plan.servers:
            for path, data in _server_files(renderer, server, signer):
                yield emit(path, data)
    signing = _signing_summary(signer)
    yield emit("RUNBOOK.md", renderer.runbook(signing).encode("utf-8"))
    yield emit("plan.json", renderer.plan_json().encode("utf-8"))
    entries.sort(key=lambda entry: entry["path"])
    yield "MANIFEST.json", _json_bytes(
        {
            "sfbgen": meta.version,
            "topology": plan.topology.name.value,
            "topology_sha256": meta.digest,
            "signer": {k: v for k, v in signing.items() if k != "signed"} if signer else None,
            "files": entries,
        }
    )


def compile_file(
    path: str | Path,
    out: str | Path,
    signer: Signer | None = None,
    write: bool = True,
    keep_files: bool = True,
) -> CompileResult:
    """Compile the topology at `path` into the bundle folder `out`.

    Raises DiagnosticsError when the topology has errors (the output is then left untouched) and
    UsageError when `out` is a folder sfbgen may not replace. With `keep_files` the result holds every
    file's bytes (for tests and tools); the CLI streams them to disk instead.
    """
    from .bundle import BundleWriter

    result = check_file(path)
    if not result.ok:
        sources = {result.source.name: result.source.text} if result.source else {}
        raise DiagnosticsError(result.diagnostics, sources)
    assert result.topology is not None and result.source is not None
    plan = build_plan(result.topology)
    meta = Meta.of(result.topology, result.source.name, result.source.digest)
    out = Path(out)
    files: dict[str, bytes] = {}
    count = 0
    if write:
        marker = {"generator": "sfbgen", "sfbgen": __version__, "topology_sha256": meta.digest}
        with BundleWriter(out, [Path(path)], marker) as writer:
            for name, data in iter_bundle(plan, meta, signer):
                writer.add(name, data)
                count += 1
                if keep_files:
                    files[name] = data
            writer.commit()
    else:
        for name, data in iter_bundle(plan, meta, signer):
            count += 1
            if keep_files:
                files[name] = data
    return CompileResult(out, plan, result.diagnostics, files, signer is not None, count)
