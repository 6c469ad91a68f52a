"""Differences: what a change of topology does to the deployment, for a pull request.

Both sides become a `Snapshot` — the plan.json document of a compile (servers, pools, roles, each
script's work digest, certificates, the runbook) — whether given as a topology file (compiled in
memory, nothing written), a compiled bundle folder, or a plan.json. Comparing two snapshots says:

- which servers are added and removed;
- which scripts' work changes (their bytes before signing differ: headers carry no metadata, so a
  digest changes only with what the script does);
- which certificates must be requested again because the names they carry change (old → new SANs);
- which steps must run again, and in what order: the new runbook's order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import DiagnosticsError, UsageError
from .display import visible, visible_path
from .render import PLAN_FORMAT_VERSION

if TYPE_CHECKING:
    from pydantic import BaseModel  # imported when first used (_LazyPlan)

# plan.json is read back as untrusted input (a deployed bundle may have been edited by anyone): at most
# this much, with at most this many JSON values (a 5,000-server plan is about 12 MB in 350,000), so that
# what it costs in memory stays in proportion; then checked against its schema (`_Plan`) before use.
MAX_PLAN_BYTES = 64 * 1024 * 1024
MAX_PLAN_VALUES = 4_000_000
# Below this much topology text (about 100 servers), a second process costs more than it saves.
PARALLEL_MIN_BYTES = 8 * 1024


@dataclass
class Snapshot:
    name: str
    document: dict

    @property
    def servers(self) -> dict[str, dict]:
        return {server["fqdn"]: server for server in self.document.get("servers", [])}

    def certificates(self) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for server in self.document.get("servers", []):
            for certificate in server.get("certificates", []):
                entry = found.setdefault(certificate["id"], {**certificate, "servers": []})
                entry["servers"].append(server["fqdn"])
        return found


def _read_plan(path: Path, name: str) -> Snapshot:
    shown = visible_path(path)
    if not path.is_file():  # a FIFO or a device would never end, or never stop
        raise UsageError(f"{shown} is not a plain file: not a plan.json sfbgen writes")
    size = path.stat().st_size
    if size > MAX_PLAN_BYTES:
        raise UsageError(f"{shown} is {size // (1024 * 1024)} MB, larger than a plan sfbgen writes ({MAX_PLAN_BYTES // (1024 * 1024)} MB at most)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {visible(exc.strerror or exc)}") from exc
    try:
        document = read_plan_document(raw)
    except PlanRefused as exc:
        raise UsageError(f"{shown} is not a plan.json sfbgen writes: {exc}") from None
    return Snapshot(name, document)


class PlanRefused(ValueError):
    """An old plan.json that does not have the shape sfbgen writes; says why (every value made visible)."""


def read_plan_document(raw: bytes) -> dict:
    """A plan.json's bytes, parsed and checked against the schema sfbgen writes, as a plain document
    holding only what the schema names; or PlanRefused with the reason."""
    import json

    from pydantic import ValidationError

    if len(raw) > MAX_PLAN_BYTES:
        raise PlanRefused(f"it is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MB")
    # Every JSON value but the first follows a comma or opens a container: an upper bound, counted
    # before parsing, of what the parsed document would hold in memory.
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > MAX_PLAN_VALUES:
        raise PlanRefused(f"it holds up to {values:,} values; a plan holds at most {MAX_PLAN_VALUES:,}")
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise PlanRefused(f"it is not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise PlanRefused("its values are nested deeper than JSON can be read (a plan nests 4 deep)") from None
    except ValueError as exc:  # json.JSONDecodeError, and an integer too long to read
        raise PlanRefused(f"it is not JSON: {visible(str(exc))[:200]}") from None
    if not isinstance(document, dict):
        raise PlanRefused(f"it holds a JSON {type(document).__name__}, not an object")
    version = document.get("format_version")
    if version is not None and (type(version) is not int or version != PLAN_FORMAT_VERSION):
        shown = str(version) if type(version) is int else f"a {type(version).__name__}"
        raise PlanRefused(f"its format_version is {shown[:20]}; this sfbgen reads format {PLAN_FORMAT_VERSION} "
                          "(a newer sfbgen wrote it: diff with that sfbgen)")
    try:
        plan = _Plan.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise PlanRefused(f"{visible(where)[:120]}: {visible(first['msg'])[:200]}") from None
    except RecursionError:
        raise PlanRefused("its values are nested too deep") from None
    return plan.document()


# The schema of plan.json (render.plan_document; certificates.CertificateRequest.to_plan;
# plan.RunbookStep.to_plan). Strict: a string is a string, a number a number. Names are what the
# language's checks let through (FQDNs, role and usage words, the generated file names); free text
# (a site's name, a step's action, a subject) holds no control, escape or invisible character, which no
# topology value can hold (SFB290), and is shown escaped in any case. Fields sfbgen does not compare
# are ignored, and not kept.

def _no_hidden_text(value: str) -> str:
    from .display import is_visible

    if not is_visible(value):
        raise ValueError("holds a control, escape or invisible character, which sfbgen never writes")
    return value


def _schema():
    from typing import Annotated

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

    Fqdn = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,254}$")]
    Word = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]
    FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    ScriptPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,255}/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    StepId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:+-]{1,300}$")]
    CertificateId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:+*-]{1,300}$")]
    Digest = Annotated[str, StringConstraints(pattern=r"^([0-9A-Fa-f]{64})?$")]
    Text = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_no_hidden_text)]

    class Model(BaseModel):
        model_config = ConfigDict(strict=True, extra="ignore")

    class Certificate(Model):
        id: CertificateId
        usages: list[Word] = Field(max_length=16)
        subject: Text
        sans: list[Text] = Field(max_length=10_000)
        authority: Text | None = None
        key_size: int | None = None

    class Server(Model):
        fqdn: Fqdn
        pool: Fqdn
        role: Word | None = None
        roles: list[Word] | None = Field(default=None, max_length=16)
        site: Text | None = None
        scripts: list[ScriptPath] = Field(default_factory=list, max_length=64)
        work: dict[FileName, Digest] = Field(default_factory=dict, max_length=64)
        certificates: list[Certificate] = Field(default_factory=list, max_length=64)

        @model_validator(mode="after")
        def _roles(self):
            if self.roles is None:
                if self.role is None:
                    raise ValueError("a server names neither its roles nor its role")
                self.roles = [self.role]
            return self

    class Step(Model):
        id: StepId
        server: Fqdn
        action: Text
        script: ScriptPath | None = None
        after: list[StepId] = Field(default_factory=list, max_length=100_000)

    class Plan(Model):
        format_version: int | None = None
        topology: Text | None = None
        product: Text | None = None
        source: Text | None = None
        topology_sha256: Text | None = None
        sfbgen: Text | None = None
        signer: Text = ""
        servers: list[Server] = Field(max_length=100_000)
        runbook: list[Step] = Field(max_length=1_000_000)

        def document(self) -> dict:
            return self.model_dump(exclude_none=True)

    return Plan


class _LazyPlan:
    """The schema, built on first use (pydantic's model building costs a few milliseconds)."""

    _model: type[BaseModel] | None = None

    def model_validate(self, document: dict):
        if _LazyPlan._model is None:
            _LazyPlan._model = _schema()
        return _LazyPlan._model.model_validate(document)


_Plan = _LazyPlan()


def _is_topology(path: Path) -> bool:
    return not path.is_dir() and path.suffix.lower() not in (".json", *PUBLISHED_SUFFIXES)


# What Topology Builder saves (.tbxml) and what is published (Get-CsTopology -AsXml > published.xml).
PUBLISHED_SUFFIXES = (".xml", ".tbxml")


def _is_published_document(path: Path) -> bool:
    return not path.is_dir() and path.suffix.lower() in PUBLISHED_SUFFIXES


def _import_options_like(topology):
    """What a published document cannot hold (the media, the certificate authority, the product),
    taken from the topology it is compared with (None: none), so that the difference is what the
    topology changes against what is published, not the settings no published document carries."""
    from .importer import ImportOptions

    options = ImportOptions()
    if topology is None:
        return options
    options.media = topology.media.value if topology.media else None
    options.product = topology.product.value if topology.product else None
    policy = topology.certificates
    if policy is not None and policy.authority == "online" and policy.ca is not None:
        options.ca = policy.ca.value
    elif policy is not None and policy.authority == "offline":
        options.offline_ca = True
    return options


def _compiled(path: Path, text: str | None = None, signer: str = ""):
    """A topology file (or `text` under that name) checked and planned in memory, errors not raised: as
    many servers as one compile may make, no more. `signer`: every script names the signer, as the
    other side's do."""
    from . import compiler
    from .api import compile_path, compile_text

    limits = compiler.Limits(max_servers=compiler.DEFAULT_MAX_SERVERS)
    if text is not None:
        return compile_text(text, str(path), limits=limits, signer=signer)
    return compile_path(path, limits=limits, signer=signer)


def _snapshot_of(result, name: str) -> Snapshot:
    """The plan.json of a compiled side (with every script's work digest), or raise its diagnostics."""
    from .compiler import work_digests
    from .render import plan_document

    result.raise_for_errors()
    assert result.plan is not None and result.meta is not None
    return Snapshot(name, plan_document(result.plan, result.meta, work_digests(result.plan, result.meta)))


def _published_snapshots(old: Path, new: Path) -> tuple[Snapshot, Snapshot]:
    """Sides of which one or both are a published topology or Topology Builder document (issue 21:
    drift against what is published): each document imported as `sfbgen import` imports it, with the
    other side's settings, then planned like a topology file. The topology side is compiled once; OLD's
    diagnostics are reported first, as everywhere else."""
    from .diagnostics import DiagnosticsError
    from .importer import import_file

    topology_side = next((p for p in (old, new) if _is_topology(p)), None)
    topology_result = _compiled(topology_side) if topology_side is not None else None
    if topology_result is not None and topology_side is old:
        topology_result.raise_for_errors()
    options = _import_options_like(topology_result.topology if topology_result is not None else None)
    sides = []
    for path in (old, new):
        if _is_published_document(path):
            imported = import_file(path, options)
            if imported.text is None:
                raise DiagnosticsError(imported.diagnostics)
            sides.append(_snapshot_of(_compiled(path, imported.text), str(path)))
        elif path is topology_side and topology_result is not None:
            sides.append(_snapshot_of(topology_result, str(path)))
        else:
            sides.append(snapshot(path))
    return sides[0], sides[1]


def _planned(path: Path, signer: str):
    """(plan, meta, renderer) of a topology file, or raise its diagnostics."""
    from .render import Renderer

    result = _compiled(path, signer=signer)
    result.raise_for_errors()
    assert result.plan is not None and result.meta is not None
    return result.plan, result.meta, Renderer(result.plan, result.meta)


def snapshot(path: Path, signer: str = "") -> Snapshot:
    """A topology file (compiled in memory; `signer`: the thumbprint the other side was signed with,
    which every script names), a compiled bundle, or a plan.json."""
    path = Path(path)
    if path.is_dir():
        plan = path / "plan.json"
        if not plan.is_file():
            raise UsageError(f"{path} is a folder without plan.json: not a bundle sfbgen compiled")
        return _read_plan(plan, str(path))
    if path.suffix.lower() == ".json":
        return _read_plan(path, str(path))
    return _snapshot_of(_compiled(path, signer=signer), str(path))


def snapshots(old: Path, new: Path) -> tuple[Snapshot, Snapshot]:
    """Both sides. Two topology files are compared without rendering the servers whose inputs did not
    change: a server whose rendering fingerprint is the same on both sides has the same scripts, so its
    fingerprint stands in for its work digests; only the others are rendered. Where the machine has
    two cores, each side is read, planned and rendered in its own process, the two exchanging only
    their fingerprints."""
    old, new = Path(old), Path(new)
    if _is_published_document(old) or _is_published_document(new):
        return _published_snapshots(old, new)
    if not (_is_topology(old) and _is_topology(new)):
        before = snapshot(old)
        return before, snapshot(new, signer=before.document.get("signer", ""))
    small = sum(_size(path) for path in (old, new)) < PARALLEL_MIN_BYTES
    from . import parallel

    if small or not parallel.can_fork():
        pair = [_Side(old), _Side(new)]
        for side in pair:
            side.plan()
        return pair[0].snapshot(pair[1].prints), pair[1].snapshot(pair[0].prints)
    return _snapshots_in_two_processes(old, new)


class _Side:
    """One side of a comparison: its plan, its servers' fingerprints, then its snapshot."""

    def __init__(self, path: Path):
        self.path = path
        self.prints: dict[str, str] = {}

    def plan(self) -> None:
        self.planned = _planned(self.path, "")
        _, _, renderer = self.planned
        self.prints = {server.fqdn: renderer.fingerprint(server) for server in self.planned[0].servers}

    def snapshot(self, theirs: dict[str, str]) -> Snapshot:
        from .render import plan_document

        plan, meta, renderer = self.planned
        work: dict[str, str] = {}
        for server in plan.servers:
            mine = self.prints[server.fqdn]
            if mine == theirs.get(server.fqdn):
                work.update({f"{server.fqdn}/{s.filename}": mine for s in server.scripts})
            else:
                work.update(_rendered_work(renderer, server))
        return Snapshot(str(self.path), plan_document(plan, meta, work))


def _snapshots_in_two_processes(old: Path, new: Path) -> tuple[Snapshot, Snapshot]:
    """OLD in a forked process, NEW in this one: each plans its side and sends the other its
    fingerprints, then renders what differs. A side with errors sends its diagnostics instead;
    OLD's are reported first, as in one process."""
    from .parallel import Partner

    with Partner(_plan_old_side, old) as partner:
        side, failure = _Side(new), None
        try:
            side.plan()
        except DiagnosticsError as exc:
            failure = exc
        kind, payload = partner.receive()  # OLD's fingerprints, or its diagnostics
        if kind == "errors":
            raise DiagnosticsError(*payload)
        if failure is not None:
            raise failure
        partner.send(side.prints)
        after = side.snapshot(payload)  # while OLD renders its side
        kind, document = partner.receive()
        return Snapshot(str(old), document), after


def _plan_old_side(pipe, path: Path) -> None:
    """The forked process's half of `_snapshots_in_two_processes`."""
    side = _Side(path)
    try:
        side.plan()
    except DiagnosticsError as exc:
        # The exception itself does not survive pickling (its arguments are not its constructor's).
        pipe.send(("errors", (exc.diagnostics, exc.sources)))
        return
    pipe.send(("prints", side.prints))
    try:
        theirs = pipe.recv()
    except EOFError:  # NEW had errors: nothing left to do
        return
    pipe.send(("document", side.snapshot(theirs).document))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reported as a diagnostic when the side is read


def _rendered_work(renderer, server) -> dict[str, str]:
    import hashlib

    from .render import to_windows_text

    return {f"{server.fqdn}/{name}": hashlib.sha256(to_windows_text(text)).hexdigest().upper() for name, text in renderer.server(server).items()}


@dataclass
class Difference:
    old: str
    new: str
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changed_scripts: dict[str, list[str]] = field(default_factory=dict)  # server -> script files
    certificates: list[dict] = field(default_factory=list)  # {id, usages, subject, old_sans, new_sans, servers}
    steps: list[dict] = field(default_factory=list)  # the new runbook's steps to run, in order
    # Enterprise Front End pools whose members change: {pool, added, removed, before, after, full_reset}
    pool_changes: list[dict] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed_scripts or self.certificates)

    def to_json(self) -> dict:
        return {
            "old": self.old, "new": self.new,
            "servers_added": self.added, "servers_removed": self.removed,
            "scripts_changed": self.changed_scripts, "certificates_to_request_again": self.certificates,
            "publish_first": not self.empty, "front_end_pools_changed": self.pool_changes,
            "steps_to_run": self.steps,
        }


