"""Certificates: which certificates every server needs, with usages, subject and every SAN.

The rules are those of Microsoft's planning documentation, `environmental-requirements.md` (tables
"Certificates for Standard Edition servers", "... Front End Servers in a Front End pool", "... the
Director", "... Stand-alone Mediation Server", and "Certificates for mobility"),
`edge-environmental-requirements.md` and `simple-urls.md`:

- Default: subject = pool FQDN; SANs = pool FQDN and server FQDN (+ sip.<domain> when asked).
- WebServicesInternal: internal web FQDN, server and pool FQDNs, every simple URL host
  (+ lyncdiscoverinternal.<domain> with mobility).
- WebServicesExternal: external web FQDN, Meet and Dial-in hosts — the Admin URL is internal only
  (+ lyncdiscover.<domain> with mobility). Both web services FQDNs default to the pool FQDN, as in
  Topology Builder.
- A Mediation Server collocated on a Front End pool or Standard Edition server needs no certificate of
  its own: the Front End's Default certificate already names the pool and the server, the names of
  a stand-alone Mediation Server's certificate (environmental-requirements.md, "Certificates for
  Stand-alone Mediation Server" gives pool FQDN and server FQDN).
- Edge: one Internal certificate for the pool (subject = the Edge pool's internal FQDN, no SAN:
  edge-environmental-requirements.md gives one internal FQDN "regardless of whether you're doing a
  single Edge Server or an Edge pool"; deploy-edge-servers.md, "Internal Edge interface
  certificates", steps 3-6: requested on one Edge Server, exported with its private key, assigned on
  each), and one external certificate for the pool (subject = Access Edge FQDN; SANs = Access Edge,
  Web Conferencing Edge, sip.<domain> per SIP domain; not the A/V Edge FQDN). Both exportable,
  requested once and copied to every member. The internal one follows the topology's policy (the
  internal CA) unless the pool's `internal_certificates` block says otherwise; the pool's own
  `certificates` block is the external one's.
- A certificate for a public CA carries no template name: templates are Active Directory Certificate
  Services' (Request-CsCertificate.md, -Template).
- OAuthTokenIssuer: once per deployment, subject = the primary SIP domain, assigned with -Identity Global.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from . import model as m
from .diagnostics import Diagnostic, DiagnosticBuilder, Span
from .display import visible

DEFAULT_KEY_SIZE = 2048
OAUTH_MIN_KEY_SIZE = 2048
# Public CAs cap the names one certificate may carry; 100 is the common limit.
MAX_SANS = 100
_INTERNAL_ONLY_SUFFIXES = (".local", ".lan", ".internal", ".intranet", ".corp", ".home", ".private", ".localdomain")

WEB_USAGES = ("Default", "WebServicesInternal", "WebServicesExternal")
EDGE_EXTERNAL_USAGES = ("AccessEdgeExternal", "DataEdgeExternal", "AudioVideoAuthentication")


@dataclass(frozen=True)
class Policy:
    """The certificate policy in force for one pool: the topology's, overridden field by field."""

    authority: str  # 'online' | 'offline'
    ca: str | None
    public: bool
    template: str | None
    key_size: int
    organization: str | None
    unit: str | None
    city: str | None
    state: str | None
    country: str | None
    web_separate: bool
    sip_names: bool


