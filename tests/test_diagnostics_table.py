"""Every diagnostic code, table-driven: a change to a sound topology in, the code and its place out."""

from __future__ import annotations

import os

import pytest

from sfbgen import check_text
from sfbgen.diagnostics import CATALOG, RETIRED, Severity

BASE = """\
topology "T" {
    product 2015
    media "\\\\fs.t.com\\Media"
    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates {
        authority online "ca.t.com\\T CA"
    }
    site "S" {
        enterprise_pool pool.t.com {
            web_services external web.t.com
            front_end fe1.t.com
            front_end fe2.t.com
            front_end fe3.t.com
        }
        edge_pool edge.t.com {
            next_hop pool.t.com
            access_edge sip.t.com
            webconf_edge wc.t.com
            av_edge av.t.com
            server edge1.t.com
            media "D:\\SfB"
        }
    }
}
"""


def test_base_is_sound():
    result = check_text(BASE)
    # Its Edge pool follows the topology's online enterprise CA (SFB310), and it names neither its Windows
    # Server versions nor a cumulative update for 2015 (SFB256): its two warnings.
    assert result.ok and sorted(d.code for d in result.diagnostics) == ["SFB256", "SFB310"]


def fe_lines(count: int) -> str:
    return "\n".join(f"            front_end fe{i}.t.com" for i in range(1, count + 1))


FE3 = fe_lines(3)

