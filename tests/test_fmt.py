"""sfbgen fmt (issue 14): one canonical form, comments kept, the same work planned, files left whole."""

from __future__ import annotations

import os
import random
import re

import pytest
from typer.testing import CliRunner

from sfbgen.cli import app
from sfbgen.compiler import compile_file
from sfbgen.formatter import format_text
from tests.conftest import ROOT, SHARED, VALID_SAMPLES

runner = CliRunner()


def _untidy(text: str, seed: int) -> str:
    """The same topology as a hurried person might type it: indentation anyhow, runs of spaces
    between words, trailing blanks, several blank lines where one was. Strings are left alone."""
    rng = random.Random(seed)
    lines = []
    for line in text.splitlines():
        body = line.strip()
        if body and not body.startswith("#") and '"' not in body:
            body = re.sub(" ", lambda _: " " * rng.randint(1, 3), body)
        lines.append(" " * rng.randint(0, 9) + body + " " * rng.randint(0, 2))
        if not body:
            lines.extend([""] * rng.randint(0, 2))
    return "\n".join(lines) + "\n"


def _comments(text: str) -> list[str]:
    return [m.group().rstrip() for m in re.finditer(r'#[^\n]*', re.sub(r'"[^"\n]*"', '""', text))]


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.name)
def test_the_samples_are_in_canonical_form(sample):
    text = sample.read_text(encoding="utf-8")
    assert format_text(text)[0] == text


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.name)
def test_an_untidy_topology_formats_back_to_the_tidy_one(sample, seed):
    tidy = sample.read_text(encoding="utf-8")
    untidy = _untidy(tidy, seed)
    assert untidy != tidy
    formatted, errors = format_text(untidy)
    assert errors == []
    assert formatted == tidy
    assert format_text(formatted)[0] == formatted  # idempotent


def test_comments_are_kept_in_order_at_the_end_of_their_line_or_on_their_own():
    text = (
        '# what this is\ntopology "T" {   # trailing\n\n\n'
        '  # before the site\n  site "S" {\n  }\n}\n# at the end\n'
    )
    formatted, _ = format_text(text)
    assert formatted == (
        '# what this is\ntopology "T" {  # trailing\n\n'
        '    # before the site\n    site "S" {\n    }\n}\n# at the end\n'
    )
    assert _comments(formatted) == _comments(text)


def test_a_hash_inside_a_string_is_not_a_comment():
    text = 'topology "A # B" {\n}\n'
    assert format_text(text)[0] == text


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.name)
def test_formatting_plans_exactly_the_same_work(tmp_path, sample):
    untidy = tmp_path / "untidy.sfb"
    untidy.write_text(_untidy(sample.read_text(encoding="utf-8"), 7), encoding="utf-8")
    before = compile_file(untidy, tmp_path / "before").files
    assert runner.invoke(app, ["fmt", str(untidy)]).exit_code == 0
    after = compile_file(untidy, tmp_path / "after").files
    scripts = [path for path in before if path.endswith(".ps1")]
    assert scripts and all(before[p] == after[p] for p in scripts)
    assert before.keys() == after.keys()


def test_check_lists_unformatted_files_and_changes_nothing(tmp_path):
    tidy, untidy = VALID_SAMPLES[0], tmp_path / "untidy.sfb"
    untidy.write_text(_untidy(tidy.read_text(encoding="utf-8"), 1), encoding="utf-8")
    raw = untidy.read_bytes()
    result = runner.invoke(app, ["fmt", "--check", str(tidy), str(untidy)])
    assert result.exit_code == 1
    assert result.stdout == f"{untidy}: not formatted\n"
    assert untidy.read_bytes() == raw
    assert runner.invoke(app, ["fmt", "--check", str(tidy)]).exit_code == 0


