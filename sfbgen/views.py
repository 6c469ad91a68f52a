"""Views of the plan: what the step templates see, and all they see.

Each view is a small frozen dataclass of plain values (strings, booleans, numbers, tuples) made from
the plan, holding exactly what a template reads. The templates never receive a model object, so the
diff fingerprint (render.Renderer.fingerprint), the digest of the exact template context, changes
only with what a script can show: a server's site, or the other members of its pool where a script
does not list them, are not in any view.

Provenance (the topology file's name, its digest, sfbgen's version) is not in the views either: only
the runbook, plan.json and the manifests show it (render.Meta); the scripts get `Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import model as m
from .pool_kinds import POOL_WORD

if TYPE_CHECKING:
    from .certificates import CertificateRequest, Policy
    from .plan import Script, ServerPlan
    from .render import Meta


@dataclass(frozen=True)
class Settings:
    """The deployment-wide settings a script shows: Meta without its provenance."""

    product: str  # 2015, 2019, subscription
    product_title: str
    install_path: str
    module_path: str  # a full path, or '' for the product's default under %CommonProgramFiles%
    module_default: str
    windows_server: tuple[tuple[str, str], ...]  # (version, OS build)
    cumulative_update: tuple[str, str] | None  # (installer, arguments)
    topology_name: str
    signer: str  # '' when unsigned

    @classmethod
    def of(cls, meta: Meta) -> Settings:
        return cls(meta.product, meta.product_title, meta.install_path, meta.module_path, meta.module_default,
                   meta.windows_server, meta.cumulative_update, meta.topology_name, meta.signer)


@dataclass(frozen=True)
class ScriptView:
    filename: str
    title: str
    step: int  # 1-4; 0 for helpers

    @classmethod
    def of(cls, script: Script) -> ScriptView:
        return cls(script.filename, script.title, script.step)


@dataclass(frozen=True)
class PoolView:
    """A pool as a script names it; not its members (start-pool's `members` lists them)."""

    fqdn: str
    kind: str  # enterprise, standard, director, mediation, edge
    word: str  # how the scripts name its kind: "Enterprise Edition pool", ...
    next_hop: str  # a Mediation or Edge pool's next hop pool; '' for none

    @classmethod
    def of(cls, pool: m.Pool) -> PoolView:
        hop = getattr(pool, "next_hop", None)
        return cls(pool.fqdn.value, pool.kind, POOL_WORD[pool.kind], hop.value if hop is not None else "")


@dataclass(frozen=True)
class ServerView:
    """One server as its scripts see it: not its site, not its certificates' provenance."""

    fqdn: str
    role: str
    roles: tuple[str, ...]  # its pool's role, and a collocated Mediation Server
    is_edge: bool
    holds_cms: bool
    media: str
    windows_source: str
    pool: PoolView
    # A patch plan's server (sfbgen/patching.py, PatchServerPlan): its PatchWork, plain values already.
    patch: Any = None
    back_end: Any = None

    @classmethod
    def of(cls, server: ServerPlan, pool: PoolView) -> ServerView:
        return cls(server.fqdn, server.role, tuple(server.roles), server.is_edge, server.holds_cms, server.media,
                   server.windows_source, pool, getattr(server, "patch", None), getattr(server, "back_end", None))


@dataclass(frozen=True)
class PolicyView:
    ca: str | None
    public: bool
    template: str | None
    organization: str | None
    unit: str | None
    city: str | None
    state: str | None
    country: str | None

    @classmethod
    def of(cls, policy: Policy) -> PolicyView:
        return cls(policy.ca, policy.public, policy.template, policy.organization, policy.unit, policy.city,
                   policy.state, policy.country)


@dataclass(frozen=True)
class RequestView:
    """A certificate as step 3 requests, checks and assigns it."""

    id: str
    usages: tuple[str, ...]
    subject: str
    subjects: tuple[str, ...]  # the planned subject first
    sans: tuple[str, ...]
    extra_names: tuple[str, ...]
    friendly_name: str
    key_size: int
    exportable_key: bool
    scope: str  # server, pool, global
    pfx_name: str
    policy: PolicyView

    @classmethod
    def of(cls, r: CertificateRequest) -> RequestView:
        return cls(r.id, tuple(r.usages), r.subject, tuple(r.subjects), tuple(r.sans), tuple(r.extra_names),
                   r.friendly_name, r.key_size, r.exportable_key, r.scope, r.pfx_name, PolicyView.of(r.policy))


@dataclass(frozen=True)
class JobView:
    """One certificate's work on one server."""

    request: RequestView
    mode: str  # online, offline, import-shared
    source: str  # the server that requests it
    export_pfx: bool  # this server exports the pool's shared certificate for the other members


def certificate_jobs(server: ServerPlan) -> tuple[JobView, ...]:
    """Step 3's work on `server`."""
    jobs = []
    for request in server.requests:
        mode = "import-shared" if server.imports_shared(request) else request.authority
        export = request.scope == "pool" and request.requested_on == server.fqdn and len(server.pool.servers) > 1
        jobs.append(JobView(RequestView.of(request), mode, request.requested_on, export))
    return tuple(jobs)
