"""Importing: a Topology Builder or published topology document, to a topology in the sfbgen language.

`sfbgen.topology_xml` reads the document; this module decides what it means for a deployment and
writes the `.sfb` text:

- every cluster that needs setup (`RequiresSetup="true"`) becomes a pool, its kind told by the
  services installed on it (the role names are those of the real documents in ../shared/topologies):
  `Registrar` + `UserServices` → a Front End pool (a Standard Edition server when its user store is
  on a SQL instance of the same cluster — Standard Edition keeps its databases on itself, the seed's
  "Prepare First Standard Edition Server"), `Registrar` with `IsDirector="true"` → a Director pool,
  `EdgeServer` → an Edge pool, `MediationServer` alone → a Mediation pool, and `MediationServer`
  beside `Registrar` → a collocated Mediation Server;
- next hops follow the `DependsOn` links from the Edge and Mediation services to a `Registrar`;
- every other object (SQL stores, file stores, Office Online Server, PSTN gateways, branch sites,
  roles sfbgen does not deploy) is listed in a comment and in the summary, never dropped silently.

What the document does not hold (installation media, the certificate authority) comes from the
options; what it lacks but Topology Builder would default (simple URLs, absent from a published
topology) is filled in with a warning naming the assumption and how to confirm it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .diagnostics import Diagnostic, Span, diagnostic
from .topology_xml import Cluster, Document, Service, read_document

# ServiceVersion of the Skype for Business services, read from the real documents:
# 7 in the Skype for Business Server 2015 documents, 8 in alvinchen1's Skype for Business Server 2019
# one (../shared/topologies/README.md). Reconstructed: Microsoft does not document the attribute.
# Subscription Edition is an in-place successor of 2019; whether its documents say 8 is not known,
# so `--product subscription` says it.
PRODUCT_OF_SERVICE_VERSION = {"7": "2015", "8": "2019"}
PRODUCTS = ("2015", "2019", "subscription")

# Roles whose clusters are servers sfbgen sets up; every other role is accounted for as not deployed.
_NOT_DEPLOYED_ROLES = {
    "UserStore": "SQL Server store (user)",
    "ArchivingStore": "SQL Server store (archiving)",
    "MonitoringStore": "SQL Server store (monitoring)",
    "CentralMgmtStore": "SQL Server store (Central Management)",
    "ApplicationStore": "SQL Server store (applications)",
    "PersistentChatStore": "SQL Server store (Persistent Chat)",
    "PersistentChatComplianceStore": "SQL Server store (Persistent Chat compliance)",
    "FileStore": "file store",
    "WacService": "Office Online Server",
    "PstnGateway": "PSTN gateway or trunk",
    "PersistentChatServer": "Persistent Chat server",
    "TrustedApplicationPool": "trusted application pool",
    "VideoInteropServer": "Video Interop Server",
    "VideoGateway": "video gateway",
    "ExternalServer": "external server",
}

# Characters a name may not hold to be written as a name of the language (grammar/sfb.lark, WORD).
_NOT_IN_NAME = re.compile(r'[\s{}"#]')


@dataclass
class ImportOptions:
    media: str | None = None
    ca: str | None = None  # "<CA FQDN>\<CA name>"
    offline_ca: bool = False
    product: str | None = None  # 2015, 2019, subscription; inferred from the document when None


@dataclass
class NotDeployed:
    what: str
    fqdn: str
    line: int


@dataclass
class Pool:
    kind: str  # enterprise, standard, director, mediation, edge
    cluster: Cluster
    site: str
    web_internal: str | None = None
    web_external: str | None = None
    next_hop: str | None = None
    access_edge: str = ""
    webconf_edge: str = ""
    av_edge: str = ""
    collocated_mediation: bool = False


@dataclass
class ImportResult:
    text: str | None  # the .sfb text; None when the document cannot be imported
    diagnostics: list[Diagnostic] = field(default_factory=list)
    format: str = ""
    pools: list[Pool] = field(default_factory=list)
    not_deployed: list[NotDeployed] = field(default_factory=list)

    @property
    def servers(self) -> int:
        return sum(len(p.cluster.machines) for p in self.pools)


class _Importer:
    def __init__(self, document: Document, name: str, options: ImportOptions):
        self.doc = document
        self.name = name
        self.options = options
        self.diagnostics: list[Diagnostic] = []
        self.not_deployed: list[NotDeployed] = []

    def warn(self, code: str, line: int, problem: str, fix: str) -> None:
        self.diagnostics.append(diagnostic(code, Span.point(line, 1), problem, fix, self.name))

    def error(self, line: int, problem: str, fix: str) -> None:
        self.diagnostics.append(diagnostic("SFB403", Span.point(line, 1), problem, fix, self.name))

    # -- classification -----------------------------------------------------------------------------

    def _cluster_of(self, service: Service | None) -> Cluster | None:
        if service is None:
            return None
        cluster = self.doc.clusters.get(service.installed_on)
        if cluster is None:
            cluster = self.doc.clusters.get(self.doc.sql_instances.get(service.installed_on))
        return cluster

    def _next_hop(self, service: Service) -> str | None:
        """The pool a service's `Registrar` dependency is installed on: its next hop."""
        for key in service.depends_on:
            target = self.doc.service(key)
            if target is not None and target.role == "Registrar":
                cluster = self._cluster_of(target)
                if cluster is not None:
                    return cluster.fqdn
        return None

    def _web(self, pool: Pool, service: Service | None) -> None:
        """Web services FQDNs: ExternalSettings Host (every real document); an InternalSettings Host,
        when a document has one, is the internal override (reconstructed: no real document has one)."""
        if service is None:
            return
        settings = service.element.path("WebService", "ExternalSettings")
        if settings and settings[0].get("Host"):
            pool.web_external = settings[0].get("Host")
        internal = service.element.path("WebService", "InternalSettings")
        if internal and internal[0].get("Host"):
            pool.web_internal = internal[0].get("Host")

    def _edge_fqdns(self, pool: Pool, service: Service) -> None:
        """The external FQDNs of the three Edge services: the ConfiguredFqdn of the External ports
        owned by urn:component:AccessEdge, DataEdge and MediaRelayEdge (every Edge of the real documents)."""
        found: dict[str, str] = {}
        for port in service.element.path("Ports", "Port"):
            if port.get("InterfaceSide") == "External" and port.get("ConfiguredFqdn"):
                found.setdefault(port.get("Owner").rpartition(":")[2], port.get("ConfiguredFqdn"))
        pool.access_edge = found.get("AccessEdge", "")
        pool.webconf_edge = found.get("DataEdge", "")
        pool.av_edge = found.get("MediaRelayEdge", "")
        for label, value in (("Access Edge", pool.access_edge), ("Web Conferencing Edge", pool.webconf_edge), ("A/V Edge", pool.av_edge)):
            if not value:
                self.error(service.line, f"the Edge pool {pool.cluster.fqdn} has no external FQDN for its {label} service", "set it in Topology Builder (Edit Properties of the Edge pool), publish, and export again")

    def _pool(self, cluster: Cluster) -> Pool | None:
        services = self.doc.services_on(cluster.key)
        by_role = {s.role: s for s in services}
        site = self.doc.sites.get(cluster.site, (f"Site {cluster.site}", cluster.line))[0]
        registrar = by_role.get("Registrar")
        if registrar is not None:
            is_director = any(_flag(e.get("IsDirector")) for e in registrar.element.all("RegistrarService"))
            if is_director:
                pool = Pool("director", cluster, site)
            else:
                # Standard Edition keeps its user store on a SQL instance of its own cluster (SQL
                # Express, instance 'rtc' in the real documents); an Enterprise pool on another server.
                local = "UserStore" in by_role
                pool = Pool("standard" if local else "enterprise", cluster, site)
                pool.collocated_mediation = "MediationServer" in by_role
            self._web(pool, by_role.get("WebServices"))
            return pool
        if "EdgeServer" in by_role:
            pool = Pool("edge", cluster, site, next_hop=self._next_hop(by_role["EdgeServer"]))
            self._edge_fqdns(pool, by_role["EdgeServer"])
            return pool
        if "MediationServer" in by_role:
            return Pool("mediation", cluster, site, next_hop=self._next_hop(by_role["MediationServer"]))
        return None

    def _account_for(self, cluster: Cluster) -> None:
        """List a cluster sfbgen does not set up, by what runs on it."""
        roles = [s.role for s in self.doc.services_on(cluster.key)]
        what = sorted({_NOT_DEPLOYED_ROLES.get(role, f"{role} role") for role in roles}) or ["no Skype for Business service"]
        self.not_deployed.append(NotDeployed(", ".join(what), cluster.fqdn, cluster.line))
        if cluster.requires_setup:
            self.warn("SFB405", cluster.line, f"{cluster.fqdn} needs setup ({', '.join(roles) or 'no known role'}), which sfbgen does not deploy", "set it up with the Deployment Wizard; the rest of the topology is imported")

    # -- the whole document -------------------------------------------------------------------------

    def pools(self) -> list[Pool]:
        pools = []
        for cluster in self.doc.clusters.values():
            pool = self._pool(cluster) if cluster.requires_setup else None
            if pool is None:
                self._account_for(cluster)
                continue
            if not cluster.machines:
                self.error(cluster.line, f"the pool {cluster.fqdn} has no machines", "add its servers in Topology Builder, publish, and export again")
            pools.append(pool)
        for name, line in self.doc.branch_sites:
            self.not_deployed.append(NotDeployed("branch site", name, line))
            self.warn("SFB405", line, f"the branch site '{name}' is not deployed by sfbgen", "set up its Survivable Branch Appliance or Server outside sfbgen")
        return pools

    def product(self, pools: list[Pool]) -> str:
        if self.options.product:
            return self.options.product
        versions = sorted({s.version for p in pools for s in self.doc.services_on(p.cluster.key) if s.version})
        known = [PRODUCT_OF_SERVICE_VERSION[v] for v in versions if v in PRODUCT_OF_SERVICE_VERSION]
        product = known[-1] if known else "2015"
        self.warn(
            "SFB404", self.doc.line,
            f"the product is taken as Skype for Business Server {product}, from the services' ServiceVersion {', '.join(versions) or '(none)'}",
            "confirm it, or say --product 2015, 2019 or subscription",
        )
        return product

    def simple_urls(self) -> list[tuple[str, str, str]]:
        """(kind, url, domain) for every simple URL; Topology Builder's defaults when the document has none."""
        if self.doc.simple_urls:
            out = []
            for url in self.doc.simple_urls:
                kind = {"meet": "meet", "dialin": "dialin", "admin": "admin"}.get(url.component.lower())
                if kind is None:
                    self.warn("SFB405", url.line, f"the simple URL component '{url.component}' is not one sfbgen knows", "check Get-CsSimpleUrlConfiguration")
                    continue
                out.append((kind, url.url, url.domain if kind == "meet" and url.domain not in ("", "*") else ""))
            return out
        domains = [d for d, _ in self.doc.sip_domains]
        default = self.doc.default_domain or (domains[0] if domains else "")
        self.warn(
            "SFB404", self.doc.line,
            f"a {self.doc.format} holds no simple URLs; assumed Topology Builder's defaults: "
            + ", ".join([f"https://meet.{d}" for d in domains] + [f"https://dialin.{default}"]),
            "confirm them with Get-CsSimpleUrlConfiguration and correct the simple_url lines",
        )
        return [("meet", f"https://meet.{d}", d) for d in domains] + [("dialin", f"https://dialin.{default}", "")]


