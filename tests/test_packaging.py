"""An installed wheel carries the grammar and templates: sfbgen works outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT, SAMPLES


@pytest.mark.slow
def test_wheel_has_grammar_and_templates_and_runs(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("sfbgen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sfbgen/_data/grammar/sfb.lark" in names
    assert "sfbgen/_data/templates/certificates.ps1.j2" in names
    assert "sfbgen/data/cmdlets.json" in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    where = subprocess.run([sys.executable, "-c", "import sfbgen.resources as r; print(r.resource_dir('grammar'))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(unpacked))
    run = subprocess.run([sys.executable, "-m", "sfbgen", "compile", str(SAMPLES / "contoso.sfb"), "--out", str(tmp_path / "out")],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "fe01.contoso.com" / "4-Start-Pool.ps1").is_file()
