"""Planning: from a checked topology to the scripts of every server and the ordered runbook steps.

The plan is the one place that knows the order of work across servers. The runbook is made in two
passes: the step makers add every step (the work: STEP_MAKERS), then each ordering rule adds the
dependencies it stands for (ORDERING_RULES, one function per rule, each citing its source and tested
on its own in tests/test_plan_rules.py):
- the first Standard Edition server is prepared before the topology is published to it, and the
  topology is published before any domain-joined server's step 1;
- every server runs its steps 1 → 2 → 3 → 4; an offline request is two steps with the certificate
  authority in between;
- the OAuthTokenIssuer certificate is requested and assigned globally in the step 3 of one Front End,
  before any other server's step 3;
- an Edge's step 1 waits for the configuration exported on a Front End after its step 1, and copied
  (the Edge is not domain-joined and cannot read the Central Management Store);
- the other members of an Edge pool import the pool's certificates after the first member obtained them;
- an Enterprise pool starts with one Start-CsPool after every member finished step 3;
- a pool starts before the Edge and Mediation pools that use it as next hop.
Each step has a kind (StepKind) that orchestrators and RUNBOOK.md dispatch on, and an id made by
`step_id` that names it and nothing more. What a pool kind runs is the registry's (sfbgen/pool_kinds.py).
Templates receive these plan objects, never the parse tree.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from . import model as m
from .certificates import CertificatePlanner, CertificateRequest, oauth_host
from .pool_kinds import PUBLISHED_ROLE_NAMES, PoolKind, kind_of

STEP_FILES = {
    "prepare-cms": "0-Prepare-CentralManagementStore.ps1",
    "local-store": "1-Install-LocalConfigurationStore.ps1",
    "components": "2-Setup-Components.ps1",
    "certificates": "3-Request-Certificates.ps1",
    "start-services": "4-Start-Services.ps1",
    "start-pool": "4-Start-Pool.ps1",
    "export-edge-config": "Export-EdgeConfiguration.ps1",
    "verify-bundle": "Test-Bundle.ps1",
}
EDGE_CONFIG_ZIP = "CsConfiguration.zip"


@dataclass(frozen=True)
class Script:
    kind: str  # a key of STEP_FILES; also names the template
    filename: str
    title: str
    step: int  # 1-4; 0 for helpers
    secrets: bool = False  # the PFX password and the CA account reach it on standard input (step 3)


@dataclass
class ServerPlan:
    fqdn: str
    pool: m.Pool
    role: str
    site: str
    member_index: int  # 0 for the first member of its pool
    certificates: list[CertificateRequest] = field(default_factory=list)
    scripts: list[Script] = field(default_factory=list)
    oauth: CertificateRequest | None = None  # set on the one server that requests it
    exports_edge_config: bool = False
    starts_pool: bool = False  # the member that runs Start-CsPool
    span: object = None
    media: str = ""  # where this server installs from: its pool's media, else the topology's
    windows_source: str = ""  # the Windows sources (\\sources\\sxs): its pool's, its site's, else the topology's
    holds_cms: bool = False  # the Standard Edition server that is prepared to hold the Central Management Store

    @property
    def kind(self) -> PoolKind:
        """What its pool is (sfbgen/pool_kinds.py)."""
        return kind_of(self.pool)

    @property
    def is_edge(self) -> bool:
        """An Edge Server: a workgroup computer in the perimeter network, which reads no Central
        Management Store (its configuration comes from a file exported on a Front End)."""
        return self.kind.perimeter

    @property
    def roles(self) -> tuple[str, ...]:
        """Every server role this computer runs: its pool's, and a collocated Mediation Server."""
        if isinstance(self.pool, m.WebPool) and self.pool.collocated_mediation:
            return (self.role, "Mediation")
        return (self.role,)

    @property
    def requests(self) -> list[CertificateRequest]:
        """Every certificate this server obtains or assigns: the deployment's OAuth one first, if it is here."""
        return ([self.oauth] if self.oauth else []) + self.certificates

    @property
    def offline(self) -> bool:
        return any(r.authority == "offline" and not self.imports_shared(r) for r in self.requests)

    def imports_shared(self, request: CertificateRequest) -> bool:
        """True when this server copies `request` from the pool's first member instead of requesting it."""
        return request.scope == "pool" and request.requested_on != self.fqdn

    def script(self, kind: str) -> Script | None:
        return next((s for s in self.scripts if s.kind == kind), None)


