"""Steps 0, 1 and 2 and Test-Bundle.ps1 on a real server (issue 18), each shown on the generated scripts.

No PowerShell runs here: each test reads the scripts of the samples and of the imports of every
document in ../shared/topologies (text and tree-sitter-pwsh) for the behaviour Microsoft's
documentation asks for, as sfbgen/data/platform.json cites it. Each test fails on the scripts as they
were before issue 18.
"""

from __future__ import annotations

import json
import re

import pytest

from sfbgen import check_text
from sfbgen.compiler import compile_file
from sfbgen.importer import ImportOptions, import_bytes
from sfbgen.platform import _facts, fact, windows_features
from sfbgen.resources import resource_dir
from tests import pwsh_tree as pt
from tests.conftest import SHARED

STEP_SCRIPTS = ("0-Prepare-CentralManagementStore.ps1", "1-Install-LocalConfigurationStore.ps1", "2-Setup-Components.ps1")
OPTIONS = ImportOptions(media="\\\\files.contoso.com\\Media\\SfB", ca="ca01.contoso.com\\Contoso CA")


def _text(data: bytes) -> str:
    return data.decode("utf-8-sig").replace("\r\n", "\n")


def _main(text: str) -> str:
    start = text.index("function Invoke-Main")
    return text[start:text.index("\n}\n", start)]


def _function(text: str, name: str) -> str:
    start = text.index(f"function {name}")
    return text[start:text.index("\n}\n", start) + 2]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Every document in ../shared/topologies imported and compiled: {document: CompileResult}."""
    folder = SHARED / "topologies"
    documents = sorted(p for p in folder.glob("*") if p.suffix in (".xml", ".tbxml")) if folder.is_dir() else []
    if not documents:
        pytest.skip("../shared/topologies is not beside the checkout")
    out = tmp_path_factory.mktemp("imported")
    results = {}
    for document in documents:
        result = import_bytes(document.read_bytes(), document.name, OPTIONS)
        assert result.text is not None, document.name
        source = out / (document.stem + ".sfb")
        source.write_text(result.text, encoding="utf-8")
        results[document.name] = compile_file(source, out / document.stem)
    return results


@pytest.fixture(scope="module")
def scripts(compiled, imported):
    """Every step 0, 1 and 2 script of the samples and the imports: {'<bundle>/<server>/<file>': text}."""
    found = {}
    for bundle, result in list(compiled.items()) + list(imported.items()):
        for name, data in result.files.items():
            if name.endswith(STEP_SCRIPTS):
                found[f"{bundle}/{name}"] = _text(data)
    assert any(n.endswith(STEP_SCRIPTS[0]) for n in found) and any(n.endswith(STEP_SCRIPTS[1]) for n in found)
    return found


def _sample(compiled, sample: str, path: str) -> str:
    return _text(compiled[sample].files[path])


SE = "        standard_edition se.t.com { central_management_store }\n"
POOL = "        enterprise_pool pool.t.com { front_end fe1.t.com front_end fe2.t.com front_end fe3.t.com }\n"
UPDATE = r'    cumulative_update "\\fs.t.com\CU\SkypeServerUpdateInstaller.exe" arguments "/silentmode"' "\n"


def _topology(body: str, head: str = "", product: str = "2015") -> str:
    return rf"""topology "T" {{
    product {product}
    media "\\fs.t.com\SfB"
    windows_source "\\fs.t.com\sxs"
{head}    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates {{ authority online "ca.t.com\CA" }}
    site "S" {{
{body}
    }}
}}
"""


def _compile(tmp_path, text: str):
    path = tmp_path / "t.sfb"
    path.write_text(text, encoding="utf-8")
    assert check_text(text).ok
    result = compile_file(path, tmp_path / "out")
    return {name: _text(data) for name, data in result.files.items()}


# ---------------------------------------------------------------------------------------------------
# 1. .NET Framework 3.5 and the role's features before SQL Server Express


def test_features_are_installed_before_sql_server_express(scripts):
    """SQL Server Express (Bootstrapper /BootstrapLocalMgmt, /BootstrapSqlExpress) needs .NET Framework
    3.5: the first script on a server installs the features before the core components and Bootstrapper."""
    for name, text in scripts.items():
        main = _main(text)
        if name.endswith(STEP_SCRIPTS[2]):
            assert main.index("Install-Features") < main.index("Invoke-Installer -FilePath $Bootstrapper"), name
            continue
        switch = "/BootstrapSqlExpress" if name.endswith(STEP_SCRIPTS[0]) else "/BootstrapLocalMgmt"
        assert main.index("Install-Features") < main.index("Install-CoreComponents") < main.index(switch), name
        assert "'NET-Framework-Core'" in text[text.index("$WindowsFeatures = @("):text.index("function Invoke-Main")], name
        features = _function(text, "Install-Features")
        assert "Exit-Pending 3010" in features and "RestartNeeded" in features, name  # 3010 kept
        assert "$source = @{ Source = $WindowsSource }" in features, name


# ---------------------------------------------------------------------------------------------------
# 2. Each product's prerequisites, each with its own source


NEW_IN_2019 = ("ManagementOData", "Web-Mgmt-Console", "Web-Metabase", "Web-Lgcy-Mgmt-Console", "Web-Lgcy-Scripting", "Web-WMI", "Web-Mgmt-Service")


def _features(text: str) -> list[str]:
    block = text[text.index("$WindowsFeatures = @("):]
    block = block[:block.index("\n)\n")]
    return re.findall(r"'([^']+)'", block)


def test_2019_installs_its_own_feature_list(compiled):
    fabrikam = _features(_sample(compiled, "fabrikam-2019", "sfbfe01.fabrikam.com/1-Install-LocalConfigurationStore.ps1"))
    contoso = _features(_sample(compiled, "contoso", "fe01.contoso.com/1-Install-LocalConfigurationStore.ps1"))
    for feature in NEW_IN_2019:
        assert feature in fabrikam and feature not in contoso, feature
    assert "Web-Dir-Browsing" in contoso and "Web-Dir-Browsing" not in fabrikam  # not on the 2019 line
    assert list(windows_features(("FrontEnd",), "2019")) == fabrikam
    # Subscription Edition has its own fact (taken as 2019's, and saying so).
    assert windows_features(("FrontEnd",), "subscription") == windows_features(("FrontEnd",), "2019")


def test_each_product_cites_its_own_source():
    facts = _facts()
    assert "SfBServer2019/plan/system-requirements.md" in facts["windows_features_2019"]["source"]
    assert "install-prerequisites.md" not in facts["windows_features_2019"]["source"]
    assert "2019" in facts["windows_features_subscription"]["source"] and facts["windows_features_subscription"]["reconstructed"]
    assert "SfBServer2019" in facts["dotnet_framework_2019"]["source"] and "does not support .NET Framework 4.8" in facts["dotnet_framework_2015"]["source"]
    assert "2015" in facts["windows_features"]["source"]
    # Desktop-Experience is on server-requirements.md's lines, not install-prerequisites.md's.
    assert facts["desktop_experience_feature"]["source"].startswith("Skype/SfbServer/plan-your-deployment/requirements-for-your-environment/server-requirements.md")
    # .NET Framework 3.5's payload is missing from Windows Server 2012 on, not from 2016 on.
    assert "2012" in facts["dotnet35_feature"]["source"] and "2016 and later its payload" not in facts["dotnet35_feature"]["source"]
    # /MinCache rests on no Microsoft page or public script: said so, not lent ibenbouzid's citation.
    mincache = facts["bootstrapper_local_store_arguments"]
    assert mincache["reconstructed"] and "/MinCache: no Microsoft page" in mincache["source"]


def test_dotnet_release_is_gated_per_product(compiled):
    """The Release value of NDP\\v4\\Full (Microsoft's version table): 2019 needs 4.7 (460798) or later,
    2015 must not have 4.8 (528040)."""
    key, value = fact("dotnet_release_key")
    assert key == "HKLM:\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4\\Full" and value == "Release"
    contoso = _sample(compiled, "contoso", "fe01.contoso.com/1-Install-LocalConfigurationStore.ps1")
    fabrikam = _sample(compiled, "fabrikam-2019", "sfbfe01.fabrikam.com/2-Setup-Components.ps1")
    assert "$DotNetBelow = 528040" in contoso and "$DotNetMinimum = 378389" in contoso
    assert "$DotNetMinimum = 460798" in fabrikam and "$DotNetBelow = 0" in fabrikam
    gate = _function(contoso, "Assert-DotNetFramework")
    assert f"Get-ItemProperty -LiteralPath '{key}' -Name 'Release'" in gate
    assert "if ($release -lt $DotNetMinimum)" in gate and "if ($DotNetBelow -gt 0 -and $release -ge $DotNetBelow)" in gate
    for text in (contoso, fabrikam):
        main = _main(text)
        assert main.index("Assert-DotNetFramework") < main.index("Install-Features")


# ---------------------------------------------------------------------------------------------------
# 3. The cumulative update where Microsoft puts it, then the database update


def test_core_components_are_updated_before_bootstrapper(tmp_path):
    files = _compile(tmp_path, _topology(SE + POOL, head=UPDATE))
    for name, switch in (("se.t.com/0-Prepare-CentralManagementStore.ps1", "/BootstrapSqlExpress"), ("fe1.t.com/1-Install-LocalConfigurationStore.ps1", "/BootstrapLocalMgmt")):
        main = _main(files[name])
        assert main.index("Install-CoreComponents") < main.index("Update-CoreComponents") < main.index(switch), name
        assert "Install-CumulativeUpdate 'core'" in _function(files[name], "Update-CoreComponents")
    # Step 2: again after Bootstrapper, then the Standard Edition databases and their update.
    main = _main(files["se.t.com/2-Setup-Components.ps1"])
    order = ["Invoke-Installer -FilePath $Bootstrapper", "Install-CumulativeUpdate 'components'", "Install-CsDatabase -ConfiguredDatabases",
             "Install-CsDatabase -Update -LocalDatabases -Confirm:$false", "Enable-CsComputer -Confirm:$false"]
    assert [main.index(o) for o in order] == sorted(main.index(o) for o in order)
    # An Enterprise Front End has no local databases to update: it says what the Back End needs.
    fe = _main(files["fe1.t.com/2-Setup-Components.ps1"])
    assert "Install-CsDatabase" not in {c.name for c in pt.commands(files["fe1.t.com/2-Setup-Components.ps1"].encode("utf-8"))}
    assert "Install-CsDatabase -Update -ConfiguredDatabases -SqlServerFqdn <its Back End Server>" in fe
    # A record per installer and stage: the same update runs once before Bootstrapper and once after.
    update = _function(files["fe1.t.com/2-Setup-Components.ps1"], "Install-CumulativeUpdate")
    assert "('update-' + $hash + '-' + $Stage + '.json')" in update


def test_2015_without_an_update_stops_before_bootstrapper_on_windows_server_2016(compiled, tmp_path):
    # A 2015 topology that names no cumulative update (SFB256 warns; contoso names one since the fourth review).
    files = _compile(tmp_path, _topology(SE))
    plain = files["se.t.com/1-Install-LocalConfigurationStore.ps1"]
    assert "$UpdateInstaller = ''" in plain and "$CoreUpdateRequired = $true" in plain and "$CoreUpdateFromBuild = '10.0.14393'" in plain
    guard = _function(plain, "Update-CoreComponents")
    assert "if ($CoreUpdateRequired -and [Environment]::OSVersion.Version -ge [Version]$CoreUpdateFromBuild)" in guard and "throw" in guard
    # 2019 has no such rule.
    assert "$CoreUpdateRequired = $false" in _sample(compiled, "fabrikam-2019", "sfbfe01.fabrikam.com/1-Install-LocalConfigurationStore.ps1")


def test_standard_edition_databases_wait_for_the_named_update(tmp_path):
    files = _compile(tmp_path, _topology(SE, head=UPDATE, product="2019"))
    main = _main(files["se.t.com/2-Setup-Components.ps1"])
    assert main.index("Install-CumulativeUpdate 'components'") < main.index("Install-CsDatabase -ConfiguredDatabases")


# ---------------------------------------------------------------------------------------------------
# 4. Step 0 never repoints a live Central Management Store, never prompts


def test_step0_reads_the_store_location_before_setting_it(compiled):
    text = _sample(compiled, "standard-edition", "sfb01.northwind.com/0-Prepare-CentralManagementStore.ps1")
    main = _main(text)
    state = _function(text, "Get-StoreLocationState")
    assert "Get-CsConfigurationStoreLocation" in state and "OrdinalIgnoreCase" in state
    assert main.index("$state = Get-StoreLocationState") < main.index("Bootstrapper.exe /BootstrapSqlExpress") < main.index("Set-CsConfigurationStoreLocation -SqlServerFqdn")
    here = main[main.index("if ($state -eq 'here')"):main.index("if ($state -ne 'none')")]
    assert "Set-StepDone 0" in here and "return" in here
    elsewhere = main[main.index("if ($state -ne 'none')"):main.index("# SQL Server Express")]
    assert "throw ('Active Directory says the Central Management Store is at ' + $state + ', not at ' + $ServerFqdn" in elsewhere
    for command in pt.commands(text.encode("utf-8")):
        if command.name == "Set-CsConfigurationStoreLocation":
            assert "-Confirm:$false" in command.text


def test_get_cs_configuration_store_location_is_in_the_catalog():
    from sfbgen.resources import data_file

    catalog = json.loads(data_file("cmdlets.json").read_text(encoding="utf-8"))
    entry = catalog["Get-CsConfigurationStoreLocation"]
    assert entry["source"].endswith("Get-CsConfigurationStoreLocation.md")
    assert set(entry["parameter_sets"]["__AllParameterSets"]) == {"GlobalSettingsDomainController", "Report"}


# ---------------------------------------------------------------------------------------------------
# 5. Resumable partial installs


def test_core_components_are_decided_package_by_package(scripts):
    for name, text in scripts.items():
        if name.endswith(STEP_SCRIPTS[2]):
            continue
        core = _function(text, "Install-CoreComponents")
        # Not "Bootstrapper.exe exists, so everything is": each package by its ProductCode.
        assert not core.split("{", 1)[1].lstrip().startswith("if (Test-Path -LiteralPath $Bootstrapper)"), name
        assert "$code = Get-MsiProductCode $package.Path" in core and "if (Test-MsiInstalled $code)" in core, name
        assert "Win32_Product" not in text.replace("not Win32_Product", ""), name
        installed = _function(text, "Test-MsiInstalled")
        for key in fact("uninstall_keys"):
            assert f"'{key}'" in installed
        assert fact("msi_product_code_query").replace("'", "''") in _function(text, "Get-MsiProductCode")


def test_an_existing_sql_instance_does_not_skip_bootstrapper(scripts):
    for name, text in scripts.items():
        main = _main(text)
        for service in (fact("local_store_sql_service"), fact("central_store_sql_service")):
            # The service is looked for after Bootstrapper (to confirm it), never to skip it.
            for match in re.finditer(re.escape(f"Get-Service -Name '{service}'"), main):
                assert main.rfind("Invoke-Installer -FilePath $Bootstrapper", 0, match.start()) != -1, name
        assert "} elseif ($PSCmdlet.ShouldProcess($ServerFqdn, 'Bootstrapper.exe" not in main, name


# ---------------------------------------------------------------------------------------------------
# 6. Culture-proof, 7. no Join-Path on topology paths


MINE = ("_functions.ps1.j2", "local-store.ps1.j2", "components.ps1.j2", "prepare-cms.ps1.j2", "verify-bundle.ps1.j2")


def test_no_culture_dependent_dates():
    for template in MINE:
        text = (resource_dir("templates") / template).read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "Get-HotFix" not in code, template  # InstalledOn throws on non-en-US servers
        assert not re.search(r"\[datetime\]::Parse|ParseExact|Get-Date -Format|\.ToString\('[^']*'\)", code), template
        for match in re.finditer(r"\.ToString\('o'", code):
            assert code[match.start():match.start() + 70].startswith(".ToString('o', [Globalization.CultureInfo]::InvariantCulture)"), template


def test_topology_paths_are_not_joined_with_join_path(scripts):
    for name, text in scripts.items():
        for variable in ("$MediaFolder", "$InstallPath", "$SetupFolder", "$WindowsSource", "$UpdateInstaller"):
            assert f"Join-Path {variable}" not in text and f"Join-Path -Path {variable}" not in text, (name, variable)
        assert "$SetupFolder = [IO.Path]::Combine($MediaFolder, " in text, name


# ---------------------------------------------------------------------------------------------------
# 8. Stale files in a server's folder


def test_test_bundle_names_each_stale_file_and_what_to_do(compiled):
    text = _sample(compiled, "fabrikam-2019", "sfbedge01.fabrikam.com/Test-Bundle.ps1")
    loop = text[text.index("$root = $PSScriptRoot.TrimEnd('\\')"):text.index("if ($failures -gt 0)")]
    # Produced names are accepted where the manifest puts them, before anything is refused.
    assert loop.index("if ($produced.ContainsKey($key))") < loop.index("Write-Problem ('not in the manifest: '")
    problems = re.findall(r"Write-Problem \((.*)\)\n", loop)
    refusals = [p for p in problems if "not in the manifest" in p]
    assert len(refusals) == 3
    script, produced, other = refusals
    assert "Never run it: delete it (Remove-Item -LiteralPath ''' + $item.FullName + '''), then run this script again." in script
    assert "Move-Item -LiteralPath ''' + $item.FullName + ''' -Destination <a folder outside the bundle>" in produced and "an earlier compile" in produced
    assert "Move-Item" in other and "$relative" in other
    assert "$producedFolders[$name.Substring(0, $name.LastIndexOf('/')).ToLowerInvariant()] = $true" in text


# ---------------------------------------------------------------------------------------------------
# 9. Every installer from the media signed by Microsoft before it runs


def test_every_installer_is_checked_for_microsoft_signature_before_it_runs(scripts):
    for name, text in scripts.items():
        check = _function(text, "Assert-MicrosoftSigned")
        assert "$signature = Get-AuthenticodeSignature -LiteralPath $Path" in check
        assert "[string]$signature.Status -ne 'Valid'" in check and f"$names -contains '{fact('installer_publisher')}'" in check
        assert "SubjectName.Format($true)" in check  # one RDN per line: never a substring of the subject
        invoke = _function(text, "Invoke-Installer")
        assert invoke.index("Assert-MicrosoftSigned $Package") < invoke.index("Start-Process")
        # msiexec.exe runs only with the package it installs named for the check.
        for command in pt.commands(text.encode("utf-8")):
            if command.name == "Invoke-Installer" and "'msiexec.exe'" in command.text:
                assert "-Package $package.Path" in command.text, name
        main = _main(text)
        for match in re.finditer(re.escape("Invoke-Installer -FilePath $Bootstrapper"), main):
            assert "Assert-MediaSigned" in main[main.rfind("ShouldProcess", 0, match.start()):match.start()], name
        if "function Install-CumulativeUpdate" in text:
            assert "Assert-MicrosoftSigned $UpdateInstaller" in _function(text, "Install-CumulativeUpdate")


# ---------------------------------------------------------------------------------------------------
# 10. Runbook texts


def test_runbook_texts_say_what_is_true(compiled, tmp_path):
    contoso = compiled["contoso"].files["RUNBOOK.md"].decode("utf-8")
    northwind = compiled["standard-edition"].files["RUNBOOK.md"].decode("utf-8")
    assert "On Windows Server 2016 and later, .NET Framework 3.5" not in contoso
    assert "From Windows Server 2012 on, .NET Framework 3.5" in contoso or "for .NET Framework 3.5" in contoso
    assert "ready to be **published** in wave 2" in northwind and "The topology is built and **published**" not in northwind
    assert "The topology is built and **published**" in contoso  # no step 0 there: published before
    step = next(s for s in compiled["contoso"].plan.steps if s.id == "edge01.contoso.com:1")
    assert "after step 4" in step.verify and "UpToDate" in step.verify
    # A 2015 topology without a cumulative update is told what step 0 or 1 will need.
    path = tmp_path / "t.sfb"
    path.write_text(_topology(SE), encoding="utf-8")
    plain = compile_file(path, tmp_path / "out").files["RUNBOOK.md"].decode("utf-8")
    assert "needs its core components updated before\n  Bootstrapper" in plain


# ---------------------------------------------------------------------------------------------------
# Every script of the samples and imports still parses; 11. the README lists the lab questions


def test_every_step_script_parses(scripts):
    for name, text in scripts.items():
        assert not pt.error_nodes(text.encode("utf-8")), name


def test_readme_lists_what_a_lab_run_should_confirm():
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## What a lab run should confirm"):]
    section = section[:section.find("\n## ", 5)] if "\n## " in section[5:] else section
    for question in ("Bootstrapper.exe", "exit code", "/MinCache", "Get-CsConfigurationStoreLocation", "2019", "Subscription Edition",
                     "ProductCode", "O=Microsoft Corporation", "NET-Framework-Core", "SkypeServerUpdateInstaller.exe"):
        assert question in section, question
