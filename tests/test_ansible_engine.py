"""The generated playbook run by the real engine (issue 19, item 7): `ansible-playbook` on the bundle of
every sample, against simulated Windows hosts.

tests/ansible_standin/ holds a stand-in `ansible.windows` collection (win_command, win_powershell,
win_copy, win_stat, win_reboot, win_file) put first on ANSIBLE_COLLECTIONS_PATH. Every host of the
bundle's inventory is overridden by a second inventory to `ansible_connection: local` with its own
`ansible_python_interpreter` (a wrapper naming the host), so the modules run on this machine, answer
from a scenario table (exit codes per host and script, in call order) and write a record (JSONL) of
every call. The assertions read that record and the run's exit code: what the engine did, not the
YAML's text. Scenarios run concurrently (a thread pool), each its own ansible-playbook process: nine
runs (every sample: all succeed, --check; the reference sample: failures, a CA wait) and one refused
bundle, about 80 s on the 2-core machine when it is otherwise idle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sfbgen.compiler import compile_file
from tests.conftest import VALID_SAMPLES

STANDIN = Path(__file__).parent / "ansible_standin"
SLEEP = 0.4  # seconds each simulated script takes: long enough for overlap in a wave to show


@dataclass
class Run:
    name: str
    sample: str
    returncode: int
    output: str
    record: list[dict]
    steps: list[dict]  # the runbook, from the compiled plan
    summary: dict  # <bundle>.run/last-run.json
    summary_path: Path
    edges: set[str]  # the Edge Servers (the inventory's sfbgen_edge group)

    def scripts(self, host: str | None = None) -> list[dict]:
        """The win_command calls of the steps' scripts (Test-Bundle.ps1 excluded), in the order they started."""
        calls = [r for r in self.record if r["module"] == "win_command" and r["script"] != "Test-Bundle.ps1"]
        return sorted((c for c in calls if host in (None, c["host"])), key=lambda c: c["start"])

    def step_calls(self) -> dict[str, list[dict]]:
        """Each runbook step's script calls (a step restarted runs its script again), matched by host and
        by the order of that host's steps with that script: the stand-in knows only host and script."""
        mapping: dict[str, list[dict]] = {}
        for host in {s["server"] for s in self.steps}:
            calls = self.scripts(host)
            own = [s for s in self.steps if s["server"] == host and s["script"]]
            position = 0
            for call in calls:
                # A call after a 3010 of the same script is that step run again.
                previous = mapping.get(own[position - 1]["id"]) if position else None
                if previous and previous[-1]["rc"] == 3010 and previous[-1]["script"] == call["script"]:
                    previous.append(call)
                    continue
                while own[position]["script"].split("/")[-1] != call["script"]:
                    position += 1
                mapping.setdefault(own[position]["id"], []).append(call)
                position += 1
        return mapping

    def order(self) -> list[str]:
        """The steps whose scripts ran, in the order they started."""
        first = {step: calls[0]["start"] for step, calls in self.step_calls().items()}
        return sorted(first, key=first.get)

    def not_done(self) -> dict[str, dict]:
        return {item["id"]: item for item in self.summary.get("not_done", [])}


def _signed_bundle(sample: Path, out: Path):
    from cryptography.hazmat.primitives import serialization

    from sfbgen.authenticode import SigningKey
    from sfbgen.signing import make_codesign_certificate

    key, cert = make_codesign_certificate("sfbgen engine test", key_size=2048)
    signer = SigningKey(cert, key)
    result = compile_file(sample, out, signer)
    trust = out.parent / f"{sample.stem}-root.pem"
    trust.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    steps = [{"id": s.id, "server": s.server, "script": s.script, "after": list(s.after), "copies": list(s.copies),
              "task": s.task} for s in result.plan.steps]
    return trust, signer.thumbprint, steps


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    shutil.which("ansible-playbook") or pytest.fail("ansible-playbook is not installed: pip install -e '.[test]'")
    root = tmp_path_factory.mktemp("engine")
    made = {}
    for sample in VALID_SAMPLES:
        bundle = root / "bundles" / sample.stem
        made[sample.stem] = (bundle, *_signed_bundle(sample, bundle))
    return root, made


