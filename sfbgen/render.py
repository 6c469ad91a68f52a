"""Rendering: plan objects to the text of every generated file, through one Jinja2 template per step kind."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath

from . import __version__
from . import model as m
from .plan import (
    EDGE_CONFIG_ZIP,
    STEP_FILES,
    DeploymentPlan,
    published_expectations,
    ServerPlan,
)
from .platform import fact, product, windows_features
from .diagnostics import NO_SPAN
from .powershell import Raw, cmdlet, comment, quote, var
from .resources import cache_dir, resource_dir

BOM = "\ufeff"


@dataclass(frozen=True)
class Meta:
    """What every generated file says about where it came from, and the deployment-wide settings."""

    source: str  # the topology file's name (not its path: the output must not depend on the cwd)
    digest: str
    version: str
    product: str  # 2015, 2019, subscription
    product_title: str
    install_path: str
    module_path: str  # a full path, or '' for the product's default under %CommonProgramFiles%
    module_default: str  # the product's module path below %CommonProgramFiles%
    windows_server: tuple[tuple[str, str], ...]  # (version, OS build) the product runs on
    cumulative_update: tuple[str, str] | None  # (installer, arguments)
    topology_name: str = ""  # names the deployment in the servers' completion records
    signer: str = ""  # SHA-1 thumbprint of the certificate that signs the bundle; '' when unsigned

    @classmethod
    def of(cls, topology: m.Topology, source_name: str, digest: str) -> "Meta":
        version = topology.product_version
        builds = fact("windows_server_builds")
        supported = [v.value for v in topology.windows_server] or product(version)["windows_server"] or []
        update = topology.cumulative_update
        return cls(
            source=PurePath(source_name).name,
            digest=digest,
            version=__version__,
            product=version,
            product_title=product(version)["title"],
            install_path=topology.effective_install_path(),
            module_path=topology.module_path.value if topology.module_path else "",
            module_default=fact("module_path").format(product=version),
            windows_server=tuple((v, builds[v]) for v in supported if v in builds),
            cumulative_update=(update.installer.value, update.arguments.value) if update else None,
            topology_name=topology.name.value,
        )


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def markdown_text(value: object) -> str:
    """A topology value shown as plain text in Markdown: no markup, no HTML, no table break."""
    return _MD_SPECIAL.sub(r"\\\1", comment(value))


def markdown_code(value: object) -> str:
    """A topology value inside a Markdown code span: taken literally there, so only backticks matter."""
    return comment(value).replace("`", "'")


def _mermaid_label(value: object) -> str:
    return comment(value).replace('"', "#quot;")


def _bytecode_cache():
    """Compiled templates kept between runs (as the parser keeps its tables): a warm start skips compiling."""
    from jinja2 import FileSystemBytecodeCache

    folder = cache_dir()
    return FileSystemBytecodeCache(str(folder)) if folder else None


@cache
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # templates do not change during a run; do not stat them for every file
        bytecode_cache=_bytecode_cache(),
    )
    env.filters.update(ps=quote, comment=comment, md=markdown_text, mdcode=markdown_code, mermaid=_mermaid_label)
    env.globals.update(cs=cmdlet, var=var, raw=Raw, fact=fact, pool_word=lambda pool: m.POOL_WORD[pool.kind])
    return env


@cache
def _template(name: str):
    return _environment().get_template(name)


def render_template(name: str, **context) -> str:
    return _template(name).render(**context)


def _certificate_jobs(server: ServerPlan) -> list[dict]:
    jobs = []
    for request in server.requests:
        if server.imports_shared(request):
            mode = "import-shared"
        else:
            mode = request.authority
        jobs.append(
            {
                "request": request,
                "mode": mode,
                "source": request.requested_on,
                "export_pfx": request.scope == "pool" and request.requested_on == server.fqdn and len(server.pool.servers) > 1,
            }
        )
    return jobs


class Renderer:
    """Renders the files of one plan; what every server needs to know of the others is computed once."""

    def __init__(self, plan: DeploymentPlan, meta: Meta):
        self.plan = plan
        self.meta = meta
        self.members: dict[int, list[str]] = {}
        for server in plan.servers:
            self.members.setdefault(id(server.pool), []).append(server.fqdn)
        self.edges = [s.fqdn for s in plan.servers if s.is_edge]
        self._plain_pools: dict[int, tuple] = {}
        self.base = dict(
            meta=meta,
            files=STEP_FILES,
            edge_config_zip=EDGE_CONFIG_ZIP,
            edge_config_host=plan.edge_config_host.fqdn if plan.edge_config_host else "",
            # Text that is the same in every script, rendered once rather than once per script.
            shared=dict(functions=render_template("_functions.ps1.j2").rstrip("\n"), runner=render_template("_runner.ps1.j2").rstrip("\n")),
        )

    def server(self, server: ServerPlan) -> dict[str, str]:
        """The scripts of one server's bundle: {file name: text with LF line ends}."""
        extra = {
            "components": dict(features=windows_features(server.roles)),
            "certificates": dict(jobs=_certificate_jobs(server)),
            "start-pool": dict(members=self.members[id(server.pool)]),
            "export-edge-config": dict(edges=self.edges),
            "verify-bundle": dict(manifest_name="manifest.psd1"),
        }
        expect = published_expectations(server)
        return {
            script.filename: render_template(f"{script.kind}.ps1.j2", s=server, script=script, expect=expect, **self.base, **extra.get(script.kind, {}))
            for script in server.scripts
        }

    def fingerprint(self, server: ServerPlan) -> str:
        """A digest of everything `server()` renders from for this server: equal fingerprints render
        equal scripts, so `sfbgen diff` renders only the servers whose fingerprints differ. Source
        positions are left out (they move when lines are added above, and no script shows them)."""
        import dataclasses
        import hashlib

        state = {f.name: getattr(server, f.name) for f in dataclasses.fields(server) if f.name not in ("pool", "span")}
        state["requests"] = [dataclasses.replace(r, origin=NO_SPAN) for r in server.requests]
        state.pop("certificates"), state.pop("oauth")
        pool = self._plain_pools.get(id(server.pool))
        if pool is None:  # a pool's members share it: made once per pool
            pool = self._plain_pools[id(server.pool)] = _plain(server.pool)
        context = (
            pool, sorted(state.items()), self.members[id(server.pool)], self.edges,
            self.base["edge_config_host"], dataclasses.replace(self.meta, source="", digest="", version=""),
        )
        return "fp:" + hashlib.sha256(repr(context).encode("utf-8")).hexdigest()

    def invoke_runbook(self) -> str:
        """Invoke-Runbook.ps1: the runbook walked over PowerShell Remoting, from an admin workstation."""
        from .manifest import ROOT_NAME

        return render_template("invoke-runbook.ps1.j2", meta=self.meta, servers=self.plan.servers, steps=self.plan.steps, root_manifest=ROOT_NAME)

    def plan_json(self, work: dict[str, str] | None = None) -> str:
        return json_lines(plan_document(self.plan, self.meta, work or {}))

    def runbook(self, signing: dict) -> str:
        plan = self.plan
        node_ids = {step.id: f"s{i}" for i, step in enumerate(plan.steps, 1)}
        certificates, seen = [], set()
        for server in plan.servers:
            for request in server.requests:
                if request.id not in seen:
                    seen.add(request.id)
                    certificates.append(request)
        media_places: dict[str, list[str]] = {}
        sources: dict[str, list[str]] = {}
        for server in plan.servers:
            media_places.setdefault(server.media, []).append(server.fqdn)
            if server.windows_source:
                sources.setdefault(server.windows_source, []).append(server.fqdn)
        shared = sorted({r.pfx_name for server in plan.servers for r in server.requests if r.scope == "pool"})
        return render_template(
            "RUNBOOK.md.j2",
            media_places=list(media_places.items()),
            windows_sources=list(sources.items()),
            shared_certificates=shared,
            plan=plan,
            meta=self.meta,
            waves=plan.waves(),
            node_ids=node_ids,
            certificates=certificates,
            signing=signing,
            edge_config_zip=EDGE_CONFIG_ZIP,
        )


