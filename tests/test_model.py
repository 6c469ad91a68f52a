"""The typed model: built from the source without re-validation, but a real pydantic model all the same."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sfbgen import check_file
from sfbgen import model as m
from sfbgen.diagnostics import Diagnostic, Severity, Span, render_text
from tests.conftest import VALID_SAMPLES


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.stem)
def test_model_round_trips_through_validation(sample):
    topology = check_file(sample).topology
    again = m.Topology.model_validate(topology.model_dump())
    assert again == topology
    assert again.sites[0].pools[0].span == topology.sites[0].pools[0].span


def test_every_object_carries_its_span():
    topology = check_file(VALID_SAMPLES[0]).topology

    def walk(node):
        if isinstance(node, m.Node):
            yield node
            for name in type(node).model_fields:
                yield from walk(getattr(node, name))
        elif isinstance(node, tuple):
            for item in node:
                yield from walk(item)

    nodes = list(walk(topology))
    assert len(nodes) > 50
    assert all(isinstance(n.span, tuple) and n.span.line >= 1 for n in nodes)


def test_model_is_frozen_and_closed():
    server = m.Server.model_validate({"span": (1, 1, 1, 5), "fqdn": {"span": (1, 1, 1, 5), "value": "a.b.c"}})
    with pytest.raises(ValidationError):
        server.fqdn = None
    with pytest.raises(ValidationError):
        m.Server.model_validate({"span": (1, 1, 1, 5), "fqdn": {"span": (1, 1, 1, 5), "value": "a.b.c"}, "extra": 1})
    with pytest.raises(ValidationError):
        m.Number.model_validate({"span": (1, 1, 1, 5), "value": "not a number"})


def test_pools_are_typed_by_kind():
    topology = check_file(VALID_SAMPLES[0]).topology
    kinds = {type(pool).__name__ for pool in topology.pools()}
    assert kinds == {"EnterprisePool", "StandardEditionServer", "MediationPool", "EdgePool"}


def test_colour_only_when_asked():
    diag = Diagnostic("SFB250", Severity.ERROR, "problem. Fix.", Span(1, 9, 1, 13), "t.sfb")
    plain = render_text([diag], {"t.sfb": "product 2016\n"}, color=False)
    coloured = render_text([diag], {"t.sfb": "product 2016\n"}, color=True)
    assert "\x1b[" not in plain and "\x1b[31m" in coloured
    assert plain.splitlines()[2].endswith("^~~~")


def test_terminal_escapes_in_source_are_neutralised():
    diag = Diagnostic("SFB290", Severity.ERROR, "bad \x1b[2J text. Fix.", Span(1, 1, 1, 2), "t.sfb")
    text = render_text([diag], {"t.sfb": "media \"\x1b[2J\u202eevil\"\n"})
    assert "\x1b" not in text and "\u202e" not in text  # neither terminal escapes nor bidi overrides
    assert "\\u001b[2J\\u202eevil" in text
    tabbed = render_text([diag], {"t.sfb": "\tmedia x\n"})
    assert "\tmedia x" in tabbed  # tab indentation is shown as written
