"""Every printed value made visible (issue 20, item 3): what comes from a document, a file or a file
name cannot forge a line of the output, hide text or move the cursor, and a name that is not UTF-8
does not crash a command whose output is strict UTF-8.

Each test runs the command line in a process of its own, as a person would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "contoso.sfb"
HIDDEN = ("\r", "\x1b", "\x9b", "\u202e", "\u200b")


def _run(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, **(env or {}))
    environment.pop("SFBGEN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "sfbgen", *args], capture_output=True, cwd=cwd, env=environment)


def _text(run: subprocess.CompletedProcess) -> tuple[str, str]:
    return run.stdout.decode("utf-8"), run.stderr.decode("utf-8")


def _no_hidden(text: str) -> None:
    for char in HIDDEN:
        assert char not in text, f"{char!r} printed raw"
    assert "internal error" not in text and "Traceback" not in text


# A published topology with a SQL Server cluster (listed as not deployed, by its FQDN) whose FQDN holds a
# carriage return (a character reference XML allows), a C1 CSI (U+009B, an escape to many terminals) and a
# right-to-left override.
DOCUMENT = """<Topology>
  <InternalDomains DefaultDomain="t.com"><InternalDomain Name="t.com" /></InternalDomains>
  <Sites><CentralSite SiteId="1"><Name>S</Name></CentralSite></Sites>
  <Clusters>
    <Cluster RequiresSetup="true" Fqdn="se.t.com"><ClusterId SiteId="1" Number="1" /><Machine Fqdn="se.t.com" /></Cluster>
    <Cluster RequiresSetup="false" Fqdn="sql.t.com&#13;imported x.xml: 0 servers in 0 pools\u009b2K\u202e"><ClusterId SiteId="1" Number="2" /><Machine Fqdn="sql.t.com" /></Cluster>
  </Clusters>
  <SqlInstances><SqlInstance><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></SqlInstance></SqlInstances>
  <Services>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="Registrar" Instance="1" /><InstalledOn><ClusterId SiteId="1" Number="1" /></InstalledOn></Service>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="UserStore" Instance="1" /><InstalledOn><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></InstalledOn></Service>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="Evil&#13;Role\u009b2J" Instance="1" /><InstalledOn><ClusterId SiteId="1" Number="2" /></InstalledOn></Service>
  </Services>
