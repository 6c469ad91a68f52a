"""Scripts that refuse to do harm, shown from their structure (tree-sitter-pwsh), since no PowerShell runs here.

- On the wrong server, or with files that do not match the manifest, a script stops before changing anything.
- Under -WhatIf nothing changes: every state-changing command sits behind $PSCmdlet.ShouldProcess.
- Steps run out of order stop, naming the missing step.
- Running a step twice is harmless: every change is behind a check of what is already done, or is one
  that Microsoft documents as safe to repeat.
"""

from __future__ import annotations

import re

import pytest

from tests import pwsh_tree as pt
from tests.conftest import VALID_SAMPLES

# Commands that change the server. Skype cmdlets count unless they only read (Get-, Test-).
CHANGING = {"Install-WindowsFeature", "Invoke-Installer", "New-Item", "Set-Content", "Export-PfxCertificate",
            "Remove-Item", "Start-Service", "Stop-Service", "Set-ItemProperty", "Start-Process", "Start-Transcript", "Set-Acl"}
# Changes that are safe to repeat as they stand, with the reason.
REPEATABLE = {
    "Enable-CsReplica": "re-enabling the replica is a no-op",
    "Import-CsConfiguration": "importing again refreshes the Local Configuration Store",
    "Enable-CsComputer": "enables what the topology names, again without harm",
    "Export-CsConfiguration": "-Force replaces the earlier export with the current configuration",
    "Invoke-Installer": "Bootstrapper.exe installs only what is missing",
    "Request-CsCertificate": "runs only when no assigned, issued or pending certificate fits: Find-FitCertificate and Request-CsCertificate -List look first",
    "Import-CsCertificate": "imports only when no assigned or issued certificate fits; the same certificate imported again stays one entry of the store",
    "Install-CsDatabase": "without -Clean it keeps the databases it finds (Install-CsDatabase.md, -Clean)",
    "Set-CsConfigurationStoreLocation": "sets the same service control point again (Set-CsConfigurationStoreLocation.md)",
    "New-Item": "-Force on a folder that exists does nothing",
    "Set-Content": "the completion record is rewritten with the same content",
    "Start-Transcript": "a new log file per run",
}
GUARDS = ("ShouldProcess", "-not $WhatIfPreference")


def _text(source: bytes, node) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8")


def _command_name(source: bytes, node) -> str | None:
    name = node.child_by_field_name("command_name")
    if name is not None:
        return _text(source, name)
    if node.children and node.children[0].type == "command_invocation_operator":
        return "&"
    return None


def _is_changing(name: str) -> bool:
    if name in CHANGING or name == "&":
        return True
    match = re.fullmatch(r"([A-Za-z]+)-Cs[A-Za-z]+", name)
    return bool(match) and match.group(1) not in ("Get", "Test")


def _enclosing_function(node, source) -> str | None:
    while node is not None:
        if node.type == "function_statement":
            return _text(source, node.child_by_field_name("function_name") or node.children[1])
        node = node.parent
    return None


def _guard_clause(node, source):
    """The if/elseif clause whose block holds `node` and whose condition is a ShouldProcess or WhatIf test."""
    child, parent = node, node.parent
    while parent is not None:
        if child.type == "statement_block" and parent.type in ("if_statement", "elseif_clause"):
            condition = next((c for c in parent.children if c.type == "pipeline"), None)
            if condition is not None and any(g in _text(source, condition) for g in GUARDS):
                return parent
        child, parent = parent, parent.parent
    return None


def _in_else_of_check(node) -> bool:
    """True when `node` sits in the else branch, or an elseif, of an if: the if tests what is done."""
    while node is not None:
        if node.type in ("else_clause", "elseif_clause"):
            return True
        node = node.parent
    return False


def _changes(source: bytes):
    tree = pt.parse(source)
    for node in pt.walk(tree.root_node):
        if node.type != "command":
            continue
        name = _command_name(source, node)
        if name == "Request-CsCertificate" and " -List" in _text(source, node):
            continue  # lists pending requests: a read (Request-CsCertificate.md, -List)
        if name and _is_changing(name):
            yield name, node


def _scripts():
    from sfbgen.compiler import compile_file

    out = []
    for sample in VALID_SAMPLES:
        result = compile_file(sample, "unused", write=False)
        out += [(f"{sample.stem}:{name}", data) for name, data in result.files.items() if name.endswith(".ps1")]
    return out


SCRIPTS = _scripts()
# The scripts that run on a server; Invoke-Runbook.ps1 runs on the admin's workstation and only calls them.
STEP_SCRIPTS = [(n, d) for n, d in SCRIPTS if not n.endswith(("Test-Bundle.ps1", "Invoke-Runbook.ps1"))]


