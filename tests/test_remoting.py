"""Invoke-Runbook.ps1 (issue 19): the PowerShell Remoting walker, read back with tree-sitter-pwsh.

There is no PowerShell here: each test reads the generated script's syntax tree for the structure a
behaviour needs (which command is called with which parameters, inside which block, before what), and
the step table compiled into the script is read back as data and compared with plan.json.
"""

from __future__ import annotations

import json
import re

import pytest

from sfbgen.compiler import compile_file
from sfbgen.platform import fact
from tests import pwsh_tree as pt
from tests.conftest import ROOT, VALID_SAMPLES

SAMPLE_NAMES = [p.stem for p in VALID_SAMPLES]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    out = tmp_path_factory.mktemp("remoting")
    return {sample.stem: compile_file(sample, out / sample.stem) for sample in VALID_SAMPLES}


def _source(bundles, sample: str = "contoso") -> bytes:
    return bundles[sample].files["Invoke-Runbook.ps1"]


def _text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8")


# ---------------------------------------------------------------------------------------------------
# Reading the script: literal values, assignments, functions and script blocks


_WRAPPERS = ("pipeline", "pipeline_chain", "unary_expression", "string_literal", "integer_literal", "assignment_value")


def _unwrap(node):
    """The one meaningful node under a chain of single-child wrappers (pipeline, unary_expression...)."""
    while node.type in _WRAPPERS:
        children = [c for c in node.children if c.is_named]
        if len(children) != 1:
            break
        node = children[0]
    return node


def _value(node, source: bytes):
    """The value of a PowerShell literal: a string, $true/$false, an integer, an array or a hash table."""
    node = _unwrap(node)
    kind = node.type
    if kind == "verbatim_string_characters":
        return _text(node, source)[1:-1].replace("''", "'")
    if kind == "decimal_integer_literal":
        return int(_text(node, source))
    if kind == "variable":
        return {"$true": True, "$false": False}[_text(node, source).lower()]
    if kind == "array_literal_expression":  # a, b, c
        return [_value(c, source) for c in node.children if c.is_named]
    if kind == "array_expression":  # @(...): one statement per line, or one a, b, c
        items = []
        for statement_list in (c for c in node.children if c.type == "statement_list"):
            for statement in (c for c in statement_list.children if c.is_named):
                value = _value(statement, source)
                items.extend(value if _unwrap(statement).type == "array_literal_expression" else [value])
        return items
    if kind == "hash_literal_expression":
        table = {}
        for body in (c for c in node.children if c.type == "hash_literal_body"):
            for entry in (c for c in body.children if c.type == "hash_entry"):
                table[_text(entry.child(0), source).strip("'")] = _value(entry.child(2), source)
        return table
    raise AssertionError(f"not a literal: {kind}: {_text(node, source)[:80]}")


def _assignment(source: bytes, name: str):
    """The value node assigned to the script-level variable `name` (the first assignment)."""
    for node in pt.walk(pt.parse(source).root_node):
        if node.type == "assignment_expression" and _text(node.child(0), source).lower() == name.lower():
            return node.child(2)
    raise AssertionError(f"{name} is never assigned")


def _table(source: bytes, name: str):
    return _value(_assignment(source, name), source)


def _function(source: bytes, name: str) -> tuple[object, str]:
    for node in pt.walk(pt.parse(source).root_node):
        if node.type == "function_statement" and _text(node.child_by_field_name("function_name") or node.child(1), source) == name:
            return node, _text(node, source)
    raise AssertionError(f"function {name} is not defined")


def _block(source: bytes, name: str) -> str:
    """The text of the script block assigned to `name` ($RunScript = { ... })."""
    return _text(_assignment(source, name), source)


def _commands(text: str) -> list[pt.Command]:
    return pt.commands(text.encode("utf-8"))


def _ancestors(node):
    while node.parent is not None:
        node = node.parent
        yield node


# ---------------------------------------------------------------------------------------------------
# 7. The step table: typed, compiled from the plan, and what the walker dispatches on