class StepKind(StrEnum):
    """What carries a runbook step out: what the orchestrators (Invoke-Runbook.ps1, the Ansible
    playbook) and RUNBOOK.md dispatch on, never a step's id or its script's file name."""

    SCRIPT = "script"  # run the step's script on its server
    COPY = "copy"  # copy the step's `copies` (another server's output) beside the server's scripts
    PUBLISH = "publish"  # a person publishes the topology with Topology Builder
    CA_WAIT = "ca-wait"  # the certification authority answers an offline request
    MANUAL = "manual"  # other work a person does by hand (no plan has one yet)


PUBLISH_TOPOLOGY = "publish-topology"


def step_id(where: str | None, what: str | int) -> str:
    """A runbook step's id, the one place ids are made: `<server or pool FQDN>:<what>`, `what` the
    Deployment Wizard step (0-4) or the step's name (`3-request`, `start-pool`, ...); a step of the
    whole deployment (`where` None) is its name alone. Ids name steps for people and for `after`;
    nothing reads meaning out of them."""
    return f"{where}:{what}" if where is not None else str(what)


@dataclass(frozen=True)
class RunbookStep:
    id: str
    server: str
    action: str
    script: str | None  # path relative to the bundle root
    after: tuple[str, ...]
    verify: str
    on_failure: str
    wave: int = 0
    # A copy step's files, bundle-relative ("<source server>/out/<file>"), to put beside the scripts
    # of `server`: what an orchestrator copies itself (a person follows `action`).
    copies: tuple[str, ...] = ()
    # What carries the step out (StepKind), for orchestrators to dispatch on: the `task` of the Ansible
    # step table, the Kind of Invoke-Runbook.ps1's.
    task: StepKind = StepKind.SCRIPT
    takes_secrets: bool = False  # step 3: the PFX password and the CA account reach it on standard input

    @property
    def kind(self) -> StepKind:
        """The step's kind: what carries it out (`task`)."""
        return self.task

    @property
    def manual(self) -> bool:
        """No script of the bundle runs: a person (or an orchestrator's own copy) does the work."""
        return self.kind != StepKind.SCRIPT

    def to_plan(self) -> dict:
        return {"id": self.id, "server": self.server, "action": self.action, "script": self.script, "after": list(self.after)}


@dataclass
class DeploymentPlan:
    topology: m.Topology
    servers: list[ServerPlan]
    steps: list[RunbookStep]
    oauth: CertificateRequest | None
    edge_config_host: ServerPlan | None

    def server(self, fqdn: str) -> ServerPlan:
        return next(s for s in self.servers if s.fqdn == fqdn)

    def waves(self) -> list[list[RunbookStep]]:
        out: dict[int, list[RunbookStep]] = {}
        for step in self.steps:
            out.setdefault(step.wave, []).append(step)
        return [out[k] for k in sorted(out)]


def _server_plans(topology: m.Topology) -> tuple[list[ServerPlan], CertificateRequest | None]:
    planner = CertificatePlanner(topology)
    oauth = planner.oauth()
    host = oauth_host(topology)
    plans: list[ServerPlan] = []
    for site in topology.sites:
        for pool in site.pools:
            kind = kind_of(pool)
            for index, server in enumerate(pool.servers):
                plan = ServerPlan(
                    fqdn=server.fqdn.value,
                    pool=pool,
                    role=kind.role,
                    site=site.name.value,
                    member_index=index,
                    certificates=planner.for_server(pool, server),
                    span=server.fqdn.span,
                    media=topology.media_for(pool),
                    windows_source=topology.windows_source_for(pool),
                    holds_cms=isinstance(pool, m.StandardEditionServer) and pool.central_management_store is not None,
                )
                if host and host[1] is server:
                    plan.oauth = oauth
                plan.starts_pool = kind.start == "pool" and index == 0
                plans.append(plan)
    return plans, oauth


