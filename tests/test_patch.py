"""sfbgen patch (issue 23): Microsoft's update procedures per role, compiled into a bundle like compile's.

The ordering rules are read back from plan.json (the same file diff and both orchestrators read), for
every sample and for every real document of ../shared/topologies imported; the scripts are read with
tree-sitter-pwsh (they parse, every Skype cmdlet call fits the catalog, the procedure's commands come in
Microsoft's order) and the Windows PowerShell 5.1 lint; the signed bundle is checked by `sfbgen verify`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sfbgen import check_text
from sfbgen.diagnostics import DiagnosticsError, UsageError
from sfbgen.patching import PATCH_SCRIPT, PatchSettings, build_patch_plan, patch_file, pool_order
from sfbgen.powershell import CmdletSignatureError, catalog, parameter_set_for
from tests import pwsh_tree
from tests.conftest import VALID_SAMPLES, shared_path
from tests.ps51_lint import lint

INSTALLER = "\\\\files.contoso.com\\Updates\\SkypeServerUpdateInstaller.exe"
EDGE_INSTALLER = "D:\\Updates\\SkypeServerUpdateInstaller.exe"
DOCUMENTS = ["AutomatedLab_SfBAutomatedLab_Contoso.tbxml", "alvinchen1_ExchangeSkypeMDTAutomate_OTC.tbxml",
             "ibenbouzid_SkypeforBusiness_lab_V2_DefaultTopology_Skype.xml",
             "ibenbouzid_SkypeforBusiness_lab_V3_DefaultTopology_Skype.xml", "rlevchenko_powershell-skype_DefaultTopology.xml"]


def settings_for(topology, **changes) -> PatchSettings:
    """Every Enterprise pool's back end named (the topology cannot say which SQL Server it is)."""
    back_ends = tuple((p.fqdn.value, "sql-" + p.fqdn.value) for p in topology.pools() if p.kind == "enterprise")
    values = dict(installer=INSTALLER, arguments="/silentmode", target_version="6.0.9319.690",
                  edge_installer=EDGE_INSTALLER, back_ends=back_ends)
    values.update(changes)
    return PatchSettings(**values)


def _topology(path: Path):
    result = check_text(path.read_text(encoding="utf-8"), path.name)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    return result.topology


def _patch(path: Path, out: Path, signer=None, **changes):
    return patch_file(path, out, settings_for(_topology(path), **changes), signer, keep_files=True)


def _imported(tmp_path: Path, name: str) -> Path:
    from sfbgen.importer import ImportOptions, import_bytes

    options = ImportOptions(media="\\\\files.contoso.com\\Media\\SfB", ca="ca01.contoso.com\\Contoso CA")
    result = import_bytes(shared_path("topologies", name).read_bytes(), name, options)
    assert result.text is not None
    path = tmp_path / (Path(name).stem + ".sfb")
    path.write_text(result.text, encoding="utf-8")
    return path


# --- the ordering rules, on plan.json ------------------------------------------------------------------

