"""Rendering: plan objects to the text of every generated file, through one Jinja2 template per step kind."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath

from pydantic import BaseModel

from . import __version__
from . import model as m
from .plan import (
    EDGE_CONFIG_ZIP,
    STEP_FILES,
    DeploymentPlan,
    ServerPlan,
    published_expectations,
)
from .platform import fact, product, windows_features
from .powershell import Raw, cmdlet, comment, quote, var
from .resources import CachePolicy, cache_dir, resource_dir
from .views import JobView, PoolView, ScriptView, ServerView, Settings, certificate_jobs

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
    def of(cls, topology: m.Topology, source_name: str, digest: str) -> Meta:
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


# Mermaid draws at most `maxEdges` edges (default 500) from at most `maxTextSize` characters (default
# 50,000), and shows an error instead of a graph beyond either (mermaid-js/mermaid,
# packages/mermaid/src/schemas/config.schema.yaml). The RUNBOOK's graph stays under both.
MERMAID_MAX_EDGES = 500
MERMAID_MAX_TEXT = 50_000


def mermaid_graph(plan, node_ids: dict[str, str]) -> dict:
    """The RUNBOOK's dependency graph at the finest level Mermaid can draw: every step; else one node
    per pool (a step belongs to its server's pool); else one node per wave. Always fewer than 500
    edges and 50,000 characters. {level, nodes: [(id, label)], edges: [(id, id)], steps_edges, pool_edges}."""

    def fits(nodes, edges) -> bool:
        size = sum(len(i) + len(label) + 12 for i, label in nodes) + sum(len(a) + len(b) + 10 for a, b in edges)
        return len(edges) < MERMAID_MAX_EDGES and size < MERMAID_MAX_TEXT - 100

    nodes = [(node_ids[step.id], step.id) for step in plan.steps]
    edges = [(node_ids[before], node_ids[step.id]) for step in plan.steps for before in step.after if before in node_ids]
    result = {"level": "step", "nodes": nodes, "edges": edges, "steps_edges": len(edges), "pool_edges": 0}
    if fits(nodes, edges):
        return result
    pool_of = {server.fqdn: server.pool.fqdn.value for server in plan.servers}
    group = {step.id: pool_of.get(step.server, step.server) for step in plan.steps}
    pools = list(dict.fromkeys(group[step.id] for step in plan.steps))
    ids = {pool: f"p{i}" for i, pool in enumerate(pools, 1)}
    counts: dict[str, int] = {}
    for step in plan.steps:
        counts[group[step.id]] = counts.get(group[step.id], 0) + 1
    pool_nodes = [(ids[pool], f"{pool} ({counts[pool]} steps)") for pool in pools]
    pool_edges = list(dict.fromkeys((ids[group[before]], ids[group[step.id]]) for step in plan.steps for before in step.after
                                    if before in group and group[before] != group[step.id]))
    result.update(pool_edges=len(pool_edges))
    if fits(pool_nodes, pool_edges):
        return {**result, "level": "pool", "nodes": pool_nodes, "edges": pool_edges}
    waves = plan.waves()
    # Waves follow one another; more than 499 of them (a plan sfbgen does not make) share the last node.
    shown = min(len(waves), MERMAID_MAX_EDGES - 1)
    wave_nodes = [(f"w{i}", f"wave {i}: {len(waves[i - 1])} steps" if i < shown or shown == len(waves)
                   else f"waves {i} to {len(waves)}: {sum(len(w) for w in waves[i - 1:])} steps") for i in range(1, shown + 1)]
    wave_edges = [(f"w{i}", f"w{i + 1}") for i in range(1, shown)]
    return {**result, "level": "wave", "nodes": wave_nodes, "edges": wave_edges}


def _bytecode_cache(policy: CachePolicy):
    """Compiled templates kept between runs (as the parser keeps its tables): a warm start skips compiling."""
    from jinja2 import FileSystemBytecodeCache

    folder = cache_dir(policy)
    return FileSystemBytecodeCache(str(folder)) if folder else None


@cache
def _environment(policy: CachePolicy = CachePolicy.USE):
    """One Jinja environment per cache policy: the REFUSE one compiles every template from its source
    and never shares a compiled template with the USE one (each environment keeps its own)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # templates do not change during a run; do not stat them for every file
        bytecode_cache=_bytecode_cache(policy),
    )
    env.filters.update(ps=quote, comment=comment, md=markdown_text, mdcode=markdown_code, mermaid=_mermaid_label)
    env.globals.update(cs=cmdlet, var=var, raw=Raw, fact=fact)
    return env