def _script(kind: str, title: str, step: int, secrets: bool = False) -> Script:
    return Script(kind, STEP_FILES[kind], title, step, secrets)


# Scripts are values: every server shares these few.
_PREPARE_CMS = _script("prepare-cms", "Prepare the first Standard Edition server (Central Management Store)", 0)
_LOCAL_STORE = _script("local-store", "Install Local Configuration Store", 1)
_COMPONENTS = _script("components", "Set up Skype for Business Server components", 2)
_CERTIFICATES = _script("certificates", "Request, install and assign certificates", 3, secrets=True)
_START_POOL = _script("start-pool", "Start the Enterprise Edition pool", 4)
_START_SERVICES = _script("start-services", "Start services", 4)
_EXPORT_EDGE_CONFIG = _script("export-edge-config", "Export the configuration for Edge servers", 0)
_VERIFY_BUNDLE = _script("verify-bundle", "Check this bundle against its manifest", 0)
_SCRIPTS = {s.kind: s for s in (_LOCAL_STORE, _COMPONENTS, _CERTIFICATES, _START_POOL, _START_SERVICES)}


def _assign_scripts(plans: list[ServerPlan], has_edge: bool, edge_host: ServerPlan | None) -> None:
    for plan in plans:
        if plan.holds_cms:
            plan.scripts.append(_PREPARE_CMS)
        for kind in plan.kind.scripts:  # the setup steps, then the start (a pool's by its first member)
            if kind != "start-pool" or plan.starts_pool:
                plan.scripts.append(_SCRIPTS[kind])
        if plan is edge_host and has_edge:
            plan.exports_edge_config = True
            plan.scripts.append(_EXPORT_EDGE_CONFIG)
        plan.scripts.append(_VERIFY_BUNDLE)


class _StepGraph:
    """Collects runbook steps and their dependencies, then orders them in waves."""

    def __init__(self):
        self.steps: dict[str, dict] = {}

    def add(self, id: str, server: str, action: str, script: str | None, after, verify: str, on_failure: str,
            kind: StepKind = StepKind.SCRIPT, copies: tuple[str, ...] = (), takes_secrets: bool = False) -> str:
        self.steps[id] = dict(id=id, server=server, action=action, script=script, after=[a for a in after if a], verify=verify, on_failure=on_failure, copies=copies,
                              task=kind, takes_secrets=takes_secrets)
        return id

    def depend(self, id: str, *after: str) -> None:
        for a in after:
            if a and a not in self.steps[id]["after"]:
                self.steps[id]["after"].append(a)

    def ordered(self) -> list[RunbookStep]:
        # Kahn's algorithm, ties broken by insertion order, so the runbook reads like the topology.
        order = list(self.steps)
        position = {k: i for i, k in enumerate(order)}
        wave: dict[str, int] = {}
        remaining = {k: set(v["after"]) for k, v in self.steps.items()}
        result: list[RunbookStep] = []
        ready = [k for k in order if not remaining[k]]
        dependents: dict[str, list[str]] = {k: [] for k in order}
        for k, v in self.steps.items():
            for a in v["after"]:
                dependents[a].append(k)
        heap = [(position[k], k) for k in ready]
        heapq.heapify(heap)
        while heap:
            _, k = heapq.heappop(heap)
            data = self.steps[k]
            wave[k] = 1 + max((wave[a] for a in data["after"]), default=0)
            result.append(RunbookStep(**{**data, "after": tuple(data["after"]), "wave": wave[k]}))
            for d in dependents[k]:
                remaining[d].discard(k)
                if not remaining[d]:
                    heapq.heappush(heap, (position[d], d))
        if len(result) != len(order):  # pragma: no cover - the rules above cannot form a cycle
            raise RuntimeError("the runbook steps form a cycle")
        result.sort(key=lambda s: (s.wave, position[s.id]))
        return result