def assert_patch_order(plan: dict, topology, pools: str = "serial") -> None:
    """The rules every patch plan keeps, read from plan.json alone (and the topology's next hops)."""
    steps = plan["runbook"]
    ids = [s["id"] for s in steps]
    position = {step_id: i for i, step_id in enumerate(ids)}
    servers = {s["fqdn"]: s for s in plan["servers"]}
    # Every server is patched exactly once, by its Patch-Server.ps1.
    patch_steps = [s for s in steps if s["script"] and s["script"].endswith("/" + PATCH_SCRIPT)]
    assert sorted(s["server"] for s in patch_steps) == sorted(servers)
    pool_of = {s["fqdn"]: s["pool"] for s in plan["servers"]}
    canonical = {p.fqdn.value.lower(): p.fqdn.value for p in topology.pools()}
    hop_of = {p.fqdn.value: canonical.get(p.next_hop.value.lower()) for p in topology.pools() if getattr(p, "next_hop", None) is not None}
    if pools == "serial":
        # One thing at a time: the steps are one chain, each waiting for the step just before it.
        for i, step in enumerate(steps):
            assert step["after"] == ([ids[i - 1]] if i else []), step
    else:
        # Within a pool one after another; a pool's first step waits for its next hop's last step alone.
        for i, step in enumerate(steps):
            pool = pool_of[step["server"]]
            before = [s for s in steps[:i] if pool_of[s["server"]] == pool]
            if before:
                assert step["after"] == [before[-1]["id"]], step
            else:
                hop = hop_of.get(pool)
                hop_steps = [s["id"] for s in steps if pool_of[s["server"]] == hop] if hop else []
                assert step["after"] == hop_steps[-1:], step
        # No pool waits for an unrelated pool.
        return
    # A pool's steps are contiguous: one pool after another, never two degraded at once.
    pools_in_order = []
    for step in steps:
        pool = pool_of[step["server"]]
        if not pools_in_order or pools_in_order[-1] != pool:
            assert pool not in pools_in_order, f"{pool} comes back after another pool"
            pools_in_order.append(pool)
    assert sorted(pools_in_order) == sorted({p.fqdn.value for p in topology.pools()})
    # Within a pool, members in the topology's order, one after another.
    for pool in topology.pools():
        members = [s.fqdn.value for s in pool.servers]
        order = [s["server"] for s in patch_steps if pool_of[s["server"]] == pool.fqdn.value]
        assert order == members
    # Next hops first: every step of a pool's next hop comes before the pool's first step.
    last_of = {pool: max(position[s["id"]] for s in steps if pool_of[s["server"]] == pool) for pool in pools_in_order}
    first_of = {pool: min(position[s["id"]] for s in steps if pool_of[s["server"]] == pool) for pool in pools_in_order}
    for pool in topology.pools():
        hop = getattr(pool, "next_hop", None)
        if hop is not None and hop.value.lower() in canonical:
            assert last_of[canonical[hop.value.lower()]] < first_of[pool.fqdn.value], (pool.fqdn.value, hop.value)
    # An Enterprise pool's back end is updated after every one of its Front Ends, from its first Front End.
    for pool in topology.pools():
        if pool.kind != "enterprise":
            continue
        (back_end,) = [s for s in steps if s["id"] == f"{pool.fqdn.value}:back-end"]
        assert back_end["server"] == pool.servers[0].fqdn.value and back_end["script"].endswith("/Patch-BackEnd.ps1")
        assert all(position[s["id"]] < position[back_end["id"]] for s in patch_steps if pool_of[s["server"]] == pool.fqdn.value)


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.stem)
def test_every_sample_keeps_the_ordering_rules(sample, tmp_path):
    result = _patch(sample, tmp_path / "out")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert_patch_order(plan, _topology(sample))
    assert plan["product"] == _topology(sample).product_version
    assert result.file_count == len(list(p for p in (tmp_path / "out").rglob("*") if p.is_file()))


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.stem)
def test_independent_pools_wait_only_for_their_next_hop(sample, tmp_path):
    _patch(sample, tmp_path / "out", pools="independent")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert_patch_order(plan, _topology(sample), pools="independent")


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_real_document_imported_keeps_the_ordering_rules(name, tmp_path):
    path = _imported(tmp_path, name)
    result = _patch(path, tmp_path / "out")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert_patch_order(plan, _topology(path))
    for script, data in _scripts(result.files).items():  # and its scripts parse and pass the 5.1 lint
        assert pwsh_tree.error_nodes(data) == [] and lint(script, data) == [], (name, script)
    _patch(path, tmp_path / "independent", pools="independent")
    assert_patch_order(json.loads((tmp_path / "independent" / "plan.json").read_text()), _topology(path), pools="independent")
    for server in plan["servers"]:
        assert (tmp_path / "out" / server["fqdn"] / PATCH_SCRIPT).is_file()


