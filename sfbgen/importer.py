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
from collections.abc import Callable
from dataclasses import dataclass, field

from .checks import _ABSOLUTE_PATH, fqdn_problem
from .diagnostics import Diagnostic, DiagnosticBuilder, Reporter, Span
from .platform import product_title
from .pool_kinds import BY_KIND, NOT_DEPLOYED_ROLES, kind_of_cluster
from .topology_xml import Cluster, Document, Service, read_document

# ServiceVersion of the Skype for Business services, read from the real documents:
# 7 in the Skype for Business Server 2015 documents, 8 in alvinchen1's Skype for Business Server 2019
# one (../shared/topologies/README.md). Reconstructed: Microsoft does not document the attribute.
# Subscription Edition is an in-place successor of 2019; whether its documents say 8 is not known,
# so `--product subscription` says it.
PRODUCT_OF_SERVICE_VERSION = {"7": "2015", "8": "2019"}
# The products before Skype for Business Server, by the ServiceVersion of their documents: 6 in the
# Lync Server 2013 lab documents of issue 21 (public repositories), 5 for Lync Server 2010
# (reconstructed: one less, as 7 and 8 follow 6; no document at hand says 5). sfbgen installs new
# servers; it does not upgrade Lync Server in place, which is Topology Builder's and Setup's work
# (Skype/SfbServer/deploy/upgrade-to-skype-for-business-server.md).
LYNC_OF_SERVICE_VERSION = {"5": "Lync Server 2010", "6": "Lync Server 2013"}

# The simple URL components of a Topology Builder document: Meet, Dialin, and Cscp for the Admin URL.
# "Cscp" is the Control Panel's web component (ComponentName="Cscp" among the web services' components
# of ../shared/topologies/AutomatedLab_SfBAutomatedLab_Contoso.tbxml, line 200); the Admin URL "points
# to the Skype for Business Server Control Panel" (office-docs-powershell, New-CsSimpleUrl.md,
# -Component), and real Topology Builder documents name their Admin URL Component="Cscp" (issue 21).
SIMPLE_URL_KINDS = {"meet": "meet", "dialin": "dialin", "admin": "admin", "cscp": "admin"}

# What a name that is not an FQDN most often is in a published template: a placeholder that a script
# replaces before the document is used ([DOMAINID], $SkypeFQDN, %FQDN%, <server>).
_PLACEHOLDER = re.compile(r"[\[\]$%<>]")

# Roles whose clusters are servers sfbgen sets up are the pool kinds' (sfbgen/pool_kinds.py, XmlMatch);
# every other role is accounted for as not deployed, by what it is (NOT_DEPLOYED_ROLES there).
_NOT_DEPLOYED_ROLES = NOT_DEPLOYED_ROLES

# Characters a name may not hold to be written as a name of the language (grammar/sfb.lark, WORD).
_NOT_IN_NAME = re.compile(r'[\s{}"#]')