@cache
def _template(name: str, policy: CachePolicy = CachePolicy.USE):
    return _environment(policy).get_template(name)


def render_template(name: str, **context) -> str:
    """A template rendered under CachePolicy.USE; a Renderer renders under its own policy (Renderer.render)."""
    return _template(name).render(**context)


class Renderer:
    """Renders the files of one plan; what every server needs to know of the others is computed once."""

    def __init__(self, plan: DeploymentPlan, meta: Meta, policy: CachePolicy = CachePolicy.USE):
        self.plan = plan
        self.meta = meta
        self.policy = policy
        members: dict[int, list[str]] = {}
        for server in plan.servers:
            members.setdefault(id(server.pool), []).append(server.fqdn)
        self.members = {pool: tuple(fqdns) for pool, fqdns in members.items()}
        self.edges = tuple(s.fqdn for s in plan.servers if s.is_edge)
        self._pools: dict[int, PoolView] = {}  # by id(model pool): one view per pool, shared by its members
        self._views: dict[int, ServerView] = {}  # by id(ServerPlan): the plan keeps each alive
        self._jobs: dict[int, tuple[JobView, ...]] = {}  # step 3's, by id(ServerPlan)
        self._digests: dict[int, tuple] = {}  # id -> (object, digest): ContextDigest's memo for this plan
        self._base_data: object = None
        self.base = dict(
            # The scripts see the settings, not the provenance: the file's name, its digest and sfbgen's
            # version are only in the runbook, plan.json and the manifests (so a script's bytes change
            # only with its work, and the fingerprint of its context with them).
            meta=Settings.of(meta),
            files=STEP_FILES,
            edge_config_zip=EDGE_CONFIG_ZIP,
            edge_config_host=plan.edge_config_host.fqdn if plan.edge_config_host else "",
            # Text that is the same in every script, rendered once rather than once per script; the
            # templates receive markers, which `arrange` replaces by what each script needs.
            shared=dict(functions=_FUNCTIONS_MARK, runner=_RUNNER_MARK),
        )
        self.helpers = Helpers(self.render("_functions.ps1.j2").rstrip("\n"))
        self.runner = self.render("_runner.ps1.j2").rstrip("\n")

    def render(self, name: str, **context) -> str:
        """A template rendered under this renderer's cache policy."""
        return _template(name, self.policy).render(**context)

    def view(self, server: ServerPlan) -> ServerView:
        """What `server`'s scripts see of it (sfbgen/views.py), made once per server."""
        known = self._views.get(id(server))
        if known is None:
            pool = self._pools.get(id(server.pool))
            if pool is None:
                pool = self._pools[id(server.pool)] = PoolView.of(server.pool)
            known = self._views[id(server)] = ServerView.of(server, pool)
        return known

    def certificate_jobs(self, server: ServerPlan) -> tuple[JobView, ...]:
        """Step 3's work on `server`, as views, made once per server (the fingerprint digests each once)."""
        known = self._jobs.get(id(server))
        if known is None:
            known = self._jobs[id(server)] = certificate_jobs(server)
        return known

    def contexts(self, server: ServerPlan) -> list[tuple[str, str, dict]]:
        """(file name, template, context) of each of `server`'s scripts: exactly what `server()` renders
        and `fingerprint()` digests. The templates see views of the plan (sfbgen/views.py), plain
        values only, never a model object."""
        extra: dict[str, dict] = {
            # Steps 0, 1 and 2 install the role's Windows features (the first script on a server before SQL Server Express).
            "prepare-cms": dict(features=windows_features(server.roles, self.meta.product)),
            "local-store": dict(features=windows_features(server.roles, self.meta.product)),
            "components": dict(features=windows_features(server.roles, self.meta.product)),
            "certificates": dict(jobs=self.certificate_jobs(server)),
            "start-pool": dict(members=self.members[id(server.pool)]),
            "export-edge-config": dict(edges=self.edges),
            "verify-bundle": dict(manifest_name="manifest.psd1"),
        }
        expect = published_expectations(server)
        return [(script.filename, f"{script.kind}.ps1.j2",
                 dict(s=self.view(server), script=ScriptView.of(script), expect=expect, **self.base, **extra.get(script.kind, {})))
                for script in server.scripts]

    def server(self, server: ServerPlan) -> dict[str, str]:
        """The scripts of one server's bundle: {file name: text with LF line ends}."""
        return {filename: self.arrange(self.render(template, **context)) for filename, template, context in self.contexts(server)}

    def arrange(self, text: str) -> str:
        """A step script in reading order: header, param and values; `function Invoke-Main` (the step's
        work); the functions of its own template, then the shared helpers (in _functions.ps1.j2's
        order), each only if the work or the runner calls it, directly or through another; its other
        top-level statements; the runner. A function definition runs nothing, so Invoke-Main may come
        before what it calls: everything is defined before the runner calls Invoke-Main."""
        if _FUNCTIONS_MARK not in text:
            return text.replace(_RUNNER_MARK, self.runner)
        head, rest = text.split(_FUNCTIONS_MARK, 1)
        body, runner_mark, tail = rest.partition(_RUNNER_MARK)
        runner = self.runner if runner_mark else ""
        own = _own_blocks(body.strip("\n"))
        main = [b for b in own if b.name == "Invoke-Main" and b.kind == "function"]
        functions = [b for b in own if b.kind == "function" and b not in main]
        statements = [b for b in own if b.kind != "function"]
        roots = "\n".join([head, *(b.text for b in main + statements), runner, tail])
        needed = self.helpers.needed(roots, functions)
        functions = [b for b in functions if block_key(b) in needed]
        shared = [b for b, key in zip(self.helpers.blocks, self.helpers.keys, strict=True) if key in needed or not b.name]
        return head + "\n\n".join(b.text for b in main + functions + shared + statements) + "\n\n" + runner + tail

    def fingerprint(self, server: ServerPlan) -> str:
        """The SHA-256 of exactly what `server()` renders for this server — each script's template and
        the context it receives (`contexts`), serialised by `ContextDigest` — so equal fingerprints render
        equal scripts, and `sfbgen diff` renders only the servers whose fingerprints differ. The context
        holds views of the plan (sfbgen/views.py), only what the scripts show: no source position, no
        site, no member list but start-pool's; so equal scripts have equal fingerprints too. The shared
        helpers and the runner are rendered without a context, the same for every server."""
        digest = ContextDigest(self._digests)
        if self._base_data is None:  # the same in every script's context: digested once
            self._base_data = digest.data(self.base)
        base = self.base
        data = [(filename, template, self._base_data,
                 digest.data({k: v for k, v in context.items() if k not in base}))
                for filename, template, context in self.contexts(server)]
        return "fp:" + hashlib.sha256(repr(data).encode("utf-8")).hexdigest()

    def invoke_runbook(self) -> str:
        """Invoke-Runbook.ps1: the runbook walked over PowerShell Remoting, from an admin workstation."""
        from .manifest import ROOT_NAME

        # What each server reaches beyond itself (a second hop over Remoting), checked inside its session
        # before its first step: (kind, target, the computer the hop goes to; '' when on the server itself).
        cms = next((s.fqdn for s in self.plan.servers if s.holds_cms), "")
        members: dict[int, list[str]] = {}
        for s in self.plan.servers:
            members.setdefault(id(s.pool), []).append(s.fqdn)

        def unc_host(path: str) -> str:
            return path[2:].split("\\")[0] if path.startswith("\\\\") else ""

        hops = {}
        for s in self.plan.servers:
            checks = []
            for path in (s.media.rstrip("\\") + "\\" + fact("media_setup_folder"), s.windows_source):
                if path:
                    checks.append(("path", path, unc_host(path)))
            if not s.is_edge:
                checks.append(("cms", "Get-CsTopology", cms or "the Central Management Store"))
            for ca in sorted({r.policy.ca for r in s.requests if r.authority == "online" and r.policy.ca and not s.imports_shared(r)}):
                checks.append(("ca", ca, ca.split("\\")[0]))
            if s.starts_pool:
                checks += [("remoting", other, other) for other in members[id(s.pool)] if other != s.fqdn]
            hops[s.fqdn] = checks
        return self.render("invoke-runbook.ps1.j2", meta=self.meta, servers=self.plan.servers, steps=self.plan.steps, root_manifest=ROOT_NAME, hops=hops)

    def plan_json(self, work: dict[str, str] | None = None) -> str:
        return json_lines(plan_document(self.plan, self.meta, work or {}))

    def runbook(self, signing: dict) -> str:
        plan = self.plan
        node_ids = {step.id: f"s{i}" for i, step in enumerate(plan.steps, 1)}
        graph = mermaid_graph(plan, node_ids)
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
        return self.render(
            "RUNBOOK.md.j2",
            media_places=list(media_places.items()),
            windows_sources=list(sources.items()),
            shared_certificates=shared,
            plan=plan,
            meta=self.meta,
            waves=plan.waves(),
            node_ids=node_ids,
            graph=graph,
            certificates=certificates,
            signing=signing,
            edge_config_zip=EDGE_CONFIG_ZIP,
        )


