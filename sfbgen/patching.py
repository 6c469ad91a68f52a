"""Patch day: Microsoft's update procedures, per role, compiled into a bundle like `compile`'s.

`sfbgen patch TOPOLOGY --installer PATH` plans one update (SkypeServerUpdateInstaller.exe, a product's
update installer, or — with `--upgrade-to subscription` — the Subscription Edition build installed over
Skype for Business Server 2019) for every server of a checked topology, and writes it with the same
bundle writer, manifests, signing, Test-Bundle.ps1, plan.json, Ansible playbook and Invoke-Runbook.ps1
as `compile` (sfbgen/compiler.py): verify and diff read it unchanged, both orchestrators walk it.

The plan is a `DeploymentPlan` whose steps are the procedures below, each one runbook step per server
(sfbgen/data/platform.json holds every fact with its source):

- Enterprise Edition Front End servers, one at a time (patch-or-update-front-end-servers.md):
  Get-CsPoolFabricState checked (missing replicas stop the run and name Reset-CsPoolRegistrarState
  -ResetType QuorumLossRecovery, run only when the operator says -QuorumLossRecovery),
  Invoke-CsComputerFailOver, the update, Invoke-CsComputerFailBack, every service verified;
- the pool's back end once every Front End is updated, from the pool's first Front End
  (patch-or-update-a-back-end-or-standard-edition-server.md): Install-CsDatabase -Update
  -ConfiguredDatabases -SqlServerFqdn (the SQL Server is a setting: the topology does not name it);
- Standard Edition: Stop-CsWindowsService, W3SVC stopped, the update, Stop-CsWindowsService again,
  W3SVC started, Install-CsDatabase -Update -LocalDatabases, services started (same page);
- Director, Mediation and Edge pools, one member at a time, each drained first with
  Stop-CsWindowsService -Graceful (add-or-remove-a-front-end-server.md; Stop-CsWindowsService.md),
  updated, started, verified.

Pools go one after another, each pool's next hop before the pools that use it; within a pool each
member waits for the one before it. Every script checks the installer's Authenticode signature before
it runs anything, reads the installed versions before and after and records them, skips a server
already at the target version, resumes where a run stopped (its record names the phase reached), and
previews everything with -WhatIf.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from . import model as m
from .diagnostics import DiagnosticsError, Span, UsageError, diagnostic
from .plan import DeploymentPlan, Script, ServerPlan, _server_plans, _StepGraph, step_id
from .platform import fact, windows_features
from .render import Renderer

PATCH_SCRIPT = "Patch-Server.ps1"
BACK_END_SCRIPT = "Patch-BackEnd.ps1"
_VERSION = re.compile(r"\d+(\.\d+){1,3}")
_FQDN = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")


@dataclass(frozen=True)
class PatchSettings:
    """What `sfbgen patch` is told beside the topology: none of it is in a topology file."""

    installer: str  # the installer as the domain servers read it (a local path or a UNC path)
    arguments: str = ""  # its switches: Microsoft documents none for SkypeServerUpdateInstaller.exe
    target_version: str = ""  # the version the update brings; '' decides by this installer's record alone
    edge_installer: str = ""  # where Edge Servers (not domain members) read it; default `installer`
    back_ends: tuple[tuple[str, str], ...] = ()  # (Enterprise pool FQDN, its back end SQL Server FQDN)
    collocated_stores: tuple[str, ...] = ()  # pools whose back end also holds Archiving/Monitoring databases
    upgrade_to: str = ""  # '' (an update of the deployed product) or 'subscription' (in-place upgrade)
    version_entry: str = ""  # the installed product whose DisplayVersion is compared; '' the product's fact
    windows_server: tuple[str, ...] = ()  # upgrade: the Windows Server versions the new product runs on
    # 'serial': every pool waits for the pool before it (one pool short at a time; a failure stops the
    # walk there). 'independent': a pool waits only for its next hop's pool, so a member that fails stops
    # its own pool and the pools that use it, and unrelated pools go on (in parallel).
    pools: str = "serial"

    def canonical(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class PatchWork:
    """What one server's patch script needs beyond its ServerPlan."""

    procedure: str  # 'front-end', 'front-end-single', 'standard', 'member'
    installer: str
    arguments: str
    target_version: str
    version_entry: str
    readiness_cmdlet: str  # Get-CsPoolUpgradeReadinessState (2015) or Get-CsUpgradeDomainInfo (2019, SE)
    previous: str = ""  # the pool member patched just before this one (its record is checked first)
    members: tuple[str, ...] = ()
    sql_server: str = ""  # back end step only
    exclude_collocated: bool = False
    upgrade_to: str = ""
    upgrade_title: str = ""
    upgrade_windows: tuple[tuple[str, str], ...] = ()
    upgrade_features: tuple[str, ...] = ()  # the new product's Windows features for this server's roles
    dotnet: dict = field(default_factory=dict)


