"""The TextMate grammar of editors/vscode names every keyword of the language (grammar/sfb.lark).

The grammar itself is tested by vscode-tmgrammar-test and vscode-tmgrammar-snap from .ci/run
(`npm test` in editors/vscode): assertions on the language's lines, and snapshots of the samples.
"""

from __future__ import annotations

import json
import re

from sfbgen.parser import _parser
from tests.conftest import ROOT

GRAMMAR = json.loads((ROOT / "editors" / "vscode" / "syntaxes" / "sfb.tmLanguage.json").read_text(encoding="utf-8"))


def _words(rule: str) -> set[str]:
    pattern = GRAMMAR["repository"][rule]["match"]
    return set(re.search(r"\(([a-z_|0-9]+)\)", pattern).group(1).split("|"))


def test_every_keyword_of_the_language_is_coloured():
    keywords = {t.pattern.value for t in _parser().terminals if t.pattern.type == "str" and t.pattern.value.isidentifier()}
    coloured = _words("block") | _words("statement") | _words("value")
    assert keywords <= coloured, sorted(keywords - coloured)


def test_the_samples_under_test_are_the_samples():
    samples = ROOT / "editors" / "vscode" / "tests" / "samples"
    linked = sorted(p.name for p in samples.glob("*.sfb"))
    assert linked == sorted(p.name for p in (ROOT / "samples").glob("*.sfb"))
    for path in samples.glob("*.sfb"):
        assert path.resolve() == (ROOT / "samples" / path.name).resolve()
        assert (samples / (path.name + ".snap")).is_file()
