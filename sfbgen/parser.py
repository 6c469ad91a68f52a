"""Parsing: source text to a Lark tree, and Lark's syntax errors to sfbgen diagnostics."""

from __future__ import annotations

import bisect
import copy
import hashlib
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from typing import NamedTuple

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import BasicLexer, LexerState
from lark.utils import TextSlice

from .diagnostics import Diagnostic, Span, diagnostic
from .pool_kinds import KINDS
from .resources import CachePolicy, cache_dir, resource_dir

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
    # Every pool block (sfbgen/pool_kinds.py): "pool", or the word of a pool that is its one server.
    **{kind.keyword: "pool" if kind.member_keyword else kind.word for kind in KINDS},
}

_BLOCK_TYPES = {keyword.upper() for keyword in _BLOCK_KEYWORDS} - {"TOPOLOGY"}

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


class _WholeWords:
    """Keywords as whole words, with Lark's own contextual lexer.

    Lark's contextual lexer matches, in each parser state, only the terminals that state accepts; a
    keyword (a string terminal) then matches the first letters of a longer word: `products` lexed as
    `product` + `s`, `mediation_pool` at the topology's level as `media` + `tion_pool`. Declaring WORD
    accepted in every state (a post-lexer's `always_accept`, which Lark adds to every state's lexer)
    makes every run of name characters one WORD, and Lark's keyword dispatch (its "unless" callback:
    a string terminal that WORD matches whole becomes a re-typing of WORD) turns a WORD that equals a
    keyword of that state into the keyword. A word that is no keyword here stays one WORD, which the
    parser reports where it starts."""

    always_accept = ("WORD",)

    def process(self, stream):
        return stream


@cache
def _parser(policy: CachePolicy = CachePolicy.USE) -> Lark:
    grammar = (resource_dir("grammar") / "sfb.lark").read_text(encoding="utf-8")
    # The built LALR tables are cached (keyed by the grammar's hash and the lexer's setup): a warm
    # start is then mostly I/O. Under CachePolicy.REFUSE (a run that signs) a parser built from the
    # grammar itself, kept apart from the one a run that used the cache built.
    folder = cache_dir(policy)
    key = hashlib.sha256(grammar.encode() + b"\0whole-words").hexdigest()[:16]
    cache = str(folder / f"grammar-{key}.lark") if folder else False
    return Lark(grammar, parser="lalr", propagate_positions=True, cache=cache, maybe_placeholders=False, postlex=_WholeWords())


@cache
def _keyword_terminals() -> dict[str, str]:
    """keyword -> the name of its terminal (product -> PRODUCT), for every keyword of the grammar."""
    return {t.pattern.value: t.name for t in _parser().terminals if t.pattern.type == "str" and t.pattern.value.isidentifier()}


def _kind(token: Token | None) -> str:
    """A token's type, or the keyword's terminal when a WORD is a keyword the state did not accept
    (`enterprise_pool` at the topology's level is lexed as a WORD: the keyword is known by its text)."""
    if token is None:
        return ""
    if token.type == "WORD":
        return _keyword_terminals().get(str(token), "WORD")
    return token.type


MAX_SYNTAX_ERRORS = 25


def parse(text: str, file: str, policy: CachePolicy = CachePolicy.USE) -> tuple[Tree | None, list[Diagnostic]]:
    """Parse `text`; return the tree, or None and a diagnostic for every syntax error.

    After an error the parser recovers at the statement: the statement holding the error (a block
    statement with its whole block) is blanked out — spaces, so that lines and columns stay — and the
    text is parsed again, until it parses or the file ends inside a block, or after 25 errors.
    """
    if _XML.match(text):
        return None, [diagnostic(
            "SFB110", Span.point(1, 1), "this is an XML topology document, not a topology in the sfbgen language",
            "turn it into one with: sfbgen import " + (file if " " not in file else f'"{file}"') + " --out topo.sfb", file)]
    parser = _parser(policy)
    errors: list[Diagnostic] = []
    current, last = text, -1
    while len(errors) < MAX_SYNTAX_ERRORS:
        try:
            tree = parser.parse(current)
        except UnexpectedInput as exc:
            offset = exc.pos_in_stream if exc.pos_in_stream is not None else len(current)
            if errors and (offset <= last or "<end-of-file>" in _describe_expected(parser, set(getattr(exc, "expected", ()) or ()))):
                break  # no progress, or an error the repair itself made: stop at what is known
            last = offset
            errors.append(_syntax_diagnostic(parser, exc, current, file))
            repaired = _blank_statement(current, exc)
            if repaired is None or repaired == current:
                break
            current = repaired
            continue
        return (tree, []) if not errors else (None, errors)
    return None, errors


_XML = re.compile(r"\A\s*<(\?xml|Topology|TopologyBuilder)\b")


