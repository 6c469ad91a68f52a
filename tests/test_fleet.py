"""The fleet (issue 15): the Ansible inventory and playbook are derived from the plan, cover every
runbook step exactly once in an order that respects every dependency, and pass Ansible's own tools."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from sfbgen.compiler import compile_file
from sfbgen.fleet import safe
from tests.conftest import VALID_SAMPLES


class _Loader(yaml.SafeLoader):
    """YAML as Ansible reads it: `!unsafe` marks a value Ansible never templates (a topology's paths)."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _load(text):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader with one more scalar tag


FILES = ("ansible/inventory.yml", "ansible/site.yml", "ansible/group_vars/all.yml", "ansible/tasks/prepare.yml",
         *(f"ansible/tasks/{name}" for name in __import__("sfbgen.fleet", fromlist=["STATIC_TASKS"]).STATIC_TASKS))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet")
    return {sample.stem: (compile_file(sample, out / sample.stem), out / sample.stem) for sample in VALID_SAMPLES}


def _plan_steps(result) -> list[dict]:
    import json

    return json.loads(result.files["plan.json"])["runbook"]


def _wave_entries(playbook: list[dict]) -> list[tuple[int, str, dict]]:
    """(play index, server, step entry) for every step in the wave plays' tables (sfbgen_wave)."""
    found = []
    for index, play in enumerate(playbook):
        for server, entries in ((play.get("vars") or {}).get("sfbgen_wave") or {}).items():
            found += [(index, server, entry) for entry in entries]
    return found


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_every_runbook_step_exactly_once_after_everything_it_waits_for(bundles, sample):
    result, _ = bundles[sample]
    assert set(FILES) == {name for name in result.files if name.startswith("ansible/")}
    steps = _plan_steps(result)
    playbook = _load(result.files["ansible/site.yml"])
    entries = _wave_entries(playbook)
    ids = [entry["id"] for _, _, entry in entries]
    assert sorted(ids) == sorted(s["id"] for s in steps) and len(ids) == len(set(ids))
    play_of = {entry["id"]: index for index, _, entry in entries}
    server_of = {entry["id"]: server for _, server, entry in entries}
    for step in steps:
        assert all(play_of[after] < play_of[step["id"]] for after in step["after"]), step
        assert server_of[step["id"]] == step["server"] and step["server"] in playbook[play_of[step["id"]]]["hosts"]
        entry = next(e for _, _, e in entries if e["id"] == step["id"])
        assert entry["after"] == step["after"]
    # One task per wave play runs each host's own steps, guarded by what they wait for.
    for play in playbook:
        if "sfbgen_wave" in (play.get("vars") or {}):
            (task,) = play["tasks"]
            assert task["loop"] == "{{ sfbgen_wave[inventory_hostname] }}" and play["strategy"] == "{{ sfbgen_strategy | default('free') }}"
            assert "sfbgen_step.after | difference(sfbgen_done_everywhere) | length == 0" in task["when"]
            assert play["ignore_unreachable"] is True and play["any_errors_fatal"] is False
    # The first play verifies the bundle on the controller; the last one sums up, on the controller too.
    assert playbook[0]["hosts"] == "localhost" and "verify" in playbook[0]["tasks"][1]["ansible.builtin.command"]["argv"]
    assert "--signer', sfbgen_signer" in playbook[0]["tasks"][1]["ansible.builtin.command"]["argv"]
    assert playbook[-1]["hosts"] == "localhost" and [s["id"] for s in playbook[-1]["vars"]["sfbgen_runbook"]] == [s["id"] for s in steps]


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_scripts_run_are_the_runbooks_with_the_password_on_stdin_where_needed(bundles, sample):
    result, _ = bundles[sample]
    steps = {s["id"]: s for s in _plan_steps(result)}
    for _, _, entry in _wave_entries(_load(result.files["ansible/site.yml"])):
        step = steps[entry["id"]]
        assert (entry["task"] == "script") == bool(step["script"])
        if step["script"]:
            assert step["script"] == f"{step['server']}/{entry['script']}"
            script = result.files[step["script"]].decode("utf-8-sig")
            assert ("[switch]$SecretsFromInput" in script) == entry["secrets"], entry["id"]


def test_steps_are_carried_out_by_their_task_never_by_their_id_or_file_name(bundles):
    """The playbook dispatches on the plan's typed attributes: renaming a step's file or id changes
    nothing of how it runs; a task no file carries out is refused."""
    import dataclasses

    from sfbgen import fleet

    plan = bundles["contoso"][0].plan
    renamed = [dataclasses.replace(s, id=s.id.replace(":", ":x"), after=tuple(a.replace(":", ":x") for a in s.after),
                                   script=s.script and s.script.replace("3-Request", "Z-Request").replace("Export", "Z-Export"))
               for s in plan.steps]
    playbook = _load(fleet.playbook(dataclasses.replace(plan, steps=renamed)))
    entries = {e["id"]: e for _, _, e in _wave_entries(playbook)}
    for step in renamed:
        entry = entries[step.id]
        assert entry["task"] == step.task and entry.get("secrets", False) == step.takes_secrets
        assert entry.get("copies", []) == list(step.copies)
    assert {s.task for s in plan.steps} <= set(fleet.TASKS)
    for task in fleet.TASKS:  # each task has its file
        assert f"step-{task}.yml" in fleet.STATIC_TASKS
    with pytest.raises(ValueError):
        fleet.playbook(dataclasses.replace(plan, steps=[dataclasses.replace(plan.steps[0], task="unknown")]))


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_inventory_groups_every_server_by_pool_and_role_without_credentials(bundles, sample):
    result, _ = bundles[sample]
    text = result.files["ansible/inventory.yml"].decode("utf-8")
    inventory = _load(text)["all"]["children"]
    servers = {s["fqdn"] for s in __import__("json").loads(result.files["plan.json"])["servers"]}
    domain = set(inventory["sfbgen_domain"]["hosts"])
    edge = set((inventory.get("sfbgen_edge") or {}).get("hosts") or {})
    assert domain | edge == servers and not domain & edge
    in_pools = [h for group in inventory["sfbgen_servers"]["children"].values() for h in group["hosts"]]
    assert sorted(in_pools) == sorted(servers)
    if edge:
        edge_vars = inventory["sfbgen_edge"]["vars"]
        assert edge_vars["ansible_port"] == 5986 and edge_vars["ansible_winrm_scheme"] == "https"
        assert edge_vars["ansible_password"] == "{{ sfbgen_edge_password }}"  # a placeholder, never a value
    # Kerberos unless the run chooses CredSSP; Kerberos delegation when it chooses that (group_vars).
    assert inventory["sfbgen_domain"]["vars"]["ansible_winrm_transport"] == "{{ 'credssp' if sfbgen_delegation == 'credssp' else 'kerberos' }}"
    assert inventory["sfbgen_domain"]["vars"]["ansible_winrm_kerberos_delegation"] == "{{ sfbgen_delegation == 'kerberos' }}"
    # The WinRM connection is the servers' only: the playbook's controller plays run locally.
    assert inventory["sfbgen_servers"]["vars"]["ansible_connection"] == "winrm"
    assert "vars" not in _load(text)["all"]


def test_the_steps_run_as_the_delegated_account_and_restarts_are_bounded(bundles):
    result, _ = bundles["contoso"]
    settings = _load(result.files["ansible/group_vars/all.yml"])
    assert settings["sfbgen_delegation"] == "become" and settings["sfbgen_max_restarts"] == 3
    assert settings["sfbgen_become"] == "{{ sfbgen_delegation == 'become' and 'sfbgen_edge' not in group_names }}"
    script = _load(result.files["ansible/tasks/step-script.yml"])
    (run,) = [t for t in script if "ansible.windows.win_command" in t]
    assert run["become"] == "{{ sfbgen_become }}" and run["become_method"] == "ansible.builtin.runas"
    assert run["become_user"] == "{{ sfbgen_become_user }}" and run["check_mode"] is False
    assert "-WhatIf" in run["ansible.windows.win_command"]["argv"]
    prepare = _load(result.files["ansible/tasks/prepare.yml"])[0]
    hops = next(t for t in prepare["block"] if "second hop" in t["name"])
    assert hops["become"] == "{{ sfbgen_become }}" and "rescue" in prepare
    second = _load(result.files["ansible/site.yml"])[1]["vars"]["sfbgen_second_hops"]
    assert second["fe01.contoso.com"]["media"] == "\\\\files.contoso.com\\Media\\SfB2015"
    assert second["fe01.contoso.com"]["authorities"] == ["ca01.contoso.com\\Contoso Issuing CA"]
    assert second["edge01.contoso.com"]["authorities"] == []  # its certificates come from an offline CA
    assert second["edge01.contoso.com"]["domain_member"] is False


def test_the_preflight_scripts_are_windows_powershell_without_an_error(bundles, pwsh):
    result, _ = bundles["contoso"]
    prepare = _load(result.files["ansible/tasks/prepare.yml"])[0]
    scripts = [t["ansible.windows.win_powershell"]["script"] for t in prepare["block"] if "ansible.windows.win_powershell" in t]
    assert len(scripts) == 2
    for script in scripts:
        assert pwsh.error_nodes(script.encode("utf-8")) == []
        assert script.startswith("# sfbgen: ")
    staging = scripts[0]
    assert staging.index("Get-ExecutionPolicy -Scope") < staging.index("New-Item")  # refused before anything is made
    assert "ReparsePoint" in staging and "O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)" in staging
    assert "Get-CsTopology" in scripts[1] and "-ping" in scripts[1]


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: pip install -e '.[test]' installs it"
    return path


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_ansible_playbook_syntax_check_and_ansible_lint_pass(bundles, sample, tmp_path):
    _, folder = bundles[sample]
    ansible = folder / "ansible"
    environment = {"HOME": str(tmp_path), "PATH": __import__("os").environ["PATH"], "ANSIBLE_LOCAL_TEMP": str(tmp_path),
                   "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}
    syntax = subprocess.run([_tool("ansible-playbook"), "--syntax-check", "-i", "inventory.yml", "site.yml"],
                            cwd=ansible, capture_output=True, text=True, env=environment, timeout=120)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    lint = subprocess.run([_tool("ansible-lint"), "--offline", "--nocolor", "site.yml", "inventory.yml", "group_vars/all.yml",
                           *sorted(name[len("ansible/"):] for name in FILES if name.startswith("ansible/tasks/"))],
                          cwd=ansible, capture_output=True, text=True, env=environment, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "criteria was 'production'" in lint.stderr + lint.stdout


def test_a_value_that_is_not_a_plain_name_never_reaches_a_playbook():
    assert safe("fe01.contoso.com:3-request") == '"fe01.contoso.com:3-request"'
    for hostile in ("{{ lookup('pipe', 'id') }}", "a\nb: c", "x' or 'y", "%}", "a b"):
        with pytest.raises(ValueError):
            safe(hostile)
    from sfbgen.fleet import _name

    assert _name("Step a:1: Install") == ['    - name: "Step a:1: Install"']
    for hostile in ("Step {{ lookup('pipe', 'id') }}", "Step {% raw %}", "x" * 120 + "{{ x }}"):
        with pytest.raises(ValueError):
            _name(hostile)


def test_a_topology_value_reaches_the_playbook_only_as_a_literal_ansible_never_templates():
    from sfbgen.fleet import literal

    assert literal("\\\\files\\Media") == '!unsafe "\\\\\\\\files\\\\Media"'
    assert _load("a: " + literal("ca01.contoso.com\\Contoso CA"))["a"] == "ca01.contoso.com\\Contoso CA"
    for hostile in ("a\nb", "a\rb", "a\x1bb", "a\x7fb"):
        with pytest.raises(ValueError):
            literal(hostile)
    # Braces are legal in a Windows path (and topology values are never stricter than the platform): under
    # !unsafe Ansible's own templar leaves them as text, so a Jinja expression in a media path stays a path.
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.yaml.loader import AnsibleLoader
    from ansible.template import Templar

    for hostile in ("{{ lookup('pipe', 'id') }}", "D:\\{% raw %}", "x}", "${env:PATH}"):
        loaded = AnsibleLoader("a: " + literal(hostile)).get_single_data()["a"]
        assert Templar(loader=DataLoader(), variables={}).template(loaded) == hostile


def test_no_prompt_is_reachable_when_the_password_is_given(bundles):
    """Get-PfxPassword returns -PfxPassword or the line on stdin before it could reach Read-Host; no
    other prompt is in any script unless a switch asks for it (-PromptForCaCredential)."""
    for _sample, (result, _) in bundles.items():
        for path, data in result.files.items():
            if not path.endswith(".ps1"):
                continue
            text = data.decode("utf-8-sig")
            for match in re.finditer(r"Read-Host|Get-Credential", text):
                line = text[text.rfind("\n", 0, match.start()) + 1: text.find("\n", match.start())]
                if "Read-Host" in match.group():
                    function = text[text.rfind("function Get-PfxPassword", 0, match.start()): match.start()]
                    assert function.startswith("function Get-PfxPassword"), (path, line)
                    assert "if ($PfxPassword) { return $PfxPassword }" in function
                    assert re.search(r"if \(\$SecretsFromInput\) \{.*?return \$script:PfxPassword\s*\}", function, re.S)
                else:
                    before = text[text.rfind("function Get-CaCredential", 0, match.start()): match.start()]
                    assert "if (-not $PromptForCaCredential) { return @{} }" in before, (path, line)
                    # -CaCredential and the secrets on stdin are answered before any prompt.
                    assert before.index("if ($CaCredential)") < before.index("if ($SecretsFromInput") < before.index("if (-not $PromptForCaCredential)")


# ---------------------------------------------------------------------------------------------------
# Invoke-Runbook.ps1: the same walk over PowerShell Remoting

_ENTRY = re.compile(r"^    @\{ Id = '([^']*)'; Server = '([^']*)'; Kind = '[a-z-]+'; Script = '([^']*)'; Secrets = \$(?:true|false); "
                    r"After = @\(([^)]*)\); Copies = @\(([^)]*)\); Wave = (\d+); Action = '((?:[^']|'')*)' \}\r?$", re.M)
# (tests/test_remoting.py reads the same table as data: each step's kind and secrets, and the walker.)


def _quoted_list(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_invoke_runbook_carries_every_step_once_in_wave_order(bundles, sample, pwsh):
    result, _ = bundles[sample]
    data = result.files["Invoke-Runbook.ps1"]
    assert pwsh.error_nodes(data) == []
    text = data.decode("utf-8-sig")
    entries = _ENTRY.findall(text)
    steps = _plan_steps(result)
    assert [e[0] for e in entries] == [s["id"] for s in steps]  # every step once, in the runbook's order
    waves = [int(e[5]) for e in entries]
    assert waves == sorted(waves)
    wave_of = {e[0]: int(e[5]) for e in entries}
    for entry, step in zip(entries, steps, strict=True):
        assert entry[1] == step["server"]
        assert entry[2] == (step["script"].split("/")[-1] if step["script"] else "")
        assert _quoted_list(entry[3]) == step["after"]
        assert all(wave_of[a] < wave_of[entry[0]] for a in step["after"])


def test_invoke_runbook_handles_restarts_ca_waits_failures_and_secrets(bundles):
    text = bundles["contoso"][0].files["Invoke-Runbook.ps1"].decode("utf-8-sig")
    assert "Read-Host" not in text and "Get-Credential" not in text  # every secret is a parameter
    assert "[SecureString]$PfxPassword" in text and "[PSCredential]$EdgeCredential" in text and "[PSCredential]$CaCredential" in text
    assert "$arguments += '-SecretsFromInput'" in text
    # A restart on 3010, waiting for the server, then the same step again (tests/test_remoting.py: WSMan, bounded).
    restart = text[text.index("while ($code -eq 3010"):text.index("Get-Logs $entry.Server $Sessions")]
    assert "Restart-Server $entry.Server" in restart and "$RunScript" in restart
    server = text[text.index("function Restart-Server"):text.index("function Get-Logs")]
    assert "-Protocol 'WSMan'" in server and "-Wait -For PowerShell -Timeout $RestartTimeoutSeconds" in server
    assert "Restart-Computer -Force" in server  # Edge: from inside, then polled over HTTPS
    # A CA wait and a failure are recorded, and a step runs only when what it waits for is done.
    assert "} elseif ($code -eq 3) {" in text and "$Outcome[$entry.Id] = 'waiting'" in text
    assert "$Outcome[$entry.Id] = 'blocked' }" in text
    # Edge Servers over HTTPS with the credential given; domain members with -Authentication (CredSSP by default).
    assert "@{ ComputerName = $Fqdn; UseSSL = $true; Port = 5986; Credential = $EdgeCredential }" in text
    assert "'edge01.contoso.com' = @{ Edge = $true;" in text and "'fe01.contoso.com' = @{ Edge = $false;" in text
    # Nothing runs before the bundle's signature and each server's Test-Bundle.ps1 are checked.
    assert text.index("Get-AuthenticodeSignature") < text.index("Initialize-ServerFolder $fqdn")
    copy = text[text.index("function Initialize-ServerFolder"):text.index("function Get-StepArguments")]
    assert "(Join-Path $folder 'Test-Bundle.ps1')" in copy and "if ($code -ne 0) { throw" in copy