def test_diff_shows_the_change_without_making_it(tmp_path):
    path = tmp_path / "t.sfb"
    path.write_text('topology   "T" {\n}\n', encoding="utf-8")
    result = runner.invoke(app, ["fmt", "--diff", str(path)])
    assert result.exit_code == 1
    assert '-topology   "T" {\n+topology "T" {\n' in result.stdout
    assert path.read_text(encoding="utf-8") == 'topology   "T" {\n}\n'


def test_a_file_that_does_not_parse_is_left_untouched_and_its_errors_shown(tmp_path):
    path = tmp_path / "broken.sfb"
    path.write_text('topology "T" {\n  site {\n', encoding="utf-8")
    raw = path.read_bytes()
    result = runner.invoke(app, ["fmt", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2:8: error SFB101" in result.stderr
    assert path.read_bytes() == raw


def test_line_ends_byte_order_mark_and_permissions_are_kept(tmp_path):
    path = tmp_path / "windows.sfb"
    path.write_bytes(b'\xef\xbb\xbftopology  "T" {\r\n  site "S" {\r\n  }\r\n}\r\n')
    os.chmod(path, 0o640)
    assert runner.invoke(app, ["fmt", str(path)]).exit_code == 0
    assert path.read_bytes() == b'\xef\xbb\xbftopology "T" {\r\n    site "S" {\r\n    }\r\n}\r\n'
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_link_stays_a_link_and_its_target_is_formatted(tmp_path):
    target = tmp_path / "real.sfb"
    target.write_text('topology  "T" {\n}\n', encoding="utf-8")
    link = tmp_path / "link.sfb"
    link.symlink_to(target)
    assert runner.invoke(app, ["fmt", str(link)]).exit_code == 0
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == 'topology "T" {\n}\n'


def test_an_unchanged_file_is_not_rewritten(tmp_path):
    path = tmp_path / "t.sfb"
    path.write_text('topology "T" {\n}\n', encoding="utf-8")
    os.utime(path, (1, 1))
    assert runner.invoke(app, ["fmt", str(path)]).exit_code == 0
    assert os.stat(path).st_mtime == 1


def test_standard_input_to_standard_output():
    result = runner.invoke(app, ["fmt", "-"], input='topology  "T"  {\n}\n')
    assert result.exit_code == 0
    assert result.stdout == 'topology "T" {\n}\n'


@pytest.mark.parametrize("document", sorted(p.name for p in SHARED.joinpath("topologies").glob("*.*ml")))
def test_an_imported_topology_is_already_in_canonical_form(document):
    from sfbgen.importer import ImportOptions, import_file

    result = import_file(SHARED / "topologies" / document, ImportOptions())
    assert result.text is not None
    assert format_text(result.text)[0] == result.text


def _utf16(text: str, encoding: str = "utf-16-le") -> bytes:
    mark = b"\xff\xfe" if encoding == "utf-16-le" else b"\xfe\xff"
    return mark + text.replace("\n", "\r\n").encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_fmt_round_trips_utf16_with_crlf_byte_for_byte(tmp_path, encoding):
    """Issue 21: a topology saved by Notepad ("Unicode") or Windows PowerShell 5.1's '>' is UTF-16
    with a byte-order mark and CRLF; fmt keeps all three, and a formatted file is left byte for byte."""
    from sfbgen.formatting_files import FormatOutcome, format_file

    canonical = (ROOT / "samples" / "standard-edition.sfb").read_text(encoding="utf-8")
    tidy = tmp_path / "tidy.sfb"
    tidy.write_bytes(_utf16(canonical, encoding))
    assert format_file(tidy, write=False).state is FormatOutcome.UNCHANGED  # --check passes
    untidy = tmp_path / "untidy.sfb"
    untidy.write_bytes(_utf16(canonical.replace("    sip_domain", "  sip_domain"), encoding))
    checked = format_file(untidy, write=False)
    assert checked.state is FormatOutcome.CHANGED and "+    sip_domain northwind.com primary" in checked.diff
    assert format_file(untidy, write=True).state is FormatOutcome.CHANGED
    assert untidy.read_bytes() == tidy.read_bytes()
