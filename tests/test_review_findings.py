"""The independent review of the compiled scripts (issue 18, fourth reading): each finding, shown on the
generated scripts of the samples (and of small topologies where a sample lacks the case). No PowerShell
runs here: the scripts are read as text and with tree-sitter-pwsh. Each test fails on the scripts as
they were before the review.

1. Step 0 reads Get-CsConfigurationStoreLocation in both shapes (a String; an object with BackEndServer).
2. Step 1 imports the configuration before Enable-CsReplica and the Replica service (Microsoft's order).
3. A windows_source on a share is copied to a local admin-only folder before Install-WindowsFeature.
4. An exported Edge PFX is replaced when it no longer holds the assigned certificate.
5. SFB256: Skype for Business Server 2015 that may run on Windows Server 2016/2019 without a cumulative update.
6. A missing PFX password is refused at the start: Invoke-Runbook.ps1 before any connection, step 3 before any change.
7. A PFX's thumbprint is read with Get-PfxData, never by importing it into an X509Certificate2.
8. Queued file renames never count as "restart pending".
9. The internal web services FQDN of a published topology is a warning, not a stop.
"""

from __future__ import annotations

import re

import pytest

from sfbgen import check_text
from sfbgen.compiler import compile_file
from sfbgen.platform import fact
from tests import ps51_lint
from tests import pwsh_tree as pt
from tests.conftest import ROOT, SHARED, VALID_SAMPLES

README = ROOT / "README.md"


def _text(data: bytes) -> str:
    return data.decode("utf-8-sig").replace("\r\n", "\n")


def _function(text: str, name: str) -> str:
    start = text.index(f"function {name}")
    return text[start:text.index("\n}\n", start) + 2]


def _code(text: str) -> str:
    """Without comment lines: prose may name what the code must not do."""
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("#"))


def _files(compiled, suffix: str) -> dict[str, str]:
    return {f"{sample}:{name}": _text(data) for sample, result in sorted(compiled.items())
            for name, data in sorted(result.files.items()) if name.endswith(suffix)}