@dataclass
class PatchServerPlan(ServerPlan):
    patch: PatchWork | None = None
    back_end: PatchWork | None = None  # on the pool's first Front End: the back end's database update


@dataclass(frozen=True)
class PoolWindow:
    """How one pool runs short while it is patched: for the runbook."""

    pool: str
    kind: str
    members: tuple[str, ...]
    wave_first: int
    wave_last: int
    short: str  # what is degraded, in words
    watch: str  # what to watch


@dataclass
class PatchPlan(DeploymentPlan):
    settings: PatchSettings | None = None
    windows: list[PoolWindow] = field(default_factory=list)
    pool_order: list[str] = field(default_factory=list)


def _script(kind: str, filename: str, title: str) -> Script:
    return Script(kind, filename, title, 0)


_FRONT_END = _script("patch-frontend", PATCH_SCRIPT, "Patch day: update this Front End server (fail over, update, fail back)")
_STANDARD = _script("patch-standard", PATCH_SCRIPT, "Patch day: update this Standard Edition server and its databases")
_MEMBER = _script("patch-member", PATCH_SCRIPT, "Patch day: drain, update and start this pool member")
_BACK_END = _script("patch-backend", BACK_END_SCRIPT, "Patch day: update the pool's back end databases")
_VERIFY = Script("verify-bundle", "Test-Bundle.ps1", "Check this bundle against its manifest", 0)


def _refuse(code: str, problem: str, fix: str, source: str, span: Span | None = None) -> DiagnosticsError:
    return DiagnosticsError([diagnostic(code, span or Span.point(1, 1), problem, fix, source)])


def pool_order(topology: m.Topology) -> list[m.Pool]:
    """Every pool, one after another: a pool's next hop before it, otherwise in the topology's order
    (a depth-first walk: the next hop is placed first, then the pool)."""
    pools = topology.pools()
    by_fqdn = {p.fqdn.value.lower(): p for p in pools}
    placed: list[m.Pool] = []
    seen: set[int] = set()

    def place(pool: m.Pool, stack: tuple[int, ...] = ()) -> None:
        if id(pool) in seen or id(pool) in stack:
            return
        hop = getattr(pool, "next_hop", None)
        target = by_fqdn.get(hop.value.lower()) if hop is not None else None
        if target is not None:
            place(target, stack + (id(pool),))
        seen.add(id(pool))
        placed.append(pool)

    for pool in pools:
        place(pool)
    return placed


