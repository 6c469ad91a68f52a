"""Compiling: check → plan → render → sign → manifest → write, refusing to touch the output on any error."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import __version__, fleet, manifest, parallel
from .api import compile_path
from .diagnostics import Diagnostic, DiagnosticsError
from .plan import DeploymentPlan, ServerPlan
from .render import Meta, Renderer, to_windows_text
from .resources import CachePolicy

if TYPE_CHECKING:
    from .bundle import Sink

SIGNABLE = manifest.SCRIPT_TYPES  # the one list of the extensions that are signed (manifest.py)


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
    serial: int = 1  # the compile serial in MANIFEST.psd1 and every server's manifest.psd1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest().upper()


def _signing_summary(signer: Signer | None) -> dict:
    if signer is None:
        return {"signed": False}
    return {"signed": True, "subject": signer.subject, "thumbprint": signer.thumbprint,
            "not_after": signer.not_after, "timestamped": signer.timestamped}


INVOKE_RUNBOOK = "Invoke-Runbook.ps1"


def _sign(signer: Signer | None, name: str, text: str) -> bytes:
    data = to_windows_text(text)
    if signer is not None and name.endswith(SIGNABLE):
        data = signer.sign(data)
    return data


def produced_on_server(server: ServerPlan) -> list[str]:
    """The files `server`'s folder gains while it is used, each by its exact name (never a script):
    the configuration export and the Edge pool's certificates (out/), the copies it is given, the
    offline requests and the CA's answers."""
    from .plan import EDGE_CONFIG_ZIP

    names: list[str] = []
    if server.exports_edge_config:
        names.append(f"out/{EDGE_CONFIG_ZIP}")
    if server.is_edge and server.script("local-store") is not None:  # a deployment's Edge (not a patch bundle's)
        names.append(EDGE_CONFIG_ZIP)
    for request in server.requests:
        if request.scope == "pool":
            names.append(request.pfx_name if server.imports_shared(request) else f"out/{request.pfx_name}")
        if request.authority == "offline" and not server.imports_shared(request):
            names.append(f"requests/{request.id}.req")
            names += [f"responses/{request.id}{extension}" for extension in (".cer", ".crt", ".p7b")]
    return sorted(dict.fromkeys(names))


def _server_files(renderer: Renderer, server: ServerPlan, signer: Signer | None) -> list[tuple[str, bytes, str, str]]:
    """One server's bundle — its scripts (signed when a signer is given) and its signed manifest.psd1 —
    as (path, bytes, SHA-256, work) where `work` is the SHA-256 of the script before it was signed: it
    changes only when what the script does changes (`sfbgen diff` compares it). Hashes are computed
    once, where the bytes are made."""
    hashed, work = [], {}
    for name, text in renderer.server(server).items():
        plain = to_windows_text(text)
        work[name] = _sha256(plain)
        data = signer.sign(plain) if signer is not None and name.endswith(SIGNABLE) else plain
        hashed.append((name, data, _sha256(data)))
    # The server's own manifest, which Test-Bundle.ps1 and every script check before they act.
    # No topology digest here: a server's files change only when its work does (the root manifest has it).
    # The compile serial is the bundle's (set on the renderer by _bundle), so an older server folder
    # cannot be paired with a newer bundle; it is in the manifests only, never in a script.
    listing = manifest.Manifest(server.fqdn, "", signer.thumbprint if signer else "",
                                [manifest.Entry(name, sha, len(data)) for name, data, sha in sorted(hashed)],
                                produced_on_server(server), serial=getattr(renderer, "bundle_serial", 1))
    data = _sign(signer, manifest.SERVER_NAME, manifest.render(listing))
    prefix = server.fqdn + "/"
    return ([(prefix + name, data, sha, work[name]) for name, data, sha in hashed]
            + [(prefix + manifest.SERVER_NAME, data, _sha256(data), "")])


# Below this many servers a second process costs more than it saves.
PARALLEL_MIN_SERVERS = 64
_CHUNK = 16
_WINDOW = 6

# A file of the bundle as the compiler passes it on: path, bytes (None once `store` has them), SHA-256,
# size, and the SHA-256 of its work (a script before it was signed; '' for other files).
Made = tuple[str, "bytes | None", str, int, str]
Store = Callable[[str, bytes], None]