_FUNCTIONS_MARK = "#<sfbgen:shared-functions>#"
_RUNNER_MARK = "#<sfbgen:shared-runner>#"


@dataclass(frozen=True)
class Block:
    """One top-level piece of a script: a function, an assignment, or another statement, with the
    comment lines just above it."""

    kind: str  # 'function', 'variable' (an assignment) or 'statement'
    name: str  # the function's or variable's name; '' for another statement
    text: str


_TOP_FUNCTION = re.compile(r"function\s+([A-Za-z][\w-]*)", re.IGNORECASE)
_TOP_ASSIGNMENT = re.compile(r"\$(?:script:)?([A-Za-z_]\w*)\s*=")
_CLOSERS = {"{": "}", "(": ")"}


def split_blocks(text: str) -> list[Block]:
    """The top-level blocks of generated PowerShell, as sfbgen's templates write it: a block opens at
    column 0 and, when its first line leaves a `{` or `(` open, ends at the next line that starts with
    the closing bracket at column 0. Comment lines (and blank lines) before a block belong to it."""
    lines = text.split("\n")
    blocks: list[Block] = []
    pending: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() or line.startswith("#"):
            pending.append(line)
            index += 1
            continue
        end = index
        code = _code_part(line)
        opener = code.rstrip()[-1:] if code.rstrip() else ""
        if opener in _CLOSERS and code.count(opener) > code.count(_CLOSERS[opener]):
            closer = _CLOSERS[opener]
            end = index + 1
            while end < len(lines) and not lines[end].startswith(closer):
                end += 1
            end = min(end, len(lines) - 1)
        function = _TOP_FUNCTION.match(line)
        assignment = _TOP_ASSIGNMENT.match(line)
        if function:
            kind, name = "function", function.group(1)
        elif assignment:
            kind, name = "variable", assignment.group(1)
        else:
            kind, name = "statement", ""
        while pending and not pending[0].strip():
            pending.pop(0)
        blocks.append(Block(kind, name, "\n".join(pending + lines[index:end + 1])))
        pending = []
        index = end + 1
    if any(line.strip() for line in pending):  # comments after the last block stay, as a statement
        while not pending[0].strip():
            pending.pop(0)
        blocks.append(Block("statement", "", "\n".join(pending).rstrip("\n")))
    return blocks