def _validate(topology: m.Topology, settings: PatchSettings, source: str) -> None:
    product = topology.product_version
    installer = settings.installer
    if not installer or not (PureWindowsPath(installer).is_absolute() or installer.startswith("\\\\")):
        raise UsageError(f"--installer must be an absolute Windows path or a UNC path as the servers see it, not {installer!r}")
    edge = settings.edge_installer
    if edge and not (PureWindowsPath(edge).is_absolute() or edge.startswith("\\\\")):
        raise UsageError(f"--edge-installer must be an absolute Windows path (a folder on the Edge Servers), not {edge!r}")
    for path in (settings.installer, settings.edge_installer):
        if any(ord(c) < 32 or c in "{}\"" for c in path):
            raise UsageError(f"--installer {path!r}: control characters, braces and double quotes are refused")
    if settings.pools not in ("serial", "independent"):
        raise UsageError(f"--pools {settings.pools!r}: serial (one pool after another) or independent (a pool waits only for its next hop)")
    if settings.target_version and not _VERSION.fullmatch(settings.target_version):
        raise UsageError(f"--target-version {settings.target_version!r} is not a version (for example 6.0.9319.690)")
    if settings.upgrade_to:
        upgrades = fact("patch_in_place_upgrades")
        if settings.upgrade_to not in upgrades.get(product, []):
            raise _refuse("SFB501", f"the topology's product is {fact('products')[product]['title']}, which Microsoft does not upgrade in place to "
                          f"{fact('products').get(settings.upgrade_to, {}).get('title', settings.upgrade_to)}",
                          "for Skype for Business Server 2015 Microsoft's path is a side-by-side migration: deploy a Subscription Edition pool "
                          "(sfbgen compile with product subscription) and move users to it; only Skype for Business Server 2019 is upgraded in place", source)
        if not settings.target_version:
            raise UsageError("--upgrade-to needs --target-version: the Subscription Edition build the upgrade installs (the skip and the records compare it)")
        if not settings.windows_server:
            raise UsageError("--upgrade-to subscription needs --windows-server (for example 2019,2022): sfbgen has no source for the Windows Server versions "
                             "Subscription Edition runs on, so the scripts check the ones you give before anything changes")
        builds = fact("windows_server_builds")
        unknown = [v for v in settings.windows_server if v not in builds]
        if unknown:
            raise UsageError(f"--windows-server: unknown version(s) {', '.join(unknown)} (known: {', '.join(builds)})")
    pools = {p.fqdn.value.lower(): p for p in topology.pools()}
    for pool, sql in settings.back_ends:
        target = pools.get(pool.lower())
        if target is None or target.kind != "enterprise":
            raise UsageError(f"--back-end {pool}={sql}: {pool} is not an Enterprise Edition pool of the topology")
        if not _FQDN.fullmatch(sql):
            raise UsageError(f"--back-end {pool}={sql}: {sql!r} is not a SQL Server FQDN")
    for pool in settings.collocated_stores:
        if pool.lower() not in {p.lower() for p, _ in settings.back_ends}:
            raise UsageError(f"--collocated-stores {pool}: name the pool's back end with --back-end {pool}=<SQL Server FQDN> too")
    named = {p.lower() for p, _ in settings.back_ends}
    missing = [p for p in topology.pools() if p.kind == "enterprise" and len(p.servers) > 0 and p.fqdn.value.lower() not in named]
    if missing:
        unnamed = missing[0]
        raise _refuse("SFB502", f"the Enterprise Edition pool {unnamed.fqdn.value} has a back end whose databases are updated after its Front End servers, "
                      "and the topology does not name its SQL Server",
                      f"give --back-end {unnamed.fqdn.value}=<SQL Server FQDN> (and --collocated-stores {unnamed.fqdn.value} when its Archiving or Monitoring "
                      "databases share that SQL Server)", source, unnamed.fqdn.span)


