"""Planning: from a checked topology to the scripts of every server and the ordered runbook steps.

The plan is the one place that knows the order of work across servers:
- every server runs its steps 1 → 2 → 3 → 4;
- an Edge's step 1 waits for the configuration export on a Front End (the Edge is not domain-joined
  and cannot read the Central Management Store);
- the OAuthTokenIssuer certificate is requested and assigned globally in the step 3 of one Front End,
  before any other server's step 3;
- the other members of an Edge pool import the pool's external certificate after the first member
  obtained it;
- an offline request is two steps with the certificate authority in between;
- an Enterprise pool starts with one Start-CsPool after every member finished step 3;
- a Front End pool starts before the Edge and Mediation pools that use it as next hop.
Templates receive these plan objects, never the parse tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import model as m
from .certificates import CertificatePlanner, CertificateRequest, oauth_host

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
    def is_edge(self) -> bool:
        return self.pool.kind == "edge"

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


@dataclass(frozen=True)
class RunbookStep:
    id: str
    server: str
    action: str
    script: str | None  # path relative to the bundle root
    after: tuple[str, ...]
    kind: str  # 'script' | 'manual'
    verify: str
    on_failure: str
    wave: int = 0
    # A copy step's files, bundle-relative ("<source server>/out/<file>"), to put beside the scripts
    # of `server`: what an orchestrator copies itself (a person follows `action`).
    copies: tuple[str, ...] = ()
    # What carries the step out, for orchestrators to dispatch on (never a file name or an id):
    # 'script' (run `script`), 'copy' (copy `copies`), 'publish' (a person publishes the topology with
    # Topology Builder), 'ca-wait' (the certification authority answers an offline request).
    task: str = "script"
    takes_secrets: bool = False  # step 3: the PFX password and the CA account reach it on standard input

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
            for index, server in enumerate(pool.servers):
                plan = ServerPlan(
                    fqdn=server.fqdn.value,
                    pool=pool,
                    role=m.ROLE_OF_KIND[pool.kind],
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
                plan.starts_pool = pool.kind == "enterprise" and index == 0
                plans.append(plan)
    return plans, oauth


def _script(kind: str, title: str, step: int) -> Script:
    return Script(kind, STEP_FILES[kind], title, step)


# Scripts are values: every server shares these few.
_PREPARE_CMS = _script("prepare-cms", "Prepare the first Standard Edition server (Central Management Store)", 0)
_LOCAL_STORE = _script("local-store", "Install Local Configuration Store", 1)
_COMPONENTS = _script("components", "Set up Skype for Business Server components", 2)
_CERTIFICATES = _script("certificates", "Request, install and assign certificates", 3)
_START_POOL = _script("start-pool", "Start the Enterprise Edition pool", 4)
_START_SERVICES = _script("start-services", "Start services", 4)
_EXPORT_EDGE_CONFIG = _script("export-edge-config", "Export the configuration for Edge servers", 0)
_VERIFY_BUNDLE = _script("verify-bundle", "Check this bundle against its manifest", 0)


def _assign_scripts(plans: list[ServerPlan], has_edge: bool, edge_host: ServerPlan | None) -> None:
    for plan in plans:
        if plan.holds_cms:
            plan.scripts.append(_PREPARE_CMS)
        plan.scripts += (_LOCAL_STORE, _COMPONENTS, _CERTIFICATES)
        if plan.pool.kind == "enterprise":
            if plan.starts_pool:
                plan.scripts.append(_START_POOL)
        else:
            plan.scripts.append(_START_SERVICES)
        if plan is edge_host and has_edge:
            plan.exports_edge_config = True
            plan.scripts.append(_EXPORT_EDGE_CONFIG)
        plan.scripts.append(_VERIFY_BUNDLE)


class _StepGraph:
    """Collects runbook steps and their dependencies, then orders them in waves."""

    def __init__(self):
        self.steps: dict[str, dict] = {}

    def add(self, id: str, server: str, action: str, script: str | None, after, verify: str, on_failure: str, kind: str = "script", copies: tuple[str, ...] = (),
            task: str = "script") -> str:
        takes_secrets = bool(script) and script.endswith("/" + STEP_FILES["certificates"])
        self.steps[id] = dict(id=id, server=server, action=action, script=script, after=[a for a in after if a], kind=kind, verify=verify, on_failure=on_failure, copies=copies,
                              task=task, takes_secrets=takes_secrets)
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
        import heapq

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


def build_plan(topology: m.Topology) -> DeploymentPlan:
    """Plan the deployment of a checked topology (one without errors)."""
    plans, oauth = _server_plans(topology)
    edges = [p for p in plans if p.is_edge]
    front_ends = [p for p in plans if p.pool.kind in m.FRONT_END_KINDS]
    edge_host = front_ends[0] if front_ends else None
    _assign_scripts(plans, bool(edges), edge_host)

    g = _StepGraph()

    def path(plan: ServerPlan, kind: str) -> str:
        return f"{plan.fqdn}/{STEP_FILES[kind]}"

    # The first Standard Edition server holds the Central Management Store: it is prepared, and the
    # topology published to it, before any server installs its Local Configuration Store (the seed,
    # Step 1 note; the Deployment Wizard's "Prepare first Standard Edition server").
    published: list[str] = []
    cms = next((p for p in plans if p.holds_cms), None)
    if cms is not None:
        prepared = g.add(f"{cms.fqdn}:0", cms.fqdn, "Prepare the Central Management Store (SQL Server Express RTC, Install-CsDatabase -CentralManagementDatabase, Set-CsConfigurationStoreLocation)",
                         path(cms, "prepare-cms"), [],
                         "the script ends with SUCCESS; Get-CsConfigurationStoreLocation names this server",
                         "read the transcript; fix the cause; run it again (it skips what is done)")
        published.append(g.add("publish-topology", cms.fqdn, "Topology Builder: publish the topology (Publish-CsTopology, then Enable-CsTopology)", None, [prepared],
                               "Get-CsTopology -AsXml returns the published topology; every server's first script checks it",
                               "Topology Builder names what it refused; correct the topology and publish again", kind="manual", task="publish"))
    done3: dict[str, str] = {}  # server -> id of the step after which its certificates are in place
    for plan in plans:
        s = plan.fqdn
        g.add(f"{s}:1", s, "Install Local Configuration Store", path(plan, "local-store"), [] if plan.is_edge else published,
              ("the script ends with SUCCESS (it checked the configuration it imported). The Central Management Store replicates "
               f"to an Edge Server only once its certificates are assigned and its services run: after step 4, on a Front End, "
               f"Get-CsManagementStoreReplicationStatus -ReplicaFqdn {s} says UpToDate" if plan.is_edge else
               "the script ends with SUCCESS; Get-CsManagementStoreReplicationStatus lists this server as up to date"),
              "read the transcript the script names; fix the cause; run the script again (it skips what is done)")
        g.add(f"{s}:2", s, "Set up components (Bootstrapper, Enable-CsComputer)", path(plan, "components"), [f"{s}:1"],
              "the script ends with SUCCESS; if it exits 3010, restart the server and run it again",
              "read the Bootstrapper logs named in the transcript; satisfy the missing prerequisite; run it again")
        if plan.offline:
            g.add(f"{s}:3-request", s, "Write certificate requests (offline authority)", path(plan, "certificates"), [f"{s}:2"],
                  "the script exits 3 and lists the .req files it wrote in the bundle's requests folder",
                  "read the transcript; run it again")
            g.add(f"{s}:3-ca", s, "Certificate authority: issue the requested certificates", None, [f"{s}:3-request"],
                  "every .req file has an answer from the CA (.cer or .p7b)",
                  "ask the CA administrator; a rejected request needs a new one (delete the .req file and run step 3 again)",
                  kind="manual", task="ca-wait")
            done3[s] = g.add(f"{s}:3", s, "Import and assign the issued certificates (run step 3 again with -CertificateResponse <answer files>)", path(plan, "certificates"), [f"{s}:3-ca"],
                             "the script ends with SUCCESS after checking every name, the key and the chain",
                             "the script names what is wrong with the certificate; have it reissued and run again")
        else:
            done3[s] = g.add(f"{s}:3", s, "Request and assign certificates", path(plan, "certificates"), [f"{s}:2"],
                             "the script ends with SUCCESS after checking every name, the key and the chain",
                             "the script names what is wrong; check the CA and run it again")

    # The OAuth certificate is assigned globally from one Front End before other servers reach step 3.
    oauth_server = next((p for p in plans if p.oauth), None)
    if oauth_server:
        for plan in plans:
            if plan is oauth_server or plan.is_edge:
                continue  # Edge servers do not use the OAuthTokenIssuer certificate
            first = f"{plan.fqdn}:3-request" if plan.offline else f"{plan.fqdn}:3"
            g.depend(first, done3[oauth_server.fqdn])

    # Edge servers read their configuration from a file exported on a Front End.
    if edges and edge_host:
        export = g.add(f"{edge_host.fqdn}:export-edge-config", edge_host.fqdn, "Export the configuration for the Edge servers",
                       path(edge_host, "export-edge-config"), [f"{edge_host.fqdn}:1"],
                       f"{edge_host.fqdn}/out/{EDGE_CONFIG_ZIP} exists",
                       "check that the topology is published (Get-CsTopology) and run it again")
        for plan in edges:
            copy = g.add(f"{plan.fqdn}:copy-config", plan.fqdn,
                         f"Copy {edge_host.fqdn}/out/{EDGE_CONFIG_ZIP} into the bundle folder {plan.fqdn}/", None, [export],
                         f"{plan.fqdn}/{EDGE_CONFIG_ZIP} is on the Edge server beside its scripts",
                         "copy it again; the file must not be altered", kind="manual",
                         copies=(f"{edge_host.fqdn}/out/{EDGE_CONFIG_ZIP}",), task="copy")
            g.depend(f"{plan.fqdn}:1", copy)

    # The other members of an Edge pool import the certificates the first member obtained (internal
    # and external: one of each per pool), from the PFX files its step 3 exported.
    first_edge = {id(p.pool): p for p in edges if p.member_index == 0}
    for plan in edges:
        if plan.member_index == 0:
            continue
        first = first_edge[id(plan.pool)]
        files = [r.pfx_name for r in plan.requests if plan.imports_shared(r)]
        copy = g.add(f"{plan.fqdn}:copy-edge-cert", plan.fqdn,
                     f"Copy {', '.join(f'{first.fqdn}/out/{name}' for name in files)} into the bundle folder {plan.fqdn}/", None, [done3[first.fqdn]],
                     f"the files are on {plan.fqdn} beside its scripts; keep their password at hand. Step 3 deletes each once imported",
                     "export them again from the first Edge Server (run its step 3 again)", kind="manual",
                     copies=tuple(f"{first.fqdn}/out/{name}" for name in files), task="copy")
        target = f"{plan.fqdn}:3-request" if plan.offline else f"{plan.fqdn}:3"
        g.depend(target, copy)

    # Start: one Start-CsPool per Enterprise pool after every member's step 3; others per server.
    members_of: dict[int, list[ServerPlan]] = {}
    for plan in plans:
        members_of.setdefault(id(plan.pool), []).append(plan)
    pools_by_fqdn = {p.fqdn.value.lower(): p for p in topology.pools()}

    def start_steps(pool: m.Pool) -> list[str]:
        """The steps after which `pool` runs (named by rule, so a pool later in the file can be named)."""
        if pool.kind == "enterprise":
            return [f"{pool.fqdn.value}:start-pool"]
        return [f"{p.fqdn}:4" for p in members_of[id(pool)]]

    for pool in topology.pools():
        members = members_of[id(pool)]
        if pool.kind == "enterprise":
            starter = members[0]
            g.add(f"{pool.fqdn.value}:start-pool", starter.fqdn, f"Start the pool {pool.fqdn.value} (Start-CsPool)", path(starter, "start-pool"),
                  [done3[p.fqdn] for p in members],
                  "the script ends with SUCCESS: every service on every member Running, Get-CsPoolFabricState healthy",
                  "run Get-CsPoolFabricState -PoolFqdn for details; the first start needs 85% of the members up (the script names the minimum);"
                  " a member that cannot be started now may be left out with -SkipServer <its FQDN>")
            continue
        # An Edge or Mediation pool starts after the pool it uses as next hop is running.
        hop = getattr(pool, "next_hop", None)
        hop_pool = pools_by_fqdn.get(hop.value.lower()) if hop is not None else None
        hop_steps = start_steps(hop_pool) if hop_pool is not None else []
        for p in members:
            g.add(f"{p.fqdn}:4", p.fqdn, "Start services (Start-CsWindowsService)", path(p, "start-services"), [done3[p.fqdn], *hop_steps],
                  "the script ends with SUCCESS: every Skype for Business service Running",
                  "read the event log 'Lync Server'; fix the cause; run it again")

    return DeploymentPlan(topology, plans, g.ordered(), oauth, edge_host if edges else None)


# The RoleName of the services a published topology installs on a computer of each role (Service /
# ServiceId / RoleName in Get-CsTopology -AsXml; read off the real documents of ../shared/topologies:
# Registrar, UserServices and WebServices on every Front End pool and Standard Edition server,
# EdgeServer on every Edge pool, MediationServer where Mediation is collocated). A Director is a
# Registrar whose RegistrarService says IsDirector="true" (the attribute is in every document;
# a Director itself in none: reconstructed).
PUBLISHED_ROLE_NAMES = {
    "FrontEnd": ("Registrar", "UserServices", "WebServices"),
    "StandardEdition": ("Registrar", "UserServices", "WebServices"),
    "Director": ("Registrar", "WebServices"),
    "Mediation": ("MediationServer",),
    "Edge": ("EdgeServer",),
}
# The Edge components whose External port carries each external FQDN (Port Owner / ConfiguredFqdn).
EDGE_PORT_OWNERS = ("AccessEdge", "DataEdge", "MediaRelayEdge")


def published_expectations(server: ServerPlan) -> dict:
    """What the published topology must say of `server`: checked by its scripts before they change anything."""
    pool = server.pool
    roles = tuple(dict.fromkeys(name for role in server.roles for name in PUBLISHED_ROLE_NAMES[role]))
    expect = {"roles": roles, "director": pool.kind == "director", "web_internal": "", "web_external": "", "edge": {}}
    if isinstance(pool, m.WebPool):
        expect["web_internal"] = pool.web_internal_fqdn()
        expect["web_external"] = pool.web_external_fqdn()
    if isinstance(pool, m.EdgePool):
        values = (pool.access_edge, pool.webconf_edge, pool.av_edge)
        expect["edge"] = {owner: value.value for owner, value in zip(EDGE_PORT_OWNERS, values) if value is not None}
    return expect