def effective_policy(topology: m.Topology, pool: m.Pool | None, internal_edge: bool = False) -> Policy:
    """The policy in force: the topology's, overridden by the pool's block (for an Edge pool's internal
    certificate: by its `internal_certificates` block instead)."""
    own = None
    if pool is not None:
        own = pool.internal_certificates if internal_edge and isinstance(pool, m.EdgePool) else pool.certificates
    layers = [p for p in (topology.certificates, own) if p is not None]

    def pick(field_name: str):
        value = None
        for layer in layers:
            candidate = getattr(layer, field_name)
            if candidate is not None:
                value = candidate
        return value

    def text(field_name: str) -> str | None:
        value = pick(field_name)
        return value.value if value is not None else None

    authority, ca, public = "online", None, False
    for layer in layers:
        if layer.authority is not None:
            authority, ca, public = layer.authority, (layer.ca.value if layer.ca else None), layer.public
    if internal_edge and not (own is not None and own.authority is not None):
        # An Edge Server is not a domain member and cannot enroll with an enterprise CA online: its
        # internal certificate goes to the internal CA as an offline request unless the pool's
        # `internal_certificates` block says otherwise (deploy-edge-servers.md, "Internal Edge
        # interface certificates": a request file submitted to the CA).
        authority, public = "offline", False
    key = pick("key_size")
    return Policy(
        authority=authority if (authority == "offline" or ca) else "offline",
        ca=ca,
        public=public,
        template=None if public else text("template"),
        key_size=key.value if key is not None else DEFAULT_KEY_SIZE,
        organization=text("organization"),
        unit=text("unit"),
        city=text("city"),
        state=text("state"),
        country=text("country"),
        web_separate=text("web") == "separate",
        sip_names=text("sip_names") == "on",
    )


@dataclass(frozen=True)
class CertificateRequest:
    """One certificate: what it is for, the names it must carry, and how it is obtained."""

    id: str  # unique in the deployment; names request and response files
    usages: tuple[str, ...]  # the -Type values of Set-CsCertificate
    subject: str
    sans: tuple[str, ...]
    extra_names: tuple[str, ...]  # -DomainName: SANs Request-CsCertificate does not add by itself
    friendly_name: str
    policy: Policy
    exportable_key: bool
    key_size: int
    requested_on: str  # the server that requests it
    scope: str = "server"  # 'server' | 'pool' (Edge internal and external, shared) | 'global' (OAuth)
    pool: str = ""
    label: str = ""  # Default, EdgeInternal, ...: names the file a shared certificate travels in
    origin: Span = field(default=Span(1, 1, 1, 1), compare=False)
    # Every subject the script accepts: the planned one, and for a pool's certificates also the pool
    # and the server FQDN, because Request-CsCertificate writes the subject itself
    # (Request-CsCertificate.md, -ComputerFqdn: "will automatically add the pool name to the Subject
    # Name of any certificate obtained using this cmdlet"). The SANs are checked strictly whatever the subject.
    accepted_subjects: tuple[str, ...] = ()

    @property
    def subjects(self) -> tuple[str, ...]:
        """The subjects a fit certificate may have, the planned one first."""
        return _unique((self.subject, *self.accepted_subjects))

    @property
    def authority(self) -> str:
        return self.policy.authority

    @property
    def pfx_name(self) -> str:
        """The file that carries a pool's shared certificate, private key included, to the other members."""
        return f"{self.label}.pfx"

    def to_plan(self) -> dict:
        return {
            "id": self.id,
            "usages": list(self.usages),
            "subject": self.subject,
            "sans": list(self.sans),
            "authority": self.authority,
            "exportable_key": self.exportable_key,
            "key_size": self.key_size,
            "friendly_name": self.friendly_name,
            "scope": self.scope,
            "requested_on": self.requested_on,
            **({"ca": self.policy.ca} if self.policy.ca else {}),
            **({"template": self.policy.template} if self.policy.template else {}),
        }


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for name in names:
        key = name.lower()
        if name and key not in seen:
            seen.add(key)
            out.append(name)
    return tuple(out)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _simple_url_hosts(topology: m.Topology, kinds: tuple[str, ...]) -> list[str]:
    return [_host(u.url.value) for u in topology.simple_urls if u.kind.value in kinds]


def _sip(topology: m.Topology, prefix: str) -> list[str]:
    return [f"{prefix}.{d.name.value}" for d in topology.sip_domains]


def oauth_host(topology: m.Topology) -> tuple[m.Pool, m.Server] | None:
    """The Front End that requests the OAuthTokenIssuer certificate: the first one in the file."""
    from .pool_kinds import kind_of

    for pool, server in topology.servers():
        if kind_of(pool).front_end:
            return pool, server
    return None