def build_patch_plan(topology: m.Topology, settings: PatchSettings, source: str = "<input>") -> PatchPlan:
    """The patch plan of a checked topology: per role Microsoft's procedure, pools one after another."""
    _validate(topology, settings, source)
    product = topology.product_version
    base_plans, _oauth = _server_plans(topology)
    back_ends = {p.lower(): sql for p, sql in settings.back_ends}
    collocated = {p.lower() for p in settings.collocated_stores}
    readiness = fact("patch_readiness_cmdlet")[product]
    version_entry = settings.version_entry or fact("patch_version_entry")[settings.upgrade_to or product]
    upgrade_windows: tuple[tuple[str, str], ...] = ()
    dotnet: dict = {}
    if settings.upgrade_to:
        builds = fact("windows_server_builds")
        upgrade_windows = tuple((v, builds[v]) for v in settings.windows_server)
        dotnet = fact(f"dotnet_framework_{settings.upgrade_to}")

    plans: list[ServerPlan] = []  # the plan's servers, each a PatchServerPlan
    members: dict[int, list[PatchServerPlan]] = {}
    for base in base_plans:
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(ServerPlan)}
        fields.update(certificates=[], oauth=None, scripts=[], exports_edge_config=False, starts_pool=False)
        plan = PatchServerPlan(**fields)
        installer = settings.edge_installer if plan.is_edge and settings.edge_installer else settings.installer
        plan.media = installer  # what the orchestrators prove readable before the server's first step
        plans.append(plan)
        members.setdefault(id(plan.pool), []).append(plan)

    order = pool_order(topology)
    g = _StepGraph()
    previous_pool_last = ""
    last_of_pool: dict[int, str] = {}
    by_fqdn = {p.fqdn.value.lower(): p for p in topology.pools()}
    windows_raw: list[tuple[m.Pool, list[str]]] = []
    for pool in order:
        pool_members = members[id(pool)]
        names = tuple(p.fqdn for p in pool_members)
        ids: list[str] = []
        for index, plan in enumerate(pool_members):
            if pool.kind == "enterprise":
                procedure, script = ("front-end" if len(pool_members) > 1 else "front-end-single"), _FRONT_END
            elif pool.kind == "standard":
                procedure, script = "standard", _STANDARD
            else:
                procedure, script = "member", _MEMBER
            installer = plan.media
            plan.patch = PatchWork(
                procedure=procedure, installer=installer, arguments=settings.arguments, target_version=settings.target_version,
                version_entry=version_entry, readiness_cmdlet=readiness,
                previous=pool_members[index - 1].fqdn if index > 0 and not plan.is_edge else "",
                members=names, upgrade_to=settings.upgrade_to,
                upgrade_title=fact("products")[settings.upgrade_to]["title"] if settings.upgrade_to else "",
                upgrade_windows=upgrade_windows, dotnet=dotnet,
                upgrade_features=windows_features(plan.roles, settings.upgrade_to) if settings.upgrade_to else ())
            plan.scripts = [script]
            if ids:
                after = [ids[-1]]
            elif settings.pools == "serial":
                after = [previous_pool_last] if previous_pool_last else []
            else:  # independent: only the next hop's pool, when it has one in this topology
                hop = getattr(pool, "next_hop", None)
                target = by_fqdn.get(hop.value.lower()) if hop is not None else None
                after = [last_of_pool[id(target)]] if target is not None and id(target) in last_of_pool else []
            ids.append(g.add(step_id(plan.fqdn, "patch"), plan.fqdn, _action(procedure, plan), f"{plan.fqdn}/{PATCH_SCRIPT}", after,
                             _verify_text(procedure), _failure_text(procedure)))
        if pool.kind == "enterprise" and pool_members:
            first = pool_members[0]
            assert first.patch is not None  # every member got its PatchWork above
            first.back_end = dataclasses.replace(first.patch, sql_server=back_ends[pool.fqdn.value.lower()],
                                                 exclude_collocated=pool.fqdn.value.lower() in collocated)
            first.scripts.append(_BACK_END)
            ids.append(g.add(step_id(pool.fqdn.value, "back-end"), first.fqdn,
                             f"Update the back end databases of {pool.fqdn.value} (Install-CsDatabase -Update -ConfiguredDatabases -SqlServerFqdn "
                             f"{back_ends[pool.fqdn.value.lower()]})", f"{first.fqdn}/{BACK_END_SCRIPT}", [ids[-1]],
                             "the script ends with SUCCESS: Install-CsDatabase reported no error; its record names the installer",
                             "read Install-CsDatabase's log in the transcript; the account needs sysadmin on the SQL Server; run it again"))
        for plan in pool_members:
            plan.scripts.append(_VERIFY)
        if ids:
            previous_pool_last = ids[-1]
            last_of_pool[id(pool)] = ids[-1]
            windows_raw.append((pool, ids))

    steps = g.ordered()
    wave_of = {s.id: s.wave for s in steps}
    windows = [_window(pool, tuple(p.fqdn for p in members[id(pool)]), wave_of[ids[0]], wave_of[ids[-1]]) for pool, ids in windows_raw]
    return PatchPlan(topology, plans, steps, None, None, settings=settings, windows=windows,
                     pool_order=[p.fqdn.value for p in order])


