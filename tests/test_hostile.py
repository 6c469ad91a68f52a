"""Hostile topology text: every free-text field is rejected with a diagnostic or becomes an inert literal.

Inertness is shown with tree-sitter-pwsh: a script compiled with a hostile value has exactly the syntax
tree of the same script compiled with a plain value, once string literals and comments are treated as
leaves. A value that ended its string would add commands, variables or sub-expressions, and the trees
would differ.
"""

from __future__ import annotations

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


def _shape(source: bytes) -> list[str]:
    """The syntax tree as a list of node types, with literals and comments as leaves."""
    leaves = {"comment", "verbatim_string_characters", "expandable_string_literal", "verbatim_here_string_characters"}
    out, stack = [], [pt.parse(source).root_node]
    while stack:
        node = stack.pop()
        out.append(node.type)
        if node.type not in leaves:
            stack.extend(reversed(node.children))
    return out


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
    return not any(
        closes_early(text) for kind, text in pt.string_literals(source) if kind == "verbatim_string_characters"
    )


_BASELINE = None


def _baseline() -> dict[str, list[str]]:
    global _BASELINE
    if _BASELINE is None:
        _, files = _compile(_value("name", "Plain"))
        _BASELINE = {n: _shape(d) for n, d in files.items() if n.endswith(".ps1")}
    return _BASELINE


def assert_inert_or_rejected(field: str, value: str) -> str:
    result, files = _compile(_value(field, value))
    if files is None:
        assert any(d.is_error and d.code.startswith("SFB") for d in result.diagnostics)
        return "rejected"
    assert set(n for n in files if n.endswith(".ps1")) == set(_baseline())
    for name, shape in _baseline().items():
        assert pt.error_nodes(files[name]) == [], (field, value, name)
        assert _shape(files[name]) == shape, f"{field}={value!r} changed the code of {name}"
        assert _literals_hold(files[name]), f"{field}={value!r} ends a string early in {name} (Unicode quote)"
    if field in ("media", "install"):
        literal = quote("D:\\" + value).encode("utf-8")
        assert literal in files["se01.t.com/1-Install-LocalConfigurationStore.ps1"]
    return "inert"


def test_every_hostile_string_in_every_field():
    outcomes = {}
    for field in FIELDS:
        for value in HOSTILE:
            outcomes[(field, value)] = assert_inert_or_rejected(field, value)
    # Control characters, separators, bidirectional marks and the signature marker are refused outright.
    for value in ("a\x00b", "a\x07b", "a\u202eb", "a\u2028b", "# SIG # Begin signature block"):
        assert all(outcomes[(f, value)] == "rejected" for f in FIELDS), value
    # PowerShell's own metacharacters are accepted where a real name could hold them, and stay inert.
    assert outcomes[("organization", "O'Brien")] == "inert"
    assert outcomes[("media", "$(Remove-Item C:\\ -Recurse)")] == "inert"
    assert outcomes[("city", "\u2018; calc; \u2019")] == "inert"


HOSTILE_ALPHABET = st.sampled_from(list("'`$(){}[]@;|&#<>\\%-*\u2018\u2019\u201a\u201b\u201c\u201d\u200f\x00\x1b ") + ["# SIG #", "$(", "${", "@(", "#>", "<#"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), st.lists(st.one_of(HOSTILE_ALPHABET, st.text(min_size=1, max_size=3)), min_size=1, max_size=12))
def test_generated_hostile_strings(field, parts):
    value = "".join(parts).replace('"', "").replace("\n", "").replace("\r", "")
    if value.strip():
        assert_inert_or_rejected(field, value)


def test_signature_marker_is_the_one_signing_refuses():
    from sfbgen.authenticode import BEGIN
    from sfbgen.checks import SIGNATURE_MARKER

    assert SIGNATURE_MARKER == BEGIN
