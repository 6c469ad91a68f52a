"""The pool kinds: one registry of what each kind of pool is, read by every stage.

A pool kind is one block of the language (`enterprise_pool`, `standard_edition`, ...), one model class,
one server role, the statements its block allows, the steps its servers run, how it starts, the words
scripts and diagnostics call it, its size rules, and the service roles that make it in a Topology
Builder or published document. The transformer (sfbgen/transform.py), the checks (sfbgen/checks.py),
the importer (sfbgen/importer.py), the plan (sfbgen/plan.py) and the parser (sfbgen/parser.py) read
it from here; tests/test_plan_rules.py keeps it equal to the grammar (grammar/sfb.lark: `_pool` and
one rule per keyword).

Adding a kind: a rule of the grammar, a model class (sfbgen/model.py, `Pool`), an entry below, and the
templates of what its servers do differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the registry is read by the parser too, which needs no model (nor pydantic)
    from . import model as m

# The setup steps every server runs, in order: the Deployment Wizard's steps 1 to 3 (the seed,
# "Install Skype for Business Server system"; ../shared/reference/sfb-deployment.md, "The four
# Deployment Wizard steps, per server"). Step 4 is the kind's start (PoolKind.start).
SETUP_STEPS = ("local-store", "components", "certificates")

# Step 4, by how the kind starts (the seed, "Step 4: Start Services": "If this is an Enterprise Edition
# Front End pool ... you must use the Start-CsPool cmdlet ... For all other roles, including Standard
# Edition server, you must use Start-CsWindowsService"; sfb-deployment.md, step 4).
START_SCRIPTS = {"pool": "start-pool", "services": "start-services"}


@dataclass(frozen=True)
class XmlMatch:
    """What makes a cluster of a Topology Builder or published document a pool of this kind: the
    RoleName of a service installed on it (Service / ServiceId / RoleName, as in the real documents of
    ../shared/topologies), and, for a Registrar, what tells the kinds apart."""

    service: str
    # The Registrar's RegistrarService says IsDirector="true" (None: not looked at).
    director: bool | None = None
    # A UserStore on the same cluster: Standard Edition keeps its databases on itself (SQL Express,
    # instance 'rtc' in the real documents; the seed's "Prepare First Standard Edition Server").
    local_user_store: bool | None = None


@dataclass(frozen=True)
class PoolKind:
    kind: str  # the model's discriminator (m.Pool.kind)
    keyword: str  # the block's keyword, and the grammar rule of the same name
    model_name: str  # the model class (sfbgen/model.py), by name: `model`
    role: str  # the server role of its members (ServerPlan.role, windows_features' tables)
    word: str  # what scripts and diagnostics call it (POOL_WORD)
    block: str  # what the transformer calls its block in a diagnostic ("'x' is not allowed in a <block>")
    member_keyword: str | None  # the statement that lists a member; None: the pool is its own one server
    items: frozenset[str]  # the statements its block allows
    web_facing: bool  # it has web services (m.WebPool: internal and external web services FQDNs)
    front_end: bool  # runs the Front End role: holds the deployment's configuration, is a next hop
    start: Literal["pool", "services"]  # one Start-CsPool for the pool, or Start-CsWindowsService per server
    next_hops: tuple[str, ...]  # the kinds its next hop may be (empty: it has none)
    perimeter: bool  # workgroup servers in the perimeter network: no Central Management Store to read
    single_computer_pool: bool  # Topology Builder's "single computer pool": one member may take the pool's FQDN
    # The RoleName of the services a published topology installs on a member (Service / ServiceId /
    # RoleName in Get-CsTopology -AsXml; read off the real documents of ../shared/topologies: Registrar,
    # UserServices and WebServices on every Front End pool and Standard Edition server, EdgeServer on
    # every Edge pool, MediationServer where Mediation is collocated).
    published_roles: tuple[str, ...]
    xml: XmlMatch
    # The product facts (sfbgen/data/platform.json, products) that bound its members: the most, and
    # whether two are allowed. None: no size rule beyond "at least one".
    size_facts: tuple[str, str] | None = None

    @property
    def model(self) -> type[m.PoolBase]:
        """The model class of this kind's pools."""
        from . import model

        return getattr(model, self.model_name)

    @property
    def scripts(self) -> tuple[str, ...]:
        """The steps of a member, in order: the setup steps, then its start (a pool's Start-CsPool is
        run by its first member only)."""
        return (*SETUP_STEPS, START_SCRIPTS[self.start])

    def limits(self, version: str) -> tuple[int, bool] | None:
        """(the most members, whether two are allowed) under product `version`, or None."""
        if self.size_facts is None:
            return None
        from .platform import product

        rules = product(version)
        most, two = self.size_facts
        return rules[most], rules[two]


_COMMON = frozenset({"certificates", "media", "windows_source"})