@dataclass
class ImportOptions:
    media: str | None = None
    ca: str | None = None  # "<CA FQDN>\<CA name>"
    offline_ca: bool = False
    product: str | None = None  # 2015, 2019, subscription; inferred from the document when None
    # Where an Edge pool's external certificate comes from: "public" (an offline request to a public
    # CA, the default: edge-environmental-requirements.md, ../shared/reference/sfb-deployment.md,
    # 'Certificates per role') or "topology" (the topology's authority, like every other certificate).
    edge_external: str = "public"


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
    def __init__(self, document: Document, name: str, options: ImportOptions, published: bool | None = None):
        self.doc = document
        self.name = name
        self.options = options
        self.published = published  # a Topology Builder document's IsPublished; None when it does not say
        self.report = Reporter(name)  # the one reporter: warn and error name its builders
        self.diagnostics: list[Diagnostic] = self.report.diagnostics
        self.not_deployed: list[NotDeployed] = []
        self.cms: Pool | None = None

    def check_options(self) -> None:
        """--media and --ca, checked as `sfbgen check` checks the media and authority lines
        (SFB252, SFB111, SFB303), before anything is written."""
        media, ca = self.options.media, self.options.ca
        if media is not None:
            if not _ABSOLUTE_PATH.match(media):
                hint = ""
                if media.startswith("\\") and not media.startswith("\\\\"):
                    hint = ("; a shell may have eaten a backslash: in bash, \"\\\\files\" is \\files, so quote a UNC path "
                            "with single quotes ('\\\\files\\Media\\SfB')")
                self.error(self.doc.line, f"--media '{media}' is not an absolute path{hint}",
                           "give a drive path such as D:\\ or a UNC path such as \\\\files\\Media\\SfB", build=self.report.import_option_value_invalid)
            elif "\\\\" in media[2:]:
                self.error(self.doc.line, f"--media '{media}' holds a doubled backslash; topology strings are literal, so it would reach the scripts as two",
                           "write each backslash once, as Windows does (only a UNC path starts with two)", build=self.report.import_option_value_invalid)
        if ca is not None:
            ca_fqdn, sep, ca_name = ca.partition("\\")
            if not sep or not ca_name.strip() or fqdn_problem(ca_fqdn):
                self.error(self.doc.line, f"--ca '{ca}' is not an online authority",
                           'write it as "<CA server FQDN>\\<CA name>", e.g. "ca01.contoso.com\\Contoso Issuing CA"; '
                           "in bash, single quotes keep the backslash", build=self.report.import_option_value_invalid)
        if self.options.edge_external not in ("public", "topology"):
            self.error(self.doc.line, f"--edge-external '{self.options.edge_external}' is not a choice", "say public or topology", build=self.report.import_option_value_invalid)

    def warn(self, build: Callable[[Span, str, str], Diagnostic], line: int, problem: str, fix: str) -> None:
        """`build` is one of `self.report`'s builders (self.report.object_not_deployed), at the line's start."""
        build(Span.point(line, 1), problem, fix)

    def error(self, line: int, problem: str, fix: str, build: Callable[[Span, str, str], Diagnostic] | None = None) -> None:
        """As `warn`; the builder defaults to SFB403's, an object the language cannot express."""
        (build or self.report.topology_object_cannot_be_expressed)(Span.point(line, 1), problem, fix)

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
        is_director = registrar is not None and any(_flag(e.get("IsDirector")) for e in registrar.element.all("RegistrarService"))
        # The kind, by the services on the cluster (the registry's XmlMatch): a Registrar is a Director
        # when it says IsDirector, a Standard Edition server when its user store is on a SQL instance of
        # its own cluster (SQL Express, instance 'rtc' in the real documents), else a Front End pool.
        kind = kind_of_cluster(set(by_role), is_director)
        if kind is None:
            return None
        identifying = by_role[kind.xml.service]
        pool = Pool(kind.kind, cluster, site, next_hop=self._next_hop(identifying) if kind.next_hops else None)
        if "mediation" in kind.items:
            pool.collocated_mediation = "MediationServer" in by_role
        if kind.web_facing:
            self._web(pool, by_role.get("WebServices"))
        if "access_edge" in kind.items:
            self._edge_fqdns(pool, identifying)
        return pool

    def _account_for(self, cluster: Cluster) -> None:
        """List a cluster sfbgen does not set up, by what runs on it."""
        roles = [s.role for s in self.doc.services_on(cluster.key)]
        what = sorted({_NOT_DEPLOYED_ROLES.get(role, f"{role} role") for role in roles}) or ["no Skype for Business service"]
        self.not_deployed.append(NotDeployed(", ".join(what), cluster.fqdn, cluster.line))
        if cluster.requires_setup:
            problem, fix = _not_deployed_advice(cluster.fqdn, roles)
            self.warn(self.report.object_not_deployed, cluster.line, problem, fix)

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
            self.warn(self.report.object_not_deployed, line, f"the branch site '{name}' is not deployed by sfbgen", "set up its Survivable Branch Appliance or Server outside sfbgen")
        return pools

    def product(self, pools: list[Pool]) -> str:
        services = [s for p in pools for s in self.doc.services_on(p.cluster.key) if s.version]
        versions = sorted({s.version for s in services})
        known = [PRODUCT_OF_SERVICE_VERSION[v] for v in versions if v in PRODUCT_OF_SERVICE_VERSION]
        lync = [v for v in versions if v in LYNC_OF_SERVICE_VERSION]
        said = ", ".join(versions) or "(none)"
        if lync:
            first = next(s for s in services if s.version in lync)
            what = " and ".join(LYNC_OF_SERVICE_VERSION[v] for v in lync)
            if self.options.product:
                self.warn(
                    self.report.product_disagrees_with_the_document, first.line,
                    f"the document is a {what} topology (ServiceVersion {said}); it is imported as {product_title(self.options.product)}, as --product says",
                    "sfbgen installs new servers with these names: deploy them as new servers (sfbgen does not upgrade Lync Server in place; "
                    "an in-place upgrade is Topology Builder's and Setup's work, deploy/upgrade-to-skype-for-business-server.md)",
                )
                return self.options.product
            self.error(
                first.line,
                f"the document is a {what} topology (ServiceVersion {said}), not a Skype for Business Server one: sfbgen installs new "
                "Skype for Business Server servers, and does not upgrade Lync Server in place",
                "to deploy these pools as new Skype for Business Server servers, import with --product 2015, 2019 or subscription; "
                "to upgrade in place, use Topology Builder and Setup (deploy/upgrade-to-skype-for-business-server.md)",
                build=self.report.lync_server_document,
            )
            return "2015"
        if self.options.product:
            if known and self.options.product not in known:
                first = next(s for s in services if s.version in PRODUCT_OF_SERVICE_VERSION)
                self.warn(
                    self.report.product_disagrees_with_the_document, first.line,
                    f"--product {self.options.product} disagrees with the document: its services' ServiceVersion {said} is "
                    + " and ".join(product_title(k) for k in dict.fromkeys(known)),
                    "check which product the servers will run; the topology says product " + self.options.product + ", as --product asked",
                )
            return self.options.product
        product = known[-1] if known else "2015"
        self.warn(
            self.report.product_from_service_version, self.doc.line,
            f"the product is taken as Skype for Business Server {product}, from the services' ServiceVersion {said}",
            "confirm it, or say --product 2015, 2019 or subscription",
        )
        return product

    def _url_host(self, url: str, line: int) -> None:
        """Refuse a simple URL whose host is no FQDN (a template's placeholder), at its line."""
        host = re.sub(r"^[A-Za-z]+://", "", url).split("/", 1)[0].split(":", 1)[0]
        problem = fqdn_problem(host) if host else "it has no host"
        if problem:
            self.error(line, f"the simple URL '{url}' has a host that is not an FQDN ({problem})" + _placeholder_note(host),
                       _NAME_FIX, build=self.report.document_name_not_fqdn)

    def central_management_store(self, pools: list[Pool]) -> Pool | None:
        """The Standard Edition server to suggest for the Central Management Store: the first one, when
        the document is an unpublished Topology Builder document and no service is a Central
        Management Store. (The store is chosen when the topology is first published, so a document
        not yet published holds none: neither Topology Builder document in ../shared/topologies does.)"""
        if self.doc.format != "Topology Builder document" or self.published is not False:
            return None
        if any(s.role in ("CentralMgmtStore", "CentralMgmt") for s in self.doc.services):
            return None
        return next((p for p in pools if "central_management_store" in BY_KIND[p.kind].items), None)

    def simple_urls(self) -> list[tuple[str, str, str]]:
        """(kind, url, domain) for every simple URL; Topology Builder's defaults when the document has none."""
        domains = [d for d, _ in self.doc.sip_domains]
        default = self.doc.default_domain or (domains[0] if domains else "")
        if self.doc.simple_urls is not None:
            out = []
            for url in self.doc.simple_urls:
                kind = SIMPLE_URL_KINDS.get(url.component.lower())
                if kind is None:
                    self.warn(self.report.object_not_deployed, url.line, f"the simple URL component '{url.component}' is not one sfbgen knows", "check Get-CsSimpleUrlConfiguration")
                    continue
                self._url_host(url.url, url.line)
                out.append((kind, url.url, url.domain if kind == "meet" and url.domain not in ("", "*") else ""))
            # Topology Builder's defaults for what the document leaves out (simple-urls.md: a Meet URL
            # per SIP domain and one Dial-in URL are required), each named in a warning.
            met = {d.lower() for kind, _, d in out if kind == "meet"}
            anywhere = any(kind == "meet" and not d for kind, _, d in out)
            for domain, line in self.doc.sip_domains:
                if domain.lower() not in met and not (anywhere and len(domains) == 1):
                    out.append(("meet", f"https://meet.{domain}", domain))
                    self.warn(self.report.simple_url_default_assumed, line, f"the document has no Meet URL for the SIP domain {domain}; assumed Topology Builder's default https://meet.{domain}",
                              "confirm it (Topology Builder: Edit Properties, Simple URLs) or correct the simple_url line")
            if domains and not any(kind == "dialin" for kind, _, _ in out):
                out.append(("dialin", f"https://dialin.{default}", ""))
                self.warn(self.report.simple_url_default_assumed, self.doc.line, f"the document has no Dial-in URL; assumed Topology Builder's default https://dialin.{default}",
                          "confirm it (Topology Builder: Edit Properties, Simple URLs) or correct the simple_url line")
            return out
        self.warn(
            self.report.simple_urls_assumed, self.doc.line,
            f"a {self.doc.format} holds no simple URLs; assumed Topology Builder's defaults: "
            + ", ".join([f"https://meet.{d}" for d in domains] + [f"https://dialin.{default}"]),
            "confirm them with Get-CsSimpleUrlConfiguration and correct the simple_url lines",
        )
        return [("meet", f"https://meet.{d}", d) for d in domains] + [("dialin", f"https://dialin.{default}", "")]


