"""Keywords are whole words (issue 21): the lexer never reads `products` as `product` + `s`.

For every keyword of grammar/sfb.lark, the keyword with a suffix, where the keyword belongs, is one
unknown word, reported where it starts and shown whole; the keyword itself, in the same place, is no
error there. A keyword added to the grammar without a case here fails the last test.
"""

from __future__ import annotations

import pytest

from sfbgen import check_text
from sfbgen.parser import _keyword_terminals, parse

# keyword -> a topology where it stands, written as "{kw}". Each is otherwise valid up to the keyword.
T = 'topology "t" {{\n    {body}\n}}\n'
SITE = 'topology "t" {{\n    site "s" {{\n        {body}\n    }}\n}}\n'
POOL = 'topology "t" {{\n    site "s" {{\n        enterprise_pool p.contoso.com {{\n            {body}\n        }}\n    }}\n}}\n'
EDGE = 'topology "t" {{\n    site "s" {{\n        edge_pool e.contoso.com {{\n            {body}\n        }}\n    }}\n}}\n'
SE = 'topology "t" {{\n    site "s" {{\n        standard_edition se.contoso.com {{\n            {body}\n        }}\n    }}\n}}\n'
CERTS = 'topology "t" {{\n    certificates {{\n        {body}\n    }}\n}}\n'

CASES = {
    "topology": '{kw} "t" {\n}\n',
    "product": T.format(body="{kw} 2015"),
    "media": T.format(body='{kw} "D:\\\\"'),
    "windows_source": T.format(body='{kw} "D:\\\\sources\\\\sxs"'),
    "cumulative_update": T.format(body='{kw} "D:\\\\cu.exe" arguments "/silentmode"'),
    "arguments": T.format(body='cumulative_update "D:\\\\cu.exe" {kw} "/silentmode"'),
    "module_path": T.format(body='{kw} "D:\\\\m.psd1"'),
    "windows_server": T.format(body="{kw} 2019"),
    "install_path": T.format(body='{kw} "D:\\\\Skype"'),
    "smart_setup": T.format(body="{kw} off"),
    "end_of_support": T.format(body="{kw} acknowledged"),
    "mobility": T.format(body="{kw} on"),
    "sip_domain": T.format(body="{kw} contoso.com primary"),
    "primary": T.format(body="sip_domain contoso.com {kw}\n    product 2015"),
    "simple_url": T.format(body='{kw} meet "https://meet.contoso.com"'),
    "for": T.format(body='simple_url meet "https://meet.contoso.com" {kw} contoso.com'),
    "certificates": T.format(body="{kw} {{ }}"),
    "authority": CERTS.format(body="{kw} offline"),
    "online": CERTS.format(body='authority {kw} "ca.contoso.com\\\\CA"'),
    "offline": CERTS.format(body="authority {kw}"),
    "public": CERTS.format(body="authority offline {kw}\n        key_size 2048"),
    "template": CERTS.format(body='{kw} "WebServer"'),
    "key_size": CERTS.format(body="{kw} 2048"),
    "organization": CERTS.format(body='{kw} "Contoso"'),
    "unit": CERTS.format(body='{kw} "UC"'),
    "city": CERTS.format(body='{kw} "Redmond"'),
    "state": CERTS.format(body='{kw} "Washington"'),
    "country": CERTS.format(body='{kw} "US"'),
    "web": CERTS.format(body="{kw} separate"),
    "sip_names": CERTS.format(body="{kw} on"),
    "site": T.format(body='{kw} "s" {{ }}'),
    "enterprise_pool": SITE.format(body="{kw} p.contoso.com {{ }}"),
    "standard_edition": SITE.format(body="{kw} se.contoso.com"),
    "director_pool": SITE.format(body="{kw} d.contoso.com {{ }}"),
    "mediation_pool": SITE.format(body="{kw} m.contoso.com {{ }}"),
    "edge_pool": SITE.format(body="{kw} e.contoso.com {{ }}"),
    "front_end": POOL.format(body="{kw} fe01.contoso.com"),
    "server": EDGE.format(body="{kw} edge01.contoso.com"),
    "web_services": POOL.format(body="{kw} external web.contoso.com"),
    "next_hop": EDGE.format(body="{kw} p.contoso.com"),
    "access_edge": EDGE.format(body="{kw} sip.contoso.com"),
    "webconf_edge": EDGE.format(body="{kw} webconf.contoso.com"),
    "av_edge": EDGE.format(body="{kw} av.contoso.com"),
    "mediation": POOL.format(body="{kw} collocated"),
    "internal_certificates": EDGE.format(body="{kw} {{ }}"),
    "central_management_store": SE.format(body="{kw}"),
}
# The two words of WEB_SIDE, a regular-expression terminal, are whole words too.
SIDES = {
    "internal": POOL.format(body="web_services {kw} web.contoso.com"),
    "external": POOL.format(body="web_services {kw} web.contoso.com"),
}


