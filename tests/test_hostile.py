"""Hostile topology text: every free-text field is rejected with a diagnostic or becomes an inert literal.

Inertness is shown with tree-sitter-pwsh: a script compiled with a hostile value has exactly the syntax
tree of the same script compiled with a plain value, once string literals and comments are treated as
leaves. A value that ended its string would add commands, variables or sub-expressions, and the trees
would differ.

The default run takes a representative subset: every hostile string once, each in one field (the fields
in turn), and the pairs whose outcome is asserted; the exhaustive product (every string in every field)
and the long generated run are marked `slow` (`python3 -m pytest -m slow`; `.ci/run` runs both). A
script whose bytes are those of the plain compile is the plain script, whose tree was checked once.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbgen import check_text
from sfbgen.compiler import iter_bundle
from sfbgen.plan import build_plan
from sfbgen.powershell import quote
from sfbgen.render import Meta
from tests import pwsh_tree as pt

FIELDS = ("name", "media", "install", "ca", "organization", "unit", "city", "state", "site")

TEMPLATE = """topology "{name}" {{
    product 2015
    media "D:\\{media}"
    install_path "D:\\{install}"
    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates {{
        authority online "ca.t.com\\{ca}"
        organization "{organization}"
        unit "{unit}"
        city "{city}"
        state "{state}"
        country "US"
    }}
    site "{site}" {{
        standard_edition se01.t.com {{ web_services external ext.t.com }}
        edge_pool edge.t.com {{
            next_hop se01.t.com
            access_edge sip.t.com
            webconf_edge wc.t.com
            av_edge av.t.com
            certificates {{ authority offline }}
            server edge01.t.com
        }}
    }}
}}
"""

HOSTILE = [
    "'", "''", "O'Brien", "`", "`$x", "$(Remove-Item C:\\ -Recurse)", "${env:PATH}", "$env:USERNAME", "; Stop-Computer",
    "| Out-Null", "& calc.exe", "@(1,2)", "@{a=1}", "#>", "<#", "<# x #>", "\u2018", "\u2019", "\u201c", "\u201d",
    "\u2018; calc; \u2019", "x\u201bx", "x\u201ax", "a\x00b", "a\x07b", "a\x1bb[31m", "a\u200fb", "a\u202eb", "a\u2028b",
    "# SIG # Begin signature block", "x # SIG # End signature block", "'; Invoke-Expression 'calc", "$null = 1",
    "\\\\server\\share", "Grüße — ünïcödé", "$(", ")", "{", "}", "}{", "--%", "<script>", "**", "|", "`n",
]


def _value(field: str, value: str) -> dict[str, str]:
    values = {f: "Plain" for f in FIELDS}
    values[field] = value
    return values


def _compile(values: dict[str, str]):
    result = check_text(TEMPLATE.format(**values), "hostile.sfb")
    if not result.ok:
        return result, None
    plan = build_plan(result.topology)
    return result, dict(iter_bundle(plan, Meta.of(result.topology, "hostile.sfb", "0" * 64), None))


LEAVES = {"comment", "verbatim_string_characters", "expandable_string_literal", "verbatim_here_string_characters"}


def _analyse(source: bytes) -> tuple[list[str], list[str], list[str]]:
    """One parse, one walk: the syntax tree as a list of node types with literals and comments as leaves
    (the shape), every ERROR or missing node, and the text of every single-quoted literal."""
    shape, errors, verbatim = [], [], []
    stack = [(pt.parse(source).root_node, False)]
    while stack:
        node, inside_leaf = stack.pop()
        if not inside_leaf:
            shape.append(node.type)
        if node.type == "ERROR" or node.is_missing:
            errors.append(f"{node.type} at {node.start_point[0] + 1}:{node.start_point[1] + 1}")
        if node.type == "verbatim_string_characters":
            verbatim.append(source[node.start_byte:node.end_byte].decode("utf-8"))
        below = inside_leaf or node.type in LEAVES
        stack.extend((child, below) for child in reversed(node.children))
    return shape, errors, verbatim


def _shape(source: bytes) -> list[str]:
    """The syntax tree as a list of node types, with literals and comments as leaves."""
    return _analyse(source)[0]


SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"


def closes_early(literal: str) -> bool:
    """Whether PowerShell would end this single-quoted literal before its last character.

    PowerShell takes any of four Unicode characters as a single quote, and a doubled one as a quote
    inside the string; tree-sitter-pwsh knows only the ASCII one, so this rule is checked here.
    """
    i, last = 1, len(literal) - 1
    while i < last:
        if literal[i] in SINGLE_QUOTES:
            if literal[i + 1] in SINGLE_QUOTES and i + 1 < last:
                i += 2
                continue
            return True
        i += 1
    return False


def _literals_hold(source: bytes) -> bool:
    return not any(closes_early(text) for text in _analyse(source)[2])


_BASELINE: dict[str, tuple[bytes, list[str]]] | None = None


def _baseline() -> dict[str, tuple[bytes, list[str]]]:
    """The plain compile's scripts: {name: (bytes, shape)}, each checked here once."""
    global _BASELINE
    if _BASELINE is None:
        _, files = _compile(_value("name", "Plain"))
        baseline = {}
        for name, data in files.items():
            if name.endswith(".ps1"):
                shape, errors, verbatim = _analyse(data)
                assert errors == [] and not any(closes_early(text) for text in verbatim), name
                baseline[name] = (data, shape)
        _BASELINE = baseline
    return _BASELINE