def _run(root: Path, made: dict, sample: str, name: str, scenario: dict, *, check: bool = False,
         extra: dict | None = None) -> Run:
    """One ansible-playbook run of `sample`'s bundle (a copy of it, so runs never share a work folder)."""
    source, trust, signer, steps = made[sample]
    work = root / "runs" / f"{sample}-{name}"
    bundle = work / "bundle"
    shutil.copytree(source, bundle, symlinks=True)
    hosts = sorted({s["fqdn"] for s in json.loads((bundle / "plan.json").read_text())["servers"]})
    (work / "py").mkdir()
    inventory = {"all": {"hosts": {}}}
    for host in hosts:
        wrapper = work / "py" / host
        wrapper.write_text(f"#!/bin/sh\nSFBGEN_STANDIN_HOST={host} exec {sys.executable} \"$@\"\n")
        wrapper.chmod(0o755)
        inventory["all"]["hosts"][host] = {"ansible_connection": "local", "ansible_shell_type": "sh",
                                           "ansible_python_interpreter": str(wrapper)}
    (work / "hosts.yml").write_text(json.dumps(inventory))
    produces: dict = {}
    by_id = {s["id"]: s for s in steps}
    for step in steps:  # what the copy steps fetch: the step each waits for produces it (on exit 0)
        for item in step["copies"]:
            (maker,) = [by_id[a] for a in step["after"]]
            source_host, _, file = item.split("/")
            assert maker["server"] == source_host
            produces.setdefault(source_host, {}).setdefault(maker["script"].split("/")[-1], []).append("out/" + file)
    (work / "remote").mkdir()
    (work / "scenario.json").write_text(json.dumps({"sleep": SLEEP, "produces": produces, **scenario}))
    record = work / "record.jsonl"
    record.touch()
    variables = {
        "sfbgen_trust": str(trust), "sfbgen_signer": signer, "sfbgen_command": [sys.executable, "-m", "sfbgen"],
        # runas over a local connection: the stand-in become is this same user (an admin, so Ansible
        # needs no temporary-file ownership change), with become configured as on a real run.
        "sfbgen_run_user": os.environ.get("USER") or "root", "sfbgen_run_password": "not used",
        "sfbgen_edge_user": "edge-admin", "sfbgen_edge_password": "not used", "sfbgen_pfx_password": "pfx secret",
        # Every Windows path is used literally as a local file name under this folder (module_utils/standin.py).
        "sfbgen_remote_root": str(work / "remote"), "sfbgen_topology_published": True, **(extra or {}),
    }
    env = {
        "PATH": os.environ["PATH"], "HOME": str(work), "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(work / "tmp"), "ANSIBLE_COLLECTIONS_PATH": str(STANDIN),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false", "ANSIBLE_FORKS": "10", "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "false", "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_DEPRECATION_WARNINGS": "false", "ANSIBLE_PIPELINING": "true", "SFBGEN_STANDIN_SCENARIO": str(work / "scenario.json"),
        "SFBGEN_STANDIN_RECORD": str(record),
        "SFBGEN_STANDIN_LIB": str(STANDIN / "ansible_collections/ansible/windows/plugins/module_utils"),
    }
    argv = ["ansible-playbook", "-i", "inventory.yml", "-i", str(work / "hosts.yml"), "site.yml",
            "-e", json.dumps(variables)] + (["--check"] if check else [])
    done = subprocess.run(argv, cwd=bundle / "ansible", capture_output=True, text=True, env=env, timeout=300)
    lines = [json.loads(line) for line in record.read_text().splitlines() if line.strip()] if record.exists() else []
    summary_path = Path(str(bundle) + ".run") / "last-run.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    groups = yaml.safe_load((bundle / "ansible" / "inventory.yml").read_text())["all"]["children"]
    edges = set((groups.get("sfbgen_edge") or {}).get("hosts") or {})
    return Run(name, sample, done.returncode, done.stdout + done.stderr, lines, steps, summary, summary_path, edges)


def _waves(steps: list[dict]) -> dict[str, int]:
    wave: dict[str, int] = {}
    for step in steps:  # the plan lists the steps in wave order
        wave[step["id"]] = 1 + max((wave[a] for a in step["after"]), default=0)
    return wave