def _made_files(renderer: Renderer, server: ServerPlan, signer: Signer | None, store: Store | None) -> list[Made]:
    """One server's files, handed to `store` where they are made when there is one: then only their
    names and hashes travel on (from a worker, that spares the pipe to the writing process the bytes)."""
    made = []
    for path, data, sha, work in _server_files(renderer, server, signer):
        if store is not None:
            store(path, data)
        made.append((path, None if store is not None else data, sha, len(data), work))
    return made


def _all_server_files(
    renderer: Renderer, servers: list[ServerPlan], signer: Signer | None, store: Store | None,
    meanwhile: Callable[[], None], keep: bool = True,
) -> Iterator[Made]:
    """Every server's files, in server order. Large topologies render, sign and store in two forked
    worker processes (parallel.map_chunks: Jinja and the RSA operations hold a core each) while this
    process runs `meanwhile`, then passes on what they send back. Should this process be killed, a
    worker finishes at most the chunk in hand (sending its result back fails, and it exits), and the
    next run removes the temporary folder it was writing into (bundle.recover). With `keep=False` no
    file's bytes come back (work digests only: what `sfbgen diff` wants)."""

    def chunk(part: Sequence[ServerPlan]) -> list[Made]:
        out: list[Made] = []
        for server in part:
            made = _made_files(renderer, server, signer, store)
            out.extend(made if keep else [(p, None, sha, size, work) for p, _d, sha, size, work in made])
        return out

    # Workers that store their files (or keep none) send back only names and hashes: all chunks can be
    # in flight. Otherwise a bounded window: workers never run far ahead of the writing, so memory
    # stays flat however large the topology.
    window = None if store is not None or not keep else _WINDOW
    for made in parallel.map_chunks(chunk, servers, chunk_size=_CHUNK, min_items=PARALLEL_MIN_SERVERS,
                                    window=window, meanwhile=meanwhile):
        yield from made


def _bundle(plan: DeploymentPlan, meta: Meta, signer: Signer | None, store: Store | None, serial: int = 1,
            renderer_class: type = Renderer, policy: CachePolicy = CachePolicy.USE) -> Iterator[tuple[str, bytes | None]]:
    """The bundle's files in a fixed order, one server at a time, the signed MANIFEST.psd1 last. Server
    files that `store` took where they were made come through as (path, None)."""
    import dataclasses

    from .bundle import MARKER, marker_bytes

    # The scripts name their signer: Test-Bundle.ps1 and every step accept no other.
    meta = dataclasses.replace(meta, signer=signer.thumbprint if signer else "")
    # `sfbgen patch` passes its own (sfbgen/patching.py: the patch runbook and second hops); compile, Renderer.
    renderer = renderer_class(plan, meta, policy)
    renderer.bundle_serial = serial  # read by _server_files (also in forked workers)
    entries: list[manifest.Entry] = []
    signing = _signing_summary(signer)
    documents: dict[str, bytes] = {}

    def render_documents() -> None:
        documents["RUNBOOK.md"] = renderer.runbook(signing).encode("utf-8")
        documents[MARKER] = marker_bytes(bundle_marker(meta))

    work: dict[str, str] = {}
    for path, data, sha, size, work_sha in _all_server_files(renderer, plan.servers, signer, store, render_documents):
        entries.append(manifest.Entry(path, sha, size))
        _spend(size)
        if work_sha:
            work[path] = work_sha
        yield path, data
    # plan.json last of the documents: it carries every script's work digest, for `sfbgen diff`.
    documents["plan.json"] = renderer.plan_json(work).encode("utf-8")
    # The fleet's orchestration (Ansible), from the same plan: listed in the signed manifest like the rest.
    for name, text in fleet.files(plan).items():
        documents[name] = text.encode("utf-8")
    # ... and over PowerShell Remoting: a script, signed like every other.
    documents[INVOKE_RUNBOOK] = _sign(signer, INVOKE_RUNBOOK, renderer.invoke_runbook())
    for name in ("RUNBOOK.md", "plan.json", MARKER, INVOKE_RUNBOOK, *sorted(n for n in documents if n.startswith("ansible/"))):
        entries.append(manifest.Entry(name, _sha256(documents[name]), len(documents[name])))
        _spend(len(documents[name]))
        yield name, documents[name]
    entries.sort(key=lambda entry: entry.path)
    produced = [f"{server.fqdn}/{name}" for server in plan.servers for name in produced_on_server(server)]
    listing = manifest.Manifest("*", meta.digest, signer.thumbprint if signer else "", entries, produced, serial=serial)
    yield manifest.ROOT_NAME, _sign(signer, manifest.ROOT_NAME, manifest.render(listing))


