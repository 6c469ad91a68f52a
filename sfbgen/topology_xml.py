"""Reading topology XML: a Topology Builder document or a published topology, into one neutral form.

Two formats hold a Skype for Business Server topology (see ../shared/topologies/README.md):
- Topology Builder's document (.tbxml): root `TopologyBuilder` → `NewTopology` → `PartialTopology`;
  clusters sit inside their site, and objects refer to each other by GUID (`UniqueId`, `InstalledOn`,
  `ServiceUniqueId`);
- the published topology (`Get-CsTopology -AsXml`): root `Topology`; sites, clusters, SQL instances
  and services are flat lists, referring to each other by `ClusterId(SiteId, Number)` and
  `ServiceId(SiteId, RoleName, Instance)`.
No schema is published for either: every element and attribute read here is one seen in the real
documents of ../shared/topologies/, and each reading says which.

Both become a `Document`: sites, clusters (with machines), SQL instances and services, each with
the line it came from. What the document *means* for a deployment is `sfbgen.importer`'s business.

The XML is parsed with defusedxml (no DTDs, no entities, no external references), from at most
`MAX_XML_BYTES`, and every way it can be malformed becomes a diagnostic with its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .diagnostics import Diagnostic, Span, diagnostic

# A published topology of 5,000 servers is about 40 MB (bench/generate_xml.py); refuse what is far larger.
MAX_XML_BYTES = 128 * 1024 * 1024
_LINE = "\0line"  # where the tree builder keeps each element's line, among its attributes


class XmlProblem(Exception):
    """The document cannot be read; carries the diagnostic that says why."""

    def __init__(self, found: Diagnostic):
        super().__init__(found.message)
        self.diagnostic = found


@dataclass
class Element:
    """An XML element with its namespace dropped (both formats put every element in a namespace of
    their own, and no two elements of a topology share a local name with different meanings)."""

    tag: str
    attrs: dict[str, str]
    line: int
    children: list["Element"] = field(default_factory=list)
    text: str = ""

    def get(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default)

    def all(self, tag: str) -> list["Element"]:
        return [child for child in self.children if child.tag == tag]

    def first(self, tag: str) -> "Element | None":
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def path(self, *tags: str) -> list["Element"]:
        """The elements reached by following `tags` from here, child by child."""
        level = [self]
        for tag in tags:
            level = [child for element in level for child in element.children if child.tag == tag]
        return level


def _local(name: str) -> str:
    return name.rpartition("}")[2]


class _Builder:
    """A tree-builder target for the XML parser that records local names and line numbers."""

    def __init__(self):
        self.parser = None  # set once the parser exists: it knows the current line
        self.stack: list[Element] = []
        self.root: Element | None = None

    def start(self, tag, attrs):
        element = Element(_local(tag), {_local(k): v for k, v in attrs.items()}, self.parser.parser.CurrentLineNumber)
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def end(self, tag):
        self.stack.pop()

    def data(self, text):
        if self.stack:
            self.stack[-1].text += text

    def close(self):
        return self.root


_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def _decode(raw: bytes, name: str) -> str:
    """The document's text. UTF-8 (with or without a BOM) or UTF-16 with a BOM: what
    `Get-CsTopology -AsXml > file` writes in Windows PowerShell 5.1 is UTF-16LE with a BOM."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        raise XmlProblem(diagnostic("SFB402", Span.point(line, 1), f"the document is not valid {encoding.upper().replace('-SIG', '')} (byte {exc.start})", "save it as UTF-8, or export it again with Get-CsTopology -AsXml", name))
    # The declaration may name another encoding than the one the bytes are in (a UTF-8 declaration in
    # a file PowerShell re-encoded as UTF-16); the text is decoded by now, so drop it, keeping lines.
    return _DECLARATION.sub(lambda match: "\n" * match.group().count("\n"), text, count=1)