def _expected_kind(step: dict) -> str:
    """The kind a step of plan.json has, read from the plan (script or not) and what it does."""
    if step["script"]:
        return "script"
    if step["id"] == "publish-topology":
        return "publish"
    if step["action"].startswith("Copy "):
        return "copy"
    assert step["action"].startswith("Certificate authority"), step
    return "ca-wait"


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_the_step_table_is_plan_json_with_each_steps_kind_and_secrets(bundles, sample):
    result = bundles[sample]
    source = _source(bundles, sample)
    assert pt.error_nodes(source) == []
    table = _table(source, "$Runbook")
    plan = json.loads(result.files["plan.json"])["runbook"]
    assert [e["Id"] for e in table] == [s["id"] for s in plan]  # every step once, in the runbook's order
    wave = {e["Id"]: e["Wave"] for e in table}
    for entry, step in zip(table, plan, strict=True):
        assert set(entry) == {"Id", "Server", "Kind", "Script", "Secrets", "After", "Copies", "Wave", "Action"}, entry
        assert entry["Server"] == step["server"] and entry["Action"] == step["action"] and entry["After"] == step["after"]
        assert entry["Script"] == (step["script"].split("/")[-1] if step["script"] else "")
        assert all(wave[a] < entry["Wave"] for a in step["after"])
        assert entry["Kind"] == _expected_kind(step), entry
        # Secrets go exactly to the scripts that read them from standard input.
        script = result.files[step["script"]].decode("utf-8-sig") if step["script"] else ""
        assert entry["Secrets"] == ("[switch]$SecretsFromInput" in script), entry
        assert bool(entry["Copies"]) == (entry["Kind"] == "copy")
        for copy in entry["Copies"]:
            # A copy brings a file its target's signed manifest names as produced on a server.
            source_server, folder, name = copy.split("/")
            assert folder == "out" and source_server in {s.fqdn for s in result.plan.servers}
            manifest = result.files[f"{entry['Server']}/manifest.psd1"].decode("utf-8-sig")
            assert f"'{name}'" in manifest[manifest.index("ProducedOnServer"):]
    assert [e.task for e in result.plan.steps] == [e["Kind"] for e in table]  # the plan's typed attribute, rendered


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_steps_are_found_by_their_kind_never_by_a_file_name_or_an_id(bundles, sample):
    source = _source(bundles, sample)
    text = source.decode("utf-8-sig")
    walker = text[text.index("$Runbook = @("):]
    walker = walker[walker.index("\n)\n") if "\n)\n" in walker else walker.index("\r\n)\r\n"):]
    # No comparison of a step's file name or id with a literal ('3-*', 'publish-topology', ...).
    assert not re.search(r"\.(Script|Id)\s+-(c|i)?(eq|ne|like|notlike|match|notmatch)\s+['\"]", walker)
    assert "-like '3-*'" not in text and "'publish-topology'" not in walker
    # Each kind the table holds is dispatched on by name, and the secrets by the table's flag.
    kinds = {e["Kind"] for e in _table(source, "$Runbook")}
    assert kinds <= {"script", "copy", "publish", "ca-wait"}
    for kind in kinds - {"script"}:
        assert f"$entry.Kind -eq '{kind}'" in walker, kind
    _, arguments = _function(source, "Get-StepArguments")
    assert "if ($Entry.Secrets)" in arguments and "$PfxPassword, $CaCredential" in arguments


# ---------------------------------------------------------------------------------------------------
# 1. Delegation (CredSSP by default) and the pre-flight of every second hop


def _param_block(source: bytes):
    tree = pt.parse(source)
    for node in pt.walk(tree.root_node):
        if node.type == "param_block":
            return node
    raise AssertionError("no param block")


def _parameters(source: bytes) -> dict[str, str]:
    """Each script parameter's name -> its declaration (attributes, type, name, default), one line each."""
    block = _text(_param_block(source), source)
    out = {}
    for line in block.splitlines():
        match = re.match(r"^\s+(\[.*?\$(\w+).*?),?$", line)
        if match:
            out["$" + match.group(2)] = match.group(1)
    return out


