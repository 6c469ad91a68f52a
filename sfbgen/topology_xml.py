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

# A published topology of 5,000 servers is about 8 MB in 70,000 elements (bench/generate_xml.py), no
# element deeper than 10, no attribute value longer than 78 characters (the real documents of
# ../shared/topologies/). The limits below are far above that and keep what an import holds in memory
# in proportion to the document (bench/import_bounds.py measures it): a document that passes one is
# refused, with SFB402 (the size) or SFB406 (the others), as soon as the parser reaches it.
MAX_XML_BYTES = 64 * 1024 * 1024
MAX_ELEMENTS = 400_000  # about 28,000 servers
MAX_DEPTH = 64
MAX_ATTRIBUTES = 64  # on one element
MAX_VALUE_CHARS = 4096  # an attribute value, or the text of one element
MAX_NAME_CHARS = 256  # an element's or an attribute's name
# Past the first FREE_ELEMENTS, at least this many bytes of document per element read so far (real
# documents: 110 on average, none under 50 over a thousand elements): an element costs a few hundred
# bytes in memory, so this keeps memory in proportion to what was read.
MIN_BYTES_PER_ELEMENT = 24
FREE_ELEMENTS = 1000
FEED_CHARS = 1024 * 1024  # the text is decoded and parsed a piece at a time
# Expat reads a whole tag (all its attributes) or comment before it calls back: no part of the document
# that long goes by without an element, or a piece of text, being read (a real tag is under 2 KB).
MAX_TOKEN_BYTES = 1024 * 1024


class XmlProblem(Exception):
    """The document cannot be read; carries the diagnostic that says why."""

    def __init__(self, found: Diagnostic):
        super().__init__(found.message)
        self.diagnostic = found


@dataclass(slots=True)
class Element:
    """An XML element with its namespace dropped (both formats put every element in a namespace of
    their own, and no two elements of a topology share a local name with different meanings)."""

    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def get(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default)

    def all(self, tag: str) -> list[Element]:
        return [child for child in self.children if child.tag == tag]

    def first(self, tag: str) -> Element | None:
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def path(self, *tags: str) -> list[Element]:
        """The elements reached by following `tags` from here, child by child."""
        level = [self]
        for tag in tags:
            level = [child for element in level for child in element.children if child.tag == tag]
        return level


def _local(name: str) -> str:
    return name.rpartition("}")[2]