def test_the_order_rule_fails_on_a_plan_that_breaks_it(tmp_path):
    """The checker itself can fail: two members in one wave, and a next hop after its user."""
    sample = Path(__file__).parent.parent / "samples" / "contoso.sfb"
    _patch(sample, tmp_path / "out")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    parallel = json.loads(json.dumps(plan))
    parallel["runbook"][1]["after"] = []
    with pytest.raises(AssertionError):
        assert_patch_order(parallel, _topology(sample))
    swapped = json.loads(json.dumps(plan))
    edge = [s for s in swapped["runbook"] if s["server"].startswith("edge")]
    rest = [s for s in swapped["runbook"] if not s["server"].startswith("edge")]
    reordered = edge + rest
    for i, step in enumerate(reordered):
        step["after"] = [reordered[i - 1]["id"]] if i else []
    swapped["runbook"] = reordered
    with pytest.raises(AssertionError):
        assert_patch_order(swapped, _topology(sample))


def test_next_hops_come_first_even_when_written_later():
    text = (Path(__file__).parent.parent / "samples" / "contoso.sfb").read_text()
    # The Edge pool moved above the Front End pool it uses as next hop.
    start = text.index("        edge_pool")
    end = text.index("\n        }\n", start) + len("\n        }\n")
    edge = text[start:end]
    moved = text[:start] + text[end:]
    moved = moved.replace("        enterprise_pool", edge + "\n        enterprise_pool", 1)
    result = check_text(moved, "moved.sfb")
    assert result.ok
    order = [p.fqdn.value for p in pool_order(result.topology)]
    assert order.index("pool01.contoso.com") < order.index("edge.contoso.com")
    assert [p.fqdn.value for p in result.topology.pools()].index("edge.contoso.com") == 0


def test_the_reference_sample_plan(tmp_path):
    """The runbook of samples/contoso.sfb: four pools, nine steps, each pool's window."""
    sample = Path(__file__).parent.parent / "samples" / "contoso.sfb"
    result = _patch(sample, tmp_path / "out")
    plan = result.plan
    assert plan.pool_order == ["pool01.contoso.com", "se01.contoso.com", "med.contoso.com", "edge.contoso.com"]
    assert [s.id for s in plan.steps] == [
        "fe01.contoso.com:patch", "fe02.contoso.com:patch", "fe03.contoso.com:patch", "pool01.contoso.com:back-end",
        "se01.contoso.com:patch", "med01.contoso.com:patch", "med02.contoso.com:patch",
        "edge01.contoso.com:patch", "edge02.contoso.com:patch"]
    assert [(w.pool, w.wave_first, w.wave_last) for w in plan.windows] == [
        ("pool01.contoso.com", 1, 4), ("se01.contoso.com", 5, 5), ("med.contoso.com", 6, 7), ("edge.contoso.com", 8, 9)]
    runbook = result.files["RUNBOOK.md"].decode()
    assert "the pool serves on 2" in runbook and "down for the whole update" in runbook
    assert "Reset-CsPoolRegistrarState -PoolFqdn <pool> -ResetType QuorumLossRecovery" in runbook
    # The Edge Servers read the installer from their own folder; the others from the share.
    edge = result.files["edge01.contoso.com/Patch-Server.ps1"].decode("utf-8-sig")
    assert "$Installer = 'D:\\Updates\\SkypeServerUpdateInstaller.exe'" in edge
    assert "Assert-ServerAdmin\r\n" not in edge.split("function Invoke-Main")[1].split("\r\n}\r\n")[0]


# --- the scripts -----------------------------------------------------------------------------------------

def _scripts(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if name.endswith(".ps1")}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("patch")
    made = {sample.stem: _patch(sample, root / sample.stem) for sample in VALID_SAMPLES}
    fabrikam = Path(__file__).parent.parent / "samples" / "fabrikam-2019.sfb"
    made["fabrikam-upgrade"] = _patch(fabrikam, root / "upgrade", upgrade_to="subscription", target_version="7.0.2046.0",
                                      windows_server=("2019", "2022"))
    contoso = Path(__file__).parent.parent / "samples" / "contoso.sfb"
    made["contoso-collocated"] = _patch(contoso, root / "collocated", collocated_stores=("pool01.contoso.com",))
    return made


