"""Compiling the samples: every file snapshotted, every script parsed, every cmdlet call checked."""

from __future__ import annotations

import json
import re

import pytest

from sfbgen.compiler import compile_file
from sfbgen.powershell import COMMON_PARAMETERS, catalog, parameter_set_for
from tests.conftest import VALID_SAMPLES

SAMPLE_NAMES = [p.stem for p in VALID_SAMPLES]


def scripts_of(result):
    return {name: data for name, data in result.files.items() if name.endswith(".ps1")}


def representative_files(result) -> list[str]:
    """The bundle's own documents, and every file of the first server of each kind: a role, with the
    scripts it runs. The other members of a kind run the same templates with their own values; their
    bytes are held by the determinism, parsing and review tests, so a snapshot of each kind is what a
    reviewer reads when the work of a role changes."""
    plan = json.loads(result.files["plan.json"])
    chosen, kinds = set(), set()
    for server in plan["servers"]:
        kind = (server["role"], tuple(name.split("/", 1)[1] for name in server["scripts"]))
        if kind not in kinds:
            kinds.add(kind)
            chosen.add(server["fqdn"])
    return sorted(name for name in result.files if "/" not in name or name.startswith("ansible/") or name.split("/", 1)[0] in chosen)


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_snapshot_each_kind_of_server(compiled, sample, snapshot):
    result = compiled[sample]
    for name in representative_files(result):
        text = result.files[name].decode("utf-8-sig").replace("\r\n", "\n")
        assert text == snapshot(name=name), name


def test_every_kind_of_server_is_snapshotted(compiled):
    """The snapshot covers every role of every sample, and leaves the other members of a kind out."""
    for sample in SAMPLE_NAMES:
        result = compiled[sample]
        plan = json.loads(result.files["plan.json"])
        covered = {name.split("/", 1)[0] for name in representative_files(result) if "/" in name}
        assert {s["role"] for s in plan["servers"] if s["fqdn"] in covered} == {s["role"] for s in plan["servers"]}
    contoso = representative_files(compiled["contoso"])
    assert any(n.startswith("fe01.contoso.com/") for n in contoso) and not any(n.startswith("fe03.contoso.com/") for n in contoso)


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_scripts_are_utf8_bom_crlf(compiled, sample):
    for name, data in scripts_of(compiled[sample]).items():
        assert data.startswith(b"\xef\xbb\xbf"), name
        assert data.endswith(b"\r\n"), name
        assert b"\n" not in data.replace(b"\r\n", b""), f"{name} has a bare LF"
        assert b"\r" not in data.replace(b"\r\n", b""), f"{name} has a bare CR"


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_every_script_parses(compiled, sample, pwsh):
    for name, data in scripts_of(compiled[sample]).items():
        assert pwsh.error_nodes(data) == [], name


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_every_skype_cmdlet_call_fits_a_parameter_set(compiled, sample, pwsh):
    checked = 0
    for name, data in scripts_of(compiled[sample]).items():
        for command in pwsh.commands(data):
            if not re.fullmatch(r"[A-Za-z]+-Cs[A-Za-z]+", command.name):
                continue
            assert command.name in catalog(), f"{name}:{command.line}: {command.name} is not a documented cmdlet"
            params = set(command.parameters) - COMMON_PARAMETERS
            if "@caCredential" in command.text:  # splatted at run time: CaAccount and CaPassword
                params |= {"CaAccount", "CaPassword"}
            parameter_set_for(command.name, params)  # raises when no documented set fits
            checked += 1
    assert checked > 10


def test_the_four_steps_are_there(compiled):
    files = compiled["contoso"].files
    for server in ["fe01.contoso.com", "se01.contoso.com", "med01.contoso.com", "edge01.contoso.com"]:
        names = {n.split("/", 1)[1] for n in files if n.startswith(server + "/")}
        assert {"1-Install-LocalConfigurationStore.ps1", "2-Setup-Components.ps1", "3-Request-Certificates.ps1"} <= names
    # Start-CsPool once per Enterprise pool, from its first member; Start-CsWindowsService elsewhere.
    assert "fe01.contoso.com/4-Start-Pool.ps1" in files
    assert not any(n.startswith(("fe02.contoso.com/4-", "fe03.contoso.com/4-")) for n in files)
    pool_script = files["fe01.contoso.com/4-Start-Pool.ps1"].decode("utf-8-sig")
    assert "Start-CsPool -PoolFqdn $PoolFqdn" in pool_script and "Start-CsWindowsService" not in pool_script
    for server in ["se01.contoso.com", "med01.contoso.com", "edge02.contoso.com"]:
        text = files[f"{server}/4-Start-Services.ps1"].decode("utf-8-sig")
        assert "Start-CsWindowsService" in text and "Start-CsPool" not in text


def test_edge_loads_configuration_from_file(compiled):
    files = compiled["contoso"].files
    edge = files["edge01.contoso.com/1-Install-LocalConfigurationStore.ps1"].decode("utf-8-sig")
    assert "Import-CsConfiguration -FileName $ConfigurationFile -LocalStore" in edge
    assert "Assert-ServerAdmin\r\n" not in edge  # an Edge is not domain-joined
    front_end = files["fe01.contoso.com/1-Install-LocalConfigurationStore.ps1"].decode("utf-8-sig")
    assert "Import-CsConfiguration -ByteInput (Export-CsConfiguration -AsBytes) -LocalStore" in front_end
    export = files["fe01.contoso.com/Export-EdgeConfiguration.ps1"].decode("utf-8-sig")
    assert "Export-CsConfiguration -FileName $ConfigurationFile -Force" in export


def test_compile_is_deterministic(tmp_path):
    for sample in VALID_SAMPLES:
        first = compile_file(sample, tmp_path / "a", write=False).files
        second = compile_file(sample, tmp_path / "b", write=False).files
        assert first == second


def test_output_does_not_depend_on_how_the_path_is_written(tmp_path, monkeypatch):
    sample = VALID_SAMPLES[0]
    absolute = compile_file(sample.resolve(), tmp_path / "a", write=False).files
    monkeypatch.chdir(sample.parent)
    relative = compile_file(sample.name, tmp_path / "b", write=False).files
    assert absolute == relative


def test_plan_json_shape(compiled):
    plan = json.loads(compiled["contoso"].files["plan.json"])
    assert plan["topology"] == "Contoso"
    server = next(s for s in plan["servers"] if s["fqdn"] == "edge01.contoso.com")
    assert set(server) >= {"fqdn", "pool", "role", "site", "scripts", "certificates"}
    assert server["role"] == "Edge" and server["pool"] == "edge.contoso.com" and server["site"] == "Redmond"
    for cert in server["certificates"]:
        assert set(cert) >= {"usages", "subject", "sans", "authority", "exportable_key", "key_size"}
        assert cert["authority"] in ("online", "offline")
    for step in plan["runbook"]:
        assert set(step) >= {"id", "server", "action", "script", "after"}


def test_runbook_has_checkboxes_waves_and_mermaid(compiled):
    runbook = compiled["contoso"].files["RUNBOOK.md"].decode("utf-8")
    assert "## Preconditions" in runbook and "- [ ] The topology is built and **published**" in runbook
    assert "```mermaid\ngraph TD\n" in runbook
    assert "can run in parallel" in runbook
    assert "**This bundle is not signed.**" in runbook
    assert "| Server | Usages" in runbook
