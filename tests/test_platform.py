"""What an expert review of the scripts found (issue 12), each shown on the generated scripts.

No PowerShell runs here: each test reads the scripts (text and tree-sitter-pwsh) for the behaviour the
platform needs, as documented in sfbgen/data/platform.json and the sources it cites.
"""

from __future__ import annotations

import json
import re

import pytest

from sfbgen import check_text
from sfbgen.compiler import compile_file
from sfbgen.platform import _facts, fact
from sfbgen.resources import resource_dir
from tests import pwsh_tree as pt


def _script(compiled, sample: str, path: str) -> str:
    return compiled[sample].files[path].decode("utf-8-sig")


def _main(text: str) -> str:
    return text[text.index("function Invoke-Main"):]


# ---------------------------------------------------------------------------------------------------
# Every platform fact cited, and templates take them from the facts file


def test_every_fact_has_a_source():
    for name, entry in _facts().items():
        assert entry.get("source"), name
        assert set(entry) <= {"value", "source", "reconstructed"}, name


def _literals(text: str) -> set[str]:
    """The PowerShell single-quoted literals of a template's code lines (comments are prose)."""
    found = set()
    for line in text.splitlines():
        code = line.strip()
        if code.startswith(("#", "{#", "{{ common.header")) or not code:
            continue
        if "ShouldProcess(" in code:
            code = code[: code.index("ShouldProcess(")]  # what -WhatIf prints: a description, not a name in use
        found.update(re.findall(r"'((?:[^'\n]|'')+)'", code))
    return found


PLATFORM_NAME = re.compile(r"(\.exe|\.msi|\.psd1|^HKLM:|^Cert:|^MSSQL\$|Setup\\amd64|^(Web|NET|RSAT|Server|Windows)-[A-Za-z0-9-]+$|^MpsSvc$|^REPLICA$|^/[A-Z][A-Za-z]+$)")
# Names of sfbgen's own files and of tools every Windows has; not platform facts of Skype for Business.
OWN = {"msiexec.exe", "manifest.psd1", "Test-Bundle.ps1"}


def test_templates_hold_no_platform_name_of_their_own():
    """A path, installer, switch, service, key or feature in a template must come from fact(...)."""
    for template in sorted(resource_dir("templates").glob("*.j2")):
        text = template.read_text(encoding="utf-8")
        for literal in _literals(text):
            if any(own in literal for own in OWN) or "{{" in literal:
                continue
            if len(literal.split()) >= 4 and "\\" not in literal:
                continue  # a sentence for the operator that mentions a name, not a name the script uses
            assert not PLATFORM_NAME.search(literal), f"{template.name}: '{literal}' is a platform name: put it in data/platform.json"


def test_the_facts_reach_the_scripts(compiled):
    text = _script(compiled, "contoso", "fe01.contoso.com/1-Install-LocalConfigurationStore.ps1")
    for name in ("vcredist", "sql_clr_types_msi", "sql_management_objects_msi", "local_store_sql_service", "replica_service", "media_setup_folder", "bootstrapper"):
        assert f"'{fact(name)}'" in text, name


# ---------------------------------------------------------------------------------------------------
# Would fail or do harm


def test_step3_reads_no_certificate_from_request_cscertificate(compiled):
    """Request-CsCertificate documents no certificate as its output (OUTPUTS: None): the script reads a
    thumbprint from it at most, and takes the certificate from Cert:\\LocalMachine\\My."""
    for sample in compiled.values():
        for name, data in sample.files.items():
            if not name.endswith("3-Request-Certificates.ps1"):
                continue
            text = data.decode("utf-8-sig")
            for line in text.splitlines():
                if "= Request-CsCertificate" in line:
                    variable = line.split("=")[0].strip()
                    uses = [row for row in text.splitlines() if variable in row and "= Request-CsCertificate" not in row]
                    assert uses and all("-ExpandProperty Thumbprint" in row for row in uses), (name, uses)
            assert ".GetNameInfo(" not in text.split("= Request-CsCertificate")[-1].split("\n")[0]


def test_step3_reuses_an_issued_certificate_before_requesting(compiled):
    text = _main(_script(compiled, "contoso", "fe01.contoso.com/3-Request-Certificates.ps1"))
    for block in text.split("# Certificate ")[1:]:
        if "Request-CsCertificate -New" not in block:
            continue
        assert block.index("Find-FitCertificate") < block.index("Request-CsCertificate -List") < block.index("Request-CsCertificate -New")
        assert "Request-CsCertificate -Retrieve" in block


def test_chain_trust_is_decided_without_online_revocation(compiled):
    text = _script(compiled, "contoso", "edge01.contoso.com/3-Request-Certificates.ps1")
    problem = text[text.index("function Get-ChainProblem"):text.index("function Show-RevocationWarning")]
    assert "X509RevocationMode]::NoCheck" in problem
    warning = text[text.index("function Show-RevocationWarning"):text.index("function Get-CertificateProblems")]
    assert "X509RevocationMode]::Online" in warning and "Write-Warning" in warning and "throw" not in warning


def test_relative_certificate_responses_are_resolved_by_powershell(compiled):
    text = _script(compiled, "contoso", "edge01.contoso.com/3-Request-Certificates.ps1")
    assert "$CertificateResponse = @($CertificateResponse | ForEach-Object { $PSCmdlet.GetUnresolvedProviderPathFromPSPath($_) })" in text
    # ... before any of them is opened by .NET.
    assert text.index("GetUnresolvedProviderPathFromPSPath") < text.index("$collection.Import($path)")


def _topology(body: str, head: str = "") -> str:
    return rf"""topology "T" {{
    product 2019
    media "\\fs.t.com\SfB"
{head}    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates {{ authority online "ca.t.com\CA" }}
    site "S" {{
{body}
    }}
}}
"""


SE = "        standard_edition se.t.com { central_management_store }\n"
EDGE = ("        edge_pool edge.t.com { next_hop se.t.com access_edge sip.t.com webconf_edge sip.t.com av_edge sip.t.com "
        r'media "D:\SfB" windows_source "D:\sxs" server edge1.t.com server edge2.t.com }' "\n")


def _compile(tmp_path, text: str):
    path = tmp_path / "t.sfb"
    path.write_text(text, encoding="utf-8")
    result = check_text(text)
    assert result.ok, [d.message for d in result.diagnostics]
    return compile_file(path, tmp_path / "out")


def test_dotnet35_is_installed_from_the_windows_sources_named_per_pool_site_or_topology(tmp_path):
    text = _topology(SE + EDGE, head=r'    windows_source "\\fs.t.com\WS2019\sources\sxs"' "\n")
    result = _compile(tmp_path, text)
    se = result.files["se.t.com/2-Setup-Components.ps1"].decode("utf-8-sig")
    edge = result.files["edge1.t.com/2-Setup-Components.ps1"].decode("utf-8-sig")
    assert "$WindowsSource = '\\\\fs.t.com\\WS2019\\sources\\sxs'" in se
    assert "$WindowsSource = 'D:\\sxs'" in edge  # the pool's own, for the perimeter network
    install = se[se.index("function Install-Features"):]
    install = install[:install.index("\nfunction ", 1)]  # to the next function (helpers follow Invoke-Main)
    # The payload is looked for, the source checked for being readable, and passed to Install-WindowsFeature.
    assert "InstallState -eq 'Removed'" in install
    assert install.index("Test-Path -LiteralPath $WindowsSource") < install.index("Install-WindowsFeature -Name $names @source")
    assert "$source = @{ Source = $WindowsSource }" in install


def test_without_windows_sources_step2_says_what_to_add(compiled):
    text = _script(compiled, "contoso", "fe01.contoso.com/2-Setup-Components.ps1")
    assert "$WindowsSource = ''" in text
    assert "with windows_source in the topology" in text


def test_edge_servers_install_from_their_own_media(tmp_path):
    result = _compile(tmp_path, _topology(SE + EDGE))
    assert "$MediaFolder = 'D:\\SfB'" in result.files["edge1.t.com/1-Install-LocalConfigurationStore.ps1"].decode("utf-8-sig")
    assert "$MediaFolder = '\\\\fs.t.com\\SfB'" in result.files["se.t.com/1-Install-LocalConfigurationStore.ps1"].decode("utf-8-sig")
    runbook = result.files["RUNBOOK.md"].decode("utf-8")
    assert "readable from every server" not in runbook
    assert "`D:\\SfB`: edge1.t.com, edge2.t.com" in runbook and "perimeter network" in runbook


def test_an_edge_pool_reading_a_share_is_warned_about():
    result = check_text(_topology(SE + EDGE.replace(r'media "D:\SfB" ', "")))
    # (SFB310 too: this Edge pool's external certificate follows the topology's online enterprise CA.)
    assert [d.code for d in result.diagnostics if d.code != "SFB310"] == ["SFB255"]


def test_smart_setup_is_no_longer_pretended():
    text = _topology(SE, head="    smart_setup wsus\n")
    result = check_text(text)
    assert [d.code for d in result.diagnostics] == ["SFB109"]