def _flag(value: str) -> bool:
    return value.strip().lower() == "true"


# ---------------------------------------------------------------------------------------------------
# Writing the .sfb text


class _Writer:
    """Writes the language, refusing any value the language cannot hold as written."""

    def __init__(self, importer: _Importer):
        self.importer = importer
        self.lines: list[str] = []

    def name(self, value: str, line: int, what: str) -> str:
        if not value or _NOT_IN_NAME.search(value):
            self.importer.error(line, f"the {what} '{value}' cannot be written as a name (it is empty or holds a space, brace, quote or '#')", "correct it in Topology Builder, publish, and export again")
            return "invalid"
        return value

    def string(self, value: str, line: int, what: str) -> str:
        if '"' in value or "\n" in value or "\r" in value:
            self.importer.error(line, f"the {what} '{value[:40]}' holds a double quote or a line break, which a topology string cannot", "rename it in Topology Builder, or edit the imported topology")
            return '"invalid"'
        return f'"{value}"'

    def add(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)


def _comment(text: str) -> str:
    from .diagnostics import visible

    return visible(text).replace("\n", " ")


def _write(importer: _Importer, pools: list[Pool], source: str) -> str:
    doc, options = importer.doc, importer.options
    w = _Writer(importer)
    product = importer.product(pools)
    w.add(0, f"# Imported by sfbgen import from {_comment(source)} ({doc.format}).")
    w.add(0, "# Each pool names the line of the document it came from. Review, then: sfbgen check, sfbgen compile.")
    title = importer.doc.default_domain or "Imported topology"
    w.add(0, f"topology {w.string(title, doc.line, 'topology name')} {{")
    w.add(1, f"product {product}")
    if options.media:
        w.add(1, f"media {w.string(options.media, doc.line, 'media path')}")
    else:
        w.add(1, '# media "<the installation media>": the document does not say; add it (or import with --media).')
        importer.warn("SFB404", doc.line, "the document does not say where the installation media is", "import with --media PATH, or add a media line")
    w.add(0, "")
    default = doc.default_domain
    for domain, line in doc.sip_domains:
        w.add(1, f"sip_domain {w.name(domain, line, 'SIP domain')}{' primary' if domain.lower() == default.lower() else ''}")
    for kind, url, domain in importer.simple_urls():
        w.add(1, f"simple_url {kind} {w.string(url, doc.line, 'simple URL')}" + (f" for {w.name(domain, doc.line, 'SIP domain')}" if domain else ""))
    if options.ca or options.offline_ca:
        w.add(0, "")
        w.add(1, "certificates {")
        w.add(2, f"authority online {w.string(options.ca, doc.line, 'certificate authority')}" if options.ca else "authority offline")
        w.add(1, "}")
    else:
        importer.warn("SFB404", doc.line, "no certificate authority was named, so every certificate is an offline request", "import with --ca \"<CA FQDN>\\<CA name>\" for an online enterprise CA")
    by_site: dict[str, list[Pool]] = {}
    for pool in pools:
        by_site.setdefault(pool.site, []).append(pool)
    for site, members in by_site.items():
        w.add(0, "")
        w.add(1, f"site {w.string(site, members[0].cluster.line, 'site name')} {{")
        for pool in members:
            _write_pool(w, pool)
        w.add(1, "}")
    if importer.not_deployed:
        w.add(0, "")
        w.add(1, "# Not deployed by sfbgen (from the document; set these up outside sfbgen):")
        for item in importer.not_deployed:
            w.add(1, f"#   {_comment(item.fqdn)}: {_comment(item.what)} (line {item.line})")
    w.add(0, "}")
    return "\n".join(w.lines) + "\n"