# (code, old text, new text, line, text on that line where the caret starts)
CASES = [
    ("SFB101", "product 2015", "product 2015 2016", 2, "2016"),
    ("SFB101", "product 2015", 'product "2015"', 2, '"2015"'),
    ("SFB104", 'media "\\\\fs.t.com\\Media"', 'media "\\\\fs.t.com\\Media', 3, '"'),
    ("SFB105", "    product 2015\n", "    product 2015\n    product 2019\n", 3, "product"),
    ("SFB106", "            server edge1.t.com", "            server edge1.t.com\n            front_end x1.t.com", 23, "front_end"),
    ("SFB106", 'simple_url dialin "https://dialin.t.com"', 'simple_url dialin "https://dialin.t.com" for t.com', 6, "for |t.com"),
    ("SFB107", "    product 2015\n", "", 1, '"|T"'),
    ("SFB108", "    product 2015\n", "    product 2015\n    smart_setup sometimes\n", 3, "sometimes"),
    ("SFB109", "    product 2015\n", "    product 2015\n    smart_setup wsus\n", 3, "wsus"),
    ("SFB201", "front_end fe3.t.com", "front_end fe1.t.com", 15, "fe1.t.com"),
    ("SFB201", "access_edge sip.t.com", "access_edge web.t.com", 19, "web.t.com"),
    ("SFB202", "front_end fe3.t.com", "front_end fe3..t.com", 15, "fe3..t.com"),
    ("SFB202", "front_end fe3.t.com", "front_end fe3$(calc).t.com", 15, "fe3$(calc).t.com"),
    ("SFB202", "front_end fe3.t.com", "front_end localhost", 15, "localhost"),
    ("SFB203", "front_end fe3.t.com", "front_end averyverylongname.t.com", 15, "averyverylongname.t.com"),
    ("SFB204", "sip_domain t.com primary", "sip_domain t.com", 4, "sip_domain"),
    ("SFB205", "    sip_domain t.com primary\n", "    sip_domain t.com primary\n    sip_domain u.com primary\n", 5, "sip_domain u.com"),
    ("SFB206", "    sip_domain t.com primary\n", "    sip_domain t.com primary\n    sip_domain t.com\n", 5, "t.com"),
    ("SFB210", "    sip_domain t.com primary\n", "    sip_domain t.com primary\n    sip_domain u.com\n", 5, "sip_domain u.com"),
    ("SFB211", '    simple_url dialin "https://dialin.t.com"\n', "", 1, '"|T"'),
    ("SFB212", '"https://meet.t.com"', '"http://meet.t.com"', 5, "http://"),
    ("SFB213", '"https://meet.t.com"', '"https://meet.t.com:8443"', 5, "https://"),
    ("SFB214", '"https://meet.t.com"', '"https://pool.t.com/meet"', 5, "https://"),
    ("SFB215", '"https://dialin.t.com"', '"https://meet.t.com/dialin"', 6, "https://meet.t.com/dialin"),
    ("SFB216", '"https://meet.t.com"', '"https://meet..t.com"', 5, "https://"),
    ("SFB216", '"https://meet.t.com"', '"https://meet.t.com/?a=1"', 5, "https://"),
    ("SFB217", 'simple_url meet "https://meet.t.com"', 'simple_url meet "https://meet.t.com" for u.com', 5, "u.com"),
    ("SFB218", '    simple_url dialin "https://dialin.t.com"\n', '    simple_url dialin "https://dialin.t.com"\n    simple_url dialin "https://dial.t.com"\n', 7, "simple_url"),
    ("SFB219", 'simple_url dialin "https://dialin.t.com"', 'simple_url dialin "https://dialin.t.com"\n    simple_url meeting "https://m2.t.com"', 7, "meeting"),
    ("SFB220", FE3, fe_lines(13), 11, "pool.t.com"),
    ("SFB221", FE3 + "\n", fe_lines(2) + "\n", 11, "pool.t.com"),  # with product 2019 below
    ("SFB222", FE3 + "\n", fe_lines(2) + "\n", 11, "pool.t.com"),
    ("SFB223", FE3 + "\n", fe_lines(1) + "\n", 11, "pool.t.com"),
    ("SFB224", "            server edge1.t.com\n", "", 17, "edge.t.com"),
    ("SFB225", "    site \"S\" {\n", "    site \"S\" {\n        standard_edition se.t.com { server x.t.com web_services external sex.t.com }\n", 11, "server"),
    ("SFB230", "next_hop pool.t.com", "next_hop nothere.t.com", 18, "nothere.t.com"),
    ("SFB230", "next_hop pool.t.com", "next_hop fe1.t.com", 18, "fe1.t.com"),
    ("SFB231", "next_hop pool.t.com", "next_hop edge.t.com", 18, "edge.t.com"),
    ("SFB232", "            next_hop pool.t.com\n", "", 17, "edge.t.com"),
    ("SFB240", "            av_edge av.t.com\n", "", 17, "edge.t.com"),
    ("SFB250", "product 2015", "product 2016", 2, "2016"),
    ("SFB251", "    product 2015\n", '    product 2015\n    install_path "Program Files\\Skype"\n', 3, "Program"),
    ("SFB251", "    product 2015\n", '    product 2015\n    install_path "\\\\server\\share"\n', 3, "\\\\server"),
    ("SFB252", 'media "\\\\fs.t.com\\Media"', 'media "Media\\SfB"', 3, "Media\\SfB"),
    ("SFB253", "    }\n}\n", '    }\n    site "S" {\n        standard_edition se.t.com { web_services external sex.t.com }\n    }\n}\n', 26, '"|S"'),
    ("SFB207", FE3 + "\n", "            front_end pool.t.com\n", 13, "pool.t.com"),
    ("SFB208", "            server edge1.t.com\n", "            server edge1.t.com\n            server edge.t.com\n", 23, "edge.t.com"),
    ("SFB209", "            web_services external web.t.com\n", "            web_services external web.t.com\n            mediation standalone\n", 13, "standalone"),
    ("SFB264", "    site \"S\" {\n", "    site \"S\" {\n        director_pool dir.t.com { web_services internal dirweb.t.com server dir1.t.com }\n", 11, "dirweb.t.com"),
    ("SFB254", "    site \"S\" {\n", "    site \"S\" {\n        standard_edition a.t.com { central_management_store }\n        standard_edition b.t.com { central_management_store }\n", 12, "central_management_store"),
    ("SFB255", '            media "D:\\SfB"\n', "", 17, "edge.t.com"),
    ("SFB256", "product 2015", "product 2015", 2, "2015"),  # BASE itself: 2015, no windows_server, no cumulative_update
    ("SFB257", "front_end fe3.t.com", "front_end con.t.com", 15, "con.t.com"),
    ("SFB257", "edge_pool edge.t.com", "edge_pool lpt9.t.com", 17, "lpt9.t.com"),
    ("SFB257", "server edge1.t.com", "server COM1.t.com", 22, "COM1.t.com"),
    ("SFB263", "    site \"S\" {\n", "    site \"S\" {\n        standard_edition se.t.com { web_services internal other.t.com external sex.t.com }\n", 11, "other.t.com"),
    ("SFB290", 'media "\\\\fs.t.com\\Media"', 'media "\\\\fs.t.com\\Me\x01dia"', 3, "\x01"),
    ("SFB290", 'site "S"', 'site "S\u202eevil"', 10, "\u202e"),
    ("SFB291", "authority online", 'organization "x # SIG # Begin signature block"\n        authority online', 8, "x # SIG"),
    ("SFB292", "authority online", 'organization "' + "O" * 65 + '"\n        authority online', 8, "OOO"),
    ("SFB301", "authority online", "key_size 3072\n        authority online", 8, "3072"),
    ("SFB302", "authority online", "key_size 1024\n        authority online", 8, "1024"),
    ("SFB303", '"ca.t.com\\T CA"', '"ca.t.com"', 8, "ca.t.com"),
    ("SFB303", '"ca.t.com\\T CA"', '"not a host\\T CA"', 8, "not a host"),
    ("SFB304", "authority online", 'country "USA"\n        authority online', 8, "USA"),
    ("SFB305", "            server edge1.t.com\n", "            server edge1.t.com\n            certificates { authority offline public }\n", 17, "edge.t.com"),
    ("SFB306", "access_edge sip.t.com", "access_edge *.t.com", 17, "edge.t.com"),
    ("SFB309", "authority online", 'organization "Fabrikam, Inc."\n        authority online', 8, "Fabrikam, Inc."),
    ("SFB310", "av_edge av.t.com", "av_edge av.t.com", 17, "edge.t.com"),  # BASE itself: the Edge external certificate online
    ("SFB308", "authority online", 'template "Web$(Server)"\n        authority online', 8, "Web$(Server)"),
]