# ---------------------------------------------------------------------------------------------------
# The runbook: first every step (the work), then every ordering rule (which work waits for which).
# Steps are added in reading order (the topology's), which breaks ties between steps of one wave.


@dataclass
class _Planned:
    """What the step makers and ordering rules read: the servers, and the few servers that matter."""

    topology: m.Topology
    plans: list[ServerPlan]
    edge_host: ServerPlan | None  # the Front End that exports the Edge configuration (when there are Edges)

    def __post_init__(self):
        self.edges = [p for p in self.plans if p.is_edge]
        self.cms = next((p for p in self.plans if p.holds_cms), None)
        self.oauth_server = next((p for p in self.plans if p.oauth), None)
        self.members_of: dict[int, list[ServerPlan]] = {}
        for plan in self.plans:
            self.members_of.setdefault(id(plan.pool), []).append(plan)
        self.pools_by_fqdn = {p.fqdn.value.lower(): p for p in self.topology.pools()}

    def members(self, pool: m.Pool) -> list[ServerPlan]:
        return self.members_of[id(pool)]

    def pool_starter(self, plan: ServerPlan) -> ServerPlan:
        """The first member of `plan`'s pool (the one that requests what the pool shares, or starts it)."""
        return self.members_of[id(plan.pool)][0]

    def exports_edge_config(self) -> bool:
        return bool(self.edges) and self.edge_host is not None


def _path(plan: ServerPlan, kind: str) -> str:
    return f"{plan.fqdn}/{STEP_FILES[kind]}"


def _step3_first(plan: ServerPlan) -> str:
    """The first step of `plan`'s step 3: writing the requests of an offline authority, or the whole step."""
    return step_id(plan.fqdn, "3-request" if plan.offline else 3)


def _step3_done(plan: ServerPlan) -> str:
    """The step after which `plan`'s certificates are in place."""
    return step_id(plan.fqdn, 3)


def _start_ids(planned: _Planned, pool: m.Pool) -> list[str]:
    """The steps after which `pool` runs: its one Start-CsPool, or every member's step 4 (named by rule,
    so a pool later in the file can be named)."""
    if kind_of(pool).start == "pool":
        return [step_id(pool.fqdn.value, "start-pool")]
    return [step_id(p.fqdn, 4) for p in planned.members(pool)]


# -- the steps --------------------------------------------------------------------------------------


def _cms_steps(g: _StepGraph, p: _Planned) -> None:
    """The first Standard Edition server's step 0, and the publishing of the topology to it."""
    cms = p.cms
    if cms is None:
        return
    g.add(step_id(cms.fqdn, 0), cms.fqdn, "Prepare the Central Management Store (SQL Server Express RTC, Install-CsDatabase -CentralManagementDatabase, Set-CsConfigurationStoreLocation)",
          _path(cms, "prepare-cms"), [],
          "the script ends with SUCCESS; Get-CsConfigurationStoreLocation names this server",
          "read the transcript; fix the cause; run it again (it skips what is done)")
    g.add(step_id(None, PUBLISH_TOPOLOGY), cms.fqdn, "Topology Builder: publish the topology (Publish-CsTopology, then Enable-CsTopology)", None, [],
          "Get-CsTopology -AsXml returns the published topology; every server's first script checks it",
          "Topology Builder names what it refused; correct the topology and publish again", kind=StepKind.PUBLISH)