def _compile(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "t.sfb"
    path.write_text(text, encoding="utf-8")
    assert check_text(text).ok
    result = compile_file(path, tmp_path / "out")
    return {name: _text(data) for name, data in result.files.items()}


TOPOLOGY = r"""topology "T" {
    product 2015
    windows_server 2012R2
    media "\\fs.t.com\SfB"
    windows_source "\\fs.t.com\sxs"
    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates { authority online "ca.t.com\CA" }
    site "S" {
        standard_edition se.t.com { central_management_store }
    }
}
"""


# ---------------------------------------------------------------------------------------------------
# 1. Get-CsConfigurationStoreLocation


def test_store_location_is_read_as_a_string_or_by_its_back_end_server(compiled):
    scripts = _files(compiled, "0-Prepare-CentralManagementStore.ps1")
    assert scripts
    for name, text in scripts.items():
        reader = _code(_function(text, "Get-StoreLocationState"))
        # Not a cast of the object itself: since Lync Server 2013 that is the object's type name.
        assert "[string](Get-CsConfigurationStoreLocation" not in reader.replace(" ", ""), name
        assert re.search(r"\$scp = Get-CsConfigurationStoreLocation\b", reader), name
        assert "if ($scp -and $scp.PSObject.Properties['BackEndServer']) { $location = [string]$scp.BackEndServer } else { $location = [string]$scp }" in reader, name
        # An error still stops the script: a location it could not read is never replaced.
        assert "SilentlyContinue" not in reader, name
        # The 5.1 lint knows the member now, with its source, and finds nothing else to say.
        assert [f for f in ps51_lint.lint(name, text.replace("\n", "\r\n").encode("utf-8-sig"), {"PS51-020"})] == [], name
    assert "backendserver" in {m.lower() for m in ps51_lint.SKYPE_MEMBERS["get-csconfigurationstorelocation"]}


# ---------------------------------------------------------------------------------------------------
# 2. Step 1: import first, then Enable-CsReplica and the Replica service


def _first_line(source: bytes, name: str) -> int:
    return min(c.line for c in pt.commands(source) if c.name.lower() == name.lower())


def test_local_store_is_imported_before_the_replica_is_enabled(compiled):
    assert fact("local_store_order") == ["Import-CsConfiguration -LocalStore", "Enable-CsReplica", "Start-CsWindowsService Replica"]
    scripts = _files(compiled, "1-Install-LocalConfigurationStore.ps1")
    edge = [n for n in scripts if "edge" in n]
    assert edge and len(edge) < len(scripts)  # both variants: from the file (Edge) and from the store
    for name, text in scripts.items():
        source = text.encode("utf-8")
        imported = _first_line(source, "Import-CsConfiguration")
        enabled = _first_line(source, "Enable-CsReplica")
        started = _first_line(source, "Start-CsWindowsService")
        assert imported < enabled < started, (name, imported, enabled, started)
        assert "'local_store_order'" in text, name  # the order cites its fact


# ---------------------------------------------------------------------------------------------------
# 3. Install-WindowsFeature -Source reads a share as the computer account


def test_a_windows_source_on_a_share_is_copied_to_a_local_folder_first(tmp_path):
    assert "computer account" in _facts_source("windows_source_read_as_computer")
    files = _compile(tmp_path, TOPOLOGY)
    for name in ("se.t.com/0-Prepare-CentralManagementStore.ps1", "se.t.com/1-Install-LocalConfigurationStore.ps1"):
        features = _code(_function(files[name], "Install-Features"))
        copy = features.index("Get-ChildItem -LiteralPath $WindowsSource -Force | Copy-Item -Destination $localSource -Recurse -Force")
        install = features.index("Install-WindowsFeature -Name $names @source")
        assert features.index("$WindowsSource.StartsWith('\\\\')") < copy < features.index("$source = @{ Source = $localSource }") < install, name
        # The local folder is under the state folder, made SYSTEM and Administrators only first.
        assert features.index("Initialize-StateFolder") < features.index("$localSource = Join-Path $StateFolder 'windows-sources'") < copy, name
        # And it is removed once the features are installed, whatever happens.
        assert re.search(r"try \{\s*\$result = Install-WindowsFeature -Name \$names @source\s*\} finally \{\s*if \(\$localSource", features), name


def _facts_source(name: str) -> str:
    from sfbgen.platform import _facts

    return _facts()[name]["source"]


# ---------------------------------------------------------------------------------------------------
# 4 and 7. The Edge pool's PFX files


def _edge_scripts(compiled):
    scripts = _files(compiled, "3-Request-Certificates.ps1")
    exporting = {n: t for n, t in scripts.items() if "Export-PfxCertificate" in _code(t)}
    importing = {n: t for n, t in scripts.items() if "Import-CsCertificate -Path $pfxFile" in _code(t)}
    assert exporting and importing
    return exporting, importing


def test_a_stale_exported_pfx_is_replaced(compiled):
    exporting, _ = _edge_scripts(compiled)
    for name, text in exporting.items():
        main = _code(_function(text, "Invoke-Main"))
        blocks = main.split("$pfxOut = Join-Path $OutFolder ")[1:]
        assert len(blocks) == 2, name  # the internal and the external certificate
        for block in blocks:
            # An existing file no longer decides: its thumbprint is compared with the assigned certificate's.
            assert "-not (Test-Path -LiteralPath $pfxOut)" not in block, name
            read = block.index("$exported = Get-PfxThumbprint $pfxOut")
            same = block.index("if ($certificate -and $exported -eq $certificate.Thumbprint) {")
            remove = block.index("Remove-Item -LiteralPath $pfxOut -Force")
            export = block.index("Export-PfxCertificate -Cert $certificate -FilePath $pfxOut")
            assert read < same < remove < export, name


def test_a_pfx_thumbprint_is_read_without_importing_the_key(compiled):
    exporting, importing = _edge_scripts(compiled)
    for name, text in {**exporting, **importing}.items():
        code = _code(text)
        assert "X509Certificate2($pfxFile" not in code.replace(" ", "") and "X509Certificate2(" + "$pfx" not in code, name
        reader = _function(text, "Get-PfxThumbprint")
        assert "Get-PfxData -FilePath $Path -Password $Password" in reader, name
        assert "$data.EndEntityCertificates" in reader, name
    for name, text in importing.items():
        assert "$thumbprint = Get-PfxThumbprint $pfxFile $password" in text and "$certificate = Get-StoredCertificate $thumbprint" in text, name
    assert "without importing it to certificate store" in _facts_source("pfx_data_thumbprint")


# ---------------------------------------------------------------------------------------------------
# 5. SFB256


def _topology_2015(extra: str = "") -> str:
    return TOPOLOGY.replace("    windows_server 2012R2\n", extra)


@pytest.mark.parametrize("extra,warned", [
    ("", True),                                   # unstated: 2015 runs on 2016 and 2019 too
    ("    windows_server 2012R2 2016\n", True),
    ("    windows_server 2019\n", True),
    ("    windows_server 2012 2012R2\n", False),
    ('    cumulative_update "D:\\CU\\SkypeServerUpdateInstaller.exe" arguments "/silentmode"\n', False),
])
def test_2015_on_2016_or_2019_without_a_cumulative_update_is_warned(extra, warned):
    result = check_text(_topology_2015(extra), "t.sfb")
    assert result.ok
    codes = [d for d in result.diagnostics if d.code == "SFB256"]
    assert bool(codes) == warned, [d.message for d in result.diagnostics]
    if warned:
        assert codes[0].span.line == 2 and "cumulative_update" in codes[0].message


def test_2019_is_not_warned_and_the_reference_sample_checks_clean():
    assert not [d for d in check_text(_topology_2015().replace("product 2015", "product 2019"), "t.sfb").diagnostics if d.code == "SFB256"]
    fabrikam = next(s for s in VALID_SAMPLES if s.stem == "fabrikam-2019")
    assert not [d for d in check_text(fabrikam.read_text(encoding="utf-8"), fabrikam.name).diagnostics if d.code == "SFB256"]
    contoso = next(s for s in VALID_SAMPLES if s.stem == "contoso")
    assert check_text(contoso.read_text(encoding="utf-8"), "contoso.sfb").diagnostics == []
    assert 'cumulative_update "' in contoso.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------------
# 6. The PFX password, asked for first


def test_invoke_runbook_refuses_a_missing_pfx_password_before_connecting(compiled):
    text = _text(compiled["contoso"].files["Invoke-Runbook.ps1"])
    servers = text[text.index("$Servers = @{"):text.index("\n}\n", text.index("$Servers = @{"))]
    for line in servers.split("\n"):
        match = re.match(r"\s+'([^']+)' = @\{ Edge = \$(true|false); Pfx = \$(true|false);", line)
        if match:
            # Exactly the members of the two-member Edge pool, which export or import its certificates.
            assert (match.group(3) == "true") == match.group(1).startswith("edge"), line
    assert servers.count("Pfx = $true") == 2
    code = _code(text)
    check = code.index("$needsPfx = @($pending | Where-Object { $_.Kind -eq 'script' -and $_.Secrets -and $Servers[$_.Server].Pfx }")
    refuse = code.index("if ($needsPfx.Count -gt 0 -and -not $PfxPassword -and -not $WhatIfPreference) {")
    # Before the first session is opened (every connection goes through New-ServerSession).
    first_session = code.index("$Sessions[$fqdn] = New-ServerSession $fqdn")
    assert check < refuse < first_session
    assert not re.search(r"\$needsPfx[^\n]*\.(Script|Id)\s+-(eq|like|match)", code)  # by the table's flags, not by names


def test_step_3_reads_the_pfx_password_before_it_changes_anything(compiled):
    exporting, importing = _edge_scripts(compiled)
    for name, text in {**exporting, **importing}.items():
        main = _code(_function(text, "Invoke-Main"))
        asked = main.index("[void](Get-PfxPassword ")
        # Never under -WhatIf, which changes nothing and must not prompt (Invoke-Runbook.ps1 -WhatIf gives no secrets).
        assert "if (-not $WhatIfPreference" in main[main.rindex("\n", 0, main.rindex("\n", 0, asked)):asked], name
        first_change = min(main.index(marker) for marker in ("$PSCmdlet.ShouldProcess(", "Set-CsCertificate") if marker in main)
        assert asked < first_change, name
        assert main.index("$caCredential = Get-CaCredential") < first_change, name
        # A password typed at the console is kept for the run: asked once, not once per file.
        assert "$script:PfxPassword = Read-Host -AsSecureString -Prompt $Purpose" in _function(text, "Get-PfxPassword"), name


# ---------------------------------------------------------------------------------------------------
# 8. PendingFileRenameOperations


def test_queued_file_renames_are_a_warning_not_a_pending_restart(compiled):
    assert "SkipPendingFileRename" in _facts_source("pending_file_renames")
    assert "PendingReboot" in _facts_source("reboot_pending_keys")
    seen = 0
    for _sample, result in compiled.items():
        for name, data in result.files.items():
            text = _text(data)
            if not name.endswith(".ps1") or "function Test-PendingReboot" not in text:
                continue
            seen += 1
            test = _code(_function(text, "Test-PendingReboot"))
            assert "return [bool]$renames" not in test, name
            assert test.count("return $true") == 1 and "if (Test-Path -LiteralPath $key) { return $true }" in test, name
            assert test.rstrip().endswith("return $false\n}"), name
            assert "Write-Warning" in test and "PendingFileRenameOperations" in test, name
            for key in fact("reboot_pending_keys"):
                assert key.replace("'", "''") in test, name
            # Reported once a run: the flag is set at the script's top level, so StrictMode can read it.
            assert "\n$script:RenamesReported = $false\n" in text, name
    assert seen > 0


# ---------------------------------------------------------------------------------------------------
# 9. The internal web services FQDN in a published topology


def test_the_documents_hold_no_internal_web_services_override():
    """What settles it (or not): no real published or Topology Builder document has an InternalSettings."""
    folder = SHARED / "topologies"
    documents = sorted(p for p in folder.glob("*") if p.suffix in (".xml", ".tbxml")) if folder.is_dir() else []
    if not documents:
        pytest.skip("../shared/topologies is not beside the checkout")
    for document in documents:
        text = document.read_text(encoding="utf-8-sig", errors="replace")
        assert "<ExternalSettings Host=" in text, document.name
        assert "InternalSettings" not in text, document.name


def test_a_different_internal_web_services_fqdn_is_a_warning(compiled):
    fe = _text(compiled["contoso"].files["fe01.contoso.com/1-Install-LocalConfigurationStore.ps1"])
    assert "$ExpectedWebInternal = 'webint.contoso.com'" in fe
    checked = 0
    for _sample, result in compiled.items():
        for name, data in result.files.items():
            text = _text(data)
            if not name.endswith(".ps1") or "function Assert-PublishedTopology" not in text:
                continue
            checked += 1
            body = _code(_function(text, "Assert-PublishedTopology"))
            assert "'internal web services FQDN: published '" not in body.replace("('", "'"), name
            assert not re.search(r"\$problems \+= \('internal web services", body), name
            warn = body.index("if ($internal -notcontains $ExpectedWebInternal) {")
            assert body.index("Write-Warning", warn) < body.index("}", warn), name
            # The external FQDN still stops the run.
            assert "$problems += ('external web services FQDN: published '" in body, name
    assert checked > 0
    # The open question is listed for a lab run.
    lab = README.read_text(encoding="utf-8").split("## What a lab run should confirm")[1].split("\n## ")[0]
    assert "InternalSettings" in lab


# --- second review (issue 18/19): the signer must be a trusted publisher, and a whole-plan preview -----------


def test_both_orchestrators_refuse_a_server_where_the_signer_is_not_a_trusted_publisher(tmp_path):
    """Under AllSigned, powershell.exe -NonInteractive refuses a script whose publisher is not trusted
    (about_Execution_Policies): both orchestrators say so by name before anything is copied or run."""
    from sfbgen.compiler import compile_file

    result = compile_file(ROOT / "samples" / "contoso.sfb", "unused", write=False)
    runbook = result.files["Invoke-Runbook.ps1"].decode("utf-8-sig")
    assert "Test-Path -LiteralPath ('Cert:\\LocalMachine\\TrustedPublisher\\' + $Thumbprint)" in runbook  # the fact, quoted
    prepare_at = runbook.index("function Initialize-ServerFolder")
    check_at = runbook.index("-ScriptBlock $ReadTrustedPublisher -ArgumentList $SignerThumbprint", prepare_at)
    assert check_at < runbook.index("$PrepareFolder", prepare_at)  # before the folder is prepared or copied
    prepare = result.files["ansible/tasks/prepare.yml"].decode("utf-8")
    assert "Test-Path -LiteralPath ($TrustedPublisherStore + $Signer)" in prepare
    assert 'TrustedPublisherStore: !unsafe "Cert:\\\\LocalMachine\\\\TrustedPublisher\\\\"' in prepare
    assert 'Signer: "{{ sfbgen_signer }}"' in prepare


def test_a_preview_of_a_later_step_warns_instead_of_failing_its_guard():
    """ansible-playbook --check runs every script with -WhatIf, and a previewed step leaves no record: a
    later step's preview names what a real run needs first and goes on (it used to exit 1)."""
    from sfbgen.compiler import compile_file

    result = compile_file(ROOT / "samples" / "contoso.sfb", "unused", write=False)
    script = result.files["fe01.contoso.com/2-Setup-Components.ps1"].decode("utf-8-sig")
    guard = script[script.index("function Assert-StepDone"):]
    guard = guard[: guard.index("\r\n}\r\n")]
    assert guard.index("if ($WhatIfPreference) {") < guard.index("throw ('Step ' + $Step")
    assert "Previewing anyway." in guard
