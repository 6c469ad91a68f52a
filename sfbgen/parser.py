"""Parsing: source text to a Lark tree, and Lark's syntax errors to sfbgen diagnostics."""

from __future__ import annotations

import bisect
import hashlib
import re
from functools import cache

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .diagnostics import Diagnostic, Span, diagnostic
from .resources import cache_dir, resource_dir

# Words a user knows, for the terminals Lark reports as expected.
_TERMINAL_WORDS = {
    "STRING": "a quoted string",
    "INT": "a number",
    "WORD": "a name",
    "WEB_SIDE": "'internal' or 'external'",
    "$END": "end of file",
}

# Statements that open a block, so an error can name the block a missing '}' should close.
_BLOCK_KEYWORDS = {
    "topology": "topology",
    "site": "site",
    "certificates": "certificates block",
    "enterprise_pool": "pool",
    "standard_edition": "Standard Edition server",
    "director_pool": "pool",
    "mediation_pool": "pool",
    "edge_pool": "pool",
}

# Common mistakes, recognised by the parser state they leave Lark in (lark's match_examples).
_EXAMPLES: dict[tuple[str, str], list[str]] = {
    ("the topology name must be quoted", 'write it as topology "Contoso" { ... }'): [
        "topology Contoso {",
    ],
    ("a site name must be quoted", 'write it as site "Redmond" { ... }'): [
        'topology "t" { site Redmond {',
    ],
    ("a pool needs its FQDN before '{'", "write it as enterprise_pool pool01.contoso.com { ... }"): [
        'topology "t" { site "s" { enterprise_pool {',
        'topology "t" { site "s" { mediation_pool {',
        'topology "t" { site "s" { edge_pool {',
        'topology "t" { site "s" { director_pool {',
    ],
    ("a pool must be inside a site", 'put it in a site "Name" { ... } block'): [
        'topology "t" { enterprise_pool a.b {',
        'topology "t" { standard_edition a.b',
        'topology "t" { mediation_pool a.b {',
        'topology "t" { edge_pool a.b {',
        'topology "t" { director_pool a.b {',
    ],
    ("servers belong inside a pool", "move this line into the pool's { ... } block"): [
        'topology "t" { front_end a.b',
        'topology "t" { server a.b',
        'topology "t" { site "s" { front_end a.b',
        'topology "t" { site "s" { server a.b',
    ],
    ("only pools belong directly in a site", "move topology-wide settings out of the site block"): [
        'topology "t" { site "s" { product 2015',
        'topology "t" { site "s" { sip_domain a.b',
        'topology "t" { site "s" { simple_url meet "x"',
    ],
}


@cache
def _parser() -> Lark:
    grammar = (resource_dir("grammar") / "sfb.lark").read_text(encoding="utf-8")
    # The built LALR tables are cached (keyed by the grammar's hash): a warm start is then mostly I/O.
    folder = cache_dir()
    cache = str(folder / f"grammar-{hashlib.sha256(grammar.encode()).hexdigest()[:16]}.lark") if folder else False
    return Lark(grammar, parser="lalr", propagate_positions=True, cache=cache, maybe_placeholders=False)


def parse(text: str, file: str) -> tuple[Tree | None, list[Diagnostic]]:
    """Parse `text`; return the tree, or None and one diagnostic for the first syntax error."""
    parser = _parser()
    try:
        return parser.parse(text), []
    except UnexpectedInput as exc:
        return None, [_syntax_diagnostic(parser, exc, text, file)]


