"""Diagnostics have named builders and one reporter (issue 22, item 6).

Every catalog code has exactly one named constructor on `DiagnosticBuilder`, every constructor's code is
in the catalog, and no module outside an allow-list writes a bare "SFBnnn" string: so an unknown code
cannot be written at a call site, and a new code needs a builder.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sfbgen.diagnostics import CATALOG, NO_SPAN, DiagnosticBuilder, Reporter, Severity, diagnostic

PACKAGE = Path(__file__).resolve().parents[1] / "sfbgen"

# Modules that still write codes as strings. TODO(issue 22, item 6): move their call sites to the
# builders and take them off this list; the test fails if a listed module no longer needs its place.
NOT_YET_MOVED = {
    "parser.py",  # diagnostic("SFB101", ...): owned by the parser-recovery work
    "source.py",  # fail("SFB001", ...)
    "topology_xml.py",  # diagnostic("SFB402", ...), refuse(..., code="SFB406")
    "patching.py",  # _refuse("SFB501", ...)
    "cli.py",  # d.code == "SFB001": reads a code (the exit status of an unreadable file), builds none
}
# Where a code as text is the point: the catalog itself, and the explanations keyed by code.
CODE_TABLES = {"diagnostics.py", "explain.py"}

_CODE = re.compile(r"[\"']SFB\d{3}[\"']")


def _builders() -> dict[str, str]:
    """method name -> the code it makes, found by calling each public method."""
    found: dict[str, str] = {}
    for name, method in inspect.getmembers(DiagnosticBuilder(), inspect.ismethod):
        if name.startswith("_"):
            continue
        found[name] = method(NO_SPAN, "problem", "fix").code
    return found


def test_every_catalog_code_has_one_builder():
    codes = list(_builders().values())
    assert sorted(set(codes)) == sorted(CATALOG), set(CATALOG) ^ set(codes)
    assert len(codes) == len(set(codes)), "two builders make the same code"


def test_every_builder_code_is_in_the_catalog():
    for name, code in _builders().items():
        assert code in CATALOG, (name, code)


@pytest.mark.parametrize("code", sorted(CATALOG))
def test_builder_message_equals_diagnostic(code):
    """A builder writes what `diagnostic` wrote: same code, severity, message, span and file."""
    by_code = {c: n for n, c in _builders().items()}
    made = getattr(DiagnosticBuilder("a.sfb"), by_code[code])(NO_SPAN, "the thing is wrong.", "fix it")
    assert made == diagnostic(code, NO_SPAN, "the thing is wrong.", "fix it", "a.sfb")
    assert made.message == "the thing is wrong. Fix it."
    assert made.severity is CATALOG[code].severity


def test_reporter_collects_what_it_builds():
    report = Reporter("t.sfb")
    warning = report.one_server_front_end_pool(NO_SPAN, "w", "x")
    error = report.duplicate_fqdn(NO_SPAN, "e", "y")
    assert report.diagnostics == [warning, error]
    assert (warning.severity, error.severity) == (Severity.WARNING, Severity.ERROR)
    assert {d.file for d in report.diagnostics} == {"t.sfb"}
    # A plain builder builds and keeps nothing.
    builder = DiagnosticBuilder("t.sfb")
    builder.duplicate_fqdn(NO_SPAN, "e", "y")
    assert not hasattr(builder, "diagnostics")


def test_unknown_builder_is_an_attribute_error():
    with pytest.raises(AttributeError):
        DiagnosticBuilder().SFB999  # type: ignore[attr-defined]  # noqa: B018


def _modules_with_codes() -> set[str]:
    return {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if _CODE.search(path.read_text(encoding="utf-8"))
    }


def test_no_call_site_writes_a_code():
    """Outside the code tables and the modules not yet moved, no module writes a bare 'SFBnnn'."""
    offenders = _modules_with_codes() - CODE_TABLES - NOT_YET_MOVED
    assert not offenders, f"use a builder of sfbgen.diagnostics.DiagnosticBuilder in {sorted(offenders)}"


def test_allow_list_is_not_stale():
    """A module moved to the builders leaves NOT_YET_MOVED, so the list only shrinks."""
    stale = NOT_YET_MOVED - _modules_with_codes()
    assert not stale, f"take {sorted(stale)} off NOT_YET_MOVED"


def test_moved_modules_stay_moved():
    """The modules moved to builders (checks first) hold no code string and no `diagnostic(` call."""
    for module in ("checks.py", "certificates.py", "compiler.py", "transform.py", "importer.py"):
        text = (PACKAGE / module).read_text(encoding="utf-8")
        assert not _CODE.search(text), module
        assert not re.search(r"(?<![\w.])diagnostic\(", text), module