def _setup_steps(g: _StepGraph, p: _Planned) -> None:
    """Every server's steps 1, 2 and 3; an offline authority splits step 3 around the CA's answer."""
    for plan in p.plans:
        s = plan.fqdn
        g.add(step_id(s, 1), s, "Install Local Configuration Store", _path(plan, "local-store"), [],
              ("the script ends with SUCCESS (it checked the configuration it imported). The Central Management Store replicates "
               f"to an Edge Server only once its certificates are assigned and its services run: after step 4, on a Front End, "
               f"Get-CsManagementStoreReplicationStatus -ReplicaFqdn {s} says UpToDate" if plan.is_edge else
               "the script ends with SUCCESS; Get-CsManagementStoreReplicationStatus lists this server as up to date"),
              "read the transcript the script names; fix the cause; run the script again (it skips what is done)")
        g.add(step_id(s, 2), s, "Set up components (Bootstrapper, Enable-CsComputer)", _path(plan, "components"), [],
              "the script ends with SUCCESS; if it exits 3010, restart the server and run it again",
              "read the Bootstrapper logs named in the transcript; satisfy the missing prerequisite; run it again")
        secrets = _CERTIFICATES.secrets
        if plan.offline:
            g.add(step_id(s, "3-request"), s, "Write certificate requests (offline authority)", _path(plan, "certificates"), [],
                  "the script exits 3 and lists the .req files it wrote in the bundle's requests folder",
                  "read the transcript; run it again", takes_secrets=secrets)
            g.add(step_id(s, "3-ca"), s, "Certificate authority: issue the requested certificates", None, [],
                  "every .req file has an answer from the CA (.cer or .p7b)",
                  "ask the CA administrator; a rejected request needs a new one (delete the .req file and run step 3 again)",
                  kind=StepKind.CA_WAIT)
            g.add(step_id(s, 3), s, "Import and assign the issued certificates (run step 3 again with -CertificateResponse <answer files>)", _path(plan, "certificates"), [],
                  "the script ends with SUCCESS after checking every name, the key and the chain",
                  "the script names what is wrong with the certificate; have it reissued and run again", takes_secrets=secrets)
        else:
            g.add(step_id(s, 3), s, "Request and assign certificates", _path(plan, "certificates"), [],
                  "the script ends with SUCCESS after checking every name, the key and the chain",
                  "the script names what is wrong; check the CA and run it again", takes_secrets=secrets)


def _edge_config_steps(g: _StepGraph, p: _Planned) -> None:
    """The configuration export on a Front End, and its copy to every Edge Server."""
    host = p.edge_host
    if not p.exports_edge_config() or host is None:
        return
    g.add(step_id(host.fqdn, "export-edge-config"), host.fqdn, "Export the configuration for the Edge servers",
          _path(host, "export-edge-config"), [],
          f"{host.fqdn}/out/{EDGE_CONFIG_ZIP} exists",
          "check that the topology is published (Get-CsTopology) and run it again")
    for plan in p.edges:
        g.add(step_id(plan.fqdn, "copy-config"), plan.fqdn,
              f"Copy {host.fqdn}/out/{EDGE_CONFIG_ZIP} into the bundle folder {plan.fqdn}/", None, [],
              f"{plan.fqdn}/{EDGE_CONFIG_ZIP} is on the Edge server beside its scripts",
              "copy it again; the file must not be altered", kind=StepKind.COPY,
              copies=(f"{host.fqdn}/out/{EDGE_CONFIG_ZIP}",))


def _shared_certificates(plan: ServerPlan) -> list[str]:
    """The PFX files `plan` imports from its pool's first member (none on the first member)."""
    return [r.pfx_name for r in plan.requests if plan.imports_shared(r)]


def _edge_certificate_copy_steps(g: _StepGraph, p: _Planned) -> None:
    """The copy of the certificates an Edge pool's first member obtained, to each other member."""
    for plan in p.edges:
        if plan.member_index == 0:
            continue
        first = p.pool_starter(plan)
        files = _shared_certificates(plan)
        g.add(step_id(plan.fqdn, "copy-edge-cert"), plan.fqdn,
              f"Copy {', '.join(f'{first.fqdn}/out/{name}' for name in files)} into the bundle folder {plan.fqdn}/", None, [],
              f"the files are on {plan.fqdn} beside its scripts; keep their password at hand. Step 3 deletes each once imported",
              "export them again from the first Edge Server (run its step 3 again)", kind=StepKind.COPY,
              copies=tuple(f"{first.fqdn}/out/{name}" for name in files))


