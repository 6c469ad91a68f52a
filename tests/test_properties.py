"""Random mutations of the samples never raise anything but sfbgen's own diagnostics."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbgen import check_text
from sfbgen.api import compile_text
from sfbgen.compiler import iter_bundle
from sfbgen.diagnostics import CATALOG
from tests.conftest import VALID_SAMPLES

TEXTS = [p.read_text(encoding="utf-8") for p in VALID_SAMPLES]
TOKENS = ["{", "}", '"', "#", "\n", "product", "site", "front_end", "server", "next_hop", "primary", "2019", "9999",
          "a.b.com", "*", "$(x)", "'", "`", "\x00", "\u202e", "https://", "certificates", "authority", "online",
          "web_services", "internal", "external", ":443", "..", "\\", "\t", "\ufeff", "for"]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["delete", "insert", "replace", "duplicate-line"]))
        if action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif action == "insert":
            piece = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)))
            text = text[:at] + piece + text[at:]
        elif action == "replace":
            piece = draw(st.sampled_from(TOKENS))
            text = text[:at] + piece + text[at + len(piece):]
        else:
            lines = text.split("\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            text = "\n".join(lines)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_give_diagnostics_or_a_compile(text):
    result = compile_text(text, "mutated.sfb")
    for diagnostic in result.diagnostics:
        assert diagnostic.code in CATALOG
        assert diagnostic.span.line >= 1 and diagnostic.span.column >= 1
    if result.ok:
        files = dict(iter_bundle(result.plan, result.meta, None))
        assert files["plan.json"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    result = check_text(text, "random.sfb")
    assert result.ok or result.diagnostics