_KEYWORD = {"enterprise": "enterprise_pool", "standard": "standard_edition", "director": "director_pool", "mediation": "mediation_pool", "edge": "edge_pool"}


def _write_pool(w: _Writer, pool: Pool) -> None:
    c = pool.cluster
    w.add(2, f"# line {c.line}")
    w.add(2, f"{_KEYWORD[pool.kind]} {w.name(c.fqdn, c.line, 'pool FQDN')} {{")
    if pool.next_hop:
        w.add(3, f"next_hop {w.name(pool.next_hop, c.line, 'next hop')}")
    elif pool.kind in ("edge", "mediation"):
        w.importer.error(c.line, f"the {pool.kind} pool {c.fqdn} depends on no Registrar, so it has no next hop", "set its next hop in Topology Builder, publish, and export again")
    if pool.kind == "edge":
        if (w.importer.options.media or "").startswith("\\\\"):
            w.add(3, '# media "<a local folder>": an Edge Server in the perimeter network cannot read the share above.')
        w.add(3, f"access_edge {w.name(pool.access_edge, c.line, 'Access Edge FQDN')}")
        w.add(3, f"webconf_edge {w.name(pool.webconf_edge, c.line, 'Web Conferencing Edge FQDN')}")
        w.add(3, f"av_edge {w.name(pool.av_edge, c.line, 'A/V Edge FQDN')}")
    web = []
    if pool.web_internal and pool.web_internal.lower() != c.fqdn.lower():
        web.append(f"internal {w.name(pool.web_internal, c.line, 'internal web services FQDN')}")
    if pool.web_external:
        web.append(f"external {w.name(pool.web_external, c.line, 'external web services FQDN')}")
    if web:
        w.add(3, "web_services " + " ".join(web))
    if pool.collocated_mediation:
        w.add(3, "mediation collocated")
    if pool.kind != "standard":
        member = "front_end" if pool.kind == "enterprise" else "server"
        for machine in c.machines:
            w.add(3, f"{member} {w.name(machine.fqdn, machine.line, 'server FQDN')}")
    elif len(c.machines) != 1 or c.machines[0].fqdn.lower() != c.fqdn.lower():
        w.importer.error(c.line, f"the Standard Edition server {c.fqdn} lists the machines {', '.join(m.fqdn for m in c.machines) or '(none)'}, not itself", "a Standard Edition server is one computer with the pool's FQDN")
    w.add(2, "}")


