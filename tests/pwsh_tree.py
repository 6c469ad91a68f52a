"""Reading generated PowerShell with tree-sitter-pwsh: the independent check that scripts parse,
which commands they call with which parameters, and where topology values sit."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import tree_sitter
import tree_sitter_pwsh


@cache
def parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_pwsh.language()))


def parse(source: bytes) -> tree_sitter.Tree:
    return parser().parse(source)


def walk(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def error_nodes(source: bytes) -> list[str]:
    """Every ERROR or missing node, described with its position: empty for a script that parses."""
    tree = parse(source)
    out = []
    for node in walk(tree.root_node):
        if node.type == "ERROR" or node.is_missing:
            out.append(f"{node.type} at {node.start_point[0] + 1}:{node.start_point[1] + 1}: {source[node.start_byte:node.end_byte][:60]!r}")
    return out


@dataclass
class Command:
    name: str
    parameters: list[str]
    line: int
    text: str


def commands(source: bytes) -> list[Command]:
    """Every command invocation: its name and the parameter names given to it."""
    tree = parse(source)
    out = []
    for node in walk(tree.root_node):
        if node.type != "command":
            continue
        name_node = node.child_by_field_name("command_name")
        if name_node is None:
            continue
        params = []
        stack = list(node.children)
        while stack:  # this command's own parameters, not those of commands nested in its arguments
            child = stack.pop()
            if child.type == "command":
                continue
            if child.type == "command_parameter":
                params.append(source[child.start_byte:child.end_byte].decode("utf-8").lstrip("-").split(":")[0])
            stack.extend(child.children)
        out.append(Command(source[name_node.start_byte:name_node.end_byte].decode("utf-8"), params, node.start_point[0] + 1,
                           source[node.start_byte:node.end_byte].decode("utf-8")))
    return out


def string_literals(source: bytes) -> list[tuple[str, str]]:
    """(node type, text) of every string literal."""
    tree = parse(source)
    return [
        (node.type, source[node.start_byte:node.end_byte].decode("utf-8"))
        for node in walk(tree.root_node)
        if node.type in ("verbatim_string_characters", "expandable_string_literal", "verbatim_here_string_characters", "expandable_here_string_literal")
    ]