def test_domain_members_are_reached_with_credssp_and_the_credential_by_default(bundles):
    source = _source(bundles)
    parameters = _parameters(source)
    delegation = fact("remoting_delegation")
    assert delegation == "CredSSP"
    assert parameters["$Credential"].startswith("[PSCredential]")
    assert f"[ValidateSet('{delegation}', 'Kerberos')]" in parameters["$Authentication"]
    assert parameters["$Authentication"].endswith(f"$Authentication = '{delegation}'")
    _, connection = _function(source, "Get-Connection")
    assert "$connection = @{ ComputerName = $Fqdn; Authentication = $Authentication }" in connection
    assert "$connection.Credential = $Credential" in connection
    # CredSSP without an account is refused before any connection, naming the fix.
    assert "} elseif ($Authentication -eq $Delegation) {" in connection and "add -Credential" in connection
    early = source.decode("utf-8-sig")
    assert early.index("if ($Authentication -eq $Delegation -and -not $Credential") < early.index("$Sessions = @{}")
    # Every connection to a server is made from Get-Connection: sessions, step jobs, the Edge restart.
    text = source.decode("utf-8-sig")
    for command in pt.commands(source):
        if command.name in ("New-PSSession", "Invoke-Command") and "ComputerName" not in command.parameters and "Session" not in command.parameters:
            assert "@connection" in command.text, command.text
    for command in pt.commands(source):
        if command.name == "Invoke-Command" and "ComputerName" in command.parameters:
            assert "$check.Target" in command.text  # only the pre-flight's own hop to another pool member
    _, session = _function(source, "New-ServerSession")
    assert "Enable-WSManCredSSP -Role Client -DelegateComputer" in session and "Enable-WSManCredSSP -Role Server" in session
    assert "Authentication = $Authentication" in text and "-WsmanAuthentication $Authentication" in text


def _expected_hops(result, server: dict) -> list[tuple[str, str, str]]:
    plan = result.plan
    s = plan.server(server["fqdn"])
    media = s.media.rstrip("\\") + "\\" + fact("media_setup_folder")
    hops = [("path", media, media[2:].split("\\")[0] if media.startswith("\\\\") else "")]
    if s.windows_source:
        hops.append(("path", s.windows_source, s.windows_source[2:].split("\\")[0] if s.windows_source.startswith("\\\\") else ""))
    if "Edge" not in server["roles"]:
        cms = next((p.fqdn for p in plan.servers if p.holds_cms), "the Central Management Store")
        hops.append(("cms", "Get-CsTopology", cms))
    cas = sorted({c["ca"] for c in server["certificates"] if c["authority"] == "online" and "ca" in c
                  and not (c["scope"] == "pool" and c["requested_on"] != server["fqdn"])})
    hops += [("ca", ca, ca.split("\\")[0]) for ca in cas]
    if s.starts_pool:
        hops += [("remoting", p.fqdn, p.fqdn) for p in plan.servers if p.pool is s.pool and p is not s]
    return hops


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_every_server_carries_the_second_hops_it_needs(bundles, sample):
    result = bundles[sample]
    servers = _table(_source(bundles, sample), "$Servers")
    for server in json.loads(result.files["plan.json"])["servers"]:
        compiled = servers[server["fqdn"]]
        assert compiled["Edge"] == ("Edge" in server["roles"])
        assert [(h["Kind"], h["Target"], h["Hop"]) for h in compiled["SecondHops"]] == _expected_hops(result, server), server["fqdn"]
    if sample == "contoso":  # the reference sample reads a share, uses an online CA and starts a pool
        kinds = {h["Kind"] for s in servers.values() for h in s["SecondHops"]}
        assert kinds == {"path", "cms", "ca", "remoting"}
        assert {"Kind": "path", "Target": "\\\\files.contoso.com\\Media\\SfB2015\\" + fact("media_setup_folder"), "Hop": "files.contoso.com"} in servers["fe01.contoso.com"]["SecondHops"]


