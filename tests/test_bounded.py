"""Bounded everywhere (issue 20, item 2): import, fmt, compile and diff refuse what would cost time or
memory out of proportion to their input, with a diagnostic or a reason, never a crash.

The limits are tested with small documents and a lowered limit; bench/import_bounds.py and
bench/fmt_bench.py measure memory and time at full size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfbgen import topology_xml
from sfbgen.importer import ImportOptions, import_bytes

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "contoso.sfb"
OPTIONS = ImportOptions(media="D:\\", ca="ca.t.com\\CA")

MINIMAL = """<Topology>
  <InternalDomains DefaultDomain="t.com"><InternalDomain Name="t.com" /></InternalDomains>
  <Sites><CentralSite SiteId="1"><Name>S</Name></CentralSite></Sites>
  <Clusters>
    <Cluster RequiresSetup="true" Fqdn="se.t.com"><ClusterId SiteId="1" Number="1" /><Machine Fqdn="se.t.com" /></Cluster>
{extra}  </Clusters>
  <SqlInstances><SqlInstance><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></SqlInstance></SqlInstances>
  <Services>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="Registrar" Instance="1" /><InstalledOn><ClusterId SiteId="1" Number="1" /></InstalledOn></Service>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="UserStore" Instance="1" /><InstalledOn><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></InstalledOn></Service>
  </Services>