def _action(procedure: str, plan: ServerPlan) -> str:
    if procedure == "front-end":
        return (f"Update {plan.fqdn}: Get-CsPoolFabricState, Invoke-CsComputerFailOver, the update, Invoke-CsComputerFailBack, services checked")
    if procedure == "front-end-single":
        return f"Update {plan.fqdn}, the pool's only Front End: services stopped (the pool is down), the update, services started"
    if procedure == "standard":
        return f"Update {plan.fqdn}: Stop-CsWindowsService, the update, Install-CsDatabase -Update -LocalDatabases, services started"
    return f"Update {plan.fqdn}: drained (Stop-CsWindowsService -Graceful), the update, services started"


def _verify_text(procedure: str) -> str:
    return ("the script ends with SUCCESS (or says the server was already at the target version); every service runs; "
            "its record under %ProgramData%\\sfbgen\\steps names the versions before and after")


def _failure_text(procedure: str) -> str:
    if procedure == "front-end":
        return ("read the transcript: a fail-over that did not finish left the server serving (nothing changed); after the update "
                "the script fails back itself when run again. Exit 3010: restart the server and run it again")
    return "read the transcript; exit 3010: restart the server and run it again (it continues where it stopped)"


def _window(pool: m.Pool, members: tuple[str, ...], first: int, last: int) -> PoolWindow:
    count = len(members)
    resiliency = fact("patch_back_end_resiliency_minutes")
    if pool.kind == "enterprise" and count > 1:
        short = (f"one Front End of {count} out of service at a time (its users are moved to the others by Invoke-CsComputerFailOver): "
                 f"the pool serves on {count - 1}; then the back end's database update (under {resiliency} minutes, or users go into resiliency mode)")
        watch = ("Get-CsPoolFabricState -PoolFqdn " + pool.fqdn.value + " between members (no missing replicas); the fail-over's report; "
                 "Get-CsWindowsService on the member just failed back")
    elif pool.kind == "enterprise":
        short = "down for the whole update: the pool's only Front End is stopped (no fail-over target)"
        watch = "users of the pool are without service until the services run again; the Lync Server event log"
    elif pool.kind == "standard":
        short = "down for the whole update: a Standard Edition server is a pool of one (services stopped, update, databases, start)"
        watch = "its users are without service (or in resiliency mode, with a backup pool); Install-CsDatabase's output; Get-CsWindowsService"
    elif count > 1:
        short = f"one member of {count} drained and out of service at a time: the pool serves on {count - 1}"
        watch = "the drain (Stop-CsWindowsService -Graceful waits for sessions to end); Get-CsWindowsService on the member just started"
    else:
        short = "down for the whole update: the pool has one member (drained first, so sessions end rather than break)"
        carries = {"edge": "remote and federated users, and external media, have no Edge Server",
                   "mediation": "PSTN calls through this pool fail", "director": "sign-ins that reach the Director are not redirected"}
        watch = carries.get(pool.kind, "what the pool serves stops") + " until its services run again; Get-CsWindowsService on it"
    return PoolWindow(pool.fqdn.value, pool.kind, members, first, last, short, watch)


