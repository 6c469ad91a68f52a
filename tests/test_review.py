"""Reviewable in pull requests (issue 14): a script's bytes change only when its work changes."""

from __future__ import annotations

import pytest

from sfbgen.compiler import compile_file
from tests.conftest import SAMPLES

CONTOSO = (SAMPLES / "contoso.sfb").read_text(encoding="utf-8")
ROOT_DOCUMENTS = {"RUNBOOK.md", "plan.json", "MANIFEST.psd1", ".sfbgen-bundle", "ansible/site.yml", "ansible/inventory.yml", "Invoke-Runbook.ps1"}

EDITS = {
    "add a Front End server": (
        "            front_end fe03.contoso.com\n",
        "            front_end fe03.contoso.com\n            front_end fe04.contoso.com\n",
        # the new server; the member that runs Start-CsPool (it lists the members); the root documents
        {"fe04.contoso.com/*", "fe01.contoso.com/4-Start-Pool.ps1", "fe01.contoso.com/manifest.psd1"},
    ),
    "change a simple URL": (
        '"https://meet.fabrikam.com"',
        '"https://conf.fabrikam.com"',
        # the web certificates of every Front End and the Standard Edition server name it
        {f"{s}/{f}" for s in ("fe01.contoso.com", "fe02.contoso.com", "fe03.contoso.com", "se01.contoso.com")
         for f in ("3-Request-Certificates.ps1", "manifest.psd1")},
    ),
    "rename a site": ('site "Redmond"', 'site "Seattle"', set()),
}


def _files(tmp_path, name: str, text: str) -> dict[str, bytes]:
    source = tmp_path / f"{name}.sfb"
    source.write_text(text, encoding="utf-8")
    return compile_file(source, tmp_path / name).files


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edit_changes_only_the_files_whose_work_changes(tmp_path, edit):
    old, new, allowed = EDITS[edit]
    assert old in CONTOSO
    before = _files(tmp_path, "before", CONTOSO)
    after = _files(tmp_path, "after", CONTOSO.replace(old, new))
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    expected = {path for path in after if any(path.startswith(a[:-1]) if a.endswith("*") else path == a for a in allowed)}
    assert changed - ROOT_DOCUMENTS == expected, sorted(changed ^ expected)


# ---------------------------------------------------------------------------------------------------
# sfbgen diff


def _write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.sfb"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_diff_agrees_with_the_files_that_change(tmp_path, edit):
    """What `sfbgen diff` says changes is what compiling both sides changes, whatever OLD is given as."""
    from sfbgen.difference import compare, snapshot, snapshots

    old_text, new_text, allowed = EDITS[edit]
    old = _write(tmp_path, "old", CONTOSO)
    new = _write(tmp_path, "new", CONTOSO.replace(old_text, new_text))
    compile_file(old, tmp_path / "bundle")
    results = [compare(*snapshots(old, new)),  # two topologies: fingerprints, rendering only what differs
               compare(snapshot(old), snapshot(new)),  # both rendered in full
               compare(snapshot(tmp_path / "bundle"), snapshot(new)),  # the deployed bundle
               compare(snapshot(tmp_path / "bundle" / "plan.json"), snapshot(new))]  # its plan.json
    first = results[0].to_json()
    for other in results[1:]:
        assert {k: v for k, v in other.to_json().items() if k not in ("old", "new")} == {k: v for k, v in first.items() if k not in ("old", "new")}
    changed = {f"{fqdn}/{name}" for fqdn, names in results[0].changed_scripts.items() for name in names}
    assert changed == {a for a in allowed if a.endswith(".ps1")}
    added = {s["fqdn"] for s in results[0].added}
    assert added == {a.split("/")[0] for a in allowed if a.endswith("*")}


def test_diff_names_certificates_to_request_again_and_the_order(tmp_path):
    from sfbgen.difference import compare, markdown, snapshots

    old = _write(tmp_path, "old", CONTOSO)
    new = _write(tmp_path, "new", CONTOSO.replace('"https://meet.fabrikam.com"', '"https://conf.fabrikam.com"'))
    difference = compare(*snapshots(old, new))
    (web,) = [c for c in difference.certificates if c["servers"] == ["se01.contoso.com"]]
    assert "meet.fabrikam.com" in web["old_sans"] and "conf.fabrikam.com" in web["new_sans"]
    assert [s["id"] for s in difference.steps] == ["fe01.contoso.com:3", "fe02.contoso.com:3", "fe03.contoso.com:3", "se01.contoso.com:3"]
    text = markdown(difference)
    assert "**Certificates to request again**" in text and "1. `fe01.contoso.com:3`" in text
    nothing = compare(*snapshots(old, old))
    assert nothing.empty and "nothing to run again" in markdown(nothing)