@pytest.mark.parametrize("name,source", STEP_SCRIPTS, ids=[n for n, _ in STEP_SCRIPTS])
def test_whatif_changes_nothing(name, source):
    """Every change is behind ShouldProcess (or skipped under -WhatIf), so -WhatIf only lists them."""
    found = 0
    for command, node in _changes(source):
        found += 1
        if _enclosing_function(node, source) == "Invoke-Installer" and command == "Start-Process":
            continue  # its callers are checked: every call of Invoke-Installer is guarded
        if _enclosing_function(node, source) == "Initialize-StateFolder":
            continue  # called only outside -WhatIf (the runner) or under ShouldProcess (Set-StepDone)
        assert _guard_clause(node, source) is not None, f"{name}:{node.start_point[0] + 1}: {command} runs under -WhatIf"
    assert found > 0


@pytest.mark.parametrize("name,source", STEP_SCRIPTS, ids=[n for n, _ in STEP_SCRIPTS])
def test_wrong_server_or_altered_bundle_stops_first(name, source):
    """The first statement that runs checks the computer and the manifest, before any log or change."""
    tree = pt.parse(source)
    statements = next(c for c in tree.root_node.children if c.type == "statement_list")
    top = [c for c in statements.children if c.type not in ("comment", "function_statement")]
    top_text = [_text(source, c) for c in top]
    preflight = next(i for i, t in enumerate(top_text) if "Assert-ThisServer" in t and t.startswith("try"))
    assert "Assert-BundleIntact" in top_text[preflight] and "exit 1" in top_text[preflight]
    first_change = min((n.start_byte for _, n in _changes(source) if _enclosing_function(n, source) is None), default=None)
    assert first_change is None or first_change > top[preflight].end_byte
    # Inside Invoke-Main, the remaining guards come before the first change.
    text = source.decode("utf-8-sig")
    body = text[text.index("function Invoke-Main"):]
    body = body[:body.index("\n}") + 2]  # Invoke-Main alone: the helpers follow it
    guard_end = max(body.rfind(g, 0, 2000) for g in ("Assert-Administrator", "Assert-ServerAdmin", "Assert-StepDone"))
    main_changes = [n for _, n in _changes(source) if _enclosing_function(n, source) == "Invoke-Main"]
    for node in main_changes:
        assert node.start_byte > source.index(b"function Invoke-Main") + len(body[:guard_end].encode("utf-8"))


def test_guard_functions_say_what_is_wrong():
    name, source = STEP_SCRIPTS[0]
    text = source.decode("utf-8-sig")
    this_server = text[text.index("function Assert-ThisServer"):text.index("function Assert-Administrator")]
    assert "if ($localFqdn -ne $ServerFqdn)" in this_server and "This bundle belongs to ' + $ServerFqdn" in this_server
    manifest = text[text.index("function Assert-BundleIntact"):text.index("function Test-PendingReboot")]
    assert "Get-FileHash -LiteralPath $path -Algorithm SHA256" in manifest and "Nothing was changed" in manifest


REQUIRED_STEPS = {
    "2-Setup-Components.ps1": {1},
    "3-Request-Certificates.ps1": {1, 2},
    "4-Start-Services.ps1": {1, 2, 3},
    "Export-EdgeConfiguration.ps1": {1},
}


@pytest.mark.parametrize("name,source", STEP_SCRIPTS, ids=[n for n, _ in STEP_SCRIPTS])
def test_out_of_order_steps_stop(name, source):
    file = name.rsplit("/", 1)[1]
    checks = [c for c in pt.commands(source) if c.name == "Assert-StepDone"]
    steps = {int(re.search(r"-Step (\d+)", c.text).group(1)) for c in checks}
    if file == "4-Start-Pool.ps1":
        # Start-CsPool waits for step 3 on every member, read from each member's completion record.
        assert any("-Step 3" in c.text and "-Computer $member" in c.text for c in checks)
    else:
        assert steps == REQUIRED_STEPS.get(file, set())
    text = source.decode("utf-8-sig")
    if file[0].isdigit():
        assert f"Set-StepDone {file[0]}" in text


@pytest.mark.parametrize("name,source", STEP_SCRIPTS, ids=[n for n, _ in STEP_SCRIPTS])
def test_running_twice_is_harmless(name, source):
    for command, node in _changes(source):
        if command in REPEATABLE or _enclosing_function(node, source) in ("Set-StepDone", "Invoke-Installer", "Initialize-StateFolder"):
            continue
        clause = _guard_clause(node, source)
        condition = _text(source, next(c for c in clause.children if c.type == "pipeline")) if clause else ""
        checked_in_condition = "Test-Path" in condition  # e.g. -not (Test-Path $pfxOut) -and ShouldProcess
        assert _in_else_of_check(node) or checked_in_condition, f"{name}:{node.start_point[0] + 1}: {command} runs again without checking what is done"
