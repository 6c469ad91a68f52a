"""The command line: exit codes, formats, help and version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import sfbgen
from tests.conftest import SAMPLES


def sfbgen_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfbgen", *args], capture_output=True, text=True, **kwargs)


def test_check_clean_sample():
    run = sfbgen_cli("check", str(SAMPLES / "standard-edition.sfb"))
    assert run.returncode == 0
    # Results on stdout, diagnostics on stderr (issue 14): a clean file has a result and no diagnostic.
    assert run.stdout == f"{SAMPLES / 'standard-edition.sfb'}: ok\n"
    assert run.stderr == ""


def test_check_errors_exit_1_with_caret(tmp_path):
    path = tmp_path / "topo.sfb"
    path.write_text('topology "T" {\n    product 2016\n}\n')
    run = sfbgen_cli("check", str(path))
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    head = next(i for i, line in enumerate(lines) if "SFB250" in line)
    assert lines[head].startswith(f"{path}:2:13: error SFB250: ")
    assert lines[head + 1].endswith("    product 2016")
    assert lines[head + 2].index("^") == lines[head + 1].index("2016")
    assert "\x1b[" not in run.stderr  # no colour when not a terminal


def test_warnings_only_exit_0(tmp_path):
    text = (SAMPLES / "contoso.sfb").read_text().replace("key_size 2048", "key_size 1024")
    path = tmp_path / "topo.sfb"
    path.write_text(text)
    run = sfbgen_cli("check", str(path))
    assert run.returncode == 0
    assert "warning SFB302" in run.stderr


def test_json_format(tmp_path):
    path = tmp_path / "topo.sfb"
    path.write_text('topology "T" {\n    product 2016\n}\n')
    run = sfbgen_cli("check", str(path), "--format", "json")
    assert run.returncode == 1
    diagnostics = json.loads(run.stdout)
    first = next(d for d in diagnostics if d["code"] == "SFB250")
    assert first == {"file": str(path), "line": 2, "column": 13, "end_line": 2, "end_column": 17,
                     "severity": "error", "code": "SFB250", "message": first["message"]}


def test_usage_errors_exit_2(tmp_path):
    assert sfbgen_cli("check", str(tmp_path / "missing.sfb")).returncode == 2
    assert sfbgen_cli("check").returncode == 2
    assert sfbgen_cli("check", "--format", "xml", str(SAMPLES / "contoso.sfb")).returncode == 2
    assert sfbgen_cli("frobnicate").returncode == 2


def test_version():
    run = sfbgen_cli("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"sfbgen {sfbgen.__version__}"


@pytest.mark.parametrize("command", [[], ["check"], ["compile"], ["certs"], ["verify"], ["codesign-cert"]])
def test_help_on_every_command(command):
    run = sfbgen_cli(*command, "--help")
    assert run.returncode == 0 and "Usage" in run.stdout


def test_library_never_prints(capsys, tmp_path):
    path = tmp_path / "bad.sfb"
    path.write_text("topology {")
    result = sfbgen.check_file(path)
    assert not result.ok
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_certs_command_json():
    run = sfbgen_cli("certs", str(SAMPLES / "contoso.sfb"), "--format", "json")
    assert run.returncode == 0
    rows = json.loads(run.stdout)
    oauth = [r for r in rows if r["usages"] == ["OAuthTokenIssuer"]]
    assert len(oauth) == 1 and oauth[0]["scope"] == "global"


def test_compile_refuses_unsigned_silently(tmp_path):
    run = sfbgen_cli("compile", str(SAMPLES / "standard-edition.sfb"), "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    assert "NOT SIGNED" in run.stderr


def test_certs_command_table():
    wide = sfbgen_cli("certs", str(SAMPLES / "contoso.sfb"), "--wide")
    assert wide.returncode == 0
    lines = wide.stdout.splitlines()
    assert lines[0].split()[:3] == ["SERVER", "USAGES", "SUBJECT"]
    edge = [line for line in lines if line.startswith("edge02.contoso.com") and "AccessEdgeExternal" in line]
    assert len(edge) == 1 and "copied from edge01.contoso.com" in edge[0]
    assert len(lines) == 1 + 11  # one row per certificate of the sample
    # Without --wide the same certificates, in blocks that fit 100 columns.
    narrow = sfbgen_cli("certs", str(SAMPLES / "contoso.sfb")).stdout.splitlines()
    assert max(len(line) for line in narrow) <= 100
    assert sum(1 for line in narrow if not line.startswith(" ")) == 11
    assert any("copied from edge01.contoso.com" in line for line in narrow)


def test_compile_reports_the_same_warnings_as_check(tmp_path):
    from sfbgen import check_file
    from sfbgen.compiler import compile_file

    sample = SAMPLES / "invalid" / "warnings-only.sfb"
    checked = [(d.code, d.span) for d in check_file(sample).diagnostics]
    compiled = [(d.code, d.span) for d in compile_file(sample, tmp_path / "out", write=False).diagnostics]
    assert checked == compiled and "SFB305" in {code for code, _ in compiled}


def _four_hundred_duplicates(tmp_path):
    """A topology whose JSON report is larger than a pipe holds (about 400 SFB201 diagnostics)."""
    servers = "\n".join("        server dup.contoso.com" for _ in range(400))
    path = tmp_path / "many.sfb"
    path.write_text((SAMPLES / "contoso.sfb").read_text().replace("        server med01.contoso.com", servers))
    return path


def test_output_larger_than_a_pipe_arrives_whole(tmp_path):
    # The CLI ends without tearing the interpreter down (os._exit): it must flush what it wrote first.
    run = sfbgen_cli("check", "--format", "json", str(_four_hundred_duplicates(tmp_path)))
    assert run.returncode == 1
    assert len(run.stdout) > 65536  # more than a pipe holds, so the writes block until the reader reads
    diagnostics = json.loads(run.stdout)
    assert sum(d["code"] == "SFB201" for d in diagnostics) >= 399  # every duplicate, to the last byte


def test_a_reader_that_goes_away_is_an_error_not_a_traceback(tmp_path):
    path = _four_hundred_duplicates(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "sfbgen", "check", "--format", "json", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.read(10)
    process.stdout.close()  # like `| head -c 10`
    stderr = process.stderr.read().decode()
    assert process.wait() != 0
    assert "Traceback" not in stderr


def test_an_output_folder_inside_a_file_is_a_usage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = sfbgen_cli("compile", str(SAMPLES / "contoso.sfb"), "--out", str(blocker / "sub" / "out"))
    assert run.returncode == 2
    assert f"{blocker} is a file" in run.stderr
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no one may create a folder")
def test_a_folder_the_system_will_not_let_us_write_is_not_called_a_bug():
    run = sfbgen_cli("compile", str(SAMPLES / "contoso.sfb"), "--out", "/proc/sfbgen-test-out")
    assert run.returncode == 74
    assert run.stderr.startswith("sfbgen: error: could not write the bundle: ")
    assert "bug" not in run.stderr and "Traceback" not in run.stderr


def test_check_takes_several_files_and_reports_them_together(tmp_path):
    broken = SAMPLES / "invalid" / "unclosed-pool.sfb"
    warned = SAMPLES / "invalid" / "warnings-only.sfb"
    run = sfbgen_cli("check", str(SAMPLES / "fabrikam-2019.sfb"), str(broken), str(warned))
    assert run.returncode == 1  # the worst of the three
    assert f"{broken}:11:39: error SFB103" in run.stderr
    assert f"{warned}:11:18: warning SFB302" in run.stderr
    # one summary for the whole run; the fourth warning is check's SFB258 (2015 is out of support), the
    # fifth SFB256 (2015 with no cumulative update named, which Windows Server 2016 and 2019 need)
    assert f"{warned}:" in run.stderr and "warning SFB256" in run.stderr
    assert run.stderr.count("1 error, 5 warnings") == 1 and f"{warned}:3:13: warning SFB258" in run.stderr
    oks = [line for line in run.stdout.splitlines() if line.endswith(": ok")]
    assert oks == [f"{SAMPLES / 'fabrikam-2019.sfb'}: ok", f"{warned}: ok"]

    as_json = json.loads(sfbgen_cli("check", "--format", "json", str(broken), str(warned)).stdout)
    assert [d["file"] for d in as_json] == [str(broken)] + [str(warned)] * 5  # with check's SFB258 and SFB256

    assert sfbgen_cli("check", str(SAMPLES / "contoso.sfb"), str(tmp_path / "missing.sfb")).returncode == 2
    clean = sfbgen_cli("check", *(str(p) for p in sorted(SAMPLES.glob("*.sfb"))))
    assert clean.returncode == 0 and clean.stdout.count(": ok") == len(list(SAMPLES.glob("*.sfb")))


def test_verify_refuses_plainly_where_files_cannot_be_opened_without_following_links(monkeypatch, tmp_path):
    """On Windows (no O_NOFOLLOW) verify says to use Test-Bundle.ps1 rather than check a bundle it could be led out of."""
    import os

    from typer.testing import CliRunner

    from sfbgen.cli import app

    monkeypatch.delattr(os, "O_NOFOLLOW")
    result = CliRunner().invoke(app, ["verify", str(tmp_path), "--unsigned"])
    assert result.exit_code == 2
    assert "Test-Bundle.ps1" in result.stderr and "Traceback" not in result.output
