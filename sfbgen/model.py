"""The typed topology model: what a topology file says, with the source span of every part.

The model is built by `sfbgen.transform` from the parse tree and is frozen. It records what was
written, not what is valid: a missing product or a malformed FQDN is representable, so that the checks
in `sfbgen.checks` can report every problem at once with its place in the source.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .diagnostics import Span


class Node(BaseModel):
    # defer_build: the validators are built on first use. The transformer builds the model from a parse
    # tree it has already typed, with `make` (no validation), so a check never pays for building them;
    # validating a model from outside data (tests, tools) still builds and applies them.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    span: Span

    @classmethod
    def make(cls, **fields):
        """An instance from fields that are already of the right types (the transformer's)."""
        return cls.model_construct(**fields)


class Name(Node):
    """A value as written — an FQDN, a path, a free text — with the span of the token it came from."""

    value: str


class Number(Node):
    value: int


class SipDomain(Node):
    name: Name
    primary: bool = False


SimpleUrlKind = Literal["meet", "dialin", "admin"]


class SimpleUrl(Node):
    kind: Name  # one of SimpleUrlKind when valid; kept as written so a typo can be reported
    url: Name
    domain: Name | None = None  # the SIP domain a Meet URL serves


class CertificatePolicy(Node):
    """A `certificates { ... }` block. Unset fields inherit from the enclosing level."""

    authority: Literal["online", "offline"] | None = None
    authority_span: Span | None = None
    ca: Name | None = None  # "<ca fqdn>\<ca name>" for an online authority
    public: bool = False  # an offline request answered by a public CA
    template: Name | None = None
    key_size: Number | None = None
    organization: Name | None = None
    unit: Name | None = None
    city: Name | None = None
    state: Name | None = None
    country: Name | None = None
    web: Name | None = None  # 'combined' (default) or 'separate'
    sip_names: Name | None = None  # 'on' adds sip.<domain> for every SIP domain (strict DNS / auto-logon)


class Server(Node):
    fqdn: Name


class PoolBase(Node):
    fqdn: Name
    site: str
    servers: tuple[Server, ...] = ()
    certificates: CertificatePolicy | None = None
    # Per pool, overriding the topology's: an Edge Server in the perimeter network cannot read the
    # internal share the others install from, and a pool may take Windows sources of its own.
    media: Name | None = None
    windows_source: Name | None = None


class WebPool(PoolBase):
    web_internal: Name | None = None
    web_external: Name | None = None
    # `mediation collocated` on a Front End pool or Standard Edition server: the Mediation Server role
    # runs on every member (Topology Builder, add-front-end-server-collocations.md).
    mediation: Name | None = None

    @property
    def collocated_mediation(self) -> bool:
        return bool(self.mediation and self.mediation.value == "collocated")

    def web_internal_fqdn(self) -> str:
        """The internal web services FQDN: the pool FQDN unless overridden (add-front-end-web-services.md)."""
        return self.web_internal.value if self.web_internal else self.fqdn.value

    def web_external_fqdn(self) -> str:
        """The external web services FQDN: Topology Builder defaults it to the pool FQDN (the
        ExternalSettings Host of every real document in ../shared/topologies is the pool FQDN)."""
        return self.web_external.value if self.web_external else self.fqdn.value


class EnterprisePool(WebPool):
    kind: Literal["enterprise"] = "enterprise"


class StandardEditionServer(WebPool):
    """A Standard Edition server: a pool of exactly one server whose FQDN is the pool's."""

    kind: Literal["standard"] = "standard"
    # This server holds the Central Management Store: it is prepared ("Prepare first Standard Edition
    # server") before the topology can be published.
    central_management_store: Span | None = None


class DirectorPool(WebPool):
    kind: Literal["director"] = "director"


class MediationPool(PoolBase):
    kind: Literal["mediation"] = "mediation"
    next_hop: Name | None = None


class EdgePool(PoolBase):
    kind: Literal["edge"] = "edge"
    next_hop: Name | None = None
    access_edge: Name | None = None
    webconf_edge: Name | None = None
    av_edge: Name | None = None
    # The internal certificate's policy, layered over the topology's (the internal CA by default): the
    # pool's own `certificates` block is for the external certificate.
    internal_certificates: CertificatePolicy | None = None


# One class per pool kind of sfbgen/pool_kinds.py (KINDS' `model`; tests/test_plan_rules.py keeps them equal).
Pool = Annotated[
    EnterprisePool | StandardEditionServer | DirectorPool | MediationPool | EdgePool,
    Field(discriminator="kind"),
]


def __getattr__(name: str):
    # What each kind of pool is lives in one registry (sfbgen/pool_kinds.py); these tables of it keep
    # their old names here for the code that reads them as the model's.
    if name in ("FRONT_END_KINDS", "ROLE_OF_KIND", "POOL_WORD"):
        from . import pool_kinds

        return getattr(pool_kinds, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Site(Node):
    name: Name
    pools: tuple[Pool, ...] = ()
    windows_source: Name | None = None


class CumulativeUpdate(Node):
    installer: Name  # SkypeServerUpdateInstaller.exe, a path the servers can read
    arguments: Name  # its command line: Microsoft documents no switches, so the topology says them


class Topology(Node):
    name: Name
    product: Name | None = None  # 2015, 2019 or subscription
    media: Name | None = None
    windows_source: Name | None = None
    cumulative_update: CumulativeUpdate | None = None
    module_path: Name | None = None
    windows_server: tuple[Name, ...] = ()  # 2012, 2012R2, 2016, 2019, 2022, 2025
    install_path: Name | None = None
    smart_setup: Name | None = None
    mobility: Name | None = None
    sip_domains: tuple[SipDomain, ...] = ()
    simple_urls: tuple[SimpleUrl, ...] = ()
    certificates: CertificatePolicy | None = None
    sites: tuple[Site, ...] = ()

    def pools(self) -> list[Pool]:
        return [pool for site in self.sites for pool in site.pools]

    def servers(self) -> list[tuple[Pool, Server]]:
        return [(pool, server) for pool in self.pools() for server in pool.servers]

    @property
    def product_version(self) -> str:
        return self.product.value if self.product else "2015"

    @property
    def mobility_enabled(self) -> bool:
        return bool(self.mobility and self.mobility.value == "on")

    @property
    def primary_sip_domain(self) -> str | None:
        for domain in self.sip_domains:
            if domain.primary:
                return domain.name.value
        return self.sip_domains[0].name.value if self.sip_domains else None

    def effective_install_path(self) -> str:
        """The install path: the topology's, or the product's default (none for Subscription Edition)."""
        from .platform import fact

        if self.install_path:
            return self.install_path.value
        if self.product_version == "subscription":
            return ""
        return fact("install_path").format(product=self.product_version)

    def site_of(self, pool: Pool) -> Site:
        return next(site for site in self.sites if any(p is pool for p in site.pools))

    def media_for(self, pool: Pool) -> str:
        """Where `pool`'s servers find the installation media: the pool's own, else the topology's."""
        chosen = pool.media or self.media
        return chosen.value if chosen else ""

    def windows_source_for(self, pool: Pool) -> str:
        """The Windows sources (\\sources\\sxs) for `pool`: the pool's, the site's, or the topology's."""
        site = self.site_of(pool)
        chosen = pool.windows_source or site.windows_source or self.windows_source
        return chosen.value if chosen else ""
