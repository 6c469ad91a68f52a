"""Scripts a reviewer can read (issue 18, item 3): each step script holds only the helpers it calls,
directly or through another helper, and its step's work (`function Invoke-Main`) comes first.

The checks read the compiled scripts with tree-sitter-pwsh, independently of how sfbgen/render.py
chooses the helpers (it uses regular expressions on the template text)."""

from __future__ import annotations

import pytest

from sfbgen.render import Helpers, render_template, split_blocks
from sfbgen.resources import resource_dir
from tests import pwsh_tree

STEP_PREFIXES = ("0-", "1-", "2-", "3-", "4-", "Export-")


def _text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8")


def _enclosing_function(node):
    while node is not None:
        if node.type == "function_statement":
            return node
        node = node.parent
    return None


def _function_name(node, source: bytes) -> str:
    return _text(next(c for c in node.children if c.type == "function_name"), source)


def _shape(source: bytes):
    """(definitions {name: line}, call graph {function or '' for top level: {called names}},
    top-level statements [(line, text)])."""
    tree = pwsh_tree.parse(source)
    definitions: dict[str, int] = {}
    calls: dict[str, set[str]] = {"": set()}
    for node in pwsh_tree.walk(tree.root_node):
        if node.type == "function_statement":
            definitions[_function_name(node, source).lower()] = node.start_point[0] + 1
        elif node.type == "command":
            name = node.child_by_field_name("command_name")
            if name is None or name.type != "command_name":
                continue
            owner = _enclosing_function(node)
            key = _function_name(owner, source).lower() if owner is not None else ""
            calls.setdefault(key, set()).add(_text(name, source).lower())
    statements = next(c for c in tree.root_node.children if c.type == "statement_list")
    top = [(child.start_point[0] + 1, _text(child, source)) for child in statements.children if child.type != "comment"]
    return definitions, calls, top


def _shared_function_names() -> set[str]:
    source = render_template("_functions.ps1.j2").encode("utf-8")
    definitions, _, _ = _shape(source)
    return set(definitions)


def _step_scripts(result):
    for name, data in sorted(result.files.items()):
        if name.endswith(".ps1") and name.rsplit("/", 1)[-1].startswith(STEP_PREFIXES):
            yield name, data


def test_samples_have_step_scripts(compiled):
    assert all(list(_step_scripts(result)) for result in compiled.values())


def test_each_script_defines_only_the_functions_it_calls(compiled):
    for result in compiled.values():
        for name, data in _step_scripts(result):
            definitions, calls, _ = _shape(data)
            reachable, todo = set(), list(calls[""])
            while todo:
                called = todo.pop()
                if called in definitions and called not in reachable:
                    reachable.add(called)
                    todo.extend(calls.get(called, ()))
            assert set(definitions) - reachable == set(), f"{name} defines functions nothing calls"


def test_every_shared_function_a_script_calls_is_defined(compiled):
    shared = _shared_function_names()
    assert {"write-step", "assert-stepdone", "assert-bundleintact"} <= shared
    for result in compiled.values():
        for name, data in _step_scripts(result):
            definitions, calls, _ = _shape(data)
            called = set().union(*calls.values()) & shared
            assert called - set(definitions) == set(), f"{name} calls helpers it does not define"


def test_the_work_comes_first_and_everything_is_defined_before_the_runner(compiled):
    for result in compiled.values():
        for name, data in _step_scripts(result):
            definitions, _, top = _shape(data)
            main = definitions["invoke-main"]
            assert all(line >= main for line in definitions.values()), f"{name}: a helper comes before Invoke-Main"
            # The runner (the first top-level statement that calls Invoke-Main or a helper) comes after
            # every definition and every top-level assignment, which the helpers may read.
            runner = min(line for line, text in top if "Assert-ThisServer" in text and not text.startswith("function"))
            assert all(line < runner for line in definitions.values()), name
            assignments = [line for line, text in top if text.startswith("$") and "=" in text.split("\n")[0]]
            assert assignments, name
            assert all(line < runner for line in assignments), name
            # The preamble (header, param, values) is all that precedes the work.
            before = [text for line, text in top if line < main]
            assert not [t for t in before if t.lower().startswith("function")], name


def test_start_pool_starts_its_work_near_the_top(compiled):
    text = compiled["contoso"].files["fe01.contoso.com/4-Start-Pool.ps1"].decode("utf-8-sig")
    lines = text.split("\n")
    work = next(i for i, line in enumerate(lines, 1) if line.startswith("function Invoke-Main"))
    assert work < 80, work  # it was line 335 when every helper came first
    assert "function Exit-Pending" not in text and "function Install-CoreComponents" not in text


def test_blocks_keep_their_comments_and_multiline_assignments():
    text = "\n".join([
        "function A { B }",
        "",
        "# about B",
        "# second line",
        "function B([string]$x = 'a{') {",
        "    '}'",
        "}",
        "",
        "$List = @(",
        "    1",
        ")  # trailing",
        "$Block = {",
        "    param($x)",
        "    C-Thing $List",
        "}",
    ])
    blocks = split_blocks(text)
    assert [(b.kind, b.name) for b in blocks] == [("function", "A"), ("function", "B"), ("variable", "List"), ("variable", "Block")]
    assert blocks[1].text.startswith("# about B\n# second line\nfunction B")
    assert blocks[3].text.endswith("C-Thing $List\n}")


def test_helpers_are_chosen_transitively_and_comments_do_not_count():
    helpers = Helpers("\n".join([
        "function Write-Step { Write-Host 'x' }",
        "",
        "$Owners = @('S-1-5-18')",
        "",
        "function Test-Owner { $Owners -contains 1 }",
        "",
        "function Set-Record {",
        "    Test-Owner  # then Write-Step",
        "}",
        "",
        "function Unused-Thing { Write-Step }",
    ]))
    assert helpers.needed("Set-Record") == {"set-record", "test-owner", "$owners"}
    assert helpers.needed("# Unused-Thing\nWrite-Step 'a'") == {"write-step"}
    own = split_blocks("function Get-Local { Set-Record }\n\nfunction Get-Dead { Unused-Thing }")
    assert helpers.needed("Get-Local", own) == {"get-local", "set-record", "test-owner", "$owners"}


def test_arranging_is_deterministic(compiled, tmp_path):
    from sfbgen.compiler import compile_file
    from tests.conftest import SAMPLES

    again = compile_file(SAMPLES / "contoso.sfb", tmp_path / "again")
    for name, data in _step_scripts(compiled["contoso"]):
        assert again.files[name] == data, name


@pytest.mark.parametrize("template", ["start-pool.ps1.j2", "prepare-cms.ps1.j2"])
def test_templates_still_include_the_shared_pieces(template):
    # render.py arranges what the templates include; a template that drops the include would lose helpers.
    text = (resource_dir("templates") / template).read_text(encoding="utf-8")
    assert "{{ shared.functions }}" in text and "{{ shared.runner }}" in text