def test_every_script_parses_and_passes_the_51_lint(bundles):
    for name, result in bundles.items():
        for path, data in _scripts(result.files).items():
            assert pwsh_tree.error_nodes(data) == [], (name, path)
            assert lint(path, data) == [], (name, path, lint(path, data)[:3])


def test_every_skype_cmdlet_call_fits_the_catalog(bundles):
    seen = set()
    for result in bundles.values():
        for _path, data in _scripts(result.files).items():
            for command in pwsh_tree.commands(data):
                if command.name in catalog():
                    seen.add(command.name)
                    parameter_set_for(command.name, set(command.parameters))  # raises when it fits no documented set
    assert {"Invoke-CsComputerFailOver", "Invoke-CsComputerFailBack", "Get-CsPoolFabricState", "Reset-CsPoolRegistrarState",
            "Install-CsDatabase", "Stop-CsWindowsService", "Start-CsWindowsService", "Get-CsServerPatchVersion",
            "Get-CsPoolUpgradeReadinessState", "Get-CsUpgradeDomainInfo"} <= seen
    with pytest.raises(CmdletSignatureError):  # and the check can fail
        parameter_set_for("Invoke-CsComputerFailOver", {"PoolFqdn"})


def test_the_new_cmdlets_name_their_documentation():
    for name in ("Invoke-CsComputerFailOver", "Invoke-CsComputerFailBack", "Get-CsPoolUpgradeReadinessState",
                 "Get-CsUpgradeDomainInfo", "Get-CsServerVersion", "Get-CsServerPatchVersion"):
        assert catalog()[name]["source"] == f"MicrosoftDocs/office-docs-powershell/skype/skype-ps/SkypeForBusiness/{name}.md"


def _main(text: str) -> str:
    return text.split("function Invoke-Main {", 1)[1].split("\r\n}\r\n", 1)[0]


def _positions(text: str, *needles: str) -> list[int]:
    found = []
    for needle in needles:
        assert needle in text, needle
        found.append(text.index(needle))
    return found


def test_a_front_end_fails_over_updates_and_fails_back_in_that_order(bundles):
    text = bundles["contoso"].files["fe02.contoso.com/Patch-Server.ps1"].decode("utf-8-sig")
    main = _main(text)
    order = _positions(main, "Assert-MicrosoftSigned $Installer", "Read-VersionsBefore", "Test-AtTarget $script:VersionBefore",
                       "Assert-PreviousMemberDone", "Assert-PoolFabricHealthy", "Get-CsPoolUpgradeReadinessState",
                       "Invoke-CsComputerFailOver -ComputerName $ServerFqdn -WaitTime $wait -Confirm:$false",
                       "$restart = Invoke-Update", "Exit-Pending 3010",
                       "Invoke-CsComputerFailBack -ComputerName $ServerFqdn -WaitTime $wait -Confirm:$false",
                       "Assert-Updated", "Set-PatchPhase $record 'done'")
    assert order == sorted(order)
    assert "$PreviousMember = 'fe01.contoso.com'" in text
    # The quorum-loss recovery is named, and runs only with the operator's -QuorumLossRecovery.
    fabric = text.split("function Assert-PoolFabricHealthy {", 1)[1].split("\r\n}\r\n", 1)[0]
    reset = fabric.index("Reset-CsPoolRegistrarState -PoolFqdn $PoolFqdn -ResetType 'QuorumLossRecovery' -Confirm:$false")
    assert fabric.index("if (-not $QuorumLossRecovery) {") < reset
    assert "Reset-CsPoolRegistrarState" not in main
    # Each change is behind ShouldProcess: -WhatIf previews it.
    for action in ("Invoke-CsComputerFailOver (", "'Update with '", "Invoke-CsComputerFailBack ("):
        line = next(row for row in main.split("\r\n") if action in row)
        assert "$PSCmdlet.ShouldProcess(" in line