def _start_steps(g: _StepGraph, p: _Planned) -> None:
    """Step 4: one Start-CsPool per pool that starts as a pool, Start-CsWindowsService on every other server."""
    for pool in p.topology.pools():
        members = p.members(pool)
        if kind_of(pool).start == "pool":
            starter = members[0]
            g.add(step_id(pool.fqdn.value, "start-pool"), starter.fqdn, f"Start the pool {pool.fqdn.value} (Start-CsPool)", _path(starter, "start-pool"), [],
                  "the script ends with SUCCESS: every service on every member Running, Get-CsPoolFabricState healthy",
                  "run Get-CsPoolFabricState -PoolFqdn for details; the first start needs 85% of the members up (the script names the minimum);"
                  " a member that cannot be started now may be left out with -SkipServer <its FQDN>")
            continue
        for plan in members:
            g.add(step_id(plan.fqdn, 4), plan.fqdn, "Start services (Start-CsWindowsService)", _path(plan, "start-services"), [],
                  "the script ends with SUCCESS: every Skype for Business service Running",
                  "read the event log 'Lync Server'; fix the cause; run it again")


STEP_MAKERS: tuple[Callable[[_StepGraph, _Planned], None], ...] = (
    _cms_steps, _setup_steps, _edge_config_steps, _edge_certificate_copy_steps, _start_steps,
)


# -- the ordering rules -----------------------------------------------------------------------------
# One function per rule, each citing its source; tests/test_plan_rules.py has a test per rule that
# fails without it. They run in this order, which is also the order of every step's `after`.


def cms_before_publish(g: _StepGraph, p: _Planned) -> None:
    """The topology is published to the Central Management Store after the first Standard Edition
    server was prepared to hold it. Source: the seed, Step 1 note ("In a Standard Edition deployment,
    the Central Management Store is created using a local copy of SQL Server Express Edition on the
    Front End server. This happens when you run the Prepare First Standard Edition Server procedure");
    the Deployment Wizard's "Prepare first Standard Edition server"."""
    if p.cms is not None:
        g.depend(step_id(None, PUBLISH_TOPOLOGY), step_id(p.cms.fqdn, 0))


def publish_before_step_1(g: _StepGraph, p: _Planned) -> None:
    """Every domain-joined server installs its Local Configuration Store from the published topology.
    Source: the seed ("You must use Topology Builder to complete and publish the topology before you
    can install Skype for Business Server on servers"); sfb-deployment.md, "Before anything runs on a
    server". An Edge Server reads the exported file instead (edge_config_before_edge_step_1). Without
    a step 0 in the plan, publishing is a precondition of the runbook (RUNBOOK.md)."""
    if p.cms is None:
        return
    for plan in p.plans:
        if not plan.is_edge:
            g.depend(step_id(plan.fqdn, 1), step_id(None, PUBLISH_TOPOLOGY))


def steps_in_order_per_server(g: _StepGraph, p: _Planned) -> None:
    """On every server, step N before step N+1: 1 → 2 → 3 (→ 4 where the server starts its own
    services), an offline step 3 as request → the CA's answer → import. Source: the seed, "You use the
    Deployment Wizard to complete all four deployment steps" (Step 1 to Step 4, in order); sfb-
    deployment.md, "The four Deployment Wizard steps, per server", step 3: "Offline (delayed) requests
    use -Output <file.req>; the CA's answer comes back with Import-CsCertificate -Path ... and is then
    assigned"."""
    for plan in p.plans:
        s = plan.fqdn
        g.depend(step_id(s, 2), step_id(s, 1))
        if plan.offline:
            g.depend(step_id(s, "3-request"), step_id(s, 2))
            g.depend(step_id(s, "3-ca"), step_id(s, "3-request"))
            g.depend(step_id(s, 3), step_id(s, "3-ca"))
        else:
            g.depend(step_id(s, 3), step_id(s, 2))
        if plan.kind.start == "services":
            g.depend(step_id(s, 4), _step3_done(plan))