def import_bytes(raw: bytes, name: str, options: ImportOptions | None = None) -> ImportResult:
    """Import a topology document held in memory; every problem comes back as a diagnostic."""
    from .topology_xml import XmlProblem

    options = options or ImportOptions()
    try:
        document = read_document(raw, name)
    except XmlProblem as problem:
        return ImportResult(None, [problem.diagnostic])
    importer = _Importer(document, name, options)
    pools = importer.pools()
    if not pools:
        importer.error(document.line, f"the {document.format} has no Front End, Director, Mediation or Edge pool that needs setup", "export the topology that holds the servers to deploy")
    text = _write(importer, pools, name.replace("\\", "/").rpartition("/")[2])
    failed = any(d.is_error for d in importer.diagnostics)
    if not failed:
        text = _formatted(text)
    return ImportResult(None if failed else text, importer.diagnostics, document.format, pools, importer.not_deployed)


def _formatted(text: str) -> str:
    """The written topology in sfbgen fmt's canonical form: what `fmt` would leave unchanged. Text
    that does not parse is a bug of this module, not of the document, and is reported as one."""
    from .formatter import format_text

    formatted, errors = format_text(text, "<imported topology>")
    if formatted is None:
        raise AssertionError(f"sfbgen import wrote text that does not parse: {errors[0].message}")
    return formatted


def import_file(path, options: ImportOptions | None = None) -> ImportResult:
    """Read and import a topology document (.tbxml or Get-CsTopology -AsXml output)."""
    from pathlib import Path

    from .topology_xml import MAX_XML_BYTES

    name = str(path)
    p = Path(path)
    try:
        if p.is_dir():
            raise IsADirectoryError(f"'{name}' is a directory")
        if p.stat().st_size > MAX_XML_BYTES:
            return ImportResult(None, [diagnostic("SFB402", Span.point(1, 1), f"the document is larger than {MAX_XML_BYTES // (1024 * 1024)} MB", "check that this is a topology document", name)])
        raw = p.read_bytes()
    except OSError as exc:
        return ImportResult(None, [diagnostic("SFB001", Span.point(1, 1), f"cannot read '{name}': {exc.strerror or exc}", "check the path", name)])
    return import_bytes(raw, name, options)
