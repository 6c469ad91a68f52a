"""`sfbgen verify --format json` (issue 21): one versioned document a CI job can read, and the same verdict as the text."""

from __future__ import annotations

import json

from tests.conftest import SAMPLES
from tests.test_cli import sfbgen_cli


def test_verify_json_reports_every_file_and_the_failure(tmp_path):
    out = tmp_path / "bundle"
    assert sfbgen_cli("compile", str(SAMPLES / "standard-edition.sfb"), "--out", str(out)).returncode == 0
    clean = sfbgen_cli("verify", str(out), "--unsigned", "--format", "json")
    document = json.loads(clean.stdout)
    assert clean.returncode == 0 and document["format_version"] == 1 and document["command"] == "verify"
    assert document["failed"] == 0 and document["ok"] == len(document["files"]) > 5
    assert {"path", "ok", "problems", "note", "warnings"} == set(document["files"][0])

    script = next(out.glob("*/1-Install-LocalConfigurationStore.ps1"))
    script.write_bytes(script.read_bytes().replace(b"Set-StepDone 1", b"Set-StepDone 9"))
    (out / "sfb01.northwind.com" / "planted\r\x1b[2K0 failed.ps1").write_bytes(b"\xef\xbb\xbfx\r\n")
    altered = sfbgen_cli("verify", str(out), "--unsigned", "--format", "json")
    document = json.loads(altered.stdout)
    assert altered.returncode == 1 and document["failed"] >= 1
    failed = [f for f in document["files"] if not f["ok"]]
    assert any(f["path"].endswith("1-Install-LocalConfigurationStore.ps1") for f in failed) or any(
        "planted" in f["path"] for f in failed)
    # A planted name is shown escaped, in JSON as on a terminal: no raw CR or escape reaches the reader.
    assert "\r" not in altered.stdout and "\x1b" not in altered.stdout