def _place(template: str, word: str) -> tuple[str, int, int]:
    marker = "\0"
    text = template.replace("{kw}", marker)
    offset = text.index(marker)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return text.replace(marker, word), line, column


def _syntax_errors_at(text: str, line: int, column: int) -> list:
    _, errors = parse(text, "k.sfb")
    return [d for d in errors if (d.span.line, d.span.column) == (line, column)]


@pytest.mark.parametrize("keyword", sorted({**CASES, **SIDES}))
@pytest.mark.parametrize("suffix", ["s", "_x", "2"])
def test_a_keyword_with_a_suffix_is_one_unknown_word_reported_where_it_starts(keyword, suffix):
    template = {**CASES, **SIDES}[keyword]
    right, line, column = _place(template, keyword)
    assert not _syntax_errors_at(right, line, column), f"{keyword} itself is refused in its own place"
    wrong, line, column = _place(template, keyword + suffix)
    _, errors = parse(wrong, "k.sfb")
    assert errors, f"{keyword}{suffix} was accepted"
    first = errors[0]
    assert first.code == "SFB101"
    assert (first.span.line, first.span.column) == (line, column), (keyword, suffix, first.span, first.message)
    assert first.span.end_column - first.span.column == len(keyword + suffix)
    assert f"'{keyword + suffix}'" in first.message


def test_products_is_reported_at_products_not_at_the_version():
    result = check_text('topology "t" {\n    products 2015\n}\n')
    [error] = result.diagnostics
    assert (error.span.line, error.span.column) == (2, 5)
    assert "'products'" in error.message and "Did you mean 'product'" in error.message


def test_mediation_pool_at_topology_level_is_not_read_as_media():
    result = check_text('topology "t" {\n    mediation_pool m.contoso.com {\n        server m.contoso.com\n    }\n}\n')
    error = result.diagnostics[0]
    assert (error.span.line, error.span.column) == (2, 5)
    assert "'mediation_pool'" in error.message and "a pool must be inside a site" in error.message
    assert "tion_pool" not in error.message.replace("mediation_pool", "")


def test_a_name_may_start_with_a_keyword():
    """Values are names: an FQDN beginning with a keyword is a name, never the keyword."""
    text = ('topology "t" {\n    product 2015\n    media "D:\\\\"\n    sip_domain site.contoso.com primary\n'
            '    simple_url meet "https://meet.site.contoso.com"\n    simple_url dialin "https://dialin.site.contoso.com"\n'
            '    site "s" {\n        enterprise_pool server.site.contoso.com {\n            web_services internal internalweb.site.contoso.com\n'
            '            front_end front_end01.site.contoso.com\n        }\n    }\n}\n')
    tree, errors = parse(text, "k.sfb")
    assert tree is not None, [d.message for d in errors]


def test_every_keyword_of_the_grammar_has_a_case():
    assert set(CASES) == set(_keyword_terminals())