def test_the_preflight_tries_each_hop_inside_the_session_before_the_first_step_and_names_it(bundles):
    source = _source(bundles)
    text = source.decode("utf-8-sig")
    hops = _block(source, "$TestSecondHops")
    assert "$ok = Test-Path -LiteralPath $check.Target" in hops  # a folder the server reads (a share: a second hop)
    assert "Get-CsTopology -AsXml" in hops  # through cs(), once the SkypeForBusiness module is installed
    assert f"& '{fact('certutil')}' -config $check.Target -ping 2>&1" in hops
    assert "(the second hop to ' + $check.Hop + ')'" in hops and "GetCurrent().Name" in hops  # each failure names the computer and the account
    _, assertion = _function(source, "Assert-SecondHops")
    assert "Invoke-Command -Session $Sessions[$Fqdn] -ScriptBlock $TestSecondHops" in assertion
    assert "a second hop from ' + $Fqdn" in assertion and "throw" in assertion
    # Get-CsTopology is tried only once the topology can have been published.
    assert "($_.Kind -ne 'cms' -or -not $unpublished)" in assertion and "$_.Kind -eq 'publish'" in assertion
    # Run in the setup, inside the try that marks a server unready, before the first wave starts a step.
    setup = text[text.index("foreach ($fqdn in $needed) {"):text.index("foreach ($wave in ")]
    assert setup.index("New-ServerSession $fqdn") < setup.index("Initialize-ServerFolder $fqdn") < setup.index("Assert-SecondHops $fqdn")
    assert "$Unready[$fqdn] = $_.Exception.Message" in setup
    assert text.index("Assert-SecondHops $fqdn") < text.index("-AsJob")


# ---------------------------------------------------------------------------------------------------
# 2. -WhatIf: the whole plan, nothing changed


def test_whatif_says_what_a_step_would_wait_for_instead_of_failing_its_guard(bundles):
    text = _source(bundles).decode("utf-8-sig")
    walk = text[text.index("foreach ($wave in "):text.index("foreach ($session in $Sessions.Values)")]
    waiting = walk[walk.index("$waits = @("):walk.index("$unready = @(")]
    assert "if ($WhatIfPreference) { Show-Preview $entry ('would wait for ' + ($waits -join ', ')" in waiting
    assert "} else { $Outcome[$entry.Id] = 'blocked' }" in waiting
    # Only what is done for real counts; a preview never marks a step done.
    _, preview = _function(_source(bundles), "Show-Preview")
    assert "$Done" not in preview
    assert "if ($code -eq 0 -and $WhatIfPreference) {" in walk
    assert walk.index("if ($code -eq 0 -and $WhatIfPreference) {") < walk.index("} elseif ($code -eq 0) {")


def test_whatif_restarts_nothing_copies_nothing_and_writes_no_state(bundles):
    source = _source(bundles)
    text = source.decode("utf-8-sig")
    tree = pt.parse(source)
    # Nothing overrides -WhatIf.
    assert "-WhatIf:$false" not in text
    # Restart-Server is reached only from the restart loop, which -WhatIf never enters.
    calls = [n for n in pt.walk(tree.root_node) if n.type == "command" and _text(n, source).startswith("Restart-Server ")]
    assert calls
    for call in calls:
        loops = [a for a in _ancestors(call) if a.type == "while_statement"]
        assert loops and "-not $WhatIfPreference" in _text(loops[0], source).split("{")[0]
    # The Edge restart (inside a remote session, where -WhatIf does not reach) is only in Restart-Server.
    for command in pt.commands(source):
        if command.name == "Restart-Computer":
            function = text[text.rfind("\nfunction ", 0, text.index(command.text)):]
            assert function.startswith("\nfunction Restart-Server"), command.text
    # Copies: the copy step only outside -WhatIf; the server folder prepared and copied only outside it.
    walk = text[text.index("foreach ($wave in "):]
    copy = walk[walk.index("if ($entry.Kind -eq 'copy') {"):]
    assert copy.index("if ($WhatIfPreference) { Show-Preview") < copy.index("Invoke-Copy $entry")
    _, folder = _function(source, "Initialize-ServerFolder")
    preview, real = folder[folder.index("if ($WhatIfPreference) {"):folder.index("} else {")], folder[folder.index("} else {"):]
    assert "Copy-Item" not in preview and "$PrepareFolder -ArgumentList $RemoteRoot, $folder, $AdminSids, $true" in preview
    assert "Copy-Item" in real and "$PrepareFolder -ArgumentList $RemoteRoot, $folder, $AdminSids, $false" in real
    # No state, no work folder, no transcripts fetched under -WhatIf.
    _, save = _function(source, "Save-State")
    assert save.split("\n")[1].strip() == "if ($WhatIfPreference) { return }  # -WhatIf writes nothing"
    assert "if (-not $WhatIfPreference -and -not (Test-Path -LiteralPath $WorkFolder)) { New-Item" in text
    assert "if (-not $WhatIfPreference) { Get-Logs $entry.Server $Sessions[$entry.Server] }" in text
    # The scripts themselves preview: -WhatIf is passed on to each.
    assert "if ($WhatIf) { $arguments += '-WhatIf' }" in _block(source, "$RunScript")