def parse_xml(raw: bytes, name: str) -> Element:
    """Parse `raw` safely into an `Element` tree, or raise XmlProblem."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    if len(raw) > MAX_XML_BYTES:
        raise XmlProblem(diagnostic("SFB402", Span.point(1, 1), f"the document is {len(raw) // (1024 * 1024)} MB; sfbgen imports documents up to {MAX_XML_BYTES // (1024 * 1024)} MB", "check that this is a topology document", name))
    if not raw.strip():
        raise XmlProblem(diagnostic("SFB401", Span.point(1, 1), "the document is empty", "export the topology with Get-CsTopology -AsXml, or save it from Topology Builder", name))
    text = _decode(raw, name)
    builder = _Builder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True)
    builder.parser = parser
    try:
        parser.feed(text)
        root = parser.close()
    except DefusedXmlException as exc:
        line = parser.parser.CurrentLineNumber
        raise XmlProblem(diagnostic("SFB402", Span.point(line, parser.parser.CurrentColumnNumber + 1), f"the document declares a DTD, an entity or an external reference ({type(exc).__name__})", "topology documents have none: export it again from the topology", name))
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]
        raise XmlProblem(diagnostic("SFB402", Span.point(line, column + 1), f"the XML breaks off here: {reason}", "export it again with Get-CsTopology -AsXml, or save it again from Topology Builder", name))
    return root


# ---------------------------------------------------------------------------------------------------
# The neutral form


@dataclass
class Machine:
    fqdn: str
    line: int


@dataclass
class Cluster:
    key: object  # the GUID (.tbxml) or (SiteId, Number) (published)
    fqdn: str
    site: object  # the site's key
    machines: list[Machine]
    requires_setup: bool
    line: int


@dataclass
class Service:
    key: object  # the GUID (.tbxml) or (SiteId, RoleName, Instance) (published)
    role: str
    installed_on: object  # a cluster key, or a SQL instance key
    depends_on: list[object]
    element: Element
    version: str  # ServiceVersion
    line: int


@dataclass
class SimpleUrl:
    component: str  # Meet, Dialin, Admin
    domain: str  # the SIP domain of a Meet URL; '*' for the others
    url: str
    line: int


@dataclass
class Document:
    format: str  # 'Topology Builder document' | 'published topology'
    sip_domains: list[tuple[str, int]]
    default_domain: str
    simple_urls: list[SimpleUrl] | None  # None: the format does not hold them (published)
    sites: dict[object, tuple[str, int]]  # key -> (name, line)
    branch_sites: list[tuple[str, int]]
    clusters: dict[object, Cluster]
    sql_instances: dict[object, object]  # SQL instance key -> its cluster's key
    services: list[Service]
    line: int = 1

    def services_on(self, cluster_key: object) -> list[Service]:
        """The services installed on a cluster, or on a SQL instance of it."""
        return self._by_cluster.get(cluster_key, [])

    def service(self, key: object) -> Service | None:
        return self._by_key.get(key)

    def __post_init__(self):
        # Indexes, so that a document of thousands of servers imports in linear time.
        self._by_key = {s.key: s for s in self.services}
        self._by_cluster: dict[object, list[Service]] = {}
        for service in self.services:
            cluster = service.installed_on if service.installed_on in self.clusters else self.sql_instances.get(service.installed_on)
            self._by_cluster.setdefault(cluster, []).append(service)


def _bool(value: str) -> bool:
    return value.strip().lower() == "true"


def _domains(topology: Element) -> tuple[list[tuple[str, int]], str]:
    block = topology.first("InternalDomains")
    if block is None:
        return [], ""
    return [(d.get("Name"), d.line) for d in block.all("InternalDomain")], block.get("DefaultDomain")


def _site_names(sites: list[Element]) -> dict[object, tuple[str, int]]:
    out = {}
    for site in sites:
        name = site.first("Name")
        out[site.get("SiteId")] = ((name.text.strip() if name is not None else "") or f"Site {site.get('SiteId')}", site.line)
    return out


def _machines(cluster: Element, container: Element) -> list[Machine]:
    machines = []
    for machine in container.all("Machine"):
        # A single machine cluster may leave its machine's FQDN out: it is the cluster's (the Standard
        # Edition server of alvinchen1_ExchangeSkypeMDTAutomate_OTC.tbxml; reconstructed).
        machines.append(Machine(machine.get("Fqdn") or cluster.get("Fqdn"), machine.line))
    return machines


def _from_topology_builder(root: Element) -> Document:
    partial = root.path("NewTopology", "PartialTopology")
    if not partial:
        raise ValueError("a TopologyBuilder document without NewTopology/PartialTopology")
    topology = partial[0]
    domains, default = _domains(topology)
    urls = [
        SimpleUrl(u.get("Component"), u.get("Domain"), u.get("ActiveUrl") or next((e.get("Url") for e in u.all("SimpleUrlEntry")), ""), u.line)
        for u in topology.path("SimpleUrlConfiguration", "SimpleUrl")
    ]
    central = topology.path("CentralSites", "CentralSite")
    clusters: dict[object, Cluster] = {}
    sql: dict[object, object] = {}
    for site in central:
        for cluster in site.path("Clusters", "Cluster"):
            key = cluster.get("UniqueId")
            machines_block = cluster.first("Machines")
            machines = _machines(cluster, machines_block) if machines_block is not None else []
            clusters[key] = Cluster(key, cluster.get("Fqdn"), site.get("SiteId"), [m for m in machines if m.fqdn], _bool(cluster.get("RequiresSetup")), cluster.line)
            for instance in cluster.path("SqlInstances", "SqlInstance"):
                sql[instance.get("UniqueId")] = key
    services = []
    for service in topology.path("Services", "Service"):
        depends = [d.get("ServiceUniqueId") for d in service.path("DependsOn", "Dependency")]
        services.append(Service(service.get("UniqueId"), service.get("RoleName"), service.get("InstalledOn"), depends, service, service.get("ServiceVersion"), service.line))
    branches = [(b.first("Name").text.strip() if b.first("Name") is not None else "?", b.line) for b in topology.path("BranchSites", "BranchSite")]
    return Document("Topology Builder document", domains, default, urls, _site_names(central), branches, clusters, sql, services, root.line)


def _cluster_id(element: Element | None) -> object:
    return (element.get("SiteId"), element.get("Number")) if element is not None else None


def _service_id(element: Element | None) -> object:
    return (element.get("SiteId"), element.get("RoleName"), element.get("Instance")) if element is not None else None


def _sql_id(element: Element | None) -> object:
    return ("sql", element.get("Name"), _cluster_id(element.first("ClusterId"))) if element is not None else None


def _from_published(root: Element) -> Document:
    domains, default = _domains(root)
    central = root.path("Sites", "CentralSite")
    clusters: dict[object, Cluster] = {}
    for cluster in root.path("Clusters", "Cluster"):
        key = _cluster_id(cluster.first("ClusterId"))
        clusters[key] = Cluster(key, cluster.get("Fqdn"), key[0] if key else None, [m for m in _machines(cluster, cluster) if m.fqdn], _bool(cluster.get("RequiresSetup")), cluster.line)
    sql = {}
    for instance in root.path("SqlInstances", "SqlInstance"):
        ident = instance.first("SqlInstanceId")
        sql[_sql_id(ident)] = _cluster_id(ident.first("ClusterId")) if ident is not None else None
    services = []
    for service in root.path("Services", "Service"):
        installed = service.first("InstalledOn")
        target = None
        if installed is not None:
            target = _cluster_id(installed.first("ClusterId")) if installed.first("ClusterId") is not None else _sql_id(installed.first("SqlInstanceId"))
        ident = service.first("ServiceId")
        depends = [_service_id(d.first("ServiceId")) for d in service.path("DependsOn", "Dependency")]
        services.append(Service(_service_id(ident), ident.get("RoleName") if ident is not None else "", target, depends, service, service.get("ServiceVersion"), service.line))
    branches = [(b.first("Name").text.strip() if b.first("Name") is not None else "?", b.line) for b in root.path("Sites", "BranchSite")]
    return Document("published topology", domains, default, None, _site_names(central), branches, clusters, sql, services, root.line)


def read_document(raw: bytes, name: str) -> Document:
    """Parse and normalise a topology document, or raise XmlProblem."""
    root = parse_xml(raw, name)
    try:
        if root.tag == "TopologyBuilder":
            return _from_topology_builder(root)
        if root.tag == "Topology":
            return _from_published(root)
    except (ValueError, AttributeError, TypeError, IndexError) as exc:
        raise XmlProblem(diagnostic("SFB401", Span.point(root.line, 1), f"the {root.tag} document is incomplete ({exc})", "export it again with Get-CsTopology -AsXml", name))
    raise XmlProblem(diagnostic(
        "SFB401", Span.point(root.line, 1),
        f"the root element is <{root.tag}>, not a topology",
        "give a Topology Builder document (root TopologyBuilder, a .tbxml file) or a published topology (root Topology, from Get-CsTopology -AsXml)",
        name,
    ))
