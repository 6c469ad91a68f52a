"""Formatting: a topology rewritten in its one canonical form, comments kept.

The language is keyword-led, so a topology that parses is a sequence of statements, each a keyword
and its values, with blocks between braces. The formatter works on the parser's own tokens (Lark's
lexer over the grammar, comments kept: sfbgen/parser.py `token_stream`), after the parser has
accepted the text, so the structure is known to be sound:

- one statement per line, its words separated by one space; a block's header ends with '{', its
  body is indented four spaces a level, and '}' stands on a line of its own;
- a comment on a line of its own stays before what followed it, at that indentation; a comment at
  the end of a statement's line stays at the end of that line;
- a blank line in the source (one or more) between statements stays as one blank line, never right
  after '{' nor before '}';
- the text is UTF-8 with LF line ends and one final newline.
Quoted strings are kept exactly as written. Formatting twice gives the same text, and a formatted
topology plans exactly what the original planned.
"""

from __future__ import annotations

from .diagnostics import Diagnostic

INDENT = "    "


def format_text(text: str, name: str = "<input>") -> tuple[str | None, list[Diagnostic]]:
    """(the canonical text, []) or (None, the syntax errors that keep the text from being formatted)."""
    from .parser import parse, statement_starts, token_stream

    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    tree, errors = parse(text, name)
    if tree is None:
        return None, errors
    keywords = statement_starts()
    lines: list[str] = []
    depth = 0
    statement: list[str] = []
    last_line = 0  # the source line of the last token placed
    pending_blank = False

    def emit(content: str) -> None:
        nonlocal pending_blank
        if pending_blank and lines and not lines[-1].endswith("{"):
            lines.append("")
        pending_blank = False
        lines.append(INDENT * depth + content)

    def flush() -> None:
        if statement:
            emit(" ".join(statement))
            statement.clear()

    # The parser's own tokens (sfbgen/parser.py token_stream: Lark's lexer over the grammar, comments kept).
    for lexeme in token_stream(text):
        token, line = lexeme.text, lexeme.line
        starts_line = line > last_line
        if starts_line and last_line and line - last_line >= 2 and not statement:
            pending_blank = True
        if lexeme.type == "COMMENT":
            if not starts_line and (statement or lines):
                if statement:
                    flush()
                lines[-1] += "  " + token.rstrip()
            else:
                flush()
                if line - last_line >= 2 and last_line:
                    pending_blank = True
                emit(token.rstrip())
        elif token == "{":
            statement.append("{")
            flush()
            depth += 1
        elif token == "}":
            flush()
            pending_blank = False
            depth -= 1
            emit("}")
        elif lexeme.type in keywords:
            flush()
            if starts_line and last_line and line - last_line >= 2:
                pending_blank = True
            statement.append(token)
        else:
            statement.append(token)
        last_line = line
    flush()
    return "\n".join(lines) + "\n", []