@cache
def statement_starts() -> frozenset[str]:
    """The terminals that begin a statement, read from the grammar: the first symbol of `topology` and
    of every rule an item choice (`_topology_item`, `_site_item`, `_pool`, `_pool_item`, `_cert_item`)
    names. `for` (inside simple_url) or `online` (after authority) begin no statement."""
    rules = _parser().rules
    choices: dict[str, list[str]] = {}
    for rule in rules:
        name = rule.origin.name
        if name.startswith("_") and not name.startswith("__") and len(rule.expansion) == 1 and not rule.expansion[0].is_term:
            choices.setdefault(name, []).append(rule.expansion[0].name)
    statements: set[str] = {"topology"}
    pending = [sym for syms in choices.values() for sym in syms]
    while pending:
        sym = pending.pop()
        if sym in choices:
            pending.extend(choices.pop(sym))
        else:
            statements.add(sym)
    return frozenset(rule.expansion[0].name for rule in rules
                     if rule.origin.name in statements and rule.expansion and rule.expansion[0].is_term)


@cache
def _token_lexer() -> BasicLexer:
    """Lark's lexer over the grammar (the one the parser's contextual lexer is built from), keeping
    comments: the token stream that the formatter and syntax-error recovery read."""
    conf = copy.copy(_parser().lexer_conf)
    conf.ignore = tuple(name for name in conf.ignore if name != "COMMENT")
    return BasicLexer(conf)


UNCLOSED_STRING = "UNCLOSED_STRING"


class Lexeme(NamedTuple):
    """A token of the stream: its terminal's name (PRODUCT, WORD, STRING, COMMENT, LBRACE, ...), its
    text, its offsets [start, end) and where it starts (1-based line and column)."""

    type: str
    text: str
    start: int
    end: int
    line: int
    column: int


def token_stream(text: str) -> Iterator[Lexeme]:
    """The tokens of `text` (white space left out, comments kept), as the grammar's lexer reads them:
    keywords are whole words (a WORD equal to a keyword is that keyword's terminal, `products` stays
    one WORD). A text the parser rejects still has tokens: a string with no closing quote on its line
    is one UNCLOSED_STRING token to the end of the line, and a character no terminal matches (white
    space the grammar does not skip, such as a no-break space) is passed over."""
    lexer = _token_lexer()
    state = LexerState(TextSlice(text, 0, len(text)))
    while True:
        try:
            t = lexer.next_token(state)
        except EOFError:
            return
        except UnexpectedCharacters as exc:
            pos = exc.pos_in_stream
            assert pos is not None  # the lexer always says where it stopped
            if text[pos] == '"':
                end = text.find("\n", pos)
                end = len(text) if end < 0 else end
                yield Lexeme(UNCLOSED_STRING, text[pos:end], pos, end, exc.line, exc.column)
                state.line_ctr.feed(text[pos:end])
            else:
                state.line_ctr.feed(text[pos])
            continue
        # A token of the lexer always has its place (lark's Token types it as optional: `or 0` for mypy).
        yield Lexeme(t.type, str(t), t.start_pos or 0, t.end_pos or 0, t.line or 0, t.column or 0)


@lru_cache(maxsize=1)
def _tokens(text: str) -> tuple[Lexeme, ...]:
    """token_stream(text), kept for the one text that recovery reads several times (a diagnostic's
    open blocks, then the statement to blank)."""
    return tuple(token_stream(text))


def _token_at(text: str, offset: int) -> Lexeme | None:
    """The token that starts at `offset`, if one does."""
    stream = _tokens(text)
    index = bisect.bisect_left([t.start for t in stream], offset)
    return stream[index] if index < len(stream) and stream[index].start == offset else None


def _blank_statement(text: str, exc: UnexpectedInput) -> str | None:
    """`text` with the statement that holds the error blanked out, or None when nothing can be. A
    block keyword where the open block could close gets the missing '}' instead (in the blank before
    it, so that columns stay)."""
    if isinstance(exc, UnexpectedEOF) or getattr(getattr(exc, "token", None), "type", "") == "$END":
        return None
    offset = exc.pos_in_stream if exc.pos_in_stream is not None else _offset_of(text, exc.line, exc.column)
    token = getattr(exc, "token", None)
    if (token is not None and _kind(token) in _BLOCK_TYPES and "RBRACE" in set(getattr(exc, "expected", ()) or ())
            and offset > 0 and text[offset - 1] in " \t"):
        return text[: offset - 1] + "}" + text[offset:]
    # Statement starts are keyword tokens of the grammar's lexer (token_stream), not words:
    # a quoted "site" or a comment is none.
    keywords = statement_starts()
    tokens = [(t.start, t.end, t.text, t.type) for t in _tokens(text)]
    index = next((i for i, (start, end, _, _) in enumerate(tokens) if start <= offset < max(end, start + 1)), None)
    if index is None:
        return None
    start = index - 1 if tokens[index][2] == "{" and index > 0 else index
    while start > 0 and tokens[start][3] not in keywords and tokens[start][2] not in "{}":
        start -= 1
    if tokens[start][2] in "{}" and start != index:
        start += 1
    if tokens[start][3] == "TOPOLOGY":
        return None  # the topology's own header: nothing sensible is left to parse
    end, depth = index + 1, 0
    if tokens[index][2] == "{" or tokens[start][3] in keywords:
        # A block statement in the wrong place goes with its whole block.
        probe = start
        while probe < len(tokens) and tokens[probe][2] not in "{}" and (probe == start or tokens[probe][3] not in keywords):
            probe += 1
        if probe < len(tokens) and tokens[probe][2] == "{":
            depth, end = 0, probe
            while end < len(tokens):
                depth += {"{": 1, "}": -1}.get(tokens[end][2], 0)
                end += 1
                if depth == 0:
                    break
    while end < len(tokens) and depth == 0 and tokens[end][3] not in keywords and tokens[end][2] not in "{}":
        end += 1
    first, last = tokens[start][0], tokens[end - 1][1] if end > start else tokens[start][1]
    if isinstance(exc, UnexpectedCharacters) and text[offset:offset + 1] == '"':
        first, last = tokens[start][0], text.find("\n", offset) if "\n" in text[offset:] else len(text)
    blanked = "".join(c if c == "\n" else " " for c in text[first:last])
    return text[:first] + blanked + text[last:]


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