def test_the_other_roles_follow_their_procedures(bundles):
    files = bundles["contoso"].files
    member = _main(files["med01.contoso.com/Patch-Server.ps1"].decode("utf-8-sig"))
    order = _positions(member, "Assert-MicrosoftSigned $Installer", "Stop-CsWindowsService -Graceful", "$restart = Invoke-Update",
                       "Start-CsWindowsService", "Assert-Updated")
    assert order == sorted(order)
    assert "Invoke-CsComputerFailOver" not in member
    standard = _main(files["se01.contoso.com/Patch-Server.ps1"].decode("utf-8-sig"))
    order = _positions(standard, "Stop-CsWindowsService\r\n", "Stop-Service -Name $IisService", "$restart = Invoke-Update",
                       "Start-Service -Name $IisService", "Install-CsDatabase -Update -LocalDatabases -Confirm:$false",
                       "Start-CsWindowsService", "Assert-Updated")
    assert order == sorted(order)
    assert standard.count("Stop-CsWindowsService\r\n") == 2  # again after the update (the Global Assembly Cache)
    back_end = files["fe01.contoso.com/Patch-BackEnd.ps1"].decode("utf-8-sig")
    assert "Install-CsDatabase -Update -ConfiguredDatabases -SqlServerFqdn $SqlServerFqdn -Confirm:$false" in back_end
    assert "$SqlServerFqdn = 'sql-pool01.contoso.com'" in back_end
    main = _main(back_end)
    assert main.index("foreach ($member in $PoolMembers)") < main.index("Install-CsDatabase")
    collocated = bundles["contoso-collocated"].files["fe01.contoso.com/Patch-BackEnd.ps1"].decode("utf-8-sig")
    assert "-ExcludeCollocatedStores" in collocated


def test_versions_are_read_recorded_and_a_server_at_the_target_is_skipped(bundles):
    text = bundles["contoso"].files["fe01.contoso.com/Patch-Server.ps1"].decode("utf-8-sig")
    assert "$TargetVersion = '6.0.9319.690'" in text
    assert "$VersionEntry = 'Skype for Business Server 2015, Core Components'" in text
    main = _main(text)
    skip = main.index("if ($phase -eq 'missing' -and (Test-AtTarget $script:VersionBefore)) {")
    assert main.index("Set-PatchPhase $record 'skipped'", skip) < main.index("Invoke-CsComputerFailOver")
    record = text.split("function Set-PatchPhase", 1)[1].split("\r\n}\r\n", 1)[0]
    assert "before = $script:VersionBefore; after = $script:VersionAfter" in record
    assert "if ($WhatIfPreference) { return }" in record  # -WhatIf records nothing
    # A re-run resumes: the phases a run can stop at are each continued.
    assert "if (@('missing', 'drained', 'stopped', 'failed-over', 'updated') -notcontains $phase) {" in main
    assert "if ($phase -ne 'updated') {" in main


def test_the_upgrade_to_subscription_edition(bundles):
    result = bundles["fabrikam-upgrade"]
    text = result.files["sfbfe01.fabrikam.com/Patch-Server.ps1"].decode("utf-8-sig")
    assert "$UpgradeTitle = 'Skype for Business Server Subscription Edition'" in text
    assert "$VersionEntry = 'Skype for Business Server Subscription Edition, Core Components'" in text
    assert "$VersionEntryBefore = 'Skype for Business Server 2019, Core Components'" in text
    assert "'Windows Server 2022' = '10.0.20348'" in text
    assert "$UpgradeFeatures = @('NET-Framework-Core'" in text and "Get-WindowsFeature -Name $UpgradeFeatures" in text
    assert _main(text).index("Assert-UpgradePrerequisites") < _main(text).index("Invoke-CsComputerFailOver")
    assert "Get-CsUpgradeDomainInfo" in _main(text)  # 2019's readiness cmdlet
    assert "change the topology's `product` to `subscription`" in result.files["RUNBOOK.md"].decode()


