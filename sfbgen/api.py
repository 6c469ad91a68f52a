"""The library API: check and compile topology files. It never prints and never exits.

One pipeline, one entry point: `compile_source` (and `compile_text`, `compile_path`) reads, parses,
builds and checks the topology, plans the deployment and derives its settings, and returns all of it
with every diagnostic — the checks' and the plan's certificate warnings — once, sorted. `sfbgen
compile`, `diff`, `certs` and `patch`, the fuzzers and the tests take their plans from it; `check`
(which plans nothing) from `check_file` and its siblings, which run the same checking stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostic, DiagnosticsError, has_errors, sort_diagnostics
from .model import Topology
from .resources import CachePolicy
from .source import Source, read_source

if TYPE_CHECKING:
    from .plan import DeploymentPlan
    from .render import Meta


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


def _check_source(source: Source, certificates: bool = True, policy: CachePolicy = CachePolicy.USE) -> CheckResult:
    topology, diagnostics = _checked(source, policy)
    if topology is None:
        return CheckResult(source, None, diagnostics)
    if certificates and not has_errors(diagnostics):
        # What the certificates the topology implies would run into (only a sound topology has them).
        from .certificates import CertificatePlanner, certificate_warnings

        planner = CertificatePlanner(topology)
        requests = [r for pool, server in topology.servers() for r in planner.for_server(pool, server)]
        oauth = planner.oauth()
        diagnostics += certificate_warnings(requests + ([oauth] if oauth else []), source.name)
    return CheckResult(source, topology, sort_diagnostics(diagnostics))


def _checked(source: Source, policy: CachePolicy) -> tuple[Topology | None, list[Diagnostic]]:
    """The checking stage: parse, build the model, run the checks (the model is None when it did not parse)."""
    from .checks import run_checks
    from .parser import parse
    from .transform import build_model

    tree, diagnostics = parse(source.text, source.name, policy)
    if tree is None:
        return None, diagnostics
    topology, structural = build_model(tree, source.name)
    return topology, structural + run_checks(topology, source.name)


@dataclass(frozen=True)
class Compiled:
    """What the pipeline made of one topology: its source, model, plan and settings (`meta`), and every
    diagnostic once, sorted. `plan` and `meta` are None when the topology has errors (or did not
    read); `raise_for_errors` then raises them with the source text, as the commands report them."""

    source: Source | None
    topology: Topology | None
    plan: DeploymentPlan | Any | None
    meta: Meta | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.plan is not None and not has_errors(self.diagnostics)

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    def raise_for_errors(self) -> None:
        if not self.ok:
            sources = {self.source.name: self.source.text} if self.source else {}
            raise DiagnosticsError(self.diagnostics, sources)


Planner = Callable[[Topology, str], Any]  # (topology, source name) -> plan; may raise DiagnosticsError


def compile_source(
    source: Source,
    *,
    policy: CachePolicy = CachePolicy.USE,
    limits: Any = None,
    planner: Planner | None = None,
    signer: str = "",
) -> Compiled:
    """Check, plan and settle the topology `source` holds.

    `policy`: whether cached parser tables may be loaded (CachePolicy.REFUSE for a run that signs).
    `limits`: a compiler.Limits whose server count is enforced before planning (raises DiagnosticsError).
    `planner`: what plans the deployment (build_plan by default; `sfbgen patch` passes its own); a
    DiagnosticsError it raises gets the source text. `signer`: the thumbprint the scripts name.
    """
    import dataclasses

    from .certificates import certificate_warnings
    from .display import visible_path
    from .render import Meta

    topology, diagnostics = _checked(source, policy)
    if topology is None or has_errors(diagnostics):
        return Compiled(source, topology, None, None, sort_diagnostics(diagnostics))
    if limits is not None:
        limits.check_servers(topology, source.name)  # before planning anything
    if planner is None:
        from .plan import build_plan

        plan = build_plan(topology)
    else:
        try:
            plan = planner(topology, source.name)
        except DiagnosticsError as exc:
            exc.sources = exc.sources or {source.name: source.text}
            raise
    # The certificate warnings `check` gives, taken from the plan rather than computed a second time.
    requests = [r for server in plan.servers for r in getattr(server, "requests", ())]
    diagnostics = _once(diagnostics + certificate_warnings(requests, source.name))
    # The file's name is written into every file: a name that is not UTF-8, or holds an escape, as its escapes.
    meta = Meta.of(topology, visible_path(source.name), source.digest)
    if signer:
        meta = dataclasses.replace(meta, signer=signer)
    return Compiled(source, topology, plan, meta, sort_diagnostics(diagnostics))


def compile_text(text: str, name: str = "<input>", **options: Any) -> Compiled:
    """`compile_source` of topology text held in memory (the options are compile_source's)."""
    import hashlib

    source = Source(name, text.removeprefix("\ufeff"), hashlib.sha256(text.encode("utf-8")).hexdigest())
    return compile_source(source, **options)


def compile_bytes(raw: bytes, name: str = "<input>", **options: Any) -> Compiled:
    """`compile_source` of a topology file's bytes (decoded as `check` decodes them)."""
    from .source import decode_source

    source, diagnostics = decode_source(raw, name)
    if source is None:
        return Compiled(None, None, None, None, diagnostics)
    return compile_source(source, **options)


def compile_path(path: str | Path, **options: Any) -> Compiled:
    """`compile_source` of the topology file at `path`; a file that cannot be read comes back as its diagnostics."""
    source, diagnostics = read_source(path)
    if source is None:
        return Compiled(None, None, None, None, diagnostics)
    return compile_source(source, **options)


def _once(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Each diagnostic once (the same code, place and message reported twice is one finding)."""
    seen: set = set()
    out = []
    for d in diagnostics:
        key = (d.code, d.span, d.message, d.file)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