def _open_blocks(text: str, upto: int) -> list[tuple[str, int, int]]:
    """The blocks still open at offset `upto`: (what, line, column) of the statement opening each."""
    stack: list[tuple[str, int, int]] = []
    line_starts = [0] + [m.end() for m in re.finditer("\n", text[:upto])]

    def place(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(line_starts, offset)
        return line, offset - line_starts[line - 1] + 1

    # The statement that opens a block is the block keyword nearest before its '{'.
    opener: tuple[str, int, int] = ("block", 1, 1)
    for token in _tokens(text):
        if token.start >= upto:
            break
        tok = token.text
        if tok in _BLOCK_KEYWORDS:
            opener = (_BLOCK_KEYWORDS[tok], *place(token.start))
        elif tok == "{":
            stack.append(opener)
            opener = ("block", *place(token.start))
        elif tok == "}" and stack:
            stack.pop()
    return stack


def _token_span(token: Token) -> Span:
    assert token.line is not None and token.column is not None  # a token of the lexer has its start
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
        assert exc.pos_in_stream is not None  # the lexer always says where it stopped
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
        word = _token_at(text, exc.pos_in_stream)
        shown = word.text if word else char
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

    assert token is not None  # not at_end
    span = _token_span(token)
    expected = _describe_expected(parser, expected_names)
    problem = f"unexpected {_quote_for_message(str(token))}; expected {expected}"
    quoted = _wrong_quotes(str(token))
    if quoted and "STRING" in expected_names:
        return diagnostic("SFB101", span, f"{problem}: {quoted}", 'write the text between straight double quotes, "like this"', file)
    if _kind(token) in _BLOCK_TYPES and "RBRACE" in expected_names:
        # A block keyword where the open block could still close: that block's '}' is missing.
        blocks = _open_blocks(text, token.start_pos)
        if len(blocks) >= 2:
            what, line, col = blocks[-1]
            return diagnostic("SFB101", span, f"the {what} opened at {line}:{col} is not closed before this {_quote_for_message(str(token))}",
                              f"add '}}' to close the {what} opened at {line}:{col}, before this line", file)
    label = _match_example(exc)
    if label:
        return diagnostic("SFB101", span, f"{problem}: {label[0]}", label[1], file)
    suggestion = _did_you_mean(parser, str(token), expected_names)
    fix = _fix_for(exc, text)
    if suggestion:
        fix = f"did you mean '{suggestion}'? If not, " + fix
    return diagnostic("SFB101", span, problem, fix, file)


def _did_you_mean(parser: Lark, word: str, expected: set[str]) -> str | None:
    """The expected keyword closest to a misspelt `word` (frontend -> front_end), if one is close."""
    import difflib

    keywords = []
    for name in expected:
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str" and pattern.value.isidentifier():
            keywords.append(pattern.value)
    folded = {k.replace("_", "").lower(): k for k in keywords}
    if word.replace("_", "").replace("-", "").lower() in folded:
        return folded[word.replace("_", "").replace("-", "").lower()]
    close = difflib.get_close_matches(word.lower(), keywords, n=1, cutoff=0.75)
    return close[0] if close else None


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
                out.append((exc.state.position, _kind(exc.token), label))
            except UnexpectedInput:
                continue
    return out


def _match_example(exc: UnexpectedInput) -> tuple[str, str] | None:
    # Like lark's match_examples, but by the LALR state alone: the stack depth differs with how many
    # statements came before the mistake, and that must not matter.
    if not isinstance(exc, UnexpectedToken):
        return None
    for position, token_type, label in _example_states():
        if position == exc.state.position and token_type == _kind(exc.token):
            return label
    return None


def _wrong_quotes(text: str) -> str | None:
    """What is wrong with the quotes of a word written where a string belongs, or None."""
    if any(c in text for c in "\u201c\u201d\u201e\u00ab\u00bb"):
        return "these are curly quotes (a word processor's), not the straight double quote"
    if any(c in text for c in "\u2018\u2019"):
        return "these are curly single quotes, not the straight double quote"
    if text.startswith("'"):
        return "strings are written between double quotes, not single quotes"
    return None


def _quote_for_message(text: str) -> str:
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"'{text}'"