def _apply(code: str, old: str, new: str) -> str:
    assert old in BASE, f"{code}: the case's old text is not in BASE"
    text = BASE.replace(old, new, 1)
    if code == "SFB221":
        text = text.replace("product 2015", "product 2019")
    if code == "SFB305":
        text = text.replace("sip.t.com", "sip.t.local").replace("wc.t.com", "wc.t.local")
    return text


@pytest.mark.parametrize("code,old,new,line,marker", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_diagnostic(code, old, new, line, marker):
    text = _apply(code, old, new)
    # A '|' in the marker puts the caret inside it: "for |t.com" points at t.com after "for ".
    before, _, after = marker.rpartition("|")
    column = text.splitlines()[line - 1].index(before + after) + len(before) + 1
    result = check_text(text, "case.sfb")
    found = [(d.code, d.span.line, d.span.column) for d in result.diagnostics]
    assert (code, line, column) in found, f"expected {code} at {line}:{column}; got {found}"
    diag = next(d for d in result.diagnostics if (d.code, d.span.line, d.span.column) == (code, line, column))
    assert diag.severity is CATALOG[code].severity
    # The message states the problem, then the fix: two sentences at least.
    assert diag.message.count(". ") >= 1 and diag.message.endswith(".")
    if diag.severity is Severity.WARNING:
        assert result.topology is not None


def test_too_many_names_for_one_request():
    domains = [f"d{i}.com" for i in range(60)]
    text = BASE.replace("    sip_domain t.com primary\n", "".join(f"    sip_domain {d}{' primary' if i == 0 else ''}\n" for i, d in enumerate(domains)))
    text = text.replace('    simple_url meet "https://meet.t.com"\n', "".join(f'    simple_url meet "https://meet.{d}" for {d}\n' for d in domains))
    text = text.replace("    }\n    site", "        sip_names on\n    }\n    site")
    result = check_text(text)
    assert "SFB307" in {d.code for d in result.diagnostics}
    assert result.ok  # a warning only


def test_every_catalog_code_is_exercised(tmp_path):
    """A code nobody can trigger is dead. What the suite emits is recorded as it runs (tests/conftest.py,
    DiagnosticRecorder: sfbgen's own diagnostics, in this process, forked workers and `python -m sfbgen`
    subprocesses), and the session fails when the whole default run left a catalog code unemitted. Here:
    the record is made and read the way the session's is, and it does catch a code never emitted."""
    import subprocess
    import sys

    from sfbgen.diagnostics import NO_SPAN, diagnostic
    from tests.conftest import RECORD_ENV, DiagnosticRecorder, write_sitecustomize

    recorder = DiagnosticRecorder(tmp_path).install()
    try:
        check_text(BASE)  # SFB256 and SFB310, made by sfbgen
        diagnostic("SFB201", NO_SPAN, "made by a test", "it does not count")  # made here: not counted
        pid = os.fork()
        if pid == 0:  # a forked worker: what it emits reaches the record through its file
            try:
                check_text(BASE.replace("front_end fe3.t.com", "front_end fe3..t.com"))  # SFB202
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    finally:
        recorder.uninstall()
    check_text(BASE.replace("product 2015", "product 2016"))  # SFB250, after uninstall: not recorded
    # A subprocess: `sfbgen check` of a 2015 topology adds the check command's own SFB258.
    topology = tmp_path / "t.sfb"
    topology.write_text(BASE.replace("sip_domain t.com primary", "sip_domain t.com"), encoding="utf-8")  # SFB204
    env = dict(os.environ, PYTHONPATH=str(write_sitecustomize(tmp_path / "sub")), **{RECORD_ENV: str(tmp_path)})
    run = subprocess.run([sys.executable, "-m", "sfbgen", "check", str(topology)], env=env, capture_output=True, text=True)
    assert run.returncode == 1 and "SFB204" in run.stderr

    assert recorder.emitted() == {"SFB256", "SFB310", "SFB202", "SFB204", "SFB258"}
    missing = recorder.missing(CATALOG)
    assert "SFB201" in missing and "SFB250" in missing and "SFB256" not in missing
    assert len(missing) == len(CATALOG) - 5


def test_the_session_fails_when_a_code_was_never_emitted(tmp_path, monkeypatch):
    """The session's end turns a missing code into a failed run (and says which), only for a whole run."""
    from types import SimpleNamespace

    import pytest as _pytest

    from tests import conftest
    from tests.conftest import COVERAGE_ENV, DiagnosticRecorder

    recorder = DiagnosticRecorder(tmp_path)
    recorder.codes = set(CATALOG) - {"SFB201"}
    monkeypatch.setattr(conftest, "_RECORDER", recorder)
    monkeypatch.setattr(conftest, "_MISSING", [])
    monkeypatch.setattr(conftest, "_CHECKED", [])
    session = SimpleNamespace(exitstatus=_pytest.ExitCode.OK)
    monkeypatch.setenv(COVERAGE_ENV, "1")
    conftest.pytest_sessionfinish(session, session.exitstatus)
    assert session.exitstatus == _pytest.ExitCode.TESTS_FAILED and conftest._MISSING == ["SFB201"]

    recorder.codes = set(CATALOG)
    session = SimpleNamespace(exitstatus=_pytest.ExitCode.OK)
    conftest.pytest_sessionfinish(session, session.exitstatus)
    assert session.exitstatus == _pytest.ExitCode.OK and conftest._MISSING == []

    # A selection (here: files named on the command line) is no whole run: nothing is checked.
    monkeypatch.delenv(COVERAGE_ENV)
    recorder.codes = set()
    config = SimpleNamespace(args_source=_pytest.Config.ArgsSource.ARGS, option=SimpleNamespace(keyword="", markexpr="not slow"))
    session = SimpleNamespace(exitstatus=_pytest.ExitCode.OK, config=config, items=[])
    conftest.pytest_sessionfinish(session, session.exitstatus)
    assert session.exitstatus == _pytest.ExitCode.OK


def test_every_rule_names_its_source():
    """A refusal of a topology cites the Microsoft rule it enforces, or says it is sfbgen's own."""
    for code, rule in CATALOG.items():
        assert rule.source, f"{code} has no source"
        if code.startswith(("SFB2", "SFB3")) and rule.severity is Severity.ERROR and not rule.source.startswith("sfbgen"):
            assert any(mark in rule.source for mark in (".md", "RFC", "Microsoft", "published topology", "the seed")), code
    assert not set(RETIRED) & set(CATALOG)



@pytest.mark.parametrize("fqdn", ["console.t.com", "com10.t.com", "nul-1.t.com", "auxiliary.t.com", "lpt.t.com"])
def test_names_that_only_look_like_devices_are_accepted(fqdn):
    result = check_text(BASE.replace("front_end fe3.t.com", f"front_end {fqdn}", 1))
    assert result.ok and "SFB257" not in {d.code for d in result.diagnostics}


def test_device_check_reads_the_manifests_list():
    """SFB257's quick filter lets through every name sfbgen.manifest refuses in a bundle path."""
    from sfbgen.checks import _DEVICE_LIKE
    from sfbgen.manifest import RESERVED_DEVICE_NAMES, path_problem

    for device in RESERVED_DEVICE_NAMES:
        assert _DEVICE_LIKE.match(device.lower() + ".t.com"), device
    # What the check refuses is what verify would refuse: the server's folder in the manifest.
    assert path_problem("con.t.com/1-Install-LocalConfigurationStore.ps1")
    assert path_problem("console.t.com/1-Install-LocalConfigurationStore.ps1") is None

# What Topology Builder accepts and publishes, which sfbgen once refused (issue 11): each must check clean.
TOPOLOGY_BUILDER_DEFAULTS = [
    ("external web FQDN = pool FQDN", "web_services external web.t.com", "web_services external pool.t.com"),
    ("internal web FQDN written as the pool FQDN", "web_services external web.t.com", "web_services internal pool.t.com external web.t.com"),
    ("internal = external web FQDN", "web_services external web.t.com", "web_services internal web.t.com external web.t.com"),
    ("no external web FQDN (defaults to the pool)", "            web_services external web.t.com\n", ""),
    ("single computer Edge pool", "server edge1.t.com", "server edge.t.com"),
    ("collocated Mediation", "            web_services external web.t.com\n", "            web_services external web.t.com\n            mediation collocated\n"),
    ("single computer Mediation pool", "    }\n}\n", "        mediation_pool med.t.com { next_hop pool.t.com server med.t.com }\n    }\n}\n"),
    ("single Director", "    }\n}\n", "        director_pool dir.t.com { server dir.t.com }\n    }\n}\n"),
]


@pytest.mark.parametrize("what,old,new", TOPOLOGY_BUILDER_DEFAULTS, ids=[c[0] for c in TOPOLOGY_BUILDER_DEFAULTS])
def test_topology_builder_defaults_are_accepted(what, old, new):
    assert old in BASE
    result = check_text(BASE.replace(old, new, 1))
    assert result.ok, [d.message for d in result.diagnostics]
    assert not any(d.code in RETIRED for d in result.diagnostics)


def test_no_front_end_pool():
    text = """topology "T" { product 2015 media "D:\\" sip_domain t.com primary
        simple_url meet "https://meet.t.com" simple_url dialin "https://dialin.t.com"
        site "S" { mediation_pool med.t.com { next_hop med.t.com server m1.t.com } } }"""
    codes = {d.code for d in check_text(text).diagnostics}
    assert {"SFB226", "SFB231"} <= codes


def test_unexpected_end_names_the_open_block():
    text = BASE[: BASE.index("        edge_pool")]
    result = check_text(text, "cut.sfb")
    (diag,) = result.diagnostics
    assert diag.code == "SFB103"
    assert "site opened at 10:5" in diag.message


def test_all_semantic_errors_reported_at_once():
    text = BASE.replace("product 2015", "product 2016").replace("next_hop pool.t.com", "next_hop x.t.com").replace(
        '"https://meet.t.com"', '"http://meet.t.com"'
    )
    codes = [d.code for d in check_text(text).diagnostics]
    assert {"SFB250", "SFB230", "SFB212"} <= set(codes)