def _closure(steps: list[dict], roots: set[str]) -> set[str]:
    """`roots` and every step that waits on one of them, directly or not."""
    found = set(roots)
    for step in steps:  # in wave order: what a step waits for comes before it
        if any(a in found for a in step["after"]):
            found.add(step["id"])
    return found


def _hosts_in_wave(steps: list[dict], step_id: str) -> set[str]:
    waves = _waves(steps)
    return {s["server"] for s in steps if waves[s["id"]] == waves[step_id]}


SAMPLES = [p.stem for p in VALID_SAMPLES]

# The reference sample's failures, each in a wave of its own kind (asserted below): med01's step 2 fails in
# a wave of several servers; fe02's step 2 asks for two restarts, then succeeds; med02's step 2 asks for
# restarts past the bound (2 here); fe03's second hop fails in the pre-flight; edge02's step 3 fails alone
# in its wave. None waits on another, so one run covers them all (each run costs the engine ~20 s).
FAILURES = {
    "codes": {"med01.contoso.com": {"2-Setup-Components.ps1": [1]},
              "edge02.contoso.com": {"3-Request-Certificates.ps1": [5]},
              "fe02.contoso.com": {"2-Setup-Components.ps1": [3010, 3010, 0]},
              "med02.contoso.com": {"2-Setup-Components.ps1": [3010]}},
    "powershell": {"fe03.contoso.com": {"second hops": "the installation media cannot be read from this session as "
                                                      "CONTOSO\\sfbgen: a second hop. Give the run delegation"}},
}
FAILED_ROOTS = {"med01.contoso.com:2", "med02.contoso.com:2", "fe03.contoso.com:1", "edge02.contoso.com:3"}
SCENARIOS = {
    "all-succeed": ({}, {}),
    "check": ({}, {"check": True}),
    "failures": (FAILURES, {"extra": {"sfbgen_max_restarts": 2}}),
    "ca-wait": ({"codes": {"edge01.contoso.com": {"3-Request-Certificates.ps1": [3]}}}, {}),
    "not-published": ({}, {"extra": {"sfbgen_topology_published": False}}),
}
RUNS = [(sample, name) for sample in SAMPLES for name in ("all-succeed", "check")] + [
    ("contoso", name) for name in ("failures", "ca-wait")] + [("standard-edition", "not-published")]


@pytest.fixture(scope="module")
def runs(bundles):
    root, made = bundles

    def one(job):
        sample, name = job
        scenario, options = SCENARIOS[name]
        return job, _run(root, made, sample, name, scenario, check=options.get("check", False), extra=options.get("extra"))

    # Each run is its own ansible-playbook process; most of a run's time is its modules' start-up.
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(one, RUNS))


def _assert_waits_respected(run: Run) -> None:
    """Each script started after every script step it waits for (through copy and manual steps) ended."""
    calls = run.step_calls()
    by_id = {s["id"]: s for s in run.steps}
    for step_id, mine in calls.items():
        pending, nearest = list(by_id[step_id]["after"]), set()
        while pending:
            current = pending.pop()
            (nearest.add if by_id[current]["script"] else pending.extend)(
                current if by_id[current]["script"] else by_id[current]["after"])
        for after in nearest:
            assert calls[after][-1]["end"] <= mine[0]["start"], (step_id, after)


def _assert_not_done_is_exactly(run: Run, roots: set[str]) -> None:
    """What is not done is the failed or waiting steps and what waits on them; everything else ran."""
    expected = _closure(run.steps, roots)
    assert set(run.not_done()) == expected, sorted(set(run.not_done()) ^ expected)
    ran = set(run.step_calls())
    scripts = {s["id"] for s in run.steps if s["script"]}
    assert scripts - expected <= ran
    assert not (ran & (expected - roots))  # nothing that waits on a failure ran
    for step in expected - roots:
        assert run.not_done()[step]["state"] in ("blocked", "not ready"), (step, run.not_done()[step])


