"""One token stream (issue 22, item 4): Lark's lexer over the grammar, read by the formatter and by
syntax-error recovery, and recovery that resumes at the next statement start."""

from __future__ import annotations

import inspect

import pytest

from sfbgen import formatter, parser
from sfbgen.parser import UNCLOSED_STRING, parse, statement_starts, token_stream


def _kinds(text: str) -> list[tuple[str, str]]:
    return [(t.type, t.text) for t in token_stream(text)]


def test_keywords_are_whole_words_and_comments_are_kept():
    assert _kinds('product products # site {\n"site" mediation_pool') == [
        ("PRODUCT", "product"), ("WORD", "products"), ("COMMENT", "# site {"),
        ("STRING", '"site"'), ("MEDIATION_POOL", "mediation_pool"),
    ]


def test_tokens_carry_their_place():
    token = list(token_stream('topology "T" {\n    site "S" {'))[3]
    assert token == ("SITE", "site", 19, 23, 2, 5)


def test_a_text_the_lexer_stops_at_still_has_tokens():
    # An unclosed string runs to its line's end; a no-break space (white space the grammar does not
    # skip) is passed over, as the old regular-expression scanner passed it.
    assert _kinds('media "D:\\x\n\u00a0site') == [("MEDIA", "media"), (UNCLOSED_STRING, '"D:\\x'), ("SITE", "site")]


def test_statement_starts_are_read_from_the_grammar():
    starts = statement_starts()
    assert {"TOPOLOGY", "PRODUCT", "SITE", "ENTERPRISE_POOL", "FRONT_END", "AUTHORITY", "WEB", "CENTRAL_MANAGEMENT_STORE"} <= starts
    # Words that only continue a statement begin none.
    assert not {"FOR", "ONLINE", "OFFLINE", "PRIMARY", "PUBLIC", "ARGUMENTS", "WEB_SIDE", "WORD"} & starts


def test_there_is_one_tokenizer():
    # The formatter and recovery read parser.token_stream; neither keeps a regular expression of its own.
    assert not hasattr(formatter, "_TOKEN") and not hasattr(parser, "_SCAN")
    assert "token_stream" in inspect.getsource(formatter.format_text)


@pytest.mark.parametrize("text,errors", [
    # Recovery blanks `product 2015 2019` and resumes at `sip_domain`, on the same line: its error is found too.
    ('topology "t" { product 2015 2019 sip_domain "x" mobility enabled }', [(1, 29), (1, 45)]),
    # The same across a comment that names a keyword: a comment begins no statement.
    ('topology "t" { product # site\n 2015 2019 sip_domain "x" }', [(2, 7), (2, 23)]),
    # `sites` is one unknown word, not `site` + `s`: the statement ends at `mobility`, which parses.
    ('topology "t" { product 2015 sites mobility enabled }', [(1, 29)]),
])
def test_recovery_resumes_at_the_next_statement_start(text, errors):
    tree, diagnostics = parse(text, "t.sfb")
    assert tree is None
    assert [(d.span.line, d.span.column) for d in diagnostics] == errors