def _flag(value: str) -> bool:
    return value.strip().lower() == "true"


_NAME_FIX = "put the real name in the document (in Topology Builder, or in the template's script that fills it in), and import again"


def _placeholder_note(value: str) -> str:
    return "; it looks like a template's placeholder, filled in by a script before the document is used" if _PLACEHOLDER.search(value) else ""


# What runs on a cluster sfbgen does not set up, and who sets it up (the roles are those of
# _NOT_DEPLOYED_ROLES). A trusted application pool is a pool of servers of another product (Exchange,
# a contact-centre application) made trusted by New-CsTrustedApplicationPool (office-docs-powershell,
# New-CsTrustedApplicationPool.md): nothing of Skype for Business Server is installed on it.
def _not_deployed_advice(fqdn: str, roles: list[str]) -> tuple[str, str]:
    named = ", ".join(roles) or "no known role"
    if any(r in ("TrustedApplicationPool", "ExternalServer") for r in roles):
        return (f"{fqdn} is a trusted application pool ({named}): its servers run another product's application, not Skype for Business Server",
                "set it up with that product (Exchange, the application's own setup) and trust it with New-CsTrustedApplicationPool; the rest of the topology is imported")
    if "PersistentChatServer" in roles:
        return (f"{fqdn} is a Persistent Chat pool ({named}), which sfbgen does not deploy",
                "install it on each of its servers with the Skype for Business Server Deployment Wizard (Install or Update Skype for Business Server System); the rest of the topology is imported")
    what = sorted({_NOT_DEPLOYED_ROLES.get(role, f"{role} role") for role in roles})
    return (f"{fqdn} ({', '.join(what) or 'no known role'}) needs setup, which sfbgen does not deploy",
            "set it up as its product documents; the rest of the topology is imported")


# ---------------------------------------------------------------------------------------------------
# Writing the .sfb text


class _Writer:
    """Writes the language, refusing any value the language cannot hold as written."""

    def __init__(self, importer: _Importer):
        self.importer = importer
        self.lines: list[str] = []

    def _hidden(self, value: str, line: int, what: str) -> bool:
        """A control, escape or invisible character (a C1 CSI, a bidirectional override): the language
        refuses them (SFB290), and written out they would reach a terminal with the topology."""
        from .display import is_visible, visible

        if is_visible(value):
            return False
        self.importer.error(line, f"the {what} '{visible(value)[:80]}' holds a control, escape or invisible character", "correct it in Topology Builder, publish, and export again")
        return True

    def name(self, value: str, line: int, what: str, fqdn: bool = True) -> str:
        if self._hidden(value, line, what):
            return "invalid"
        if not value or _NOT_IN_NAME.search(value):
            self.importer.error(line, f"the {what} '{value}' cannot be written as a name (it is empty or holds a space, brace, quote or '#')", "correct it in Topology Builder, publish, and export again")
            return "invalid"
        problem = fqdn_problem(value) if fqdn else None
        if problem:
            # A placeholder of a published template ([DOMAINID], $SkypeFQDN) or another name no DNS
            # holds: refused here, at the document's line, not later by check (SFB202, RFC 1035/1123).
            self.importer.error(line, f"the {what} '{value}' is not an FQDN ({problem})" + _placeholder_note(value), _NAME_FIX, build=self.importer.report.document_name_not_fqdn)
            return "invalid"
        return value

    def string(self, value: str, line: int, what: str) -> str:
        if self._hidden(value, line, what):
            return '"invalid"'
        if '"' in value or "\n" in value or "\r" in value:
            self.importer.error(line, f"the {what} '{value[:40]}' holds a double quote or a line break, which a topology string cannot", "rename it in Topology Builder, or edit the imported topology")
            return '"invalid"'
        return f'"{value}"'

    def add(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)