@pytest.mark.parametrize("sample", SAMPLES)
def test_everything_succeeds_every_step_once_in_order_and_in_parallel(runs, sample):
    run = runs[(sample, "all-succeed")]
    assert run.returncode == 0, run.output[-3000:]
    calls = run.step_calls()
    with_script = [s for s in run.steps if s["script"]]
    assert sorted(calls) == sorted(s["id"] for s in with_script)
    assert all(len(c) == 1 and c[0]["rc"] == 0 for c in calls.values())
    _assert_waits_respected(run)
    assert run.summary["not_done"] == [] and sorted(run.summary["done"]) == sorted(s["id"] for s in run.steps)
    for step in with_script:  # step 3's secrets on standard input, never on its command line
        call = calls[step["id"]][0]
        if call["script"] == "3-Request-Certificates.ps1":
            assert "-SecretsFromInput" in call["arguments"] and json.loads(call["stdin"])["PfxPassword"] == "pfx secret"
            assert not any("pfx secret" in a for a in call["argv"])
        else:
            assert call["stdin"] is None
        assert "-WhatIf" not in call["arguments"] and call["argv"][:6] == [
            "powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "AllSigned", "-File"]
    # Every copy step put its files beside the scripts, from a private folder on the controller, and the
    # controller kept none of them.
    for step in run.steps:
        for item in step["copies"]:
            (placed,) = [r for r in run.record if r["module"] == "win_copy" and r["host"] == step["server"]
                         and r["dest"].endswith("\\" + item.split("/")[-1])]
            assert placed["src_mode"] == "0o600" and placed["src_folder_mode"] == "0o700", placed
    fetched = Path(run.summary_path).parent / "fetched"
    assert not fetched.exists() or not [p for p in fetched.rglob("*") if p.is_file()]
    # Parallel where the waves allow: in each wave with scripts on several servers, scripts of different
    # servers ran at the same time (one after another, no two would overlap).
    waves = _waves(run.steps)
    for number in sorted(set(waves.values())):
        wave = [calls[s["id"]][0] for s in with_script if waves[s["id"]] == number]
        if len({c["host"] for c in wave}) > 1:
            assert any(a["host"] != b["host"] and a["start"] < b["end"] and b["start"] < a["end"]
                       for a in wave for b in wave), (number, sorted({c["host"] for c in wave}))


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_server_is_checked_before_its_first_step(runs, sample):
    """The execution policy and the staging folder, the copy, Test-Bundle.ps1, then the second hops."""
    run = runs[(sample, "all-succeed")]
    for host in {s["server"] for s in run.steps}:
        mine = sorted((r for r in run.record if r["host"] == host), key=lambda r: r["start"])
        labels = [r.get("name") or r.get("script") or r["module"] for r in mine]
        assert labels[:4] == ["execution policy and staging folder", "win_copy", "Test-Bundle.ps1", "second hops"], (host, labels)
        staging, hops = mine[0]["parameters"], mine[3]["parameters"]
        assert staging["Weaker"] == ["RemoteSigned", "Unrestricted", "Bypass"]
        assert staging["Scopes"] == ["MachinePolicy", "UserPolicy"]
        assert staging["Folder"] == staging["Root"] + "\\" + host
        edge = host in run.edges
        assert hops["DomainMember"] in (not edge, str(not edge))
        assert hops["Media"]  # the installation media the server reads


def test_restarts_failures_and_a_failed_second_hop_stay_where_they_happen(runs):
    run = runs[("contoso", "failures")]
    assert run.returncode != 0
    calls = run.step_calls()
    # Two restarts, each between two runs of the script, then done; its pool went on.
    assert [c["rc"] for c in calls["fe02.contoso.com:2"]] == [3010, 3010, 0]
    reboots = sorted((r for r in run.record if r["module"] == "win_reboot"), key=lambda r: r["start"])
    fe02 = [r for r in reboots if r["host"] == "fe02.contoso.com"]
    script = calls["fe02.contoso.com:2"]
    assert len(fe02) == 2
    assert script[0]["end"] <= fe02[0]["start"] <= fe02[0]["end"] <= script[1]["start"]
    assert script[1]["end"] <= fe02[1]["start"] <= fe02[1]["end"] <= script[2]["start"]
    assert "fe02.contoso.com:3" in calls
    # Past the bound (sfbgen_max_restarts=2): the first run and two restarts, then the step fails.
    assert [c["rc"] for c in calls["med02.contoso.com:2"]] == [3010] * 3
    assert len([r for r in reboots if r["host"] == "med02.contoso.com"]) == 2
    not_done = run.not_done()
    assert not_done["med02.contoso.com:2"]["state"] == "failed" and "sfbgen_max_restarts" in not_done["med02.contoso.com:2"]["reason"]
    # A failure in a wave of several servers.
    assert len(_hosts_in_wave(run.steps, "med01.contoso.com:2")) > 1
    assert not_done["med01.contoso.com:2"]["state"] == "failed" and "exited 1" in not_done["med01.contoso.com:2"]["reason"]
    assert len(calls["med01.contoso.com:2"]) == 1
    # fe03's second hop failed: none of its steps ran, the reason names the second hop.
    assert not any(c["host"] == "fe03.contoso.com" for c in run.scripts())
    assert not_done["fe03.contoso.com:1"]["state"] == "not ready" and "second hop" in not_done["fe03.contoso.com:1"]["reason"]
    _assert_not_done_is_exactly(run, FAILED_ROOTS)
    _assert_waits_respected(run)
    # The last play ran and listed them.
    assert "med01.contoso.com:2 on med01.contoso.com: failed" in run.output
    assert "steps are not done" in run.output


def test_a_wait_for_the_certification_authority_is_its_own_outcome(runs):
    run = runs[("contoso", "ca-wait")]
    assert run.returncode != 0
    not_done = run.not_done()
    waiting = not_done["edge01.contoso.com:3-request"]
    assert waiting["state"] == "waiting" and "responses/edge01.contoso.com/" in waiting["reason"]
    assert not any(item["state"] == "failed" for item in not_done.values())
    _assert_not_done_is_exactly(run, {"edge01.contoso.com:3-request"})
    assert "1 waiting for the certification authority" in run.output


def test_a_failure_alone_in_its_wave_ends_nothing_else(runs):
    run = runs[("contoso", "failures")]
    assert _hosts_in_wave(run.steps, "edge02.contoso.com:3") == {"edge02.contoso.com"}
    assert run.returncode != 0
    failed = run.not_done()["edge02.contoso.com:3"]
    assert failed["state"] == "failed" and "exited 5" in failed["reason"]
    # What follows it in later waves and does not wait on a failure went on: edge01's last step, and the
    # summary (the last play) listed it.
    assert "edge01.contoso.com:4" in run.step_calls() or "edge01.contoso.com:4" in _closure(run.steps, FAILED_ROOTS)
    assert run.step_calls()["edge01.contoso.com:3"]
    assert "edge02.contoso.com:3 on edge02.contoso.com: failed" in run.output
    assert "3 failed" in run.output and "1 on a server not ready" in run.output


def test_a_persons_step_is_its_own_outcome_and_holds_what_waits_on_it(runs):
    """Topology Builder publishes the topology: until the run says it is published, the steps after it wait."""
    run = runs[("standard-edition", "not-published")]
    assert run.returncode != 0
    publish = next(s for s in run.steps if s["task"] == "publish")
    assert run.not_done()[publish["id"]]["state"] == "manual"
    assert "sfbgen_topology_published=true" in run.not_done()[publish["id"]]["reason"]
    _assert_not_done_is_exactly(run, {publish["id"]})
    assert "1 for a person" in run.output


@pytest.mark.parametrize("sample", SAMPLES)
def test_check_mode_runs_every_script_with_whatif_and_copies_nothing(runs, sample):
    run = runs[(sample, "check")]
    assert run.returncode == 0, run.output[-3000:]
    calls = run.step_calls()
    assert sorted(calls) == sorted(s["id"] for s in run.steps if s["script"])  # the whole plan walked
    assert all(c["whatif"] and c["arguments"][-1] == "-WhatIf" for c in run.scripts())
    assert not [r for r in run.record if r["module"] == "win_reboot"]
    assert not [r for r in run.record if r["module"] in ("win_copy", "win_stat") and not r.get("directory")]
    for step in run.steps:
        if step["copies"]:
            assert "would fetch" in run.output and step["id"] in run.output
    assert run.summary["check_mode"] is True and run.summary["not_done"] == []


def test_the_controller_refuses_a_bundle_it_cannot_verify(bundles):
    root, made = bundles
    run = _run(root, made, SAMPLES[0], "wrong-signer", {}, extra={"sfbgen_signer": "00" * 20})
    assert run.returncode != 0 and "Verify the bundle" in run.output
    assert run.record == []  # no server was touched