def assert_inert_or_rejected(field: str, value: str) -> str:
    result, files = _compile(_value(field, value))
    if files is None:
        assert any(d.is_error and d.code.startswith("SFB") for d in result.diagnostics)
        return "rejected"
    assert set(n for n in files if n.endswith(".ps1")) == set(_baseline())
    for name, (plain, shape) in _baseline().items():
        if files[name] == plain:
            continue  # the very bytes of the plain script: the same tree, checked in _baseline
        got, errors, verbatim = _analyse(files[name])
        assert errors == [], (field, value, name, errors)
        assert got == shape, f"{field}={value!r} changed the code of {name}"
        assert not any(closes_early(text) for text in verbatim), f"{field}={value!r} ends a string early in {name} (Unicode quote)"
    if field in ("media", "install"):
        literal = quote("D:\\" + value).encode("utf-8")
        assert literal in files["se01.t.com/1-Install-LocalConfigurationStore.ps1"]
    return "inert"


# Refused outright in every field: control characters, separators, bidirectional marks, the signature marker.
REJECTED_EVERYWHERE = ("a\x00b", "a\x07b", "a\u202eb", "a\u2028b", "# SIG # Begin signature block")
# PowerShell's own metacharacters are accepted where a real name could hold them, and stay inert.
INERT = {("organization", "O'Brien"), ("media", "$(Remove-Item C:\\ -Recurse)"), ("city", "\u2018; calc; \u2019")}


def expected_outcome(field: str, value: str) -> str | None:
    if value in REJECTED_EVERYWHERE:
        return "rejected"
    return "inert" if (field, value) in INERT else None


# The default run: each string once, in the fields in turn (so each field gets five), and every pair
# whose outcome is asserted above. The rest of the product is the slow run's.
REPRESENTATIVE = {(FIELDS[i % len(FIELDS)], value) for i, value in enumerate(HOSTILE)} | INERT | {
    (field, value) for i, value in enumerate(REJECTED_EVERYWHERE) for field in (FIELDS[i % len(FIELDS)], FIELDS[-1 - i])
}
EVERY_PAIR = [
    pytest.param(field, value, id=f"{field}-{i}", marks=() if (field, value) in REPRESENTATIVE else pytest.mark.slow)
    for field in FIELDS
    for i, value in enumerate(HOSTILE)
]


def test_the_subset_covers_every_string_and_field():
    assert {value for _, value in REPRESENTATIVE} == set(HOSTILE)
    assert {field for field, _ in REPRESENTATIVE} == set(FIELDS)
    assert set(REPRESENTATIVE) <= {(f, v) for f in FIELDS for v in HOSTILE}
    assert len(REPRESENTATIVE) < len(EVERY_PAIR) // 5


@pytest.mark.parametrize("field,value", EVERY_PAIR)
def test_every_hostile_string_in_every_field(field, value):
    outcome = assert_inert_or_rejected(field, value)
    if expected_outcome(field, value):
        assert outcome == expected_outcome(field, value), (field, value)


HOSTILE_ALPHABET = st.sampled_from(list("'`$(){}[]@;|&#<>\\%-*\u2018\u2019\u201a\u201b\u201c\u201d\u200f\x00\x1b ") + ["# SIG #", "$(", "${", "@(", "#>", "<#"])


GENERATED = (st.sampled_from(FIELDS), st.lists(st.one_of(HOSTILE_ALPHABET, st.text(min_size=1, max_size=3)), min_size=1, max_size=12))


def _generated(field, parts):
    value = "".join(parts).replace('"', "").replace("\n", "").replace("\r", "")
    if value.strip():
        assert_inert_or_rejected(field, value)


test_generated_hostile_strings = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])(
    given(*GENERATED)(_generated)
)
test_generated_hostile_strings_at_length = pytest.mark.slow(
    settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])(given(*GENERATED)(_generated))
)


def test_signature_marker_is_the_one_signing_refuses():
    from sfbgen.authenticode import BEGIN
    from sfbgen.checks import SIGNATURE_MARKER

    assert SIGNATURE_MARKER == BEGIN