def test_2015_is_not_upgraded_in_place_and_other_refusals(tmp_path):
    contoso = Path(__file__).parent.parent / "samples" / "contoso.sfb"
    topology = _topology(contoso)
    with pytest.raises(DiagnosticsError) as refused:
        build_patch_plan(topology, settings_for(topology, upgrade_to="subscription", target_version="7.0", windows_server=("2022",)))
    assert [d.code for d in refused.value.diagnostics] == ["SFB501"]
    assert "side-by-side" in refused.value.diagnostics[0].message
    with pytest.raises(DiagnosticsError) as missing:
        build_patch_plan(topology, settings_for(topology, back_ends=()))
    assert [d.code for d in missing.value.diagnostics] == ["SFB502"]
    for bad in (dict(installer="updates\\x.exe"), dict(edge_installer="x.exe"), dict(pools="all"), dict(target_version="latest"), dict(back_ends=(("med.contoso.com", "sql.contoso.com"),)),
                dict(collocated_stores=("other.contoso.com",))):
        with pytest.raises(UsageError):
            build_patch_plan(topology, settings_for(topology, **bad))
    fabrikam = _topology(Path(__file__).parent.parent / "samples" / "fabrikam-2019.sfb")
    with pytest.raises(UsageError):  # no Windows Server versions: sfbgen has no source for Subscription Edition's
        build_patch_plan(fabrikam, settings_for(fabrikam, upgrade_to="subscription"))
    assert not (tmp_path / "never").exists()


def test_patch_is_deterministic(tmp_path):
    sample = Path(__file__).parent.parent / "samples" / "fabrikam-2019.sfb"
    one = _patch(sample, tmp_path / "a").files
    two = _patch(sample, tmp_path / "b").files
    assert one == two


# --- the bundle: signed, verified, and what verify and diff read -----------------------------------------

@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization

    from sfbgen.authenticode import SigningKey
    from sfbgen.signing import make_codesign_certificate

    root = tmp_path_factory.mktemp("signed")
    key, cert = make_codesign_certificate("sfbgen patch test", key_size=2048)
    signer = SigningKey(cert, key)
    sample = Path(__file__).parent.parent / "samples" / "contoso.sfb"
    result = _patch(sample, root / "bundle", signer)
    trust = root / "root.pem"
    trust.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return root / "bundle", trust, signer.thumbprint, result


def test_the_signed_patch_bundle_verifies(signed):
    from typer.testing import CliRunner

    from sfbgen.cli import app

    bundle, trust, thumbprint, result = signed
    assert result.signed and result.serial == 1
    done = CliRunner().invoke(app, ["verify", str(bundle), "--trust", str(trust), "--signer", thumbprint])
    assert done.exit_code == 0, done.output
    for name in ("MANIFEST.psd1", "RUNBOOK.md", "plan.json", "Invoke-Runbook.ps1", "ansible/site.yml", "fe01.contoso.com/Test-Bundle.ps1"):
        assert (bundle / name).is_file(), name
    # An edited script is refused.
    script = bundle / "fe02.contoso.com" / PATCH_SCRIPT
    original = script.read_bytes()
    script.write_bytes(original.replace(b"$QuorumLossRecovery", b"$true #", 1))
    try:
        refused = CliRunner().invoke(app, ["verify", str(bundle), "--trust", str(trust), "--signer", thumbprint])
        assert refused.exit_code == 1
    finally:
        script.write_bytes(original)


def test_the_patch_plan_reads_as_a_plan_for_diff(signed, tmp_path):
    """diff takes a bundle's plan.json: the patch bundle's is the same shape as compile's."""
    from typer.testing import CliRunner

    from sfbgen.cli import app

    bundle, *_ = signed
    done = CliRunner().invoke(app, ["diff", str(bundle / "plan.json"), str(bundle / "plan.json"), "--format", "json"])
    assert done.exit_code == 0, done.output


