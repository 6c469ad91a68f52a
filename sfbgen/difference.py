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

import json
from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import DiagnosticsError, UsageError

MAX_PLAN_BYTES = 256 * 1024 * 1024
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
    if path.stat().st_size > MAX_PLAN_BYTES:
        raise UsageError(f"{path} is larger than a plan sfbgen writes")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or "servers" not in document or "runbook" not in document:
            raise ValueError("no servers or runbook")
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a plan.json sfbgen writes: {exc}") from exc
    return Snapshot(name, document)


def _is_topology(path: Path) -> bool:
    return not path.is_dir() and path.suffix.lower() != ".json"


def _planned(path: Path, signer: str):
    """(plan, meta, renderer) of a topology file, or raise its diagnostics."""
    import dataclasses

    from .api import check_file
    from .plan import build_plan
    from .render import Meta, Renderer

    result = check_file(path, certificates=False)
    if not result.ok:
        sources = {result.source.name: result.source.text} if result.source else {}
        raise DiagnosticsError(result.diagnostics, sources)
    plan = build_plan(result.topology)
    meta = Meta.of(result.topology, result.source.name, result.source.digest)
    if signer:
        meta = dataclasses.replace(meta, signer=signer)  # every script names the signer: as the other side
    return plan, meta, Renderer(plan, meta)


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
    from .compiler import work_digests
    from .render import plan_document

    plan, meta, _ = _planned(path, signer)
    return Snapshot(str(path), plan_document(plan, meta, work_digests(plan, meta)))


def snapshots(old: Path, new: Path) -> tuple[Snapshot, Snapshot]:
    """Both sides. Two topology files are compared without rendering the servers whose inputs did not
    change: a server whose rendering fingerprint is the same on both sides has the same scripts, so its
    fingerprint stands in for its work digests; only the others are rendered. Where the machine has
    two cores, each side is read, planned and rendered in its own process, the two exchanging only
    their fingerprints."""
    old, new = Path(old), Path(new)
    if not (_is_topology(old) and _is_topology(new)):
        before = snapshot(old)
        return before, snapshot(new, signer=before.document.get("signer", ""))
    small = sum(_size(path) for path in (old, new)) < PARALLEL_MIN_BYTES
    from .resources import usable_cores

    if small or usable_cores() < 2 or "fork" not in _start_methods():
        sides = [_Side(old), _Side(new)]
        for side in sides:
            side.plan()
        return sides[0].snapshot(sides[1].prints), sides[1].snapshot(sides[0].prints)
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
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    child = context.Process(target=_plan_old_side, args=(old, theirs), daemon=True)
    child.start()
    theirs.close()
    try:
        side, failure = _Side(new), None
        try:
            side.plan()
        except DiagnosticsError as exc:
            failure = exc
        kind, payload = _receive(ours)  # OLD's fingerprints, or its diagnostics
        if kind == "errors":
            raise DiagnosticsError(*payload)
        if failure is not None:
            raise failure
        ours.send(side.prints)
        after = side.snapshot(payload)  # while OLD renders its side
        kind, document = _receive(ours)
        return Snapshot(str(old), document), after
    finally:
        ours.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()


def _plan_old_side(path: Path, pipe) -> None:
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


def _receive(pipe):
    try:
        return pipe.recv()
    except EOFError:
        raise RuntimeError("the process comparing the old side ended without an answer") from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reported as a diagnostic when the side is read


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


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

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed_scripts or self.certificates)

    def to_json(self) -> dict:
        return {
            "old": self.old, "new": self.new,
            "servers_added": self.added, "servers_removed": self.removed,
            "scripts_changed": self.changed_scripts, "certificates_to_request_again": self.certificates,
            "steps_to_run": self.steps,
        }


def compare(old: Snapshot, new: Snapshot) -> Difference:
    difference = Difference(old.name, new.name)
    before, after = old.servers, new.servers
    summary = lambda s: {"fqdn": s["fqdn"], "pool": s["pool"], "roles": s.get("roles", [s.get("role")])}
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
    touched = {f"{fqdn}/{name}" for fqdn, names in difference.changed_scripts.items() for name in names}
    touched |= {path for server in difference.added for path in after[server["fqdn"]].get("scripts", [])}
    for step in new.document.get("runbook", []):
        if step.get("script") in touched:
            difference.steps.append({"id": step["id"], "server": step["server"], "action": step["action"], "script": step["script"]})
    return difference


def _code(value: object) -> str:
    from .render import markdown_code

    return "`" + markdown_code(value) + "`"


def markdown(difference: Difference) -> str:
    """The difference as a pull-request comment."""
    lines = [f"### sfbgen: what this change does to the deployment", "", f"From {_code(difference.old)} to {_code(difference.new)}.", ""]
    if difference.empty:
        return "\n".join(lines + ["No server, script or certificate changes: nothing to run again.", ""])
    if difference.added or difference.removed:
        lines += ["**Servers**", ""]
        lines += [f"- added {_code(s['fqdn'])} ({', '.join(s['roles'])}, pool {_code(s['pool'])})" for s in difference.added]
        lines += [f"- removed {_code(s['fqdn'])} ({', '.join(s['roles'])}, pool {_code(s['pool'])}): remove it from the published topology and uninstall it; sfbgen does not" for s in difference.removed]
        lines.append("")
    if difference.changed_scripts:
        lines += ["**Scripts whose work changes** (on servers that exist already)", ""]
        lines += [f"- {_code(fqdn)}: {', '.join(_code(n) for n in names)}" for fqdn, names in sorted(difference.changed_scripts.items())]
        lines.append("")
    if difference.certificates:
        lines += ["**Certificates to request again** (their names change)", "", "| certificate | servers | names before | names after |", "|---|---|---|---|"]
        for c in difference.certificates:
            before = ", ".join(c["old_sans"]) if c["old_sans"] is not None else "(new)"
            lines.append(f"| {_code(', '.join(c['usages']))} for {_code(c['subject'])} | {', '.join(_code(s) for s in c['servers'])} | {_code(before)} | {_code(', '.join(c['new_sans']))} |")
        lines.append("")
    if difference.steps:
        lines += ["**Run again, in this order** (the new runbook's order; each script skips what is done)", ""]
        lines += [f"{i}. {_code(step['id'])}: {step['action']} — {_code(step['script'])}" for i, step in enumerate(difference.steps, 1)]
        lines.append("")
    return "\n".join(lines)