def oauth_certificate_first(g: _StepGraph, p: _Planned) -> None:
    """The OAuthTokenIssuer certificate is requested and assigned globally in one Front End's step 3,
    before any other server's step 3 (Edge Servers do not use it). Source: sfb-deployment.md, step 3:
    "The OAuthTokenIssuer certificate is assigned once for the whole deployment with Set-CsCertificate
    -Identity Global -Type OAuthTokenIssuer ... (same certificate on every Front End ...; the CMS
    replicates it)"; the seed, Step 3 ("confirm that all services have a green check ..., including
    the OAuthTokenIssuer")."""
    host = p.oauth_server
    if host is None:
        return
    for plan in p.plans:
        if plan is host or plan.is_edge:
            continue
        g.depend(_step3_first(plan), _step3_done(host))


def edge_config_export_after_host_step_1(g: _StepGraph, p: _Planned) -> None:
    """The Edge configuration is exported on a Front End once it has the management shell and reads
    the published topology: after that Front End's step 1. Source: Microsoft, "Export your topology
    and copy it to external media for edge installation" (OfficeDocs-SkypeForBusiness, Skype/SfbServer/
    sfbs2019/export-your-topology-and-copy-it-to-external-media-for-edge-installation.md: "After you
    publish your topology ... In the ... Management Shell, run Export-CsConfiguration -FileName");
    sfb-deployment.md, step 1 ("Export-CsConfiguration -FileName X.zip on a Front End"). That step 1
    is what puts the shell there: reconstructed."""
    host = p.edge_host
    if p.exports_edge_config() and host is not None:
        g.depend(step_id(host.fqdn, "export-edge-config"), step_id(host.fqdn, 1))


def edge_config_before_edge_step_1(g: _StepGraph, p: _Planned) -> None:
    """The exported configuration is copied to every Edge Server, before its step 1 imports it.
    Source: the same Microsoft page ("export the topology data to a file and copy it to external
    media ... before you run the ... Deployment Wizard on the Edge Server"); Skype/SfbServer/deploy/
    deploy-edge-server/deploy-edge-servers.md, "Installation", steps 2 and 6-7 (Import from a file)."""
    host = p.edge_host
    if not p.exports_edge_config() or host is None:
        return
    for plan in p.edges:
        copy = step_id(plan.fqdn, "copy-config")
        g.depend(copy, step_id(host.fqdn, "export-edge-config"))
        g.depend(step_id(plan.fqdn, 1), copy)


def edge_certificate_copy_after_request(g: _StepGraph, p: _Planned) -> None:
    """The other members of an Edge pool import the certificates the first member obtained (internal
    and external: one of each per pool) from the PFX files its step 3 exported: the copy after the
    first member's step 3, their step 3 after the copy. Source: sfb-deployment.md, "Certificates per
    role" (Edge: Internal "requested on one Edge Server, exported with its private key and assigned on
    every member: deploy-edge-server/deploy-edge-servers.md, 'Internal Edge interface certificates',
    steps 3-6"; the external one "the same certificate on every Edge in the pool")."""
    for plan in p.edges:
        if plan.member_index == 0:
            continue
        copy = step_id(plan.fqdn, "copy-edge-cert")
        g.depend(copy, _step3_done(p.pool_starter(plan)))
        g.depend(_step3_first(plan), copy)


def pool_start_after_every_member_step_3(g: _StepGraph, p: _Planned) -> None:
    """An Enterprise Edition Front End pool starts with one Start-CsPool, after every member finished
    steps 1-3. Source: sfb-deployment.md, step 4 ("run Start-CsPool -PoolFqdn <pool> once, after every
    member finished steps 1-3"); the seed, Step 4 ("If this is an Enterprise Edition Front End pool
    ... you must use the Start-CsPool cmdlet")."""
    for pool in p.topology.pools():
        if kind_of(pool).start == "pool":
            g.depend(step_id(pool.fqdn.value, "start-pool"), *(_step3_done(m) for m in p.members(pool)))


