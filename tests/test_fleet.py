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

FILES = ("ansible/inventory.yml", "ansible/site.yml", "ansible/group_vars/all.yml",
         "ansible/tasks/run-step.yml", "ansible/tasks/copy-files.yml")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet")
    return {sample.stem: (compile_file(sample, out / sample.stem), out / sample.stem) for sample in VALID_SAMPLES}


def _plan_steps(result) -> list[dict]:
    import json

    return json.loads(result.files["plan.json"])["runbook"]


def _step_tasks(playbook: list[dict]) -> list[tuple[int, str, dict]]:
    """(play index, step id, task) for every task of the wave plays that carries out a runbook step."""
    found = []
    for index, play in enumerate(playbook):
        for task in play.get("tasks", []):
            step = (task.get("vars") or {}).get("sfbgen_step")
            if step is None and "ansible.builtin.set_fact" in task:
                step = re.search(r"\['([^']+)'\]", task["ansible.builtin.set_fact"]["sfbgen_done"]).group(1)
            if step is not None:
                found.append((index, step, task))
    return found


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_every_runbook_step_exactly_once_after_everything_it_waits_for(bundles, sample):
    result, _ = bundles[sample]
    assert set(FILES) <= set(result.files)
    steps = _plan_steps(result)
    playbook = yaml.safe_load(result.files["ansible/site.yml"])
    tasks = _step_tasks(playbook)
    ids = [step for _, step, _ in tasks]
    assert sorted(ids) == sorted(s["id"] for s in steps) and len(ids) == len(set(ids))
    play_of = {step: index for index, step, _ in tasks}
    task_of = {step: task for _, step, task in tasks}
    owner = {s["id"]: s["server"] for s in steps}
    for step in steps:
        assert all(play_of[after] < play_of[step["id"]] for after in step["after"]), step
        # ...and guarded by them: a failure or a wait stops what depends on it.
        when = task_of[step["id"]]["when"]
        assert f"inventory_hostname == '{step['server']}'" in when
        for after in step["after"]:
            assert f"'{after}' in (hostvars['{owner[after]}'].sfbgen_done | default([]))" in when
        # The play that runs it includes its server.
        assert step["server"] in playbook[play_of[step["id"]]]["hosts"]


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_scripts_run_are_the_runbooks_with_the_password_on_stdin_where_needed(bundles, sample):
    result, _ = bundles[sample]
    steps = {s["id"]: s for s in _plan_steps(result)}
    for _, step, task in _step_tasks(yaml.safe_load(result.files["ansible/site.yml"])):
        script = (task.get("vars") or {}).get("sfbgen_script")
        if steps[step]["script"]:
            assert steps[step]["script"] == f"{steps[step]['server']}/{script}"
            takes_secrets = script.startswith("3-")  # a PFX password, an account for the CA
            assert "[switch]$SecretsFromInput" in result.files[steps[step]["script"]].decode("utf-8-sig") or not takes_secrets
            assert ("-SecretsFromInput" in task["vars"].get("sfbgen_arguments", [])) == takes_secrets, step
            assert (task["vars"].get("sfbgen_stdin") == "{{ sfbgen_secrets | to_json }}") == takes_secrets


@pytest.mark.parametrize("sample", [p.stem for p in VALID_SAMPLES])
def test_inventory_groups_every_server_by_pool_and_role_without_credentials(bundles, sample):
    result, _ = bundles[sample]
    text = result.files["ansible/inventory.yml"].decode("utf-8")
    inventory = yaml.safe_load(text)["all"]["children"]
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
    assert inventory["sfbgen_domain"]["vars"]["ansible_winrm_transport"] == "kerberos"


def test_the_reference_sample_covers_restarts_ca_waits_and_copies(bundles):
    result, _ = bundles["contoso"]
    run_step = yaml.safe_load(result.files["ansible/tasks/run-step.yml"])
    by_module = {k: t for t in run_step for k in t if k.startswith("ansible.")}
    assert by_module["ansible.windows.win_reboot"]["when"] == "sfbgen_run.rc == 3010"
    (wait,) = [t for t in run_step if "block" in t]
    assert "ansible.builtin.meta" in wait["block"][-1] and wait["block"][-1]["ansible.builtin.meta"] == "end_host"
    runs = [t for t in run_step if "ansible.windows.win_command" in t]
    assert runs[0]["failed_when"] == "sfbgen_run.rc not in [0, 3, 3010]"
    assert runs[1]["failed_when"] == "sfbgen_rerun.rc not in [0, 3]"
    tasks = {step: task for _, step, task in _step_tasks(yaml.safe_load(result.files["ansible/site.yml"]))}
    assert tasks["edge02.contoso.com:copy-edge-cert"]["vars"]["sfbgen_copies"] == [
        "edge01.contoso.com/out/EdgeInternal.pfx", "edge01.contoso.com/out/EdgeExternal.pfx"]
    assert tasks["edge01.contoso.com:copy-config"]["vars"]["sfbgen_copies"] == ["fe01.contoso.com/out/CsConfiguration.zip"]


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
                           "tasks/run-step.yml", "tasks/copy-files.yml"],
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


def test_no_prompt_is_reachable_when_the_password_is_given(bundles):
    """Get-PfxPassword returns -PfxPassword or the line on stdin before it could reach Read-Host; no
    other prompt is in any script unless a switch asks for it (-PromptForCaCredential)."""
    for sample, (result, _) in bundles.items():
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
    for entry, step in zip(entries, steps):
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