def _plain(value):
    """A model as nested tuples of its fields, without source positions."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return (type(value).__name__,) + tuple(
            (name, _plain(getattr(value, name, None))) for name in type(value).model_fields if name != "span" and not name.endswith("_span"))
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


def plan_document(plan: DeploymentPlan, meta: Meta, work: dict[str, str] | None = None) -> dict:
    """plan.json: the same plan as the runbook, for machines; `work` maps each script to the SHA-256 of
    its unsigned bytes, which changes only when what the script does changes."""
    work = work or {}
    servers = []
    for server in plan.servers:
        servers.append(
            {
                "fqdn": server.fqdn,
                "pool": server.pool.fqdn.value,
                "role": server.role,
                "roles": list(server.roles),
                "site": server.site,
                "scripts": [f"{server.fqdn}/{s.filename}" for s in server.scripts],
                "work": {s.filename: work.get(f"{server.fqdn}/{s.filename}", "") for s in server.scripts},
                "certificates": [c.to_plan() for c in server.requests],
            }
        )
    return {
        "topology": plan.topology.name.value,
        "product": plan.topology.product_version,
        "source": meta.source,
        "topology_sha256": meta.digest,
        "sfbgen": meta.version,
        "signer": meta.signer,
        "servers": servers,
        "runbook": [step.to_plan() for step in plan.steps],
    }


def json_lines(document: dict) -> str:
    """JSON with one line per top-level key and per list item: readable, diffable, and fast to write
    (the C encoder serialises each line; Python's pretty printer is ten times slower)."""
    compact = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    lines = ["{"]
    keys = list(document)
    for index, key in enumerate(keys):
        comma = "," if index < len(keys) - 1 else ""
        value = document[key]
        if isinstance(value, list) and value:
            lines.append(f"  {compact(key)}: [")
            lines.extend(f"    {compact(item)}{',' if i < len(value) - 1 else ''}" for i, item in enumerate(value))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {compact(key)}: {compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_windows_text(text: str, bom: bool = True) -> bytes:
    """UTF-8 with BOM and CRLF line ends: what Windows PowerShell 5.1 reads correctly and Authenticode hashes."""
    if "\r" in text:  # rare: only text that already has CR line ends pays for a second pass
        text = text.replace("\r\n", "\n")
    text = text.replace("\n", "\r\n")
    return ((BOM if bom else "") + text).encode("utf-8")
