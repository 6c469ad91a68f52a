"""Bundles on disk: atomic replacement, refusal to touch what is not ours, signing and verification."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from sfbgen.bundle import MARKER, recover
from sfbgen.compiler import compile_file
from sfbgen.diagnostics import DiagnosticsError, UsageError
from sfbgen.verify import Trust, verify_bundle
from tests.conftest import SAMPLES, require_osslsigncode

CONTOSO = SAMPLES / "contoso.sfb"


def snapshot_tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_refuses_a_folder_it_did_not_create(tmp_path):
    out = tmp_path / "important"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError):
        compile_file(CONTOSO, out)
    assert snapshot_tree(out) == {"notes.txt": b"keep me"}


def test_refuses_output_that_holds_the_input(tmp_path):
    topology = tmp_path / "topo.sfb"
    shutil.copy(CONTOSO, topology)
    with pytest.raises(UsageError):
        compile_file(topology, tmp_path)
    assert topology.read_bytes() == CONTOSO.read_bytes()


def test_errors_leave_the_existing_bundle_untouched(tmp_path):
    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    before = snapshot_tree(out)
    broken = tmp_path / "broken.sfb"
    broken.write_text(CONTOSO.read_text().replace("product 2015", "product 2016"))
    with pytest.raises(DiagnosticsError):
        compile_file(broken, out)
    assert snapshot_tree(out) == before


def test_recompile_replaces_the_whole_bundle(tmp_path):
    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    smaller = tmp_path / "small.sfb"
    shutil.copy(SAMPLES / "standard-edition.sfb", smaller)
    compile_file(smaller, out)
    assert not (out / "fe01.contoso.com").exists()
    assert (out / "sfb01.northwind.com" / "1-Install-LocalConfigurationStore.ps1").exists()
    assert (out / MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".sfbgen-")] == []


def test_recover_restores_a_parked_bundle(tmp_path):
    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    before = snapshot_tree(out)
    parked = tmp_path / f".sfbgen-old-out-{os.getpid()}"
    os.rename(out, parked)  # as a run killed between its two renames leaves it
    recover(out)
    assert snapshot_tree(out) == before and not parked.exists()


def test_unsigned_bundle_verifies_by_manifest(tmp_path):
    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    reports = verify_bundle(out, Trust(allow_unsigned=True))
    assert reports and all(r.ok for r in reports), [r for r in reports if not r.ok]
    # Without --unsigned, an unsigned bundle is refused: nothing proves who made it.
    (refused,) = verify_bundle(out, Trust([]))
    assert not refused.ok and "not signed" in refused.problems[0]


@pytest.fixture()
def signed_bundle(tmp_path, signing_key):
    out = tmp_path / "signed"
    compile_file(CONTOSO, out, signing_key)
    return out


def test_signed_bundle_verifies(signed_bundle, signing_key):
    reports = verify_bundle(signed_bundle, Trust([signing_key.certificate], signer=signing_key.thumbprint))
    assert all(r.ok for r in reports), [r for r in reports if not r.ok]
    scripts = [p for p in signed_bundle.rglob("*.ps1")]
    for script in scripts[:5]:
        run = subprocess.run([require_osslsigncode(), "verify", "-CAfile", str(signing_key.pem), "-in", str(script)], capture_output=True)
        assert run.returncode == 0


@pytest.mark.parametrize("damage", ["flip", "missing", "extra", "manifest"])
def test_damaged_bundle_fails_verification(signed_bundle, signing_key, damage):
    target = signed_bundle / "fe02.contoso.com" / "2-Setup-Components.ps1"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[100] ^= 1
        target.write_bytes(bytes(data))
    elif damage == "missing":
        target.unlink()
    elif damage == "extra":
        (signed_bundle / "fe02.contoso.com" / "evil.ps1").write_text("Remove-Item C:\\ -Recurse")
    else:
        (signed_bundle / "MANIFEST.psd1").write_text("@{}")
    reports = verify_bundle(signed_bundle, Trust([signing_key.certificate], signer=signing_key.thumbprint))
    assert any(not r.ok for r in reports)


def test_signed_by_someone_else_fails(signed_bundle, signing_key):
    from sfbgen.authenticode import SigningKey
    from sfbgen.signing import make_codesign_certificate

    key, cert = make_codesign_certificate("intruder", key_size=2048)
    target = signed_bundle / "se01.contoso.com" / "4-Start-Services.ps1"
    original = target.read_bytes()
    unsigned = original[: original.index(b"# SIG # Begin")]
    target.write_bytes(SigningKey(cert, key).sign(unsigned))
    reports = verify_bundle(signed_bundle, Trust([signing_key.certificate, cert], signer=signing_key.thumbprint))
    assert any("se01.contoso.com/4-Start-Services.ps1" == r.path and not r.ok for r in reports)


def test_cli_signs_with_pfx_and_verifies(tmp_path):
    env = dict(os.environ, SFBGEN_PFX_PASSWORD="correct horse")
    pfx = tmp_path / "lab.pfx"
    cli = [sys.executable, "-m", "sfbgen"]
    subprocess.run(cli + ["codesign-cert", "--out", str(pfx)], env=env, check=True, capture_output=True)
    out = tmp_path / "out"
    run = subprocess.run(cli + ["compile", str(CONTOSO), "--out", str(out), "--sign-pfx", str(pfx)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "NOT SIGNED" not in run.stderr
    runbook = (out / "RUNBOOK.md").read_text()
    assert "stop validating when the signing certificate expires" in runbook
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    thumbprint = x509.load_der_x509_certificate(pfx.with_suffix(".cer").read_bytes()).fingerprint(hashes.SHA1()).hex().upper()
    ok = subprocess.run(cli + ["verify", str(out), "--trust", str(pfx.with_suffix(".cer")), "--signer", thumbprint], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    unpinned = subprocess.run(cli + ["verify", str(out), "--trust", str(pfx.with_suffix(".cer"))], capture_output=True, text=True)
    assert unpinned.returncode == 1 and f"--signer {thumbprint}" in unpinned.stdout  # refused, naming what to pin
    untrusted = subprocess.run(cli + ["verify", str(out)], capture_output=True, text=True)
    assert untrusted.returncode == 2 and "--trust" in untrusted.stderr
    wrong = subprocess.run(cli + ["compile", str(CONTOSO), "--out", str(out), "--sign-pfx", str(pfx)],
                           env=dict(env, SFBGEN_PFX_PASSWORD="wrong"), capture_output=True, text=True)
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr


def test_cli_signs_with_pem(tmp_path, signing_key):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "sfbgen", "compile", str(SAMPLES / "standard-edition.sfb"), "--out", str(out),
                          "--sign-cert", str(signing_key.pem), "--sign-key", str(signing_key.key_pem)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert all(r.ok for r in verify_bundle(out, Trust([signing_key.certificate], signer=signing_key.thumbprint)))


def test_a_file_sfbgen_did_not_write_stops_the_replacement(tmp_path):
    """Nothing is ever lost: a file the bundle's manifest does not account for (someone's notes, a
    log) makes compile refuse to replace the folder, naming the file."""
    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    (out / "fe01.contoso.com" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="notes.txt is not one of its files"):
        compile_file(CONTOSO, out)
    assert (out / "fe01.contoso.com" / "notes.txt").read_text() == "mine"


def test_a_forged_marker_does_not_make_a_folder_ours(tmp_path):
    """The attack: someone's folder with a planted .sfbgen-bundle marker. compile --out must not empty it."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.docx").write_bytes(b"data")
    for marker in (b"{}", b'{"generator": "sfbgen"}', b"anything"):
        (victim / MARKER).write_bytes(marker)
        with pytest.raises(UsageError, match="not a bundle sfbgen made"):
            compile_file(CONTOSO, victim)
        assert (victim / "precious.docx").read_bytes() == b"data"