def _code_part(line: str) -> str:
    """A line without its trailing comment: a `#` outside quotes, at the start or after a blank."""
    if "#" not in line:  # most lines: nothing to cut
        return line
    quote = ""
    for position, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1] in " \t"):
            return line[:position]
    return line


_WORD = re.compile(r"\$(?:script:)?([A-Za-z_]\w*)|(?<![\w$-])([A-Za-z][\w]*-[\w-]*\w)(?![\w-])")


def _references(text: str) -> set[str]:
    """The variable names (`$Name`, `$script:Name`) and Verb-Noun words in code, comments left out."""
    found: set[str] = set()
    for line in text.split("\n"):
        found |= _line_references(line)
    return found


# A line's references, by its text: the same template lines recur in every server's scripts, so each
# distinct line is scanned once. The memory it takes is bounded: past _LINE_CACHE_MAX lines nothing more
# is kept (the lines every script shares come first; those past the bound are one server's own).
_line_cache: dict[str, frozenset[str]] = {}
_LINE_CACHE_MAX = 50_000


def _line_references(line: str) -> frozenset[str]:
    known = _line_cache.get(line)
    if known is None:
        known = frozenset(("$" + variable).lower() if variable else word.lower() for variable, word in _WORD.findall(_code_part(line)))
        if len(_line_cache) < _LINE_CACHE_MAX:
            _line_cache[line] = known
    return known