def test_every_role_installs_wcf_http_activation():
    """server-requirements.md: NET-WCF-HTTP-Activation45 on all servers."""
    for role, features in fact("windows_features").items():
        assert "NET-WCF-HTTP-Activation45" in features, role


def test_pool_members_are_asked_over_remoting_not_the_admin_share(compiled):
    text = _script(compiled, "contoso", "fe01.contoso.com/4-Start-Pool.ps1")
    assert "C$" not in text and "\\\\' + $Computer" not in text
    assert "Invoke-Command -ComputerName $Computer" in text
    assert "Get-Service -ComputerName" not in text and "Invoke-Command -ComputerName $member" in text


def test_edge_step1_verification_happens_on_a_front_end(compiled):
    plan = compiled["contoso"].plan
    step = next(s for s in plan.steps if s.id == "edge01.contoso.com:1")
    assert "on a Front End" in step.verify and "-ReplicaFqdn edge01.contoso.com" in step.verify


def test_edge_internal_certificate_is_one_per_pool_and_shared(compiled):
    plan = compiled["contoso"].plan
    first, second = plan.server("edge01.contoso.com"), plan.server("edge02.contoso.com")
    internal = next(r for r in first.requests if r.usages == ("Internal",))
    assert internal.subject == "edge.contoso.com" and internal.exportable_key and internal.scope == "pool"
    assert second.imports_shared(internal)
    copy = next(s for s in plan.steps if s.id == "edge02.contoso.com:copy-edge-cert")
    assert "EdgeInternal.pfx" in copy.action and "EdgeExternal.pfx" in copy.action


def test_imported_pfx_files_are_deleted_and_never_prompted_for_when_given(compiled):
    text = _script(compiled, "contoso", "edge02.contoso.com/3-Request-Certificates.ps1")
    assert "[SecureString]$PfxPassword" in text
    assert text.count("Remove-Item -LiteralPath $pfxFile -Force") == 2  # internal and external
    # Read-Host is reachable only through Get-PfxPassword, and only when -PfxPassword is absent.
    reads = [c for c in pt.commands(text.encode("utf-8-sig")) if c.name == "Read-Host"]
    assert len(reads) == 1
    helper = text[text.index("function Get-PfxPassword"):text.index("function Test-KeyExportable")]
    assert "if ($PfxPassword) { return $PfxPassword }" in helper


def test_cmdlets_that_change_state_never_prompt(compiled):
    for sample in compiled.values():
        for name, data in sample.files.items():
            if not name.endswith(".ps1"):
                continue
            for command in pt.commands(data):
                if command.name in ("Set-CsCertificate", "Import-CsCertificate", "Enable-CsComputer", "Enable-CsReplica", "Install-CsDatabase", "Set-CsConfigurationStoreLocation", "Start-CsPool") or (
                        command.name == "Request-CsCertificate" and "-List" not in command.text):
                    assert "-Confirm:$false" in command.text, (name, command.text)


# ---------------------------------------------------------------------------------------------------
# Missing relative to the Deployment Wizard


def test_first_standard_edition_server_is_prepared_before_publishing(compiled):
    plan = compiled["standard-edition"].plan
    ids = [s.id for s in plan.steps]
    assert ids[:2] == ["sfb01.northwind.com:0", "publish-topology"]
    step1 = next(s for s in plan.steps if s.id == "sfb01.northwind.com:1")
    assert "publish-topology" in step1.after
    text = _main(_script(compiled, "standard-edition", "sfb01.northwind.com/0-Prepare-CentralManagementStore.ps1"))
    order = ["Install-CoreComponents", "/BootstrapSqlExpress", "Install-CsDatabase -CentralManagementDatabase", "Set-CsConfigurationStoreLocation"]
    assert [text.index(o) for o in order] == sorted(text.index(o) for o in order)


def test_standard_edition_installs_its_configured_databases(compiled):
    text = _main(_script(compiled, "standard-edition", "sfb01.northwind.com/2-Setup-Components.ps1"))
    assert text.index("Bootstrapper.exe: install") < text.index("Install-CsDatabase -ConfiguredDatabases -SqlServerFqdn $ServerFqdn") < text.index("Enable-CsComputer -Confirm")
    # A Front End runs no Install-CsDatabase (with a cumulative update, contoso's only names the Back End's in a warning).
    fe = _script(compiled, "contoso", "fe01.contoso.com/2-Setup-Components.ps1").encode("utf-8")
    assert "Install-CsDatabase" not in {c.name for c in pt.commands(fe)}


def test_cumulative_update_runs_once_after_setup(tmp_path):
    head = r'    cumulative_update "\\fs.t.com\CU\SkypeServerUpdateInstaller.exe" arguments "/silentmode"' "\n"
    result = _compile(tmp_path, _topology(SE, head=head))
    text = result.files["se.t.com/2-Setup-Components.ps1"].decode("utf-8-sig")
    assert "$UpdateInstaller = '\\\\fs.t.com\\CU\\SkypeServerUpdateInstaller.exe'" in text and "$UpdateArguments = '/silentmode'" in text
    main = _main(text)
    # Issue 18: after step 2's Bootstrapper, before the databases are made and updated (the core
    # components had it before Bootstrapper, in step 1: tests/test_steps_0_2.py).
    assert (main.index("Bootstrapper.exe: install") < main.index("Install-CumulativeUpdate 'components'") < main.index("Install-CsDatabase -ConfiguredDatabases")
            < main.index("Install-CsDatabase -Update -LocalDatabases") < main.index("Enable-CsComputer -Confirm") < main.index("Set-StepDone 2"))
    function = text[text.index("function Install-CumulativeUpdate"):]
    function = function[:function.index("\nfunction ", 1)]  # to the next function (helpers follow Invoke-Main)
    assert "Get-FileHash -LiteralPath $UpdateInstaller" in function and "if ((Test-Path -LiteralPath $record -PathType Leaf)" in function


def test_unsupported_windows_server_is_refused_before_any_change(compiled):
    for sample, script in (("contoso", "fe01.contoso.com/1-Install-LocalConfigurationStore.ps1"), ("contoso", "fe01.contoso.com/2-Setup-Components.ps1"),
                           ("standard-edition", "sfb01.northwind.com/0-Prepare-CentralManagementStore.ps1")):
        text = _script(compiled, sample, script)
        main = _main(text)
        assert main.index("Assert-SupportedWindows") < min(main.index(c) for c in ("Install-CoreComponents", "Install-Features", "Bootstrapper") if c in main)
    text = _script(compiled, "fabrikam-2019", "sfbfe01.fabrikam.com/1-Install-LocalConfigurationStore.ps1")
    # Skype for Business Server 2019 runs on Windows Server 2016 and 2019 (sfb-deployment.md).
    assert "$SupportedWindows = [ordered]@{ 'Windows Server 2016' = '10.0.14393'; 'Windows Server 2019' = '10.0.17763' }" in text


SUBSCRIPTION = _topology(SE, head="")


def test_subscription_edition_needs_what_no_source_gives():
    text = SUBSCRIPTION.replace("product 2019", "product subscription")
    codes = [(d.code, d.message.split(":")[0]) for d in check_text(text).diagnostics]
    assert [c for c, _ in codes] == ["SFB107", "SFB107", "SFB107"]
    assert any("install_path" in m for _, m in codes) and any("module_path" in m for _, m in codes) and any("windows_server" in m for _, m in codes)


def test_subscription_edition_compiles_with_its_settings(tmp_path):
    head = (r'    install_path "C:\Program Files\Skype for Business Server"' "\n"
            r'    module_path "C:\Program Files\Common Files\Skype for Business Server\Modules\SkypeForBusiness\SkypeForBusiness.psd1"' "\n"
            "    windows_server 2019 2022\n")
    text = SUBSCRIPTION.replace("product 2019", "product subscription").replace("    sip_domain", head + "    sip_domain", 1)
    result = _compile(tmp_path, text)
    script = result.files["se.t.com/1-Install-LocalConfigurationStore.ps1"].decode("utf-8-sig")
    assert "$ModulePath = 'C:\\Program Files\\Common Files\\Skype for Business Server\\Modules\\SkypeForBusiness\\SkypeForBusiness.psd1'" in script
    assert "$InstallPath = 'C:\\Program Files\\Skype for Business Server'" in script
    assert "'Windows Server 2022' = '10.0.20348'" in script and "'Windows Server 2016'" not in script
    assert "$ProductTitle = 'Skype for Business Server Subscription Edition'" in script
    assert json.loads(result.files["plan.json"])["product"] == "subscription"
    # Pool rules taken as 2019's (an in-place successor): two Front End servers are refused.
    two = text.replace(SE, "        enterprise_pool p.t.com { front_end a.t.com front_end b.t.com }\n" + SE)
    assert "SFB221" in {d.code for d in check_text(two).diagnostics}


@pytest.mark.parametrize("version", ["2015", "2019"])
def test_known_products_default_install_and_module_paths(version):
    text = _topology(SE).replace("product 2019", f"product {version}")
    result = check_text(text)
    assert result.topology.effective_install_path() == f"C:\\Program Files\\Skype for Business Server {version}"