# ---------------------------------------------------------------------------------------------------
# 3. A native program's stderr never turns a success into a failure; its exit code is read


def test_the_remote_program_is_run_so_that_its_exit_code_is_read_and_stderr_does_not_throw(bundles):
    source = _source(bundles)
    run = _block(source, "$RunScript")
    native = [line.strip() for line in run.splitlines() if f"& '{fact('windows_powershell')}'" in line]
    assert len(native) == 2  # with and without secrets on standard input
    for line in native:
        assert " @arguments 2>&1 | ForEach-Object { Write-Host ([string]$_) }" in line, line
    assert run.index("$ErrorActionPreference = 'Continue'") < run.index(native[0])
    assert run.index("$global:LASTEXITCODE = $null") < run.index(native[0])
    assert run.rstrip("}").rstrip().endswith("[int]$global:LASTEXITCODE")
    # powershell.exe runs nowhere else (Test-Bundle.ps1 goes through $RunScript too).
    text = source.decode("utf-8-sig")
    assert text.count(f"& '{fact('windows_powershell')}'") == 2
    _, folder = _function(source, "Initialize-ServerFolder")
    assert "-ScriptBlock $RunScript -ArgumentList (Join-Path $folder 'Test-Bundle.ps1')" in folder
    # The one value returned is the exit code, checked as such.
    _, exit_code = _function(source, "Get-ExitCode")
    assert "$values[-1] -isnot [int]" in exit_code
    assert text.count("Get-ExitCode (") == 3  # Test-Bundle.ps1, a step's job, a step run again after a restart


# ---------------------------------------------------------------------------------------------------
# 4. Restarts over WSMan, several per step, a bounded poll for the Edge


def test_restarts_use_wsman_wait_for_powershell_and_are_bounded(bundles):
    source = _source(bundles)
    parameters = _parameters(source)
    assert parameters["$MaxRestarts"] == "[ValidateRange(0, 10)][int]$MaxRestarts = 3"
    (remote,) = [c for c in pt.commands(source) if c.name == "Restart-Computer" and "ComputerName" in c.parameters]
    assert {"Protocol", "WsmanAuthentication", "Force", "Wait", "For", "Timeout"} <= set(remote.parameters)
    assert f"-Protocol '{fact('restart_protocol')}'" in remote.text and "-For PowerShell" in remote.text
    assert "-Timeout $RestartTimeoutSeconds" in remote.text and "-WsmanAuthentication $Authentication" in remote.text
    text = source.decode("utf-8-sig")
    loop = text[text.index("while ($code -eq 3010"):]
    assert loop.startswith("while ($code -eq 3010 -and -not $WhatIfPreference -and $restarts -lt $MaxRestarts) {")
    assert "$restarts++" in loop[:400] and "Restart-Server $entry.Server" in loop[:900]
    assert "still asks for a restart after ' + $MaxRestarts + ' restarts" in text
    # Never a fixed sleep: every pause is inside a loop that ends on a condition.
    tree = pt.parse(source)
    for node in pt.walk(tree.root_node):
        if node.type == "command" and _text(node, source).startswith("Start-Sleep"):
            assert any(a.type == "while_statement" for a in _ancestors(node)), _text(node, source)
    _, restart = _function(source, "Restart-Server")
    assert "$deadline = (Get-Date).AddSeconds($RestartTimeoutSeconds)" in restart
    assert "while ((Get-Date) -lt $deadline) {" in restart
    assert "if ((Get-BootTime $session) -ne $before) { return $session }" in restart  # back from a new boot
    assert "Start-Sleep -Seconds 30" not in text


