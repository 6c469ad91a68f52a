"""RUNBOOK.md's verify command, run as written: right for a signed and for an unsigned bundle, with the
compile serial that refuses a rollback (issue 20: --signer required, --not-older-than)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from sfbgen.compiler import compile_file
from tests.conftest import SAMPLES


def _verify_line(bundle) -> str:
    runbook = (bundle / "RUNBOOK.md").read_text(encoding="utf-8")
    (line,) = re.findall(r"^sfbgen verify .*$", runbook, flags=re.MULTILINE)
    return line


def _serial(bundle) -> int:
    return int(re.search(r"^\s*Serial = (\d+)\s*$", (bundle / "MANIFEST.psd1").read_text(encoding="utf-8-sig"), re.MULTILINE).group(1))


def _run(line: str, bundle, serial: int, root=None) -> subprocess.CompletedProcess:
    args = shlex.split(line.replace("<serial>", str(serial)))
    assert args[:3] == ["sfbgen", "verify", "OUT"]
    args = [str(bundle) if a == "OUT" else str(root) if a == "root.cer" else a for a in args[1:]]
    return subprocess.run([sys.executable, "-m", "sfbgen", *args], capture_output=True, text=True)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_the_runbooks_verify_command_verifies_its_bundle_and_refuses_an_older_serial(tmp_path, signing_key, signed):
    bundle = tmp_path / "bundle"
    compile_file(SAMPLES / "standard-edition.sfb", bundle, signing_key if signed else None, serial=7)
    line = _verify_line(bundle)
    assert "--not-older-than <serial>" in line
    if signed:
        assert f"--trust root.cer --signer {signing_key.thumbprint}" in line and "--unsigned" not in line
    else:
        assert "--unsigned" in line and "--signer" not in line
    assert _serial(bundle) == 7
    ok = _run(line, bundle, 7, signing_key.pem)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 failed" in ok.stdout
    # The serial of a newer bundle: this one is a rollback, and the same line refuses it.
    rollback = _run(line, bundle, 8, signing_key.pem)
    assert "older than 8 (--not-older-than)" in rollback.stdout + rollback.stderr
    assert " 0 failed" not in rollback.stdout