class CertificatePlanner:
    """Computes the certificates of every server of one topology."""

    def __init__(self, topology: m.Topology):
        self.t = topology
        self.mobility = topology.mobility_enabled

    def _request(self, pool: m.Pool, server: str, label: str, usages, subject, sans, extra, exportable=False, scope="server", internal_edge=False, subjects=()) -> CertificateRequest:
        policy = effective_policy(self.t, pool, internal_edge)
        key_size = policy.key_size
        ident = f"{server if scope == 'server' else pool.fqdn.value}-{label}".lower()
        return CertificateRequest(
            id=ident,
            usages=tuple(usages),
            subject=subject,
            sans=_unique(sans),
            extra_names=_unique(extra),
            friendly_name=f"sfbgen {label} {pool.fqdn.value}" + (f" {server.split('.')[0]}" if scope == "server" else ""),
            policy=policy,
            exportable_key=exportable,
            key_size=key_size,
            requested_on=server,
            scope=scope,
            pool=pool.fqdn.value,
            label=label,
            origin=pool.fqdn.span,
            accepted_subjects=_unique(subjects),
        )

    def for_server(self, pool: m.Pool, server: m.Server) -> list[CertificateRequest]:
        fqdn = server.fqdn.value
        if isinstance(pool, m.EdgePool):
            return self._edge(pool, server)
        if isinstance(pool, m.MediationPool):
            return [self._request(pool, fqdn, "Default", ("Default",), pool.fqdn.value, [pool.fqdn.value, fqdn], [], subjects=(pool.fqdn.value, fqdn))]
        return self._web_role(pool, fqdn)

    def _web_role(self, pool: m.EnterprisePool | m.StandardEditionServer | m.DirectorPool, fqdn: str) -> list[CertificateRequest]:
        t, policy = self.t, effective_policy(self.t, pool)
        pool_fqdn = pool.fqdn.value
        # Standard Edition: the internal web FQDN is the server's own; Enterprise and Director pools
        # may override it, and the web certificates' subject is the pool for Front Ends, the server
        # for a Director (tables in environmental-requirements.md).
        web_internal = pool.web_internal_fqdn()
        web_external = pool.web_external_fqdn()
        web_subject = fqdn if pool.kind == "director" else pool_fqdn
        sip_names = _sip(t, "sip") if policy.sip_names else []
        internal_discover = _sip(t, "lyncdiscoverinternal") if self.mobility else []
        external_discover = _sip(t, "lyncdiscover") if self.mobility else []
        all_urls = _simple_url_hosts(t, ("meet", "dialin", "admin"))
        public_urls = _simple_url_hosts(t, ("meet", "dialin"))

        # What Request-CsCertificate may write as the subject of this server's certificates.
        subjects = (pool_fqdn, fqdn)
        default_sans = [pool_fqdn, fqdn, *sip_names]
        internal_sans = [web_internal, fqdn, pool_fqdn, *all_urls, *internal_discover]
        external_sans = [web_external, *public_urls, *external_discover]
        if not policy.web_separate:
            sans = [*default_sans, *internal_sans, *external_sans]
            extra = [*sip_names, *internal_discover, *external_discover]
            return [self._request(pool, fqdn, "Default+Web", WEB_USAGES, pool_fqdn, [pool_fqdn, *sans], extra, subjects=subjects)]
        return [
            self._request(pool, fqdn, "Default", ("Default",), pool_fqdn, default_sans, sip_names, subjects=subjects),
            self._request(pool, fqdn, "WebInternal", ("WebServicesInternal",), web_subject, [web_subject, *internal_sans], internal_discover, subjects=subjects),
            self._request(pool, fqdn, "WebExternal", ("WebServicesExternal",), web_subject, external_sans, external_discover, subjects=subjects),
        ]

    def _edge(self, pool: m.EdgePool, server: m.Server) -> list[CertificateRequest]:
        return [self.edge_internal(pool), self.edge_external(pool)]

    def edge_internal(self, pool: m.EdgePool) -> CertificateRequest:
        first = pool.servers[0].fqdn.value if pool.servers else ""
        return self._request(pool, first, "EdgeInternal", ("Internal",), pool.fqdn.value, [], [], exportable=True, scope="pool", internal_edge=True)

    def edge_external(self, pool: m.EdgePool) -> CertificateRequest:
        access = pool.access_edge.value if pool.access_edge else ""
        webconf = pool.webconf_edge.value if pool.webconf_edge else ""
        sip_names = _sip(self.t, "sip")
        first = pool.servers[0].fqdn.value if pool.servers else ""
        return self._request(
            pool, first, "EdgeExternal", EDGE_EXTERNAL_USAGES, access, [access, webconf, *sip_names], sip_names,
            exportable=True, scope="pool",
        )

    def oauth(self) -> CertificateRequest | None:
        host = oauth_host(self.t)
        domain = self.t.primary_sip_domain
        if host is None or domain is None:
            return None
        pool, server = host
        # The topology's own policy: the OAuth certificate belongs to the deployment, not to a pool.
        policy = effective_policy(self.t, None)
        return CertificateRequest(
            id="global-oauthtokenissuer",
            usages=("OAuthTokenIssuer",),
            subject=domain,
            sans=(domain,),
            extra_names=(domain,),
            friendly_name="sfbgen OAuthTokenIssuer",
            policy=policy,
            # Set-CsCertificate -Identity Global replicates the certificate, private key included, to
            # every Front End through the Central Management Store: the key must be exportable.
            exportable_key=True,
            key_size=max(policy.key_size, OAUTH_MIN_KEY_SIZE),
            requested_on=server.fqdn.value,
            scope="global",
            pool=pool.fqdn.value,
            origin=server.fqdn.span,
        )