class _Limit(Exception):
    """A document passed one of the import limits (raised from inside the parser's callbacks)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


class _Builder:
    """Expat callbacks that build the `Element` tree, with local names and line numbers, counting as
    they go: elements, depth, attributes and the size of every value are checked against the limits
    before anything is kept."""

    def __init__(self, expat):
        self.expat = expat  # the pyexpat parser: it knows the current line and how far it has read
        self.stack: list[Element] = []
        self.root: Element | None = None
        self.count = 0
        self.seen = 0  # where the last element or text began (a byte offset in the UTF-8 fed to expat)
        self._names: dict[str, str] = {}  # each distinct name kept once

    def _name(self, name: str) -> str:
        local = self._names.get(name)
        if local is None:
            if len(name) > MAX_NAME_CHARS:
                raise _Limit(f"a name of {len(name):,} characters; sfbgen imports names of up to {MAX_NAME_CHARS}")
            local = self._names[name] = _local(name)
        return local

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.seen = self.expat.CurrentByteIndex
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise _Limit(f"more than {MAX_ELEMENTS:,} elements; sfbgen imports documents of up to {MAX_ELEMENTS:,}")
        if self.count > FREE_ELEMENTS and self.count * MIN_BYTES_PER_ELEMENT > self.expat.CurrentByteIndex:
            raise _Limit(f"{self.count:,} elements in its first {self.expat.CurrentByteIndex:,} bytes; a topology document "
                         f"takes {MIN_BYTES_PER_ELEMENT} bytes or more an element")
        if len(self.stack) >= MAX_DEPTH:
            raise _Limit(f"elements nested more than {MAX_DEPTH} deep (topology documents nest about 10)")
        if len(attrs) > MAX_ATTRIBUTES:
            raise _Limit(f"an element with {len(attrs):,} attributes; sfbgen imports up to {MAX_ATTRIBUTES} on one element")
        kept = {}
        for key, value in attrs.items():
            if len(value) > MAX_VALUE_CHARS:
                raise _Limit(f"an attribute value of {len(value):,} characters; sfbgen imports values of up to {MAX_VALUE_CHARS:,}")
            kept[self._name(key)] = value
        element = Element(self._name(tag), kept, self.expat.CurrentLineNumber)
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def end(self, tag: str) -> None:
        self.seen = self.expat.CurrentByteIndex
        self.stack.pop()

    def data(self, text: str) -> None:
        self.seen = self.expat.CurrentByteIndex
        if self.stack and not text.isspace():  # the layout between elements is not kept
            element = self.stack[-1]
            if len(element.text) + len(text) > MAX_VALUE_CHARS:
                raise _Limit(f"an element with more than {MAX_VALUE_CHARS:,} characters of text")
            element.text += text


_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def _encoding(raw: bytes) -> str:
    """UTF-8 (with or without a BOM) or UTF-16 with a BOM: what `Get-CsTopology -AsXml > file` writes
    in Windows PowerShell 5.1 is UTF-16LE with a BOM."""
    return "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"


def _pieces(raw: bytes, name: str):
    """The document's text, decoded a piece at a time (so that it is never held twice), the XML
    declaration dropped: it may name another encoding than the one the bytes are in (a UTF-8
    declaration in a file PowerShell re-encoded as UTF-16), and the text is decoded by now. Lines are kept."""
    import codecs

    encoding = _encoding(raw)
    decoder = codecs.getincrementaldecoder(encoding)()
    step = max(FEED_CHARS, 64 * 1024)
    first = True
    for offset in range(0, len(raw), step):
        try:
            text = decoder.decode(raw[offset:offset + step], final=offset + step >= len(raw))
        except UnicodeDecodeError as exc:
            at = offset + exc.start
            line = raw[:at].count(b"\n") + 1
            raise XmlProblem(diagnostic("SFB402", Span.point(line, 1), f"the document is not valid {encoding.upper().replace('-SIG', '')} (byte {at})", "save it as UTF-8, or export it again with Get-CsTopology -AsXml", name)) from exc
        if first:
            text = _DECLARATION.sub(lambda match: "\n" * match.group().count("\n"), text, count=1)
            first = False
        yield text


def parse_xml(raw: bytes, name: str) -> Element:
    """Parse `raw` safely into an `Element` tree, or raise XmlProblem.

    Safely: defusedxml's parser (no DTD, no entity, no external reference), fed the text a piece at a
    time, with every element counted against the limits above as it is read, so that a hostile
    document is refused when it passes one — never after it has been held whole in memory."""
    from pyexpat import ExpatError
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    if len(raw) > MAX_XML_BYTES:
        raise XmlProblem(diagnostic("SFB402", Span.point(1, 1), f"the document is {len(raw) // (1024 * 1024)} MB; sfbgen imports documents up to {MAX_XML_BYTES // (1024 * 1024)} MB", "check that this is a topology document", name))
    if not raw.strip():
        raise XmlProblem(diagnostic("SFB401", Span.point(1, 1), "the document is empty", "export the topology with Get-CsTopology -AsXml, or save it from Topology Builder", name))
    parser = DefusedXMLParser(target=None, forbid_dtd=True)
    expat = parser.parser
    builder = _Builder(expat)
    # defusedxml's handlers refuse DTDs, entities and external references; the element handlers are
    # ours, set on the expat parser itself (the tree builder of ElementTree would keep no line numbers).
    expat.StartElementHandler = builder.start
    expat.EndElementHandler = builder.end
    expat.CharacterDataHandler = builder.data
    expat.buffer_text = True
    expat.ordered_attributes = False

    def refuse(problem: str, fix: str, code: str = "SFB406") -> XmlProblem:
        return XmlProblem(diagnostic(code, Span.point(expat.CurrentLineNumber, expat.CurrentColumnNumber + 1), problem, fix, name))

    try:
        fed = 0
        for text in _pieces(raw, name):
            data = text.encode("utf-8")  # expat reads UTF-8 (the declaration that may say otherwise is gone)
            expat.Parse(data, False)
            fed += len(data)
            if fed - builder.seen > MAX_TOKEN_BYTES:
                raise _Limit(f"a tag, comment or text of more than {MAX_TOKEN_BYTES // (1024 * 1024)} MB "
                             f"(from byte {builder.seen:,} of its UTF-8 text)")
        expat.Parse(b"", True)
    except _Limit as limit:
        raise refuse(f"the document holds {limit.problem}", "check that this is a topology document exported with Get-CsTopology -AsXml or saved by Topology Builder") from None
    except DefusedXmlException as exc:
        raise refuse(f"the document declares a DTD, an entity or an external reference ({type(exc).__name__})", "topology documents have none: export it again from the topology", "SFB402") from None
    except (ParseError, ExpatError) as exc:
        line, column = exc.position if isinstance(exc, ParseError) else (exc.lineno, exc.offset)
        reason = str(exc).split(":")[0]
        raise XmlProblem(diagnostic("SFB402", Span.point(line, column + 1), f"the XML breaks off here: {reason}", "export it again with Get-CsTopology -AsXml, or save it again from Topology Builder", name)) from None
    if builder.root is None:
        raise XmlProblem(diagnostic("SFB402", Span.point(1, 1), "the XML breaks off here: no element found", "export it again with Get-CsTopology -AsXml, or save it again from Topology Builder", name))
    return builder.root


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
    out: dict[object, tuple[str, int]] = {}
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
        depends: list[object] = [d.get("ServiceUniqueId") for d in service.path("DependsOn", "Dependency")]
        services.append(Service(service.get("UniqueId"), service.get("RoleName"), service.get("InstalledOn"), depends, service, service.get("ServiceVersion"), service.line))
    branches = [_branch_site(b) for b in topology.path("BranchSites", "BranchSite")]
    return Document("Topology Builder document", domains, default, urls, _site_names(central), branches, clusters, sql, services, root.line)


def _branch_site(branch: Element) -> tuple[str, int]:
    name = branch.first("Name")
    return (name.text.strip() if name is not None else "?", branch.line)


def _cluster_id(element: Element | None) -> tuple[str, str] | None:
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
    sql: dict[object, object] = {}
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
    branches = [_branch_site(b) for b in root.path("Sites", "BranchSite")]
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
        raise XmlProblem(diagnostic("SFB401", Span.point(root.line, 1), f"the {root.tag} document is incomplete ({exc})", "export it again with Get-CsTopology -AsXml", name)) from exc
    raise XmlProblem(diagnostic(
        "SFB401", Span.point(root.line, 1),
        f"the root element is <{root.tag}>, not a topology",
        "give a Topology Builder document (root TopologyBuilder, a .tbxml file) or a published topology (root Topology, from Get-CsTopology -AsXml)",
        name,
    ))