def next_hop_starts_first(g: _StepGraph, p: _Planned) -> None:
    """An Edge or Mediation pool starts after the pool it uses as next hop runs. Source: Microsoft,
    "Create your Edge topology" (Skype/SfbServer/deploy/deploy-edge-server/create-your-edge-topology.md:
    "you will need to have set up at least one Front End pool or a Standard Edition server" first);
    Topology Builder's help, add-edge-server-next-hop.md and add-mediation-server-nexthop.md (the next
    hop is a Front End pool, a Standard Edition server or a Director). That its services start after
    the next hop's: reconstructed (a lab run should confirm it)."""
    for pool in p.topology.pools():
        hop = getattr(pool, "next_hop", None)
        target = p.pools_by_fqdn.get(hop.value.lower()) if hop is not None else None
        if target is None:
            continue
        hop_steps = _start_ids(p, target)
        for start in _start_ids(p, pool):
            g.depend(start, *hop_steps)


ORDERING_RULES: tuple[Callable[[_StepGraph, _Planned], None], ...] = (
    cms_before_publish,
    publish_before_step_1,
    steps_in_order_per_server,
    oauth_certificate_first,
    edge_config_export_after_host_step_1,
    edge_config_before_edge_step_1,
    edge_certificate_copy_after_request,
    pool_start_after_every_member_step_3,
    next_hop_starts_first,
)


def _edge_config_host(plans: list[ServerPlan]) -> ServerPlan | None:
    """The first Front End (an Enterprise pool member or a Standard Edition server) in the file."""
    return next((p for p in plans if p.kind.front_end), None)


def build_plan(topology: m.Topology, rules: tuple[Callable[[_StepGraph, _Planned], None], ...] = ORDERING_RULES) -> DeploymentPlan:
    """Plan the deployment of a checked topology (one without errors). `rules`: the ordering rules
    (all of them; a test leaves one out to see what it does)."""
    plans, oauth = _server_plans(topology)
    edge_host = _edge_config_host(plans)
    has_edge = any(p.is_edge for p in plans)
    _assign_scripts(plans, has_edge, edge_host)
    planned = _Planned(topology, plans, edge_host)
    g = _StepGraph()
    for make in STEP_MAKERS:
        make(g, planned)
    for rule in rules:
        rule(g, planned)
    return DeploymentPlan(topology, plans, g.ordered(), oauth, edge_host if has_edge else None)


# The RoleName of the services a published topology installs on a computer of each role: the
# registry's (sfbgen/pool_kinds.py, PoolKind.published_roles), imported above as PUBLISHED_ROLE_NAMES.
# The Edge components whose External port carries each external FQDN (Port Owner / ConfiguredFqdn).
EDGE_PORT_OWNERS = ("AccessEdge", "DataEdge", "MediaRelayEdge")


def published_expectations(server: ServerPlan) -> dict:
    """What the published topology must say of `server`: checked by its scripts before they change anything."""
    pool = server.pool
    roles = tuple(dict.fromkeys(name for role in server.roles for name in PUBLISHED_ROLE_NAMES[role]))
    expect = {"roles": roles, "director": server.kind.xml.director is True, "web_internal": "", "web_external": "", "edge": {}}
    if isinstance(pool, m.WebPool):
        expect["web_internal"] = pool.web_internal_fqdn()
        expect["web_external"] = pool.web_external_fqdn()
    if isinstance(pool, m.EdgePool):
        values = (pool.access_edge, pool.webconf_edge, pool.av_edge)
        expect["edge"] = {owner: value.value for owner, value in zip(EDGE_PORT_OWNERS, values, strict=True) if value is not None}
    return expect
