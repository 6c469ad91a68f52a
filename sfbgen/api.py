"""The library API: check and compile topology files. It never prints and never exits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import Diagnostic, has_errors, sort_diagnostics
from .model import Topology
from .source import Source, read_source


@dataclass(frozen=True)
class CheckResult:
    """What checking a topology found: the model (when it parsed) and every diagnostic."""

    source: Source | None
    topology: Topology | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.topology is not None and not has_errors(self.diagnostics)


def check_text(text: str, name: str = "<input>") -> CheckResult:
    """Parse, build and check topology source text held in memory."""
    import hashlib

    source = Source(name, text.removeprefix("\ufeff"), hashlib.sha256(text.encode("utf-8")).hexdigest())
    return _check_source(source)


def check_bytes(raw: bytes, name: str = "<input>") -> CheckResult:
    """Decode, parse, build and check the bytes of a topology file."""
    from .source import decode_source

    source, diagnostics = decode_source(raw, name)
    if source is None:
        return CheckResult(None, None, diagnostics)
    return _check_source(source)


def check_file(path: str | Path, certificates: bool = True) -> CheckResult:
    """Read, parse, build and check a topology file; every problem comes back as a diagnostic.

    `certificates=False` leaves out the certificate warnings, for a caller that plans the deployment
    anyway and takes them from the plan (the compiler).
    """
    source, diagnostics = read_source(path)
    if source is None:
        return CheckResult(None, None, diagnostics)
    return _check_source(source, certificates)


def _check_source(source: Source, certificates: bool = True) -> CheckResult:
    from .checks import run_checks
    from .parser import parse
    from .transform import build_model

    tree, diagnostics = parse(source.text, source.name)
    if tree is None:
        return CheckResult(source, None, diagnostics)
    topology, structural = build_model(tree, source.name)
    semantic = run_checks(topology, source.name)
    diagnostics = structural + semantic
    if certificates and not has_errors(diagnostics):
        # What the certificates the topology implies would run into (only a sound topology has them).
        from .certificates import CertificatePlanner, certificate_warnings

        planner = CertificatePlanner(topology)
        requests = [r for pool, server in topology.servers() for r in planner.for_server(pool, server)]
        oauth = planner.oauth()
        diagnostics += certificate_warnings(requests + ([oauth] if oauth else []), source.name)
    return CheckResult(source, topology, sort_diagnostics(diagnostics))