def test_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from sfbgen.cli import app

    sample = Path(__file__).parent.parent / "samples" / "contoso.sfb"
    runner = CliRunner()
    done = runner.invoke(app, ["patch", str(sample), "--installer", INSTALLER, "--back-end", "pool01.contoso.com=sql01.contoso.com",
                               "--edge-installer", EDGE_INSTALLER, "--out", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert "patch of 8 servers in 4 pools, 9 steps in 9 waves, unsigned" in done.output
    again = runner.invoke(app, ["patch", str(sample), "--installer", INSTALLER, "--back-end", "pool01.contoso.com=sql01.contoso.com",
                                "--edge-installer", EDGE_INSTALLER, "--arguments", "/silentmode", "--out", str(tmp_path / "out")])
    assert again.exit_code == 0 and "serial 2" in again.output  # other settings, a newer serial
    missing = runner.invoke(app, ["patch", str(sample), "--installer", INSTALLER, "--out", str(tmp_path / "other")])
    assert missing.exit_code == 1 and "SFB502" in missing.output and not (tmp_path / "other").exists()
    bad = runner.invoke(app, ["patch", str(sample), "--installer", INSTALLER, "--back-end", "pool01.contoso.com", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
    upgrade = runner.invoke(app, ["patch", str(sample), "--installer", INSTALLER, "--back-end", "pool01.contoso.com=sql01.contoso.com",
                                  "--upgrade-to", "subscription", "--target-version", "7.0", "--windows-server", "2022", "--out", str(tmp_path / "y")])
    assert upgrade.exit_code == 1 and "SFB501" in upgrade.output


def test_the_orchestrators_walk_the_patch_steps(bundles):
    """Invoke-Runbook.ps1 and the playbook carry the patch steps in plan order (the same machinery as compile)."""
    result = bundles["contoso"]
    invoke = result.files["Invoke-Runbook.ps1"].decode("utf-8-sig")
    ids = re.findall(r"@\{ Id = '([^']+)'; Server", invoke)
    assert ids == [s.id for s in result.plan.steps]
    site = result.files["ansible/site.yml"].decode()
    assert all(f'"{s.id}"' in site for s in result.plan.steps)
    # Each Front End's second hops include the other members (Invoke-CsComputerFailOver needs them).
    assert "@{ Kind = 'remoting'; Target = 'fe02.contoso.com'; Hop = 'fe02.contoso.com' }" in invoke


# --- the playbook run by the real engine, on simulated hosts (tests/test_ansible_engine.py's machinery) ---

@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import shutil

    from cryptography.hazmat.primitives import serialization

    from sfbgen.authenticode import SigningKey
    from sfbgen.signing import make_codesign_certificate

    shutil.which("ansible-playbook") or pytest.skip("ansible-playbook is not installed: pip install -e '.[test]'")
    root = tmp_path_factory.mktemp("patch-engine")
    key, cert = make_codesign_certificate("sfbgen patch engine test", key_size=2048)
    signer = SigningKey(cert, key)
    trust = root / "root.pem"
    trust.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    sample = Path(__file__).parent.parent / "samples" / "contoso.sfb"
    made = {}
    for mode in ("serial", "independent"):
        result = _patch(sample, root / "bundles" / mode, signer, pools=mode)
        steps = [{"id": s.id, "server": s.server, "script": s.script, "after": list(s.after), "copies": list(s.copies),
                  "task": s.task} for s in result.plan.steps]
        made[mode] = (root / "bundles" / mode, trust, signer.thumbprint, steps)
    return root, made


ENGINE_RUNS = {
    "serial-all": ("serial", {}),
    # The fail-over fails on fe02 (its script exits 1): its pool's walk stops there.
    "failover-fails": ("independent", {"codes": {"fe02.contoso.com": {PATCH_SCRIPT: [1]}}}),
    # The update asks for a restart on med01 (3010), then the same script finishes after it.
    "restart": ("serial", {"codes": {"med01.contoso.com": {PATCH_SCRIPT: [3010, 0]}}}),
    # edge01 is already at the target version: its script skips at once (exit 0) and edge02 follows.
    "already-patched": ("serial", {"codes": {"edge01.contoso.com": {PATCH_SCRIPT: [0]}}, "sleep": 0.1}),
    # --check: the whole walk previewed, every script with -WhatIf, nothing restarted.
    "check": ("serial", {}),
}


@pytest.fixture(scope="module")
def engine_runs(engine):
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_ansible_engine import _run

    root, made = engine

    def one(name):
        mode, scenario = ENGINE_RUNS[name]
        return name, _run(root, made, mode, name, scenario, check=name == "check")

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, ENGINE_RUNS))


def test_engine_serial_walk_runs_one_server_at_a_time(engine_runs):
    from tests.test_ansible_engine import _assert_waits_respected

    run = engine_runs["serial-all"]
    assert run.returncode == 0, run.output[-3000:]
    assert run.order() == [s["id"] for s in run.steps]
    calls = run.scripts()
    for a, b in zip(calls, calls[1:], strict=False):  # never two at once, anywhere in the topology
        assert a["end"] <= b["start"], (a["host"], b["host"])
    _assert_waits_respected(run)
    assert run.summary["not_done"] == []


def test_engine_a_failover_that_fails_stops_its_pool_and_the_pools_that_use_it(engine_runs):
    from tests.test_ansible_engine import _assert_not_done_is_exactly

    run = engine_runs["failover-fails"]
    assert run.returncode != 0
    failed = run.not_done()["fe02.contoso.com:patch"]
    assert failed["state"] == "failed" and "exited 1" in failed["reason"]
    # fe03, the back end, and the Mediation and Edge pools (next hop pool01) wait; se01 was updated.
    _assert_not_done_is_exactly(run, {"fe02.contoso.com:patch"})
    assert "se01.contoso.com:patch" in run.step_calls()
    assert not any(c["host"] in ("fe03.contoso.com", "med01.contoso.com", "edge01.contoso.com") for c in run.scripts())


def test_engine_an_update_that_asks_for_a_restart_runs_again_after_it(engine_runs):
    run = engine_runs["restart"]
    assert run.returncode == 0, run.output[-3000:]
    calls = run.step_calls()["med01.contoso.com:patch"]
    assert [c["rc"] for c in calls] == [3010, 0]
    (reboot,) = [r for r in run.record if r["module"] == "win_reboot"]
    assert reboot["host"] == "med01.contoso.com" and calls[0]["end"] <= reboot["start"] <= reboot["end"] <= calls[1]["start"]
    # med02 waited for the whole of med01, restart included.
    assert run.step_calls()["med02.contoso.com:patch"][0]["start"] >= calls[1]["end"]


def test_engine_a_member_already_patched_lets_the_next_one_go(engine_runs):
    run = engine_runs["already-patched"]
    assert run.returncode == 0, run.output[-3000:]
    calls = run.step_calls()
    assert len(calls["edge01.contoso.com:patch"]) == 1 and calls["edge01.contoso.com:patch"][0]["rc"] == 0
    assert calls["edge02.contoso.com:patch"][0]["start"] >= calls["edge01.contoso.com:patch"][0]["end"]
    assert run.summary["not_done"] == []


def test_engine_check_mode_previews_every_patch_step_with_whatif(engine_runs):
    run = engine_runs["check"]
    assert run.returncode == 0, run.output[-3000:]
    assert sorted(run.step_calls()) == sorted(s["id"] for s in run.steps)
    assert all(c["whatif"] and c["arguments"][-1] == "-WhatIf" for c in run.scripts())
    assert not [r for r in run.record if r["module"] == "win_reboot"]


def test_an_enterprise_pool_of_one_front_end_is_drained_not_failed_over(tmp_path):
    """rlevchenko's published topology: one Front End, nothing to fail over to; its back end still follows."""
    path = _imported(tmp_path, "rlevchenko_powershell-skype_DefaultTopology.xml")
    result = _patch(path, tmp_path / "out")
    (server,) = result.plan.servers
    assert server.patch.procedure == "front-end-single"
    main = _main(result.files[f"{server.fqdn}/{PATCH_SCRIPT}"].decode("utf-8-sig"))
    assert "Invoke-CsComputerFailOver" not in main and "Invoke-CsComputerFailBack" not in main
    order = _positions(main, "Stop-CsWindowsService -Graceful", "$restart = Invoke-Update", "Start-CsWindowsService", "Assert-Updated")
    assert order == sorted(order)
    assert [s.id for s in result.plan.steps][-1].endswith(":back-end")
    assert "down for the whole update" in result.files["RUNBOOK.md"].decode()