def _describe_terminal(parser: Lark, name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def _describe_expected(parser: Lark, expected: set[str]) -> str:
    words = sorted({_describe_terminal(parser, t) for t in expected})
    # '}' last: it is the way out, the other choices are the ways on.
    words.sort(key=lambda w: (w == "'}'", w))
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


_SCAN = re.compile(r'"[^"\n]*"?|#[^\n]*|[{}]|[^\s{}"#]+')


def _open_blocks(text: str, upto: int) -> list[tuple[str, int, int]]:
    """The blocks still open at offset `upto`: (what, line, column) of the statement opening each."""
    stack: list[tuple[str, int, int]] = []
    line_starts = [0] + [m.end() for m in re.finditer("\n", text[:upto])]

    def place(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(line_starts, offset)
        return line, offset - line_starts[line - 1] + 1

    # The statement that opens a block is the block keyword nearest before its '{'.
    opener: tuple[str, int, int] = ("block", 1, 1)
    for m in _SCAN.finditer(text, 0, upto):
        tok = m.group()
        if tok in _BLOCK_KEYWORDS:
            opener = (_BLOCK_KEYWORDS[tok], *place(m.start()))
        elif tok == "{":
            stack.append(opener)
            opener = ("block", *place(m.start()))
        elif tok == "}" and stack:
            stack.pop()
    return stack


def _token_span(token: Token) -> Span:
    end_line = token.end_line or token.line
    end_column = token.end_column or (token.column + max(1, len(token)))
    return Span(token.line, token.column, end_line, end_column)


def _end_span(text: str) -> Span:
    lines = text.split("\n")
    # Point just past the last non-blank character: where the missing text belongs.
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            col = len(lines[index].rstrip()) + 1
            return Span(index + 1, col, index + 1, col + 1)
    return Span.point(1, 1)


def _offset_of(text: str, line: int, column: int) -> int:
    offset = 0
    for _ in range(line - 1):
        offset = text.index("\n", offset) + 1
    return offset + column - 1


def _syntax_diagnostic(parser: Lark, exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        span = Span.point(exc.line, exc.column)
        if char == '"':
            line_end = text.find("\n", exc.pos_in_stream)
            end_col = exc.column + ((line_end if line_end >= 0 else len(text)) - exc.pos_in_stream)
            return diagnostic(
                "SFB104",
                Span(exc.line, exc.column, exc.line, max(end_col, exc.column + 1)),
                "this string has no closing quote on its line",
                'close it with " on the same line (strings cannot span lines or contain a double quote)',
                file,
            )
        expected = _describe_expected(parser, set(exc.allowed or ()))
        word = _SCAN.match(text, exc.pos_in_stream)
        shown = word.group() if word else char
        if word:
            span = Span(exc.line, exc.column, exc.line, exc.column + len(shown))
        return diagnostic(
            "SFB101",
            span,
            f"unexpected {_quote_for_message(shown)}; expected {expected}",
            _fix_for(exc, text),
            file,
        )

    assert isinstance(exc, (UnexpectedToken, UnexpectedEOF))
    token = getattr(exc, "token", None)
    expected_names = set(getattr(exc, "expected", None) or getattr(exc, "accepts", None) or ())
    at_end = token is None or token.type == "$END"
    if at_end:
        span = _end_span(text)
        blocks = _open_blocks(text, len(text))
        if blocks and "RBRACE" in expected_names:
            what, line, col = blocks[-1]
            return diagnostic(
                "SFB103",
                span,
                f"the file ends inside the {what} opened at {line}:{col}",
                f"add '}}' to close the {what} opened at {line}:{col}",
                file,
            )
        return diagnostic(
            "SFB103",
            span,
            f"the file ends too early; expected {_describe_expected(parser, expected_names)}",
            "complete the last statement",
            file,
        )

    span = _token_span(token)
    expected = _describe_expected(parser, expected_names)
    problem = f"unexpected {_quote_for_message(str(token))}; expected {expected}"
    label = _match_example(exc)
    if label:
        return diagnostic("SFB101", span, f"{problem}: {label[0]}", label[1], file)
    fix = _fix_for(exc, text)
    return diagnostic("SFB101", span, problem, fix, file)


def _fix_for(exc: UnexpectedInput, text: str) -> str:
    """The fix: correct the text, and say which block we are in when closing it is one way on."""
    allowed = set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    if "RBRACE" in allowed:
        blocks = _open_blocks(text, _offset_of(text, exc.line, exc.column))
        if blocks:
            what, line, col = blocks[-1]
            return f"correct or remove it; it stands inside the {what} opened at {line}:{col}"
    return "correct or remove it"


def _with_context(example: str) -> list[str]:
    """The example as written, and after a statement: LALR states differ for a first and a later item."""
    variants = [example]
    if example.startswith('topology "t" { site "s" { '):
        variants.append(example.replace('site "s" { ', 'site "s" { standard_edition s.e ', 1))
    elif example.startswith('topology "t" { '):
        variants.append(example.replace('topology "t" { ', 'topology "t" { product 2015 ', 1))
    return variants


@cache
def _example_states() -> list[tuple[int, str, tuple[str, str]]]:
    """(LALR state, unexpected token type, label) for every example mistake."""
    parser = _parser()
    out = []
    for label, examples in _EXAMPLES.items():
        for example in (v for e in examples for v in _with_context(e)):
            try:
                parser.parse(example)
            except UnexpectedToken as exc:
                out.append((exc.state.position, exc.token.type, label))
            except UnexpectedInput:
                continue
    return out


def _match_example(exc: UnexpectedInput) -> tuple[str, str] | None:
    # Like lark's match_examples, but by the LALR state alone: the stack depth differs with how many
    # statements came before the mistake, and that must not matter.
    if not isinstance(exc, UnexpectedToken):
        return None
    for position, token_type, label in _example_states():
        if position == exc.state.position and token_type == exc.token.type:
            return label
    return None


def _quote_for_message(text: str) -> str:
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"'{text}'"