def test_out_may_not_hold_the_signing_key(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    key = out / "codesign.pfx"
    key.write_bytes(b"key")
    with pytest.raises(UsageError, match="contains the input"):
        compile_file(CONTOSO, out, protected=(key,))
    assert key.read_bytes() == b"key"


# ---------------------------------------------------------------------------------------------------
# One bundle builder, its sinks chosen by the caller (issue 22, item 7)


def test_memory_and_disk_sinks_hold_the_same_bundle(tmp_path):
    """compile to disk, compile to memory, and both at once: the same files, the same bytes, the same order."""
    from sfbgen.compiler import iter_bundle

    out = tmp_path / "out"
    both = compile_file(CONTOSO, out)  # disk and memory (TeeSink)
    on_disk = compile_file(CONTOSO, tmp_path / "disk", keep_files=False)  # disk only
    in_memory = compile_file(CONTOSO, "unused", write=False)  # memory only
    counted = compile_file(CONTOSO, "unused", write=False, keep_files=False)
    assert both.files == snapshot_tree(out) == snapshot_tree(tmp_path / "disk") == in_memory.files
    assert list(both.files) == list(in_memory.files)  # the bundle's order, MANIFEST.psd1 last
    assert list(in_memory.files)[-1] == "MANIFEST.psd1"
    assert both.file_count == on_disk.file_count == in_memory.file_count == counted.file_count == len(in_memory.files)
    assert not on_disk.files and not counted.files
    assert not (tmp_path / "unused").exists()
    # The generator the in-memory tools use yields the same bundle.
    assert dict(iter_bundle(in_memory.plan, compile_file_meta(), None)) == in_memory.files


def compile_file_meta():
    from sfbgen.api import compile_path

    result = compile_path(CONTOSO)
    assert result.meta is not None
    return result.meta


def test_build_bundle_hands_every_file_to_the_callers_sink():
    from sfbgen.api import compile_path
    from sfbgen.bundle import CountingSink, MemorySink, TeeSink
    from sfbgen.compiler import build_bundle, iter_bundle

    result = compile_path(CONTOSO)
    assert result.plan is not None and result.meta is not None
    first, second = MemorySink(), MemorySink()
    count = build_bundle(result.plan, result.meta, None, TeeSink(first, second))
    assert first.files == second.files == dict(iter_bundle(result.plan, result.meta, None))
    assert count == len(first.files) == build_bundle(result.plan, result.meta, None, CountingSink())
    # A sink that only lives in this process is never handed files in a worker; a disk one may be.
    assert not TeeSink(first, CountingSink()).in_workers and TeeSink(CountingSink()).in_workers


def test_disk_sink_leaves_out_as_it_was_without_commit(tmp_path):
    from sfbgen.bundle import DiskSink

    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    before = snapshot_tree(out)
    with DiskSink(out, []) as disk:
        disk.add("x/y.txt", b"new")
    assert snapshot_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