def _work_digest(digest: str, settings: PatchSettings) -> str:
    """The topology's digest and the patch settings together: what the compile serial is derived from.
    The manifests keep the topology's own digest (`sfbgen verify --expect-topology` reads it), so a
    patch bundle's serial always grows over the bundle it replaces (next_serial sees another digest)."""
    return hashlib.sha256((digest + "\n" + settings.canonical()).encode("utf-8")).hexdigest()


class PatchRenderer(Renderer):
    """The compile's renderer, with the patch runbook and the patch's second hops."""

    def invoke_runbook(self) -> str:
        from .manifest import ROOT_NAME

        def unc_host(path: str) -> str:
            return path[2:].split("\\")[0] if path.startswith("\\\\") else ""

        hops = {}
        for s in self.plan.servers:
            checks = [("path", s.media, unc_host(s.media))]
            if not s.is_edge:
                checks.append(("cms", "Get-CsTopology", "the Central Management Store"))
            if isinstance(s, PatchServerPlan) and s.patch and s.patch.procedure == "front-end":
                # Invoke-CsComputerFailOver: "an account that has administrator privileges on each server in the
                # source and target pools" (Invoke-CsComputerFailOver.md): the other members are second hops.
                checks += [("remoting", other, other) for other in s.patch.members if other != s.fqdn]
            hops[s.fqdn] = checks
        return self.render("invoke-runbook.ps1.j2", meta=self.meta, servers=self.plan.servers, steps=self.plan.steps, root_manifest=ROOT_NAME, hops=hops)

    def runbook(self, signing: dict) -> str:
        plan = self.plan
        assert isinstance(plan, PatchPlan)  # this renderer is given patch plans only (patch_file)
        return self.render("patch-runbook.md.j2", plan=plan, meta=self.meta, waves=plan.waves(), signing=signing,
                               settings=plan.settings, windows=plan.windows, failover_wait=fact("patch_failover_wait_minutes"),
                               resiliency=fact("patch_back_end_resiliency_minutes"))


@dataclass(frozen=True)
class PatchResult:
    out: Path
    plan: PatchPlan
    diagnostics: list
    signed: bool
    file_count: int
    serial: int
    files: dict = field(default_factory=dict)


def patch_file(path: str | Path, out: str | Path, settings: PatchSettings, signer=None, keep_files: bool = False,
               protected: tuple[Path, ...] = (), serial: int | None = None) -> PatchResult:
    """Check the topology at `path`, plan the patch and write its bundle to `out` (replaced whole, atomically)."""
    from . import __version__, manifest
    from .api import compile_path
    from .bundle import BundleWriter
    from .compiler import Limits, iter_bundle
    from .resources import CachePolicy

    # As compile: no cached code when signing; the server count checked before planning anything.
    policy = CachePolicy.for_signing(signer is not None)
    result = compile_path(path, policy=policy, limits=Limits(),
                          planner=lambda topology, name: build_patch_plan(topology, settings, name))
    result.raise_for_errors()
    plan, meta = result.plan, result.meta
    # No error: the topology was planned, by build_patch_plan.
    assert isinstance(plan, PatchPlan) and meta is not None
    out = Path(out)
    files: dict[str, bytes] = {}
    count = 0
    with BundleWriter(out, [Path(path), *protected]) as writer:
        serial = manifest.next_serial(out, _work_digest(meta.digest, settings), signer.thumbprint if signer else "", __version__, serial)
        for name, data in iter_bundle(plan, meta, signer, serial, renderer=PatchRenderer, policy=policy):
            writer.add(name, data)
            count += 1
            if keep_files:
                files[name] = data
        writer.commit()
    return PatchResult(out, plan, list(result.diagnostics), signer is not None, count, serial, files)