def _comment(text: str) -> str:
    from .display import visible

    # Every control, escape and invisible character (and a byte of a file name that was not UTF-8)
    # shown as its escape: nothing from the document can end the comment line or hide text.
    return visible(text)


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
        importer.warn(importer.report.installation_media_not_named, doc.line, "the document does not say where the installation media is", "import with --media PATH, or add a media line")
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
        importer.warn(importer.report.no_certificate_authority, doc.line, "no certificate authority was named, so every certificate is an offline request", "import with --ca \"<CA FQDN>\\<CA name>\" for an online enterprise CA")
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


def _write_pool(w: _Writer, pool: Pool) -> None:
    c = pool.cluster
    w.add(2, f"# line {c.line}")
    kind = BY_KIND[pool.kind]
    w.add(2, f"{kind.keyword} {w.name(c.fqdn, c.line, 'pool FQDN')} {{")
    if pool.next_hop:
        w.add(3, f"next_hop {w.name(pool.next_hop, c.line, 'next hop')}")
    elif kind.next_hops:
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
    if pool is w.importer.cms:
        w.add(3, "# central_management_store  # uncomment if this is the deployment's first server (the document is not published and names no Central Management Store)")
    if pool.kind == "edge" and w.importer.options.edge_external == "public":
        # The external certificate: from a public CA, through an offline request (edge-environmental-
        # requirements.md; ../shared/reference/sfb-deployment.md, 'Certificates per role'). An Edge
        # Server is a workgroup computer in the perimeter network: an online request to the internal
        # enterprise CA is what it cannot make (issue 18). The internal certificate follows the topology's.
        w.add(3, "certificates {")
        w.add(4, "authority offline public")
        w.add(3, "}")
        w.importer.warn(w.importer.report.edge_external_certificate_assumed, c.line, f"the Edge pool {c.fqdn}'s external certificate is taken as an offline request to a public CA (the document does not say)",
                        "confirm it, or import with --edge-external topology to request it like every other certificate")
    if kind.member_keyword is not None:
        for machine in c.machines:
            w.add(3, f"{kind.member_keyword} {w.name(machine.fqdn, machine.line, 'server FQDN')}")
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
    importer = _Importer(document, name, options, _is_published(raw) if document.format == "Topology Builder document" else True)
    importer.check_options()
    pools = importer.pools()
    importer.cms = importer.central_management_store(pools)
    if importer.cms is not None:
        importer.warn(importer.report.unpublished_without_cms, importer.cms.cluster.line,
                      f"the document is not published and names no Central Management Store; a new deployment creates it on its first Standard Edition server, here {importer.cms.cluster.fqdn}",
                      f"if {importer.cms.cluster.fqdn} is the deployment's first server, uncomment central_management_store in its block (the imported topology has the line); if the store exists already, leave it")
    if not pools:
        importer.error(document.line, f"the {document.format} has no Front End, Director, Mediation or Edge pool that needs setup", "export the topology that holds the servers to deploy")
    text = _write(importer, pools, name.replace("\\", "/").rpartition("/")[2])
    failed = any(d.is_error for d in importer.diagnostics)
    if not failed:
        text = _formatted(text)
    from .diagnostics import sort_diagnostics

    # In the document's order, as check reports a topology's.
    return ImportResult(None if failed else text, sort_diagnostics(importer.diagnostics), document.format, pools, importer.not_deployed)


_PUBLISHED = re.compile(r"<(?:[\w.-]+:)?PartialTopology\b[^>]*?\bIsPublished\s*=\s*[\"']([^\"']*)[\"']")


def _is_published(raw: bytes) -> bool | None:
    """A Topology Builder document's PartialTopology IsPublished (both .tbxml of ../shared/topologies
    say "false" at line 4), read from the document's start; None when it does not say."""
    head = raw[:16384]
    text = head.decode("utf-16", errors="ignore") if head.startswith((b"\xff\xfe", b"\xfe\xff")) else head.decode("utf-8", errors="ignore")
    match = _PUBLISHED.search(text)
    return None if match is None else _flag(match.group(1))


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
            return ImportResult(None, [DiagnosticBuilder(name).malformed_or_unsafe_xml(Span.point(1, 1), f"the document is larger than {MAX_XML_BYTES // (1024 * 1024)} MB", "check that this is a topology document")])
        raw = p.read_bytes()
    except OSError as exc:
        return ImportResult(None, [DiagnosticBuilder(name).file_cannot_be_read(Span.point(1, 1), f"cannot read '{name}': {exc.strerror or exc}", "check the path")])
    return import_bytes(raw, name, options)