# ---------------------------------------------------------------------------------------------------
# 5. No parameter default reads where the script is


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_no_parameter_default_reads_the_scripts_location(bundles, sample):
    for path, data in bundles[sample].files.items():
        if not path.endswith(".ps1"):
            continue
        for node in pt.walk(pt.parse(data).root_node):
            if node.type == "script_parameter_default":
                variables = {_text(v, data).lower() for v in pt.walk(node) if v.type == "variable"}
                assert not variables & {"$psscriptroot", "$pscommandpath", "$myinvocation"}, (path, _text(node, data))
    text = _source(bundles, sample).decode("utf-8-sig")
    assert "[string]$WorkFolder = ''" in text
    assert "if (-not $WorkFolder) { $WorkFolder = $Here.TrimEnd('\\') + '.run' }" in text


# ---------------------------------------------------------------------------------------------------
# 6. Hardening: the server folder, the execution policy, the state file, files in transit, secrets


def test_the_server_folder_is_refused_when_a_link_or_foreign_owned_and_its_whole_acl_replaced(bundles):
    source = _source(bundles)
    prepare = _block(source, "$PrepareFolder")
    assert "icacls" not in source.decode("utf-8-sig").lower()
    # Every existing part of the path, from the folder up to the drive: no junction or symbolic link.
    walk_up = prepare[prepare.index("for ($path = $Folder; $path; $path = Split-Path -Parent $path) {"):]
    assert "[IO.FileAttributes]::ReparsePoint" in walk_up[:400] and "throw" in walk_up[:400]
    # The root and the folder: refused unless SYSTEM or the Administrators own it...
    owner = prepare[prepare.index("foreach ($path in @($Root, $Folder)) {"):]
    assert "GetOwner([System.Security.Principal.SecurityIdentifier])" in owner[:600]
    assert "if ($AdminSids -notcontains $owner) {" in owner and "Refused" in owner
    # ...then the owner set and the whole access list replaced: protected, SYSTEM and Administrators only.
    _, security = _function(prepare.encode(), "New-AdminOnlySecurity")
    assert "$security.SetAccessRuleProtection($true, $false)" in security
    assert "$security.SetOwner((New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')))" in security
    assert "foreach ($sid in $AdminSids) {" in security and "'FullControl'" in security
    sets = [c for c in _commands(prepare) if c.name == "Set-Acl"]
    assert len(sets) == 2 and all(c.parameters == ["AclObject", "LiteralPath"] for c in sets)  # the folders, then each item in them
    # Everything in the folder, walked without following a link (no -Recurse: a junction would be followed).
    children = [c for c in _commands(prepare) if c.name == "Get-ChildItem"]
    assert children and all("Recurse" not in c.parameters for c in children)
    assert "$queue.Enqueue($item.FullName)" in prepare
    # Prepared before anything is copied into it, and the result checked by Test-Bundle.ps1 before any step.
    _, folder = _function(source, "Initialize-ServerFolder")
    real = folder[folder.index("} else {"):]
    assert real.index("$PrepareFolder") < real.index("Copy-Item")