</Topology>
"""


def test_import_summary_shows_control_characters_of_the_document(tmp_path):
    document = tmp_path / "published.xml"
    document.write_text(DOCUMENT, encoding="utf-8")
    out = tmp_path / "topo.sfb"
    run = _run("import", str(document), "--out", str(out), "--media", "D:\\", "--ca", "ca.t.com\\CA")
    stdout, stderr = _text(run)
    assert run.returncode == 0, stderr
    _no_hidden(stdout + stderr)
    summary = stdout.splitlines()
    assert summary[0].startswith("imported ") and len(summary) == 2  # the summary and one not-deployed line
    assert "sql.t.com\\x0dimported x.xml" in summary[1] and "\\x9b2K\\u202e" in summary[1]
    assert "Evil\\x0dRole\\x9b2J role" in summary[1]
    written = out.read_text(encoding="utf-8")
    _no_hidden(written)
    assert "#   sql.t.com\\x0dimported" in written


def test_check_shows_a_hostile_file_name_and_source_line_escaped(tmp_path):
    name = "topo\x1b[2J\r0 failed.sfb"
    path = tmp_path / name
    text = SAMPLE.read_text(encoding="utf-8").replace("    product 2015", "    product 2015\n    bogus\u200b\u202eword", 1)
    path.write_text(text, encoding="utf-8")
    run = _run("check", name, cwd=tmp_path)
    stdout, stderr = _text(run)
    assert run.returncode == 1
    _no_hidden(stdout + stderr)
    assert "topo\\x1b[2J\\x0d0 failed.sfb:" in stderr
    assert "bogus\\u200b\\u202eword" in stderr  # the source line under the diagnostic
    clean = tmp_path / "clean\x1b]0;owned\x07.sfb"
    shutil.copy(SAMPLE, clean)
    run = _run("check", clean.name, cwd=tmp_path)
    stdout, stderr = _text(run)
    assert run.returncode == 0 and stdout.strip() == "clean\\x1b]0;owned\\x07.sfb: ok"


def test_compile_and_diff_show_hostile_names_escaped(tmp_path):
    topology = tmp_path / "t\x1b[31m.sfb"
    shutil.copy(SAMPLE, topology)
    out = "bundle\r\x1b[2K"
    run = _run("compile", topology.name, "--out", out, cwd=tmp_path)
    stdout, stderr = _text(run)
    assert run.returncode == 0, stderr
    _no_hidden(stdout + stderr)
    assert stdout.startswith("wrote bundle\\x0d\\x1b[2K: ")
    run = _run("diff", out, topology.name, cwd=tmp_path)
    stdout, stderr = _text(run)
    assert run.returncode == 0, stderr
    _no_hidden(stdout + stderr)
    assert "From `bundle\\x0d\\x1b[2K` to `t\\x1b[31m.sfb`." in stdout
    run = _run("diff", out, topology.name, "--format", "json", cwd=tmp_path)
    _no_hidden(run.stdout.decode("utf-8"))
    assert run.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file names that are not UTF-8 are a Linux matter")
@pytest.mark.parametrize("command", ["check", "check-json", "compile", "diff", "diff-json", "fmt", "import", "missing"])
def test_a_file_name_that_is_not_utf8_never_crashes_a_strict_utf8_output(tmp_path, command):
    """The red team's crash (exit 70): a name with the byte 0xff, printed to a stream that refuses
    what is not UTF-8 (PYTHONIOENCODING=utf-8:strict)."""
    folder = os.fsencode(tmp_path)
    topology = b"t\xff\x1b.sfb"
    shutil.copy(SAMPLE, os.path.join(folder, topology))
    if command == "fmt":  # not formatted: fmt --check names it
        with open(os.path.join(folder, topology), "a", encoding="utf-8") as stream:
            stream.write("\n\n\n")
    bundle = b"b\xfe"
    strict = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    if command in ("diff", "diff-json"):
        assert _run(b"compile", topology, b"--out", bundle, cwd=folder, env=strict).returncode == 0
    args = {
        "check": [b"check", topology],
        "check-json": [b"check", b"--format", b"json", topology, b"nothing\xff.sfb"],
        "compile": [b"compile", topology, b"--out", bundle],
        "diff": [b"diff", bundle, topology],
        "diff-json": [b"diff", b"--format", b"json", bundle, topology],
        "fmt": [b"fmt", b"--check", topology],
        "import": [b"import", topology],
        "missing": [b"check", b"nothing\xff.sfb"],
    }[command]
    run = _run(*args, cwd=folder, env=strict)
    stdout, stderr = _text(run)  # valid UTF-8, or this raises
    assert run.returncode in (0, 1, 2), stderr
    _no_hidden(stdout + stderr)
    assert any(escaped in stdout + stderr for escaped in ("\\xff", "\\xfe", "\\udcff")), stdout + stderr
    if command.endswith("json"):
        import json

        json.loads(stdout)  # still JSON


def test_import_refuses_a_name_with_an_escape_rather_than_write_it_to_the_terminal():
    """`sfbgen import` without --out writes the topology to standard output: a C1 CSI or a
    bidirectional override in a site name would reach the terminal with it."""
    from sfbgen.importer import ImportOptions, import_bytes

    for hidden in ("\u009b2J", "\u202e", "\u200b"):
        raw = DOCUMENT.replace("<Name>S</Name>", f"<Name>S{hidden}x</Name>").encode("utf-8")
        result = import_bytes(raw, "p.xml", ImportOptions(media="D:\\", ca="ca.t.com\\CA"))
        assert result.text is None
        assert any(d.code == "SFB403" and "invisible character" in d.message for d in result.diagnostics)


def test_fmt_diff_on_a_terminal_shows_escapes_of_the_file_and_stays_exact_when_piped(tmp_path):
    """A comment may hold an escape; `fmt --diff` prints the file's lines. On a terminal they are shown
    as code points (script(1) gives the command a terminal); piped, the diff is exact, for patch."""
    path = tmp_path / "t.sfb"
    path.write_bytes(b'topology "T" {  # a\x1b[2Jb\n  product 2015\n}\n')
    piped = _run("fmt", "--diff", str(path))
    assert b"\x1b[2J" in piped.stdout  # exact
    script = shutil.which("script")
    if script is None:
        pytest.skip("script(1) is not installed")
    on_terminal = subprocess.run([script, "-qec", f"{sys.executable} -m sfbgen fmt --diff {path}", "/dev/null"],
                                 capture_output=True, cwd=ROOT)
    shown = on_terminal.stdout.decode("utf-8")
    assert "\x1b" not in shown and "a\\u001b[2Jb" in shown
