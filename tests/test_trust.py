"""Every attack of the security reviews (issues 13 and 20) is refused: bench/attacks.py replays each
against `sfbgen verify --trust` and the compiler, and RELIABILITY.md counts them with the same code."""

from __future__ import annotations

import pytest

from bench.attacks import ATTACKS, make_kit, run_attack
from sfbgen import manifest as mf
from sfbgen.platform import fact


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return make_kit(tmp_path_factory.mktemp("attacks"))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_refused(kit, name):
    outcome, said = run_attack(kit, name)
    assert outcome == "refused", f"{name}: {outcome}: {said}"


def test_the_untouched_bundle_is_accepted(kit):
    """The attacks are refused for what they do, not because everything is."""
    from sfbgen.verify import verify_bundle

    reports = verify_bundle(kit.bundle, kit.trust(signer=kit.signer.thumbprint))
    assert reports and all(r.ok for r in reports), [r for r in reports if not r.ok]
    produced = [r for r in reports if "produced on the server" in r.note]
    assert produced == []  # none yet: the servers have not run


def test_files_produced_on_servers_are_named_exactly_and_reported(kit, tmp_path):
    import shutil

    from sfbgen.verify import verify_bundle

    bundle = tmp_path / "used"
    shutil.copytree(kit.bundle, bundle)
    (bundle / "fe01.contoso.com" / "out").mkdir()
    (bundle / "fe01.contoso.com" / "out" / "CsConfiguration.zip").write_bytes(b"PK")
    (bundle / "edge01.contoso.com" / "requests").mkdir()
    (bundle / "edge01.contoso.com" / "requests" / "edge.contoso.com-edgeexternal.req").write_bytes(b"req")
    reports = verify_bundle(bundle, kit.trust(deployed=True))
    assert all(r.ok for r in reports)
    notes = {r.path: r.note for r in reports if r.note.startswith("produced")}
    assert set(notes) == {"fe01.contoso.com/out/CsConfiguration.zip", "edge01.contoso.com/requests/edge.contoso.com-edgeexternal.req"}


def test_types_are_compared_case_insensitively():
    assert [mf.kind_of(name) for name in ("a.PS1", "b.Psd1", "c.PS1XML", "d.CMD", "e.Bat", "f.md", "g.bin")] == [
        "script", "script", "executable", "executable", "executable", "data", "unknown"]
    assert list(mf.SCRIPT_TYPES) == fact("script_extensions")


@pytest.mark.parametrize("bad", [
    "    Signer = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'\n",  # a second key
    "    Extra = 'x'\n",  # an unknown field
])
def test_the_manifest_is_read_in_its_one_layout(kit, bad):
    text = (kit.bundle / mf.ROOT_NAME).read_bytes().decode("utf-8-sig")
    text = text[: text.index("# SIG #")].replace("\r\n", "\n")
    mf.parse(text)
    with pytest.raises(mf.ManifestError):
        mf.parse(text.replace("    Files = @(\n", bad + "    Files = @(\n", 1))


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../b", "a\\b", "C:/x", "a//b", ".hidden", "a/b/c/d/e"])
def test_manifest_paths_are_confined(path):
    assert mf.path_problem(path)


# ---------------------------------------------------------------------------------------------------
# The server side, reasoned from the scripts (no PowerShell here)


def test_test_bundle_checks_the_manifest_signature_first_and_every_script(compiled):
    text = compiled["contoso"].files["fe01.contoso.com/Test-Bundle.ps1"].decode("utf-8-sig")
    first_read = text.index("Import-PowerShellDataFile")
    assert text.index("$problem = Test-Signed $manifestPath") < first_read  # the manifest is trusted before it is read
    assert "$signature.Status -ne 'Valid'" in text and "SignerCertificate.Thumbprint -ne $SignerThumbprint" in text
    assert "Write-Problem ('not in the manifest: ' + $relative" in text  # unlisted files fail
    assert "ReparsePoint" in text  # links fail
    assert "-not $AllowUnsigned" in text  # an unsigned bundle fails unless asked for integrity only


def test_the_signer_is_compiled_into_every_script(kit):
    for path in kit.bundle.rglob("*.ps1"):
        text = path.read_bytes().decode("utf-8-sig")
        assert f"$SignerThumbprint = '{kit.signer.thumbprint}'" in text, path


def test_assert_bundle_intact_trusts_only_a_signed_manifest(compiled):
    text = compiled["contoso"].files["fe01.contoso.com/1-Install-LocalConfigurationStore.ps1"].decode("utf-8-sig")
    function = text[text.index("function Assert-BundleIntact"):text.index("function Test-PendingReboot")]
    assert function.index("Get-AuthenticodeSignature -LiteralPath $manifestPath") < function.index("Import-PowerShellDataFile")


def test_completion_records_are_the_administrators(compiled):
    text = compiled["contoso"].files["fe01.contoso.com/2-Setup-Components.ps1"].decode("utf-8-sig")
    assert "$AdminSids = @('S-1-5-18', 'S-1-5-32-544')" in text
    assert "$security.SetAccessRuleProtection($true, $false)" in text
    reader = text[text.index("$ReadStepRecord = {"):text.index("function Assert-StepDone")]
    assert "GetOwner([System.Security.Principal.SecurityIdentifier])" in reader and "$Owners -notcontains $owner" in reader
    assert "$record.server -ne $Server -or $record.topology -ne $Topology" in reader
    runner = text[text.rindex("# Before anything else"):]
    assert runner.index("Initialize-StateFolder") < runner.index("Start-Transcript")


def test_runbook_runs_scripts_under_allsigned_and_verifies_with_trust(kit):
    runbook = (kit.bundle / "RUNBOOK.md").read_text()
    assert f"sfbgen verify OUT --trust root.cer --signer {kit.signer.thumbprint}" in runbook
    assert "powershell.exe -ExecutionPolicy AllSigned -File .\\Test-Bundle.ps1" in runbook
    assert "powershell.exe -ExecutionPolicy AllSigned -File .\\1-Install-LocalConfigurationStore.ps1" in runbook
    assert "Trusted Publishers" in runbook
    assert "sfbgen verify OUT`" not in runbook  # never without --trust


def test_osslsigncode_verifies_the_signed_manifests(kit):
    import subprocess

    from cryptography.hazmat.primitives import serialization

    from tests.conftest import require_osslsigncode

    root = kit.work / "root.pem"
    root.write_bytes(kit.root.public_bytes(serialization.Encoding.PEM))
    for path in [kit.bundle / mf.ROOT_NAME, *kit.bundle.glob("*/" + mf.SERVER_NAME)][:3]:
        run = subprocess.run([require_osslsigncode(), "verify", "-CAfile", str(root), "-in", str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr
