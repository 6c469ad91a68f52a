"""Bad input of every kind becomes a diagnostic and an exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sfbgen import check_file
from sfbgen.source import MAX_SOURCE_BYTES
from tests.conftest import SAMPLES


def codes(path) -> list[str]:
    return [d.code for d in check_file(path).diagnostics]


@pytest.mark.parametrize(
    "content,code",
    [
        (b"", "SFB005"),
        (b"   \n\t\n", "SFB005"),
        (b"\x00\x01\x02binary\xff", "SFB003"),
        ("topology".encode("utf-16-le"), "SFB003"),  # UTF-16 without its byte-order mark
        (b'topology "caf\xe9" {}', "SFB002"),
        (b"{" * 10_000, "SFB101"),
        (b"}" * 10_000, "SFB101"),
        (b'topology "x" {' + b" site \"s\" {" * 5000, "SFB101"),
        (b"topology " + b"a" * 200_000, "SFB101"),
        (b'topology "x"', "SFB103"),
    ],
    ids=["empty", "blank", "binary", "utf16-without-bom", "latin1", "open-braces", "close-braces", "nested-sites", "long-line", "truncated"],
)
def test_bad_content(tmp_path, content, code):
    path = tmp_path / "topo.sfb"
    path.write_bytes(content)
    assert code in codes(path)


def test_invalid_utf8_is_located(tmp_path):
    path = tmp_path / "topo.sfb"
    path.write_bytes(b'topology "x" {\n    media "caf\xe9"\n}')
    (diag,) = check_file(path).diagnostics
    assert (diag.code, diag.span.line, diag.span.column) == ("SFB002", 2, 15)


def test_file_too_large(tmp_path):
    path = tmp_path / "big.sfb"
    with path.open("wb") as handle:
        handle.truncate(MAX_SOURCE_BYTES + 1)
    assert codes(path) == ["SFB004"]


def test_fifty_megabytes_is_refused_quickly(tmp_path):
    path = tmp_path / "huge.sfb"
    path.write_bytes(b"# padding\n" * (5 * 1024 * 1024))
    assert codes(path) == ["SFB004"]


def test_missing_file_and_directory(tmp_path):
    assert codes(tmp_path / "nope.sfb") == ["SFB001"]
    assert codes(tmp_path) == ["SFB001"]


def test_bom_and_crlf_are_fine(tmp_path):
    text = (SAMPLES / "contoso.sfb").read_text(encoding="utf-8")
    path = tmp_path / "crlf.sfb"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    result = check_file(path)
    # The same diagnostics as the file itself gives (tests/test_samples.py), at the same places.
    plain = check_file(SAMPLES / "contoso.sfb")
    assert result.ok and [(d.code, d.span) for d in result.diagnostics] == [(d.code, d.span) for d in plain.diagnostics]


def test_cli_never_prints_a_traceback(tmp_path):
    cases = [b"", b"\x00\xff", b"{" * 10_000, b'topology "x" { product 2016 }']
    for index, content in enumerate(cases):
        path = tmp_path / f"case{index}.sfb"
        path.write_bytes(content)
        run = subprocess.run([sys.executable, "-m", "sfbgen", "check", str(path)], capture_output=True, text=True)
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr and "error SFB" in run.stderr


@pytest.mark.parametrize("encoding,bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_a_bom_reads_like_utf8(tmp_path, encoding, bom):
    """Notepad's "Unicode" and Windows PowerShell 5.1's '>' and Out-File write UTF-16 with a BOM."""
    text = (SAMPLES / "standard-edition.sfb").read_text(encoding="utf-8").replace("\n", "\r\n")
    path = tmp_path / "topo.sfb"
    path.write_bytes(bom + text.encode(encoding))
    result = check_file(path)
    plain = check_file(SAMPLES / "standard-edition.sfb")
    assert result.ok and result.topology.name.value == plain.topology.name.value