class Helpers:
    """The shared helpers (_functions.ps1.j2 rendered), split into blocks, each with what it refers to."""

    def __init__(self, text: str):
        self.blocks = split_blocks(text)
        self.keys = [block_key(b) for b in self.blocks]  # each block's key, in the blocks' order
        self.uses = {key: _references(b.text) for b, key in zip(self.blocks, self.keys, strict=True) if b.name}

    def needed(self, text: str, own: Sequence[Block] = ()) -> set[str]:
        """The keys (`block_key`) of the blocks, shared or the script's `own`, that `text` calls or
        reads, directly or through another block."""
        own_uses = {block_key(b): _block_references(b.text) for b in own if b.name}
        uses = {**self.uses, **own_uses} if own_uses else self.uses
        todo = [key for key in _references(text) if key in uses]
        needed: set[str] = set()
        while todo:
            key = todo.pop()
            if key not in needed:
                needed.add(key)
                todo.extend(other for other in uses[key] if other in uses)
        return needed


# A script's own blocks, by the text of its body: many servers' scripts have the same body (read only;
# bounded as _line_cache is).
_body_cache: dict[str, list[Block]] = {}


def _own_blocks(text: str) -> list[Block]:
    known = _body_cache.get(text)
    if known is None:
        known = split_blocks(text)
        if len(_body_cache) < 2048:
            _body_cache[text] = known
    return known


# A block's references, by its text: a template's own functions are mostly the same text in every
# server's script (bounded as _line_cache is).
_block_cache: dict[str, frozenset[str]] = {}


def _block_references(text: str) -> frozenset[str]:
    known = _block_cache.get(text)
    if known is None:
        known = frozenset(_references(text))
        if len(_block_cache) < _LINE_CACHE_MAX // 10:
            _block_cache[text] = known
    return known


def block_key(block: Block) -> str:
    """How code refers to a block: a function by its name, a variable as `$name` (lower case both)."""
    return ("$" + block.name if block.kind == "variable" else block.name).lower()


class ContextDigest:
    """A template context as plain data, deterministically: values as they are, lists and tuples as
    tuples, sets sorted, dicts as their items, enums by value, dataclasses (the views of the plan,
    sfbgen/views.py) as (type, every field). A view is digested once, where it first appears, and
    stands as ("ref", digest) wherever it appears again: the pool view its members share is
    serialised once per plan (`memo`, kept by the Renderer; it keeps each object alive, so that an id
    is never reused). Anything else is refused (TypeError), a model object first: the templates see
    views, and a template input this does not know must be taught here, never skipped."""

    def __init__(self, memo: dict[int, tuple]):
        self.memo = memo

    def data(self, value):
        if value is None or type(value) in _SCALARS:
            return value
        data = self.data
        if isinstance(value, (list, tuple)):
            return tuple([data(v) for v in value])
        if isinstance(value, (str, int, float)):  # subclasses (bool is an int)
            return (type(value).__qualname__, repr(value)) if isinstance(value, enum.Enum) else value
        if isinstance(value, dict):
            return ("dict",) + tuple([(k, data(v)) for k, v in value.items()])
        if isinstance(value, (set, frozenset)):
            return ("set",) + tuple(sorted(data(v) for v in value))
        if isinstance(value, enum.Enum):
            return (type(value).__qualname__, value.value)
        known = self.memo.get(id(value))
        if known is not None:
            return known[1]
        kind = type(value)
        names = _FIELDS.get(kind)
        if names is None:
            if issubclass(kind, BaseModel):
                raise TypeError(f"a template context holds the model object {kind.__name__}: give the templates a view (sfbgen/views.py)")
            if dataclasses.is_dataclass(kind):
                names = tuple(f.name for f in dataclasses.fields(kind))
            elif isinstance(value, PurePath):
                return ("path", str(value))
            else:
                raise TypeError(f"a template context holds a {kind.__name__}, which ContextDigest does not know")
            _FIELDS[kind] = names
        plain = (kind.__qualname__,) + tuple([(n, data(getattr(value, n, None))) for n in names])
        reference = ("ref", hashlib.sha256(repr(plain).encode("utf-8")).hexdigest())
        self.memo[id(value)] = (value, reference)
        return reference


_SCALARS = frozenset({str, int, float, bool})
_FIELDS: dict[type, tuple[str, ...]] = {}  # the fields ContextDigest reads, by type


# The shape of plan.json, read back by `sfbgen diff` (sfbgen/difference.py validates it): raised when
# the shape changes. A plan.json without it was written before the field existed, in the same shape.
PLAN_FORMAT_VERSION = 1


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
        "format_version": PLAN_FORMAT_VERSION,
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