def test_a_group_policy_execution_policy_weaker_than_allsigned_is_refused_here_and_on_each_server(bundles):
    source = _source(bundles)
    text = source.decode("utf-8-sig")
    assert _table(source, "$PolicyScopes") == ["MachinePolicy", "UserPolicy"] == fact("execution_policy_group_policy_scopes")
    assert _table(source, "$WeakPolicies") == ["RemoteSigned", "Unrestricted", "Bypass"] == fact("execution_policies_weaker_than_allsigned")
    weak = _block(source, "$ReadWeakPolicy")
    (policy,) = [c for c in _commands(weak) if c.name == "Get-ExecutionPolicy"]
    assert policy.parameters == ["Scope"] and "foreach ($scope in $Scopes)" in weak
    # Locally, before any connection...
    assert text.index("$weak = & $ReadWeakPolicy $PolicyScopes $WeakPolicies") < text.index("foreach ($fqdn in $needed)")
    assert "if ($weak) { throw (" in text
    # ...and in each session, before the folder is prepared or copied.
    _, folder = _function(source, "Initialize-ServerFolder")
    assert folder.index("-ScriptBlock $ReadWeakPolicy") < folder.index("$PrepareFolder") and "if ($weak) { throw" in folder


def test_the_state_file_never_decides_that_a_copy_is_done(bundles):
    source = _source(bundles)
    text = source.decode("utf-8-sig")
    load = text[text.index("if (Test-Path -LiteralPath $StatePath) {"):text.index("function Save-State")]
    assert "$RunbookById[[string]$id].Kind -ne 'copy'" in load
    _, save = _function(source, "Save-State")
    assert "Where-Object { $RunbookById[$_].Kind -ne 'copy' }" in save
    # A copy is checked by the hash the source server reports, on the staged file and where it is placed.
    _, copy = _function(source, "Invoke-Copy")
    assert "$expected = Invoke-Command -Session $Sessions[$source] -ScriptBlock $HashFile -ArgumentList $from" in copy
    staged, placed = copy.index("(Get-FileHash -LiteralPath $staged -Algorithm SHA256).Hash -ne $expected"), copy.index("-ToSession")
    assert copy.index("-FromSession") < staged < placed
    assert copy.rindex("-ScriptBlock $HashFile -ArgumentList $to) -ne $expected") > placed
    assert "finally {" in copy and "Remove-Item -LiteralPath $staged -Force" in copy[copy.index("finally {"):]
    hash_file = _block(source, "$HashFile")
    assert "Get-FileHash -LiteralPath $Path -Algorithm SHA256" in hash_file and "ReparsePoint" in hash_file
    # The staging folder is private: this account, SYSTEM and the Administrators.
    assert "SetAccessRuleProtection($true, $false)" in copy and "GetCurrent().User.Value" in copy


def test_secrets_are_piped_as_utf8(bundles):
    run = _block(_source(bundles), "$RunScript")
    encoding = "$OutputEncoding = New-Object System.Text.UTF8Encoding($false)"
    assert encoding in run
    piped = run.index("($secrets | ConvertTo-Json -Compress) | & ")
    assert run.index(encoding) < piped and run.index("$arguments += '-SecretsFromInput'") < piped


# ---------------------------------------------------------------------------------------------------
# Kept: -ThrottleLimit's meaning, waves in parallel


def test_the_steps_of_one_wave_run_in_parallel_under_the_throttle_limit(bundles):
    text = _source(bundles).decode("utf-8-sig")
    walk = text[text.index("foreach ($wave in "):]
    start, collect = walk.index("-AsJob)"), walk.index("foreach ($item in $jobs) {")
    assert walk.index("Count -ge $ThrottleLimit) { Start-Sleep -Seconds 2 }") < start < collect


# ---------------------------------------------------------------------------------------------------
# What a person must set up first: README and RUNBOOK.md


def test_readme_and_runbook_name_the_delegation_prerequisites(bundles):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    fleet = readme[readme.index("## Run it across the fleet"):readme.index("## Trust")]
    runbook = bundles["contoso"].files["RUNBOOK.md"].decode("utf-8")
    for text in (fleet, runbook):
        assert "Enable-WSManCredSSP -Role Client -DelegateComputer" in text
        assert "Enable-WSManCredSSP -Role Server" in text
        assert "-Credential" in text and "local administrator" in text
        assert "-MaxRestarts" in text