</Topology>
"""


def _document(extra: str = "") -> bytes:
    return MINIMAL.format(extra=extra).encode("utf-8")


def _refused(raw: bytes) -> list:
    result = import_bytes(raw, "big.xml", OPTIONS)
    assert result.text is None, "the document was imported"
    return result.diagnostics


# ---------------------------------------------------------------------------------------------------
# import


def test_the_minimal_document_is_within_every_limit():
    result = import_bytes(_document(), "m.xml", OPTIONS)
    assert result.text is not None and "standard_edition se.t.com" in result.text


@pytest.mark.parametrize("limit,value,extra,words", [
    ("MAX_ELEMENTS", 20, "", "more than 20 elements"),
    ("MAX_DEPTH", 4, "", "nested more than 4 deep"),
    ("MAX_ATTRIBUTES", 2, '    <Cluster A="1" B="2" C="3" />\n', "3 attributes"),
    ("MAX_VALUE_CHARS", 40, f'    <Cluster Fqdn="{"x" * 41}" />\n', "attribute value of 41 characters"),
    ("MAX_NAME_CHARS", 30, f"    <{'C' * 31} />\n", "a name of 31 characters"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("MAX") else "")
def test_a_document_past_a_lowered_limit_is_refused_with_its_line(monkeypatch, limit, value, extra, words):
    monkeypatch.setattr(topology_xml, limit, value)
    diagnostics = _refused(_document(extra))
    assert [d.code for d in diagnostics] == ["SFB406"], [d.message for d in diagnostics]
    assert words in diagnostics[0].message
    assert diagnostics[0].span.line >= 1


def test_text_of_one_element_is_bounded(monkeypatch):
    monkeypatch.setattr(topology_xml, "MAX_VALUE_CHARS", 10)
    raw = _document().replace(b"<Name>S</Name>", b"<Name>" + b"S" * 11 + b"</Name>")
    diagnostics = _refused(raw)
    assert [d.code for d in diagnostics] == ["SFB406"] and "characters of text" in diagnostics[0].message
    assert diagnostics[0].span.line == 3


def test_elements_must_take_bytes_of_the_document(monkeypatch):
    """Memory in proportion to the document: past FREE_ELEMENTS, an element per MIN_BYTES_PER_ELEMENT
    bytes read at most (empty elements cost a few bytes of document and hundreds of memory)."""
    monkeypatch.setattr(topology_xml, "FREE_ELEMENTS", 10)
    diagnostics = _refused(_document("".join("<a/>" for _ in range(50))))
    assert [d.code for d in diagnostics] == ["SFB406"] and "bytes or more an element" in diagnostics[0].message


def test_a_tag_or_comment_longer_than_the_token_limit_is_refused(monkeypatch):
    """Expat reads a whole tag before it calls back: a tag of a million attributes, or a comment of
    32 MB, is refused between two pieces of the document, without being read whole."""
    monkeypatch.setattr(topology_xml, "MAX_TOKEN_BYTES", 1000)
    monkeypatch.setattr(topology_xml, "FEED_CHARS", 16)  # pieces of 64 KiB, the least
    raw = _document().replace(b"<Clusters>", b"<Clusters><!--" + b"x" * 200_000 + b"-->")
    diagnostics = _refused(raw)
    assert [d.code for d in diagnostics] == ["SFB406"] and "a tag, comment or text of more than" in diagnostics[0].message


def test_the_size_limit_is_checked_before_parsing(monkeypatch):
    monkeypatch.setattr(topology_xml, "MAX_XML_BYTES", 100)
    assert [d.code for d in _refused(_document())] == ["SFB402"]


def test_42_mb_of_empty_elements_are_refused_at_once():
    """The red team's document: 42 MB of empty elements once needed more than 2.5 GB."""
    import tracemalloc

    raw = b"<Topology>" + b"<a/>" * (42 * 1024 * 1024 // 4) + b"</Topology>"
    tracemalloc.start()
    try:
        diagnostics = _refused(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d.code for d in diagnostics] == ["SFB406"]
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB held for a refused document"


def test_deep_nesting_and_huge_attributes_are_refused_without_a_crash():
    deep = b"<Topology>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Topology>"
    huge = b'<Topology Name="' + b"x" * (2 * 1024 * 1024) + b'"/>'
    wide = b"<Topology " + b" ".join(b'a%d="1"' % i for i in range(1000)) + b"/>"
    for raw in (deep, huge, wide):
        assert [d.code for d in _refused(raw)] == ["SFB406"]


def test_a_document_in_utf16_is_read_a_piece_at_a_time(monkeypatch):
    monkeypatch.setattr(topology_xml, "FEED_CHARS", 16)  # at least 64 KiB a piece: the document is one
    raw = ('<?xml version="1.0" encoding="utf-8"?>\n' + MINIMAL.format(extra="")).encode("utf-16")
    result = import_bytes(raw, "m.xml", OPTIONS)
    assert result.text is not None and "standard_edition se.t.com" in result.text


def test_pieces_split_anywhere_decode_the_same(monkeypatch):
    text = "<Topology>" + "é€😀" * 40_000 + "</Topology>"
    for encoding in ("utf-8", "utf-16"):
        raw = text.encode(encoding)
        assert "".join(topology_xml._pieces(raw, "x")) == text


def test_a_generated_published_topology_imports_within_the_limits():
    sys.path.insert(0, str(ROOT))
    from bench.generate_xml import generate

    result = import_bytes(generate(1000).encode("utf-8"), "g.xml", OPTIONS)
    assert result.text is not None and result.servers >= 1000


# ---------------------------------------------------------------------------------------------------
# fmt


def _apply(before: list[str], diff: str) -> list[str]:
    """Apply a unified diff to `before` (checking every context and removed line)."""
    import re

    lines = diff.splitlines(keepends=True)
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ ")
    out, i, k = [], 0, 2
    while k < len(lines):
        match = re.match(r"@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", lines[k])
        assert match, lines[k]
        start, length = int(match.group(1)), int(match.group(2) or 1)
        start = start - 1 if length else start
        out += before[i:start]
        i, k = start, k + 1
        while k < len(lines) and not lines[k].startswith("@@"):
            line = lines[k]
            if line[0] in " -":
                assert before[i] == line[1:], (before[i], line)
                if line[0] == " ":
                    out.append(before[i])
                i += 1
            elif line[0] == "+":
                out.append(line[1:])
            k += 1
    return out + before[i:]


def test_the_linear_diff_is_a_correct_diff():
    import random

    from sfbgen.formatting_files import unified_diff

    rng = random.Random(20)
    for _ in range(2000):
        alphabet = ["}\n", "\n", "x\n"] + [f"line {i}\n" for i in range(rng.randint(1, 25))]
        a = [rng.choice(alphabet) for _ in range(rng.randint(0, 40))]
        b = list(a)
        for _ in range(rng.randint(0, 8)):
            where = rng.randint(0, len(b))
            choice = rng.randint(0, 2)
            if choice == 0 and b[where:]:
                del b[where]
            elif choice == 1:
                b.insert(where, rng.choice(alphabet))
            elif b[where:]:
                b[where] = rng.choice(alphabet)
        diff = unified_diff(a, b, "a/x", "b/x")
        assert (diff == "") == (a == b)
        if diff:
            assert _apply(a, diff) == b


def test_a_small_change_shows_as_difflib_would():
    import difflib

    from sfbgen.formatting_files import unified_diff

    a = [f"line {i}\n" for i in range(40)]
    b = a[:10] + ["    line 10\n"] + a[11:30] + a[31:]
    assert unified_diff(a, b, "a/x", "b/x") == "".join(difflib.unified_diff(a, b, "a/x", "b/x"))


def _topology(servers: int) -> str:
    sys.path.insert(0, str(ROOT))
    from bench.generate import generate

    return generate(servers)


def _misindented(text: str) -> str:
    """Every other line indented wrongly, and a blank line after each: what made difflib quadratic
    (16 s for 290 KB, about four times that for each doubling)."""
    return "\n\n".join(("  " if i % 2 else "") + line for i, line in enumerate(text.split("\n")))


def _time_fmt_diff(path: Path) -> tuple[float, str]:
    from sfbgen.formatting_files import format_file

    started = time.perf_counter()
    outcome = format_file(path, write=False, show_diff=True)
    return time.perf_counter() - started, outcome.diff


def test_fmt_of_50000_misindented_lines_is_not_slower_than_linear(tmp_path):
    """50,000 mis-indented lines against the same topology with one line out of place: the
    changed-region search is linear, so the pathological file costs a small multiple of the normal one
    (difflib alone took 16 s for a sixth of this, and four times as long for each doubling)."""
    from sfbgen.formatter import format_text

    text = _topology(15_200)
    normal_text = format_text(text)[0]
    normal = tmp_path / "normal.sfb"
    normal.write_text(normal_text.replace("\n    site", "\n  site", 1))
    bad = tmp_path / "bad.sfb"
    bad.write_text(_misindented(normal_text))
    assert bad.read_text().count("\n") >= 50_000
    normal_time = _time_fmt_diff(normal)[0]
    bad_time, diff = _time_fmt_diff(bad)
    assert bad_time < 8 * normal_time + 0.5, f"{bad_time:.2f} s against {normal_time:.2f} s"
    before = bad.read_text().splitlines(keepends=True)
    assert "".join(_apply(before, diff)) == format_text(bad.read_text())[0]


def test_fmt_without_diff_computes_none(tmp_path):
    from sfbgen.formatting_files import FormatOutcome, format_file

    path = tmp_path / "t.sfb"
    path.write_text(SAMPLE.read_text().replace("\n    site", "\n  site", 1))
    outcome = format_file(path, write=False, show_diff=False)
    assert outcome.state is FormatOutcome.CHANGED and outcome.diff == ""


# ---------------------------------------------------------------------------------------------------
# compile


def test_the_server_cap_is_refused_before_anything_is_written(tmp_path):
    from sfbgen.compiler import Limits, compile_file
    from sfbgen.diagnostics import DiagnosticsError

    out = tmp_path / "bundle"
    with pytest.raises(DiagnosticsError) as refused:
        compile_file(SAMPLE, out, limits=Limits(max_servers=3))
    assert [d.code for d in refused.value.diagnostics] == ["SFB270"]
    assert "8 servers" in refused.value.diagnostics[0].message and "--max-servers" in refused.value.diagnostics[0].message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_output_cap_is_refused_from_the_estimate_before_anything_is_written(tmp_path):
    from sfbgen.compiler import Limits, compile_file
    from sfbgen.diagnostics import DiagnosticsError

    class Tiny(Limits):
        @property
        def max_output_bytes(self) -> int:
            return 200_000

    out = tmp_path / "bundle"
    with pytest.raises(DiagnosticsError) as refused:
        compile_file(SAMPLE, out, limits=Tiny())
    assert [d.code for d in refused.value.diagnostics] == ["SFB271"]
    assert "about" in refused.value.diagnostics[0].message and "nothing was written" in refused.value.diagnostics[0].message
    assert list(tmp_path.iterdir()) == []


def test_the_output_cap_holds_while_writing_when_the_estimate_fell_short(tmp_path):
    from sfbgen import compiler
    from sfbgen.compiler import Limits, compile_file
    from sfbgen.diagnostics import DiagnosticsError

    class Short(Limits):
        @property
        def max_output_bytes(self) -> int:
            return 300_000

        def check_estimate(self, *args) -> None:  # an estimate that fell short
            return None

    out = tmp_path / "bundle"
    compile_file(SAMPLE, out, keep_files=False)  # an earlier bundle, to be left as it was
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(DiagnosticsError) as refused:
        compile_file(SAMPLE, out, limits=Short(), keep_files=False)
    assert [d.code for d in refused.value.diagnostics] == ["SFB271"]
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folder left
    assert compiler._budget == []


def test_the_default_limits_let_the_samples_compile(compiled):
    from sfbgen.compiler import DEFAULT_MAX_OUTPUT_MB, DEFAULT_MAX_SERVERS

    assert DEFAULT_MAX_SERVERS >= 5000 and DEFAULT_MAX_OUTPUT_MB >= 1024
    assert compiled  # every sample compiled with the defaults


def test_cli_compile_refuses_past_max_servers_with_exit_1(tmp_path):
    out = tmp_path / "b"
    run = subprocess.run([sys.executable, "-m", "sfbgen", "compile", str(SAMPLE), "--out", str(out), "--max-servers", "2"],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "SFB270" in run.stderr and not out.exists()


# ---------------------------------------------------------------------------------------------------
# diff: plan.json is untrusted


@pytest.fixture(scope="module")
def plan_json(tmp_path_factory) -> Path:
    from sfbgen.difference import snapshot

    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(json.dumps(snapshot(SAMPLE).document), encoding="utf-8")
    return path


def test_plan_json_names_its_format_version(plan_json):
    from sfbgen.render import PLAN_FORMAT_VERSION

    assert json.loads(plan_json.read_text())["format_version"] == PLAN_FORMAT_VERSION == 1


def test_a_sound_plan_json_and_one_from_before_the_version_are_read(plan_json):
    from sfbgen.difference import read_plan_document

    document = json.loads(plan_json.read_text())
    assert read_plan_document(plan_json.read_bytes())["servers"][0]["fqdn"] == document["servers"][0]["fqdn"]
    del document["format_version"]
    for server in document["servers"]:
        del server["roles"]  # the oldest plans name one role
    old = read_plan_document(json.dumps(document).encode())
    assert old["servers"][0]["roles"] == [document["servers"][0]["role"]]


def _hostile(plan_json: Path, how: str) -> bytes:
    document = json.loads(plan_json.read_text())
    if how == "wrong types":
        document["servers"][0]["fqdn"] = 12
    elif how == "huge":
        document["servers"][0]["certificates"][0]["sans"] = ["a.t.com"] * 20_000
    elif how == "deep nesting":
        return b'{"servers": [], "runbook": [], "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    elif how == "missing keys":
        del document["runbook"]
    elif how == "markup in roles":
        document["servers"][0]["roles"] = ['FrontEnd<img src="https://evil.example/beacon">', "[Approve](https://evil.example)"]
    elif how == "future format":
        document["format_version"] = 2
    elif how == "control characters":
        document["servers"][0]["site"] = "S\r\x1b[2K0 failed"
    elif how == "not an object":
        return b"[1, 2, 3]"
    elif how == "too many values":
        return b"[" + b"0," * 5_000_000 + b"0]"
    return json.dumps(document).encode()


HOSTILE_PLANS = ["wrong types", "huge", "deep nesting", "missing keys", "markup in roles", "future format",
                 "control characters", "not an object", "too many values"]


@pytest.mark.parametrize("how", HOSTILE_PLANS)
def test_a_hostile_plan_json_is_refused_with_a_reason(plan_json, how):
    from sfbgen.difference import PlanRefused, read_plan_document

    with pytest.raises(PlanRefused) as refused:
        read_plan_document(_hostile(plan_json, how))
    reason = str(refused.value)
    assert reason and "\x1b" not in reason and "<img" not in reason


@pytest.mark.parametrize("how", ["wrong types", "huge", "deep nesting", "missing keys", "markup in roles"])
def test_cli_diff_refuses_a_hostile_plan_json_with_exit_2(plan_json, tmp_path, how):
    hostile = tmp_path / "plan.json"
    hostile.write_bytes(_hostile(plan_json, how))
    run = subprocess.run([sys.executable, "-m", "sfbgen", "diff", str(hostile), str(SAMPLE)], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "is not a plan.json sfbgen writes" in run.stderr and "internal error" not in run.stderr
    assert run.stdout == ""


def test_diff_markdown_shows_text_from_an_old_plan_as_text(plan_json, tmp_path):
    """The names an old plan.json gives its certificates are free text: each stands in a code span
    (where Markdown and HTML are not interpreted), with a '|' escaped, so no link, image or table
    break comes of them."""
    import re

    from sfbgen.difference import compare, markdown, snapshot

    document = json.loads(plan_json.read_text())
    for server in document["servers"]:
        for certificate in server["certificates"]:
            certificate["sans"] = ['<img src="https://evil.example/b">', "a | b", "[Approve](https://evil.example)", "x`y"]
    old = tmp_path / "plan.json"
    old.write_text(json.dumps(document))
    text = markdown(compare(snapshot(old), snapshot(SAMPLE)))
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert table and any("evil.example" in line for line in table)
    for line in table:
        outside = re.sub(r"`[^`]*`", "", line)  # what is left outside the code spans
        assert "<img" not in outside and "](" not in outside and "evil" not in outside
        assert len(re.findall(r"(?<!\\)\|", line)) == 5  # four cells: no '|' from a value breaks one


def test_diff_markdown_escapes_plain_text():
    from sfbgen.difference import _text

    shown = _text('[Approve](https://evil.example) <img src=x> | *b* \x1b[2J')
    assert "\\[Approve\\]" in shown and "\\<img" in shown and "\\|" in shown and "\x1b" not in shown


def test_diff_of_a_topology_past_the_server_cap_is_refused(monkeypatch):
    from sfbgen import compiler
    from sfbgen.diagnostics import DiagnosticsError
    from sfbgen.difference import snapshot

    monkeypatch.setattr(compiler, "DEFAULT_MAX_SERVERS", 3)
    with pytest.raises(DiagnosticsError) as refused:
        snapshot(SAMPLE)
    assert [d.code for d in refused.value.diagnostics] == ["SFB270"]


def test_diff_refuses_a_plan_json_that_is_a_fifo_or_a_device(tmp_path):
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)
    run = subprocess.run([sys.executable, "-m", "sfbgen", "diff", str(fifo), str(SAMPLE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "not a plain file" in run.stderr
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "plan.json").symlink_to("/dev/zero")
    run = subprocess.run([sys.executable, "-m", "sfbgen", "diff", str(bundle), str(SAMPLE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
