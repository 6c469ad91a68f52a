"""Reviewable in pull requests (issue 14): a script's bytes change only when its work changes."""

from __future__ import annotations

import pytest

from sfbgen.compiler import compile_file
from tests.conftest import SAMPLES

CONTOSO = (SAMPLES / "contoso.sfb").read_text(encoding="utf-8")
ROOT_DOCUMENTS = {"RUNBOOK.md", "plan.json", "MANIFEST.psd1", ".sfbgen-bundle"}

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