def work_digests(plan: DeploymentPlan, meta: Meta) -> dict[str, str]:
    """Every script's work digest (the SHA-256 of its unsigned bytes), rendering nothing else: what
    `sfbgen diff` compares. `meta.signer` is the thumbprint the scripts name, if any."""
    renderer = Renderer(plan, meta)
    return {path: work for path, _data, _sha, _size, work in _all_server_files(renderer, plan.servers, None, None, lambda: None, keep=False) if work}


def bundle_marker(meta: Meta) -> dict:
    """What the marker file says: a folder sfbgen made, and from which topology."""
    return {"generator": "sfbgen", "sfbgen": meta.version, "topology_sha256": meta.digest}


def iter_bundle(plan: DeploymentPlan, meta: Meta, signer: Signer | None, serial: int = 1, renderer: type = Renderer,
                policy: CachePolicy | None = None) -> Iterator[tuple[str, bytes]]:
    """Every file of the bundle, with its bytes, in a fixed order; MANIFEST.psd1 last (as `build_bundle`
    hands them to a sink: the same generator, `_bundle`). `policy`: by
    default CachePolicy.REFUSE when signing (no cached template code in what is signed), else USE."""
    policy = policy or CachePolicy.for_signing(signer is not None)
    return _bundle(plan, meta, signer, None, serial, renderer, policy)  # type: ignore[return-value]  # no store: every file has its bytes


def build_bundle(plan: DeploymentPlan, meta: Meta, signer: Signer | None, sink: Sink, serial: int = 1,
                 policy: CachePolicy | None = None, renderer: type = Renderer) -> int:
    """The one bundle builder: every file of the bundle handed to `sink`, in the bundle's order; returns
    how many there were. The caller chooses the sink: `bundle.DiskSink` (the atomic writer), `MemorySink`
    (a dict), `TeeSink` (both), `CountingSink`. A sink that works from a forked process (`in_workers`:
    writing a file does) is given the server files where they are made — in the worker processes, for
    a large topology — so their bytes never cross a pipe; any other gets every file here, in order."""
    count = 0
    policy = policy or CachePolicy.for_signing(signer is not None)
    store = sink.add if sink.in_workers else None
    for path, data in _bundle(plan, meta, signer, store, serial, renderer, policy):
        if data is not None:
            sink.add(path, data)
        count += 1
    return count


def compile_file(
    path: str | Path,
    out: str | Path,
    signer: Signer | None = None,
    write: bool = True,
    keep_files: bool = True,
    protected: tuple[Path, ...] = (),
    serial: int | None = None,
    limits: Limits | None = None,
) -> CompileResult:
    """Compile the topology at `path` into the bundle folder `out`.

    Raises DiagnosticsError when the topology has errors (the output is then left untouched) and
    UsageError when `out` is a folder sfbgen may not replace, or holds one of the `protected` inputs (the
    signing key and certificate files). With `keep_files` the result holds every file's bytes (for tests
    and tools); the CLI streams them to disk instead. `serial`: the compile serial (`--serial`); by
    default derived from the bundle already in `out` (manifest.next_serial).
    """
    from .bundle import CountingSink, DiskSink, MemorySink, TeeSink

    # What is signed is built from the grammar and templates themselves, never from cached code.
    policy = CachePolicy.for_signing(signer is not None)
    limits = limits or Limits()
    result = compile_path(path, policy=policy, limits=limits)
    result.raise_for_errors()
    assert result.plan is not None and result.meta is not None and result.source is not None
    plan, meta, diagnostics = result.plan, result.meta, result.diagnostics
    out = Path(out)
    # One builder whatever the destination; the sinks differ: the files in memory (keep_files), on disk
    # (write), both, or only counted.
    memory = MemorySink() if keep_files else None
    limits.check_estimate(plan, meta, signer, result.source.name, policy)  # before anything is written
    if write:
        with limits.spending(result.source.name), DiskSink(out, [Path(path), *protected]) as disk:
            # After DiskSink has checked `out` (and finished a swap a killed run left half done).
            serial = manifest.next_serial(out, meta.digest, signer.thumbprint if signer else "", __version__, serial)
            count = build_bundle(plan, meta, signer, TeeSink(disk, memory) if memory else disk, serial, policy=policy)
            disk.commit()
    else:
        serial = manifest.next_serial(out, meta.digest, signer.thumbprint if signer else "", __version__, serial)
        count = build_bundle(plan, meta, signer, memory or CountingSink(), serial, policy=policy)
    return CompileResult(out, plan, diagnostics, memory.files if memory else {}, signer is not None, count, serial)