def compare(old: Snapshot, new: Snapshot) -> Difference:
    difference = Difference(old.name, new.name)
    before, after = old.servers, new.servers
    def summary(s):
        return {"fqdn": s["fqdn"], "pool": s["pool"], "roles": s.get("roles", [s.get("role")])}
    difference.added = [summary(after[f]) for f in after if f not in before]
    difference.removed = [summary(before[f]) for f in before if f not in after]
    for fqdn, server in after.items():
        if fqdn not in before:
            continue
        old_work, new_work = before[fqdn].get("work", {}), server.get("work", {})
        changed = sorted(name for name in old_work.keys() | new_work.keys() if old_work.get(name) != new_work.get(name))
        if changed:
            difference.changed_scripts[fqdn] = changed
    old_certificates, new_certificates = old.certificates(), new.certificates()
    for ident, certificate in new_certificates.items():
        previous = old_certificates.get(ident)
        if previous is None or any(previous.get(k) != certificate.get(k) for k in ("subject", "sans", "usages", "key_size", "authority")):
            difference.certificates.append({
                "id": ident, "usages": certificate["usages"], "subject": certificate["subject"],
                "old_sans": previous["sans"] if previous else None, "new_sans": certificate["sans"],
                "servers": certificate["servers"],
            })
    difference.pool_changes = _front_end_pool_changes(before, after)
    touched = {f"{fqdn}/{name}" for fqdn, names in difference.changed_scripts.items() for name in names}
    touched |= {path for server in difference.added for path in after[server["fqdn"]].get("scripts", [])}
    for step in new.document.get("runbook", []):
        if step.get("script") in touched:
            difference.steps.append({"id": step["id"], "server": step["server"], "action": step["action"], "script": step["script"]})
    return difference


