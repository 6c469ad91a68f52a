"""The commands a new administrator expects (issue 21): `check -`, a closed pipe, help without Python
types, `codesign-cert` that keeps a key, `certs` warnings, `diff --exit-code`, `explain`, shell
completion, and JSON with a format version for `import` and `fmt --check`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLES, shared_path

CONTOSO = SAMPLES / "contoso.sfb"


def sfbgen(*args: str, stdin: bytes | None = None, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sfbgen", *args], input=stdin, capture_output=True, cwd=cwd,
                          env={**os.environ, **(env or {})})


# -- check - ---------------------------------------------------------------------------------------------


def test_check_dash_reads_standard_input():
    run = sfbgen("check", "-", stdin=CONTOSO.read_bytes())
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode() == "<stdin>: ok\n"
    broken = sfbgen("check", "-", stdin=b'topology "x" {\n')
    assert broken.returncode == 1 and b"<stdin>:1:" in broken.stderr and b"SFB103" in broken.stderr
    as_json = sfbgen("check", "-", "--format", "json", stdin=b'topology "x" {\n')
    assert json.loads(as_json.stdout)[0]["file"] == "<stdin>"


# -- a closed pipe -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("certs", str(CONTOSO)), ("certs", str(CONTOSO), "--format", "json"),
                                  ("check", str(CONTOSO), "--format", "json"), ("explain", "SFB221")])
def test_a_closed_pipe_exits_120(args):
    """The reader went away before anything was written: every write meets EPIPE, which click turns
    into exit 1 unless sfbgen says otherwise (README: 120 the reader of the output went away)."""
    process = subprocess.Popen([sys.executable, "-m", "sfbgen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    error = process.stderr.read()
    assert process.wait() == 120, error
    assert b"Traceback" not in error


def test_certs_into_head_exits_120(tmp_path):
    """`sfbgen certs topo.sfb | head -1`, with more certificates than a pipe holds, so that the
    writes go on after head has left."""
    sys.path.insert(0, str(ROOT))
    from bench.generate import generate

    (tmp_path / "big.sfb").write_text(generate(400), encoding="utf-8")
    script = f'"{sys.executable}" -m sfbgen certs big.sfb 2>/dev/null | head -1; echo "status=${{PIPESTATUS[0]}}"'
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[1] == "status=120", run.stdout + run.stderr


# -- help --------------------------------------------------------------------------------------------------

COMMANDS = ["check", "compile", "diff", "certs", "verify", "codesign-cert", "fmt", "import", "explain"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_no_python_types(command):
    run = sfbgen(*([command] if command else []), "--help")
    assert run.returncode == 0
    text = run.stdout.decode()
    for python in ("list[", "Path]", "<path>", "<str>", "<int", "<float", "<bool", "<list"):
        assert python not in text, (command, python, text)
    if command == "codesign-cert":
        assert "--out PATH" in text and "--days N" in text


# -- codesign-cert ------------------------------------------------------------------------------------------


def test_codesign_cert_refuses_to_replace_a_key_without_force(tmp_path):
    env = {"SFBGEN_PFX_PASSWORD": "lab password"}
    first = sfbgen("codesign-cert", "--out", "lab.pfx", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "lab.pfx").read_bytes()
    again = sfbgen("codesign-cert", "--out", "lab.pfx", env=env, cwd=tmp_path)
    assert again.returncode == 2 and b"--force" in again.stderr
    assert (tmp_path / "lab.pfx").read_bytes() == key
    # The certificate alone, left from an earlier run, is not replaced either.
    (tmp_path / "lab.pfx").unlink()
    assert sfbgen("codesign-cert", "--out", "lab.pfx", env=env, cwd=tmp_path).returncode == 2
    forced = sfbgen("codesign-cert", "--out", "lab.pfx", "--force", env=env, cwd=tmp_path)
    assert forced.returncode == 0 and (tmp_path / "lab.pfx").read_bytes() != key


# -- certs ---------------------------------------------------------------------------------------------------


def test_certs_prints_its_warnings_on_stderr(tmp_path):
    topology = CONTOSO.read_text(encoding="utf-8").replace('country "US"', 'country "US"\n        key_size 1024').replace("        key_size 2048\n", "")
    (tmp_path / "t.sfb").write_text(topology, encoding="utf-8")
    run = sfbgen("certs", str(tmp_path / "t.sfb"))
    assert run.returncode == 0
    assert b"SFB302" in run.stderr  # a 1024-bit key: a warning check gives
    assert b"SFB302" not in run.stdout and b"fe01.contoso.com" in run.stdout
    as_json = sfbgen("certs", str(tmp_path / "t.sfb"), "--format", "json")
    json.loads(as_json.stdout)  # stdout stays the table's JSON
    assert b"SFB302" in as_json.stderr


# -- diff --exit-code ----------------------------------------------------------------------------------------


def test_diff_exit_code_0_same_2_changed_1_error(tmp_path):
    old = tmp_path / "old.sfb"
    old.write_bytes(CONTOSO.read_bytes())
    new = tmp_path / "new.sfb"
    new.write_text(CONTOSO.read_text(encoding="utf-8").replace("fe03.contoso.com", "fe04.contoso.com"), encoding="utf-8")
    assert sfbgen("diff", str(old), str(old), "--exit-code").returncode == 0
    changed = sfbgen("diff", str(old), str(new), "--exit-code")
    assert changed.returncode == 2 and b"fe04.contoso.com" in changed.stdout
    assert sfbgen("diff", str(old), str(tmp_path / "missing.sfb"), "--exit-code").returncode == 1
    broken = tmp_path / "broken.sfb"
    broken.write_text('topology "x" {\n', encoding="utf-8")
    assert sfbgen("diff", str(old), str(broken), "--exit-code").returncode == 1
    assert sfbgen("diff", str(old), str(new), "--exit-code", "--format", "json").returncode == 2
    # Without the option, a change is still a success.
    assert sfbgen("diff", str(old), str(new)).returncode == 0


# -- explain -------------------------------------------------------------------------------------------------


def test_explain_prints_the_rule_its_source_and_an_example_fix():
    from sfbgen.diagnostics import CATALOG

    run = sfbgen("explain", "SFB221")
    assert run.returncode == 0
    text = run.stdout.decode()
    assert CATALOG["SFB221"].title in text and CATALOG["SFB221"].source in text
    assert "example:" in text and "fix:" in text
    assert sfbgen("explain", "sfb426").returncode == 0
    unknown = sfbgen("explain", "SFB999")
    assert unknown.returncode == 2 and b"SFB999" in unknown.stderr
    assert b"retired" in sfbgen("explain", "SFB260").stdout


def test_every_code_explains_its_rule_source_and_fix():
    from sfbgen.diagnostics import CATALOG
    from sfbgen.explain import EXAMPLES, explain

    assert set(EXAMPLES) <= set(CATALOG), sorted(set(EXAMPLES) - set(CATALOG))  # no example of a code that went
    for code in CATALOG:
        text = explain(code)
        assert CATALOG[code].title in text and CATALOG[code].source in text and "fix:" in text
    # Every code of the topology, certificate and import stages has a worked example.
    assert {c for c in CATALOG if c[:4] in ("SFB1", "SFB2", "SFB3", "SFB4")} <= set(EXAMPLES)


# -- shell completion ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell,marker", [("bash", "complete "), ("zsh", "compdef"), ("powershell", "Register-ArgumentCompleter")])
def test_shell_completion_scripts(shell, marker):
    run = sfbgen("--show-completion", shell, env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert run.returncode == 0, run.stderr
    assert marker in run.stdout.decode()


def test_completion_completes_commands():
    # Typer names the completion variable after the program: sfbgen's is _SFBGEN_COMPLETE.
    env = {**os.environ, "_SFBGEN_COMPLETE": "complete_bash", "COMP_WORDS": "sfbgen ex", "COMP_CWORD": "1"}
    script = "import sys; sys.argv[0] = 'sfbgen'; from sfbgen.cli import main; main()"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert "explain" in run.stdout.split(), run.stdout + run.stderr


# -- JSON with a format version ---------------------------------------------------------------------------------


def test_import_json_has_a_format_version_and_everything_the_text_says(tmp_path):
    document = shared_path("topologies", "rlevchenko_powershell-skype_DefaultTopology.xml")
    run = sfbgen("import", str(document), "--media", "D:\\SfB", "--format", "json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["format_version"] == 1 and result["ok"] is True
    assert result["topology"].startswith("# Imported by sfbgen import")
    assert [p["fqdn"] for p in result["pools"]] == ["poolfe.tenant.rlevchenko.com"]
    assert {d["code"] for d in result["diagnostics"]} >= {"SFB404", "SFB422"}
    assert {n["fqdn"] for n in result["not_deployed"]} == {"srv-sql-01.tenant.rlevchenko.com", "tenant.rlevchenko.com", "srv-owa-01.tenant.rlevchenko.com"}
    out = tmp_path / "t.sfb"
    written = json.loads(sfbgen("import", str(document), "--media", "D:\\SfB", "--format", "json", "--out", str(out)).stdout)
    assert written["topology"] is None and written["out"] == str(out) and out.read_text().startswith("# Imported")
    refused = sfbgen("import", str(document), "--media", "\\files\\x", "--format", "json")
    assert refused.returncode == 1
    body = json.loads(refused.stdout)
    assert body["ok"] is False and body["topology"] is None and "SFB426" in {d["code"] for d in body["diagnostics"]}


def test_fmt_check_json_has_a_format_version(tmp_path):
    messy = tmp_path / "messy.sfb"
    messy.write_text(re.sub(r"\n    ", "\n  ", CONTOSO.read_text(encoding="utf-8")), encoding="utf-8")
    run = sfbgen("fmt", "--check", "--format", "json", str(CONTOSO), str(messy))
    assert run.returncode == 1
    result = json.loads(run.stdout)
    assert result["format_version"] == 1
    assert [(f["file"], f["formatted"]) for f in result["files"]] == [(str(CONTOSO), True), (str(messy), False)]
    assert sfbgen("fmt", "--check", "--format", "json", str(CONTOSO)).returncode == 0
    assert sfbgen("fmt", "--format", "json", str(CONTOSO)).returncode == 2  # json only reports: it goes with --check


# -- the RUNBOOK's graph stays drawable ------------------------------------------------------------------------


def _plan_of(servers: int):
    sys.path.insert(0, str(ROOT))
    from bench.generate import generate
    from sfbgen import check_text
    from sfbgen.plan import build_plan

    check = check_text(generate(servers), "scale.sfb")
    assert check.ok, [d.message for d in check.diagnostics if d.is_error][:3]
    return build_plan(check.topology)


@pytest.mark.parametrize("servers,level", [(10, "step"), (150, "pool"), (1000, "pool"), (5000, "wave")])
def test_the_runbook_graph_has_fewer_than_500_edges_at_any_size(servers, level):
    from sfbgen.render import MERMAID_MAX_EDGES, MERMAID_MAX_TEXT, mermaid_graph

    plan = _plan_of(servers)
    node_ids = {step.id: f"s{i}" for i, step in enumerate(plan.steps, 1)}
    graph = mermaid_graph(plan, node_ids)
    assert graph["level"] == level
    assert len(graph["edges"]) < MERMAID_MAX_EDGES
    assert sum(len(a) + len(b) + 10 for a, b in graph["edges"]) + sum(len(i) + len(t) + 12 for i, t in graph["nodes"]) < MERMAID_MAX_TEXT
    ids = {i for i, _ in graph["nodes"]}
    assert all(a in ids and b in ids for a, b in graph["edges"])
    if level == "step":
        assert len(graph["nodes"]) == len(plan.steps)


def test_a_compiled_runbook_of_150_servers_draws_its_pools(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.generate import generate
    from sfbgen.compiler import compile_file

    (tmp_path / "scale.sfb").write_text(generate(150), encoding="utf-8")
    compile_file(tmp_path / "scale.sfb", tmp_path / "out")
    runbook = (tmp_path / "out" / "RUNBOOK.md").read_text(encoding="utf-8")
    block = runbook.split("```mermaid\n", 1)[1].split("```", 1)[0]
    edges = [line for line in block.splitlines() if " --> " in line]
    assert 0 < len(edges) < 500
    assert "One node per pool" in runbook


def test_the_product_choices_are_the_one_list_of_products():
    """--product's choices are data/platform.json's products (issue 22: one list of products)."""
    from sfbgen.cli import Product
    from sfbgen.platform import products

    assert [p.value for p in Product] == list(products())
