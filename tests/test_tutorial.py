"""docs/tutorial.md runs as written: every ```sh block, in order, in a fresh temporary folder."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

from tests.conftest import ROOT, shared_path

TUTORIAL = ROOT / "docs" / "tutorial.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```$", TUTORIAL.read_text(encoding="utf-8"), re.M | re.S)


def test_the_tutorial_runs_from_import_to_a_verified_changed_bundle(tmp_path):
    document = shared_path("topologies", "AutomatedLab_SfBAutomatedLab_Contoso.tbxml")
    blocks = _blocks("sh")
    assert len(blocks) >= 8
    # `sfbgen` is this checkout's, whatever else is on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "sfbgen"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sfbgen "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    work = tmp_path / "work"
    work.mkdir()
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "SFBGEN_TUTORIAL_DOCUMENT": str(document)}
    env.pop("SFBGEN_PFX_PASSWORD", None)
    run = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # What each step left behind.
    topology = (work / "contoso.sfb").read_text(encoding="utf-8")
    assert "end_of_support acknowledged" in topology and 'media "D:\\Media\\SfB2015"' in topology
    assert "front_end xfrontend5.contoso.com" in topology
    assert (work / "bundle" / "RUNBOOK.md").is_file() and (work / "bundle" / "xfrontend5.contoso.com").is_dir()
    assert "xfrontend5.contoso.com" in (work / "change.md").read_text(encoding="utf-8")
    # Once the topology says what it means, check has nothing left to say.
    check = subprocess.run([sys.executable, "-m", "sfbgen", "check", "contoso.sfb"], cwd=work, capture_output=True, text=True)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    # Both verifications passed (each exits non-zero otherwise, which set -e would have stopped at).
    assert "FAILED" not in run.stdout, run.stdout[-2000:]


def test_the_tutorial_uses_signer_with_the_printed_thumbprint():
    text = TUTORIAL.read_text(encoding="utf-8")
    verifies = [line for block in _blocks("sh") for line in block.splitlines() if line.startswith("sfbgen verify")]
    assert verifies and all('--signer "$THUMBPRINT"' in line for line in verifies)
    assert "codesign-cert" in text and "THUMBPRINT=$(" in text


def test_the_tutorial_covers_every_stage():
    text = TUTORIAL.read_text(encoding="utf-8")
    for stage in ("sfbgen import", "sfbgen check", "sfbgen certs", "sfbgen compile", "sfbgen codesign-cert",
                  "sfbgen verify", "Invoke-Runbook.ps1", "ansible-playbook", "sfbgen diff"):
        assert stage in text, stage