def _front_end_pool_changes(before: dict[str, dict], after: dict[str, dict]) -> list[dict]:
    """Enterprise Front End pools on both sides whose members change. Microsoft: publishing a topology
    in which a pool gains or loses a Front End Server restarts every server of the pool at once, and a
    pool that goes from two Front End Servers to more, or from more to two, needs
    Reset-CsPoolRegistrarState -ResetType FullReset (Skype/SfbServer/manage/topology/add-or-remove-a-front-end-server.md)."""
    def members(servers: dict[str, dict]) -> dict[str, set[str]]:
        pools: dict[str, set[str]] = {}
        for server in servers.values():
            if server.get("role") == "FrontEnd":
                pools.setdefault(server["pool"], set()).add(server["fqdn"])
        return pools

    old, new = members(before), members(after)
    changes = []
    for pool in sorted(old.keys() & new.keys()):
        if old[pool] != new[pool]:
            a, b = len(old[pool]), len(new[pool])
            changes.append({"pool": pool, "added": sorted(new[pool] - old[pool]), "removed": sorted(old[pool] - new[pool]),
                            "before": a, "after": b, "full_reset": (a == 2 and b > 2) or (a > 2 and b == 2)})
    return changes


# Markdown for a pull-request comment, where every value may come from an old plan.json someone edited:
# each is made visible (display.visible: no control character, terminal escape or invisible text),
# then either set in a code span, where Markdown and HTML are not interpreted (a backtick in the value
# cannot end it: it is shown as '), or escaped character by character where it stands as text. In a
# table, a '|' would end the cell even inside a code span (GitHub's tables): it is written '\|'.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>!|~&])")


def _code(value: object, in_table: bool = False) -> str:
    shown = visible(value).replace("`", "'")
    if in_table:
        shown = shown.replace("|", "\\|")
    # A span that starts or ends with a space loses it; one that is all spaces is shown as is.
    return "`" + shown + "`" if shown.strip() else "`" + (shown or " ") + "`"


def _text(value: object) -> str:
    """A value as plain Markdown text: no markup, link, HTML or table break can come out of it."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", visible(value))


def _roles(server: dict) -> str:
    return ", ".join(_text(role) for role in server["roles"])


def markdown(difference: Difference) -> str:
    """The difference as a pull-request comment."""
    lines = ["### sfbgen: what this change does to the deployment", "", f"From {_code(visible_path(difference.old))} to {_code(visible_path(difference.new))}.", ""]
    if difference.empty:
        return "\n".join(lines + ["No server, script or certificate changes: nothing to run again.", ""])
    if difference.added or difference.removed:
        lines += ["**Servers**", ""]
        lines += [f"- added {_code(s['fqdn'])} ({_roles(s)}, pool {_code(s['pool'])})" for s in difference.added]
        lines += [f"- removed {_code(s['fqdn'])} ({_roles(s)}, pool {_code(s['pool'])}): remove it from the published topology and uninstall it; sfbgen does not" for s in difference.removed]
        lines.append("")
    if difference.changed_scripts:
        lines += ["**Scripts whose work changes** (on servers that exist already)", ""]
        lines += [f"- {_code(fqdn)}: {', '.join(_code(n) for n in names)}" for fqdn, names in sorted(difference.changed_scripts.items())]
        lines.append("")
    if difference.certificates:
        lines += ["**Certificates to request again** (their names change)", "", "| certificate | servers | names before | names after |", "|---|---|---|---|"]
        for c in difference.certificates:
            before = ", ".join(c["old_sans"]) if c["old_sans"] is not None else "(new)"
            cell = lambda value: _code(value, in_table=True)  # noqa: E731
            lines.append(f"| {cell(', '.join(c['usages']))} for {cell(c['subject'])} | {', '.join(cell(s) for s in c['servers'])} | {cell(before)} | {cell(', '.join(c['new_sans']))} |")
        lines.append("")
    for change in difference.pool_changes:
        pool = _code(change["pool"])
        lines += [f"**The pool {pool} changes members ({change['before']} to {change['after']} Front End Servers)**", ""]
        if change["removed"]:
            lines.append(f"- before publishing, drain the servers that leave (Stop-CsWindowsService -Graceful on {', '.join(_code(f) for f in change['removed'])}), then stop their services")
        lines.append("- publishing this topology restarts every server of the pool at once, and the pool is offline meanwhile: publish outside business hours")
        if change["full_reset"]:
            lines.append(f"- the pool goes from two Front End Servers to more, or from more to two: after publishing, run Reset-CsPoolRegistrarState -ResetType FullReset -PoolFqdn {pool} (with three or more servers, at least three must be running)")
        lines.append("- then restart the pool's Front End Servers one at a time")
        lines += ["- source: Microsoft, add-or-remove-a-front-end-server.md (Skype for Business Server 2015)", ""]
    lines += ["**Publish first**: publish the changed topology (Topology Builder, or Publish-CsTopology then Enable-CsTopology) before running anything below: every script checks the published topology before it changes anything.", ""]
    if difference.steps:
        lines += ["**Run again, in this order** (the new runbook's order; each script skips what is done)", ""]
        lines += [f"{i}. {_code(step['id'])}: {_text(step['action'])} — {_code(step['script'])}" for i, step in enumerate(difference.steps, 1)]
        lines.append("")
    return "\n".join(lines)