def test_diff_of_large_topologies_in_two_processes_agrees_with_one(tmp_path, monkeypatch):
    """Above PARALLEL_MIN_BYTES each side is planned in its own process; the answer is the same, and
    either side's errors are reported (OLD's first) without a hang."""
    from bench.generate import generate
    from sfbgen import difference
    from sfbgen.diagnostics import DiagnosticsError

    base = generate(200)
    old = _write(tmp_path, "old", base)
    new = _write(tmp_path, "new", base.replace('meet.scale2.example"', 'conf.scale2.example"'))
    assert old.stat().st_size >= difference.PARALLEL_MIN_BYTES
    forked = difference.compare(*difference.snapshots(old, new)).to_json()
    monkeypatch.setattr(difference, "PARALLEL_MIN_BYTES", 1 << 40)
    assert difference.compare(*difference.snapshots(old, new)).to_json() == forked
    assert forked["certificates_to_request_again"] and forked["scripts_changed"]
    monkeypatch.undo()
    broken = _write(tmp_path, "broken", base.replace("enterprise_pool", "enterprise_poool", 1))
    for pair, blamed in (((broken, new), broken), ((old, broken), broken)):
        with pytest.raises(DiagnosticsError) as raised:
            difference.snapshots(*pair)
        assert {d.file for d in raised.value.diagnostics} == {str(blamed)}


def test_diff_cli(tmp_path):
    import json
    import subprocess
    import sys

    old = _write(tmp_path, "old", CONTOSO)
    new = _write(tmp_path, "new", CONTOSO.replace(*EDITS["add a Front End server"][:2]))
    run = subprocess.run([sys.executable, "-m", "sfbgen", "diff", str(old), str(new), "--format", "json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert [s["fqdn"] for s in json.loads(run.stdout)["servers_added"]] == ["fe04.contoso.com"]
    broken = _write(tmp_path, "broken", "topology {")
    run = subprocess.run([sys.executable, "-m", "sfbgen", "diff", str(old), str(broken)], capture_output=True, text=True)
    assert run.returncode == 1 and "SFB" in run.stderr and "Traceback" not in run.stderr


# ---------------------------------------------------------------------------------------------------
# Every syntax error at once, and everyday mistakes named


SEVERAL = """topology "T" {
    product 2015 2016
    media x
    site "S" {
        enterprise_pool p.t.com {
            front_end a.t.com
        standard_edition se.t.com {
        }
        site 'Other' {
        }
    }
    city “Redmond”
}
"""


def test_every_syntax_error_is_reported_in_one_run():
    from sfbgen import check_text

    found = [(d.code, d.span.line, d.message) for d in check_text(SEVERAL, "several.sfb").diagnostics]
    assert [(code, line) for code, line, _ in found][:5] == [("SFB101", 2), ("SFB101", 3), ("SFB101", 7), ("SFB101", 9), ("SFB101", 9)]
    messages = [m for _, _, m in found]
    assert "the pool opened at 5:9 is not closed before this 'standard_edition'" in messages[2] and "Add '}'" in messages[2]
    assert "the site opened at 4:5 is not closed before this 'site'" in messages[3]
    assert "not single quotes" in messages[4]


@pytest.mark.parametrize("text,phrase", [
    ('topology "T" { site "S" { enterprise_pool p.t.com { frontend a.t.com } } }', "Did you mean 'front_end'?"),
    ('topology "T" { site "S" { edge_pool e.t.com { acess_edge a.t.com } } }', "Did you mean 'access_edge'?"),
    ('topology "T" { media \u201cD:\\\\\u201d }', "curly quotes"),
    ("topology \"T\" { site 'Redmond' { } }", "not single quotes"),
    ('<?xml version="1.0"?>\n<Topology/>', "sfbgen import"),
])
def test_everyday_mistakes_are_named(text, phrase):
    from sfbgen import check_text

    messages = " ".join(d.message for d in check_text(text, "t.sfb").diagnostics)
    assert phrase in messages, messages


def test_doubled_backslashes_in_local_paths_are_warned_about():
    from sfbgen import check_text

    text = r"""topology "T" {
    product 2015
    media "D:\\SfB"
    install_path "C:\\Program Files\\Skype for Business Server 2015"
    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    site "S" { standard_edition se.t.com { windows_source "\\files\share\\sxs" } }
}
"""
    found = [(d.code, d.span.line, d.span.column) for d in check_text(text).diagnostics if d.code == "SFB111"]
    assert [line for _, line, _ in found] == [3, 4, 8]
    # A UNC path's leading pair is not doubled.
    assert not [d for d in check_text(text.replace("\\\\SfB", "\\SfB").replace("\\\\Program", "\\Program").replace("\\\\Skype", "\\Skype").replace("share\\\\sxs", "share\\sxs")).diagnostics if d.code == "SFB111"]


def test_a_mistyped_reference_is_answered_with_the_name_it_was_meant_to_be(tmp_path):
    from sfbgen.api import check_text

    text = CONTOSO.replace("next_hop pool01.contoso.com", "next_hop pool1.contoso.com", 1).replace(
        "for fabrikam.com", "for fabrikan.com")
    found = {d.code: d.message for d in check_text(text).diagnostics if d.is_error}
    assert "Did you mean pool01.contoso.com? If not, name a Front End pool" in found["SFB230"]
    assert "Did you mean fabrikam.com? If not, add it with sip_domain" in found["SFB217"]
    unrelated = CONTOSO.replace("next_hop pool01.contoso.com", "next_hop elsewhere.example.org", 1)
    assert "id you mean" not in {d.code: d.message for d in check_text(unrelated).diagnostics}["SFB230"]