def certificate_warnings(requests: Iterable[CertificateRequest], file: str) -> list[Diagnostic]:
    """What the documentation warns about, found in the computed certificates (one warning per request)."""
    out: list[Diagnostic] = []
    seen: set[str] = set()
    build = DiagnosticBuilder(file)
    for req in requests:
        if req.id in seen:
            continue
        seen.add(req.id)
        if req.subject.startswith("*"):
            out.append(build.wildcard_subject_name(req.origin, f"the {'/'.join(req.usages)} certificate would have the wildcard subject {req.subject}", "use a real FQDN as subject; wildcards are supported only as SANs for simple URLs"))
        if len(req.sans) > MAX_SANS:
            out.append(build.too_many_certificate_names(req.origin, f"the {'/'.join(req.usages)} certificate needs {len(req.sans)} names; one request usually carries at most {MAX_SANS}", "use separate web certificates (web separate) or fewer SIP domains per pool"))
        if req.scope == "pool" and req.authority == "online":
            # An Edge Server is in the perimeter network and not a domain member: it cannot enroll
            # online with the internal enterprise CA, and its external certificate comes from a
            # public CA (edge-environmental-requirements.md, "Certificate planning"; deploy-edge-servers.md,
            # "Internal Edge interface certificates": a request file submitted to the CA).
            external = req.usages == EDGE_EXTERNAL_USAGES
            pool, ca = visible(req.pool), visible(req.policy.ca or "")
            reason = "an Edge Server sits in the perimeter network, is not a domain member and cannot enroll there"
            if external:
                out.append(build.edge_certificate_from_enterprise_ca(req.origin, f"the Edge pool {pool}'s external certificate would be requested online from the enterprise CA {ca}: {reason}, and the external Edge certificate comes from a public CA",
                                      f"give the Edge pool {pool} its own 'certificates {{ authority offline public }}' block"))
            else:
                out.append(build.edge_certificate_from_enterprise_ca(req.origin, f"the Edge pool {pool}'s internal certificate would be requested online from the enterprise CA {ca}: {reason}",
                                      f"write 'internal_certificates {{ authority offline }}' in the Edge pool {pool} (a request file for the internal CA)"))
        if req.policy.public:
            internal = [n for n in req.sans if n.lower().endswith(_INTERNAL_ONLY_SUFFIXES) or "." not in n]
            if internal:
                out.append(build.internal_name_on_public_certificate(req.origin, f"the {'/'.join(req.usages)} certificate goes to a public CA but names {', '.join(internal)}, which public CAs do not issue", "use names in a public DNS domain for externally published services"))
    return out