# ---------------------------------------------------------------------------------------------------
# Limits: how large a bundle one compile may make. A topology of 430 KB names 12,000 servers and would
# make 1.2 GB in 60,000 files; the 8 MB a topology may be, about 26 GB. Both limits are settings
# (`sfbgen compile --max-servers N --max-output-mb N`) with defaults well above the largest
# deployments measured (bench/run.py: 5,000 servers, about 500 MB), and both are refused with a
# diagnostic before anything is written: the number of servers before planning, the size from an
# estimate before writing (and, should the estimate fall short, as the bundle is made: in the
# temporary folder, which is then removed, `--out` untouched).

DEFAULT_MAX_SERVERS = 10_000
DEFAULT_MAX_OUTPUT_MB = 2048
_ESTIMATE_SAMPLE = 16  # servers rendered to estimate the size of the bundle
_SIGNATURE_ALLOWANCE = 4096  # bytes a signature block adds to a script, at least


class OutputTooLarge(Exception):
    def __init__(self, made: int):
        super().__init__(made)
        self.made = made


_budget: list[int] = []  # [bytes left] while a compile writes (set by Limits.spending)


def _spend(size: int) -> None:
    if _budget:
        _budget[0] -= size
        if _budget[0] < 0:
            raise OutputTooLarge(size)


@dataclass(frozen=True)
class Limits:
    max_servers: int = DEFAULT_MAX_SERVERS
    max_output_mb: int = DEFAULT_MAX_OUTPUT_MB

    @property
    def max_output_bytes(self) -> int:
        return self.max_output_mb * 1024 * 1024

    def check_servers(self, topology, source: str) -> None:
        from .diagnostics import DiagnosticBuilder, Span

        count = len(topology.servers())
        if count > self.max_servers:
            raise DiagnosticsError([DiagnosticBuilder(source).too_many_servers_for_one_compile(
                Span.point(1, 1),
                f"the topology names {count:,} servers; one compile makes bundles for at most {self.max_servers:,}",
                "split the deployment into several topologies, or raise the limit with --max-servers")])

    def _refuse(self, about: int, source: str, estimated: bool) -> DiagnosticsError:
        from .diagnostics import DiagnosticBuilder, Span

        size = f"about {about / (1024 * 1024):,.0f} MB" if estimated else f"more than {self.max_output_mb:,} MB"
        return DiagnosticsError([DiagnosticBuilder(source).bundle_too_large(
            Span.point(1, 1),
            f"the bundle would be {size}; one compile writes at most {self.max_output_mb:,} MB "
            + ("(nothing was written)" if estimated else "(what was made is removed; the output folder is as it was)"),
            "split the deployment into several topologies, or raise the limit with --max-output-mb")])

    def check_estimate(self, plan: DeploymentPlan, meta: Meta, signer: Signer | None, source: str,
                       policy: CachePolicy = CachePolicy.USE) -> None:
        """Refuse, before writing, a bundle whose estimated size passes the limit: a sample of servers,
        spread over the plan, rendered and their size scaled to all servers."""
        servers = plan.servers
        if not servers:
            return
        step = max(1, len(servers) // _ESTIMATE_SAMPLE)
        sample = servers[::step][:_ESTIMATE_SAMPLE]
        renderer = Renderer(plan, meta, policy)
        made = 0
        for server in sample:
            for name, text in renderer.server(server).items():
                made += len(text.encode("utf-8")) + 3  # and its byte-order mark
                if signer is not None and name.endswith(SIGNABLE):
                    made += _SIGNATURE_ALLOWANCE
        estimate = made * len(servers) // len(sample)
        if estimate > self.max_output_bytes:
            raise self._refuse(estimate, source, estimated=True)

    def spending(self, source: str):
        """While the bundle is made: every file counted, and the compile refused (the temporary folder
        removed, `out` as it was) as soon as their total passes the limit."""
        import contextlib

        @contextlib.contextmanager
        def counting():
            _budget[:] = [self.max_output_bytes]
            try:
                yield
            except OutputTooLarge:
                raise self._refuse(0, source, estimated=False) from None
            finally:
                _budget.clear()

        return counting()