KINDS: tuple[PoolKind, ...] = (
    PoolKind(
        kind="enterprise", keyword="enterprise_pool", model_name="EnterprisePool", role="FrontEnd",
        word="Enterprise Edition Front End pool", block="Front End pool", member_keyword="front_end",
        items=_COMMON | {"front_end", "web_services", "mediation"},
        web_facing=True, front_end=True, start="pool", next_hops=(), perimeter=False,
        # A Front End pool of one server is still a pool with a pool FQDN of its own (SFB207).
        single_computer_pool=False,
        published_roles=("Registrar", "UserServices", "WebServices"),
        xml=XmlMatch("Registrar", director=False, local_user_store=False),
        # sfb-deployment.md, "Pool sizes": up to 12 Front End servers (16 on 2019); 2019 refuses two.
        size_facts=("max_front_ends", "two_server_pools"),
    ),
    PoolKind(
        kind="standard", keyword="standard_edition", model_name="StandardEditionServer", role="StandardEdition",
        word="Standard Edition server", block="Standard Edition server", member_keyword=None,
        items=_COMMON | {"web_services", "mediation", "central_management_store"},
        web_facing=True, front_end=True, start="services", next_hops=(), perimeter=False,
        single_computer_pool=False,
        published_roles=("Registrar", "UserServices", "WebServices"),
        xml=XmlMatch("Registrar", director=False, local_user_store=True),
    ),
    PoolKind(
        kind="director", keyword="director_pool", model_name="DirectorPool", role="Director",
        word="Director pool", block="Director pool", member_keyword="server",
        items=_COMMON | {"server", "web_services"},
        web_facing=True, front_end=False, start="services", next_hops=(), perimeter=False,
        single_computer_pool=True,
        # A Director is a Registrar whose RegistrarService says IsDirector="true" (the attribute is in
        # every real document; a Director itself in none: reconstructed).
        published_roles=("Registrar", "WebServices"),
        xml=XmlMatch("Registrar", director=True),
    ),
    PoolKind(
        kind="mediation", keyword="mediation_pool", model_name="MediationPool", role="Mediation",
        word="Mediation pool", block="Mediation pool", member_keyword="server",
        items=_COMMON | {"server", "next_hop"},
        web_facing=False, front_end=False, start="services",
        # add-mediation-server-nexthop.md: a Front End pool or a Standard Edition server.
        next_hops=("enterprise", "standard"), perimeter=False,
        single_computer_pool=True,  # add-mediation-server.md, "single computer pool"
        published_roles=("MediationServer",),
        xml=XmlMatch("MediationServer"),
    ),
    PoolKind(
        kind="edge", keyword="edge_pool", model_name="EdgePool", role="Edge",
        word="Edge pool", block="Edge pool", member_keyword="server",
        items=_COMMON | {"server", "next_hop", "access_edge", "webconf_edge", "av_edge", "internal_certificates"},
        web_facing=False, front_end=False, start="services",
        # add-edge-server-next-hop.md: a Front End pool (an Enterprise pool or a Standard Edition
        # server), or a Director.
        next_hops=("enterprise", "standard", "director"),
        # edge-environmental-requirements.md / system-requirements.md (Edge): the perimeter network,
        # a workgroup; export-your-topology-and-copy-it-to-external-media-for-edge-installation.md.
        perimeter=True,
        single_computer_pool=True,  # add-edge-server.md, "single computer pool"
        published_roles=("EdgeServer",),
        xml=XmlMatch("EdgeServer"),
    ),
)

BY_KIND: dict[str, PoolKind] = {k.kind: k for k in KINDS}
BY_KEYWORD: dict[str, PoolKind] = {k.keyword: k for k in KINDS}

# The service looked for first when a cluster runs several (a Registrar with a collocated Mediation
# Server is a Front End pool): the importer's order.
XML_PRECEDENCE = ("Registrar", "EdgeServer", "MediationServer")

# Derived tables, for the code that reads one fact of every kind.
FRONT_END_KINDS = tuple(k.kind for k in KINDS if k.front_end)
ROLE_OF_KIND = {k.kind: k.role for k in KINDS}
POOL_WORD = {k.kind: k.word for k in KINDS}
# The RoleName of the services of each server role (a collocated Mediation Server is the Mediation
# role's): what the published topology must say of a server.
PUBLISHED_ROLE_NAMES = {k.role: k.published_roles for k in KINDS}
# Every kind some pool may name as its next hop (a "did you mean" offers these).
NEXT_HOP_TARGETS = frozenset(kind for k in KINDS for kind in k.next_hops)

# The roles of a Topology Builder or published document that are not pools sfbgen sets up, by what
# they are: the importer lists each in a comment and its summary, never drops it.
NOT_DEPLOYED_ROLES = {
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


def kind_of(pool: m.Pool) -> PoolKind:
    """The registry entry of a model pool."""
    return BY_KIND[pool.kind]


def kind_of_cluster(roles: set[str], is_director: bool) -> PoolKind | None:
    """The kind of a document's cluster that runs the services `roles` (a Registrar's IsDirector is
    `is_director`), or None when no kind sfbgen deploys runs there."""
    for service in XML_PRECEDENCE:
        if service not in roles:
            continue
        for k in KINDS:
            match = k.xml
            if match.service != service:
                continue
            if match.director is not None and match.director != is_director:
                continue
            if match.local_user_store is not None and match.local_user_store != ("UserStore" in roles):
                continue
            return k
    return None
