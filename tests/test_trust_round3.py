"""Trust, round three (issue 20): what verify requires — names Windows keeps apart, no produced files in
a fresh bundle, a pinned signer, revocation, freshness, one canonical signature, strong keys, a BOM —
and that every malformed input is refused with a reason, never an internal error.

Each attack itself is in bench/attacks.py (ROUND_THREE) and runs in tests/test_trust.py; these tests
check the other side: what must still pass, what is said, and the command line's options."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from typer.testing import CliRunner

from bench import attacks
from bench.attacks import ROUND_THREE, certificate, make_kit, revocation_list
from sfbgen import manifest as mf
from sfbgen.authenticode import SigningKey, signature_block, split_signature, verify_script
from sfbgen.cli import app
from sfbgen.compiler import compile_file
from sfbgen.diagnostics import UsageError
from sfbgen.verify import Trust, verify_bundle, verify_file
from tests.conftest import SAMPLES

CONTOSO = SAMPLES / "contoso.sfb"


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return make_kit(tmp_path_factory.mktemp("round3"))


@pytest.fixture()
def root_pem(kit, tmp_path):
    path = tmp_path / "root.pem"
    path.write_bytes(kit.root.public_bytes(serialization.Encoding.PEM))
    return path


def _cli(*arguments):
    result = CliRunner().invoke(app, [str(a) for a in arguments])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def _listing(bundle, relative=mf.ROOT_NAME) -> mf.Manifest:
    return mf.parse(split_signature((bundle / relative).read_bytes())[0])


def test_round_three_attacks_are_counted():
    assert set(ROUND_THREE) <= set(attacks.ATTACKS) and len(ROUND_THREE) >= 39


# ---------------------------------------------------------------------------------------------------
# Names


def test_a_collision_is_refused_before_anything_else_naming_both(kit, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(kit.bundle, bundle)
    (bundle / "fe01.contoso.com" / "test-bundle.ps1").write_bytes(b"evil")
    (bundle / mf.ROOT_NAME).write_bytes(b"not even a manifest")  # not read: the names are refused first
    reports = verify_bundle(bundle, kit.trust())
    assert [r.path for r in reports] == ["fe01.contoso.com/test-bundle.ps1"]
    assert "fe01.contoso.com/Test-Bundle.ps1" in reports[0].problems[0] and "case" in reports[0].problems[0]


def test_a_look_alike_letter_is_named(kit, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(kit.bundle, bundle)
    (bundle / "RUNBOO\u212a.md").write_bytes(b"x")
    (report,) = verify_bundle(bundle, kit.trust())
    assert "U+212A KELVIN SIGN" in report.problems[0] and "RUNBOOK.md" in report.problems[0]


@pytest.mark.parametrize("path", ["NUL.md", "a/con.ps1", "COM\u00b9.txt", "lpt9", "RUNBOOK.md.", "a/b./c", "CONOUT$.md"])
def test_manifest_paths_windows_cannot_keep_are_refused(path):
    assert mf.path_problem(path)


def test_the_manifest_may_not_list_one_file_twice_under_windows_rules(kit):
    text = split_signature((kit.bundle / mf.ROOT_NAME).read_bytes())[0]
    entry = next(line for line in text.splitlines() if "Path = 'RUNBOOK.md'" in line)
    with pytest.raises(mf.ManifestError, match="listed twice"):
        mf.parse(text.replace(entry, entry + "\r\n" + entry.replace("RUNBOOK.md", "runbook.md"), 1))


# ---------------------------------------------------------------------------------------------------
# Files the servers produce


def test_produced_files_verify_only_as_deployed_and_only_by_their_exact_names(kit, tmp_path):
    bundle = tmp_path / "used"
    shutil.copytree(kit.bundle, bundle)
    produced = _listing(bundle).produced_on_server
    request = next(name for name in produced if name.endswith(".req"))
    (bundle / request).parent.mkdir(parents=True, exist_ok=True)
    (bundle / request).write_bytes(b"csr")
    fresh = {r.path: r for r in verify_bundle(bundle, kit.trust())}
    assert not fresh[request].ok and "--deployed" in fresh[request].problems[0]
    deployed = {r.path: r for r in verify_bundle(bundle, kit.trust(deployed=True))}
    assert all(r.ok for r in deployed.values()) and "produced on the server" in deployed[request].note
    (bundle / (request + ".txt")).write_bytes(b"x")  # not a name the manifest allows
    assert not {r.path: r for r in verify_bundle(bundle, kit.trust(deployed=True))}[request + ".txt"].ok


# ---------------------------------------------------------------------------------------------------
# The signer must be pinned


def test_cli_without_signer_names_the_thumbprint_and_subject_to_pin(kit, root_pem):
    result = _cli("verify", kit.bundle, "--trust", root_pem)
    assert result.exit_code == 1
    assert kit.signer.thumbprint in result.stdout and "CN=sfbgen attack signer" in result.stdout
    assert f"--signer {kit.signer.thumbprint}" in result.stdout
    assert _cli("verify", kit.bundle, "--trust", root_pem, "--signer", kit.signer.thumbprint).exit_code == 0


def test_a_trust_file_pins_the_signer_and_the_roots(kit, root_pem, tmp_path):
    root_print = kit.root.fingerprint(hashes.SHA1()).hex().upper()
    pins = tmp_path / "trust.json"
    pins.write_text(json.dumps({"signer": kit.signer.thumbprint, "roots": [root_print]}))
    assert _cli("verify", kit.bundle, "--trust", root_pem, "--trust-file", pins).exit_code == 0
    # Another root given with --trust than the one pinned: a usage error.
    pins.write_text(json.dumps({"signer": kit.signer.thumbprint, "roots": ["AB" * 20]}))
    refused = _cli("verify", kit.bundle, "--trust", root_pem, "--trust-file", pins)
    assert refused.exit_code == 2 and "not one of the roots" in refused.stderr
    # A --signer that contradicts the trust file.
    pins.write_text(json.dumps({"signer": kit.signer.thumbprint}))
    assert _cli("verify", kit.bundle, "--trust", root_pem, "--trust-file", pins, "--signer", "0" * 40).exit_code == 2
    # The trust file's signer is another certificate.
    pins.write_text(json.dumps({"signer": "0" * 40}))
    assert _cli("verify", kit.bundle, "--trust", root_pem, "--trust-file", pins).exit_code == 1


@pytest.mark.parametrize("content", [b"", b"[]", b'{"signer": 5}', b'{"signer": "zz"}', b'{"roots": []}',
                                     b'{"signer": "' + b"A" * 40 + b'", "extra": 1}', b"\xff\xfe{", b'{"signer": "' + b"A" * 40 + b'", "not_older_than": true}'])
def test_a_malformed_trust_file_is_a_usage_error(kit, root_pem, tmp_path, content):
    pins = tmp_path / "trust.json"
    pins.write_bytes(content)
    result = _cli("verify", kit.bundle, "--trust", root_pem, "--trust-file", pins)
    assert result.exit_code == 2 and result.stderr.startswith("sfbgen: error: the trust file")


# ---------------------------------------------------------------------------------------------------
# Revocation


@pytest.fixture(scope="module")
def revocable(kit):
    """A bundle signed by a certificate the kit's root issued."""
    key = attacks._key()
    leaf = certificate("revocable signer", key, issuer=kit.root, issuer_key=kit.root_key)
    signer = SigningKey(leaf, key, [])
    out = kit.work / "revocable"
    compile_file(SAMPLES / "standard-edition.sfb", out, signer)
    return out, signer, key


def test_revocation_not_checked_is_reported(kit, revocable):
    out, signer, _ = revocable
    reports = verify_bundle(out, kit.trust(signer=signer.thumbprint))
    assert all(r.ok for r in reports)
    assert any("revocation of CN=revocable signer could not be checked" in w for w in reports[0].warnings)
    result = _cli("verify", out, "--trust", _pem(kit, out), "--signer", signer.thumbprint)
    assert result.exit_code == 0 and "warning: revocation of CN=revocable signer could not be checked" in result.stdout


def _pem(kit, folder):
    path = folder.parent / "root-for-cli.pem"
    path.write_bytes(kit.root.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_current_crl_that_does_not_list_the_signer_is_checked(kit, revocable):
    out, signer, _ = revocable
    crl = revocation_list(kit.root, kit.root_key, [12345])
    reports = verify_bundle(out, kit.trust(signer=signer.thumbprint, crls=[crl]))
    assert all(r.ok for r in reports) and reports[0].warnings == []


def test_an_expired_crl_does_not_count_as_checked(kit, revocable):
    out, signer, _ = revocable
    old = (x509.CertificateRevocationListBuilder().issuer_name(kit.root.subject)
           .last_update(dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
           .next_update(dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).sign(kit.root_key, hashes.SHA256()))
    reports = verify_bundle(out, kit.trust(signer=signer.thumbprint, crls=[old]))
    assert all(r.ok for r in reports) and "expired" in reports[0].warnings[0]


def test_a_crl_forged_under_the_roots_name_revokes_nothing_and_checks_nothing(kit, revocable):
    out, signer, _ = revocable
    impostor = attacks._key()
    forged = revocation_list(kit.root, impostor, [signer.certificate.serial_number])  # the root's name, another key
    reports = verify_bundle(out, kit.trust(signer=signer.thumbprint, crls=[forged]))
    assert all(r.ok for r in reports) and "could not be checked" in reports[0].warnings[0]


def test_cli_crl_option_refuses_a_revoked_signer(kit, revocable, tmp_path):
    out, signer, _ = revocable
    crl = tmp_path / "root.crl"
    crl.write_bytes(revocation_list(kit.root, kit.root_key, [signer.certificate.serial_number]).public_bytes(serialization.Encoding.PEM))
    result = _cli("verify", out, "--trust", _pem(kit, out), "--signer", signer.thumbprint, "--crl", crl)
    assert result.exit_code == 1 and "was revoked by CN=sfbgen attack root" in result.stdout
    crl.write_bytes(b"not a CRL")
    assert _cli("verify", out, "--trust", _pem(kit, out), "--signer", signer.thumbprint, "--crl", crl).exit_code == 2


def test_an_embedded_crl_of_another_issuer_is_not_canonical(kit):
    """A CRL carried in the signature must be one a CA of the signer's chain issued."""
    key = attacks._key()
    stranger = certificate("stranger CA", key, ca=True, eku=(), key_cert_sign=True)
    signer = SigningKey(kit.signer.certificate, kit.signer.private_key, [], crls=[revocation_list(stranger, key, [1])])
    signed = signer.sign(b"\xef\xbb\xbfexit 0\r\n")
    assert verify_script(signed, [kit.root]).ok  # in itself a valid signature
    verdict = verify_script(signed, [kit.root], canonical=True)
    assert not verdict.ok and "CRL that no CA of the signer's chain issued" in verdict.problems[0]


# ---------------------------------------------------------------------------------------------------
# Freshness


def test_the_serial_is_derived_and_is_in_manifests_only(tmp_path):
    source = tmp_path / "topo.sfb"
    source.write_bytes(CONTOSO.read_bytes())
    out = tmp_path / "out"
    first = compile_file(source, out)
    again = compile_file(source, out)
    assert first.serial == again.serial == 1 and first.files == again.files  # the same work: the same serial
    source.write_text(CONTOSO.read_text(encoding="utf-8").replace('site "Redmond"', 'site "Seattle"'), encoding="utf-8")
    changed = compile_file(source, out)
    assert changed.serial == 2
    manifests = [p for p in changed.files if p == mf.ROOT_NAME or p.endswith("/" + mf.SERVER_NAME)]
    assert {_listing(out, p).serial for p in manifests} == {2}
    # A script's bytes change only when its work changes: the serial is in no script.
    scripts = [p for p in changed.files if p.endswith(".ps1")]
    assert scripts and all(changed.files[p] == first.files[p] for p in scripts)


def test_a_given_serial_may_not_go_back(tmp_path):
    out = tmp_path / "out"
    assert compile_file(CONTOSO, out, serial=7).serial == 7
    assert compile_file(CONTOSO, out).serial == 7  # unchanged work keeps it
    with pytest.raises(UsageError, match="not newer"):
        compile_file(CONTOSO, out, serial=6)
    assert _listing(out).serial == 7
    other = tmp_path / "other.sfb"
    other.write_text(CONTOSO.read_text(encoding="utf-8").replace('site "Redmond"', 'site "Seattle"'), encoding="utf-8")
    with pytest.raises(UsageError, match="not newer"):
        compile_file(other, out, serial=7)  # other work under the same serial
    assert compile_file(other, out, serial=9).serial == 9
    with pytest.raises(UsageError):
        compile_file(other, tmp_path / "new", serial=0)


def test_freshness_options_pass_the_current_bundle(kit, root_pem):
    serial = _listing(kit.bundle).serial
    ok = _cli("verify", kit.bundle, "--trust", root_pem, "--signer", kit.signer.thumbprint,
              "--expect-topology", attacks.SAMPLE, "--not-older-than", serial)
    assert ok.exit_code == 0 and f"serial {serial}" in ok.stdout
    older = _cli("verify", kit.bundle, "--trust", root_pem, "--signer", kit.signer.thumbprint, "--not-older-than", serial + 1)
    assert older.exit_code == 1 and "older than" in older.stdout


def test_a_server_manifest_of_another_serial_is_reported():
    from sfbgen.verify import FileReport, _compare

    root = mf.Manifest("*", "t", "", [mf.Entry("s/a.ps1", "A" * 64, 1)], serial=3)
    server = mf.Manifest("s", "", "", [mf.Entry("a.ps1", "A" * 64, 1)], serial=2)
    report = FileReport("s/manifest.psd1")
    _compare(root, server, "s", report)
    assert report.problems == ["its compile serial is 2, not the bundle's 3: a server folder of another compile"]


@pytest.mark.parametrize("line", ["    Serial = 0", "    Serial = 01", "    Serial = -1", "    Serial = 1234567890123", "    Serial = '1'"])
def test_the_serial_is_read_strictly(kit, line):
    text = split_signature((kit.bundle / mf.ROOT_NAME).read_bytes())[0]
    assert "    Serial = 1\r\n" in text
    with pytest.raises(mf.ManifestError):
        mf.parse(text.replace("    Serial = 1\r\n", line + "\r\n", 1))


def test_a_manifest_of_format_2_is_read_for_compile_but_refused_by_verify(tmp_path):
    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    path = out / mf.ROOT_NAME
    text = path.read_bytes().decode("utf-8-sig").replace("sfbgen-manifest/3", "sfbgen-manifest/2").replace("    Serial = 1\r\n", "")
    path.write_bytes(("\ufeff" + text).encode("utf-8"))
    assert _listing(out).serial == 0
    (report,) = verify_bundle(out, Trust(allow_unsigned=True))
    assert "older sfbgen" in report.problems[0]
    assert compile_file(CONTOSO, out).serial == 1  # an older sfbgen's bundle is still replaced


# ---------------------------------------------------------------------------------------------------
# One canonical signature, strong keys, a BOM


def test_sfbgen_signatures_are_canonical(kit):
    data = (kit.bundle / mf.ROOT_NAME).read_bytes()
    verdict = verify_script(data, [kit.root], canonical=True, require_bom=True)
    assert verdict.ok, verdict.problems
    _, encoded = split_signature(data)
    assert data.decode("utf-8").endswith(signature_block(encoded))


def test_a_timestamped_signature_is_canonical():
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from bench.attacks import TimestampServer

    tsa = TimestampServer(dt.datetime.now(dt.UTC).replace(microsecond=0))
    try:
        key = attacks._key()
        root = certificate("root", key, ca=True, eku=(), key_cert_sign=True)
        leaf_key = attacks._key()
        leaf = certificate("stamped", leaf_key, issuer=root, issuer_key=key, eku=(ExtendedKeyUsageOID.CODE_SIGNING,))
        signed = SigningKey(leaf, leaf_key, [root], timestamp_url=tsa.url).sign(b"\xef\xbb\xbfexit 0\r\n")
    finally:
        tsa.close()
    verdict = verify_script(signed, [root], canonical=True, tsa_anchors=[tsa.cert])
    assert verdict.ok and verdict.timestamp is not None, verdict.problems


def test_signing_refuses_a_weak_key(tmp_path, kit):
    from sfbgen.signing import load_pem

    weak = attacks._weak_key(1024)
    cert = certificate("weak", weak, issuer=kit.root, issuer_key=kit.root_key)
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(UsageError, match="RSA-1024"):
        load_pem(tmp_path / "c.pem", tmp_path / "k.pem")


def test_signing_carries_only_the_signers_chain(kit):
    from sfbgen.signing import chain_of

    stranger_key = attacks._key()
    stranger = certificate("stranger", stranger_key, ca=True, eku=(), key_cert_sign=True)
    assert chain_of(kit.signer.certificate, [stranger, kit.root]) == [kit.root]


def test_an_unsigned_bundles_scripts_need_their_bom_too(tmp_path):
    out = tmp_path / "out"
    compile_file(CONTOSO, out)
    target = out / "fe01.contoso.com" / "Test-Bundle.ps1"
    target.write_bytes(target.read_bytes()[3:])
    attacks_listing = _listing(out)
    attacks_listing.files = [mf.Entry(e.path, hashlib.sha256((out / e.path).read_bytes()).hexdigest().upper(), (out / e.path).stat().st_size)
                             if e.path == "fe01.contoso.com/Test-Bundle.ps1" else e for e in attacks_listing.files]
    from sfbgen.render import to_windows_text

    (out / mf.ROOT_NAME).write_bytes(to_windows_text(mf.render(attacks_listing)))
    reports = {r.path: r for r in verify_bundle(out, Trust(allow_unsigned=True))}
    assert "byte-order mark" in reports["fe01.contoso.com/Test-Bundle.ps1"].problems[0]


# ---------------------------------------------------------------------------------------------------
# Malformed input: a refusal with a reason, never exit 70


def _manifest_edits(data: bytes) -> dict[str, bytes]:
    index = data.index(b"\r\n# SIG # Begin")
    return {
        "lf": data[:index] + data[index:].replace(b"\r\n", b"\n"),
        "trailing-space": data.replace(b"# SIG # End signature block\r\n", b"# SIG # End signature block \r\n"),
        "two-blocks": data + data[index + 2:],
        "not-base64": data.replace(b"# MII", b"# !II", 1),
        "not-utf8": data[:index] + b"\xff\xfe\xfd" + data[index:],
        "truncated": data[: index + 200] + b"\r\n# SIG # End signature block\r\n",
    }


@pytest.mark.parametrize("kind", ["lf", "trailing-space", "two-blocks", "not-base64", "not-utf8", "truncated"])
def test_a_malformed_signature_block_is_refused_with_a_reason(kit, tmp_path, root_pem, kind):
    bundle = tmp_path / "b"
    shutil.copytree(kit.bundle, bundle)
    path = bundle / mf.ROOT_NAME
    path.write_bytes(_manifest_edits(path.read_bytes())[kind])
    (report,) = verify_bundle(bundle, kit.trust())
    assert not report.ok and mf.ROOT_NAME in report.problems[0]
    result = _cli("verify", bundle, "--trust", root_pem, "--signer", kit.signer.thumbprint)
    assert result.exit_code == 1 and "FAILED" in result.stdout
    single = tmp_path / "alone.ps1"
    single.write_bytes(path.read_bytes())
    assert not verify_file(single, kit.trust()).ok


@pytest.mark.parametrize("name", ["a timestamp attribute that is an INTEGER", "a timestamp attribute nested 50,000 deep",
                                  "MANIFEST.psd1 with a second SignerInfo"])
def test_malformed_unsigned_attributes_are_refused_outside_canonical_mode_too(kit, name):
    """The generic check (no canonical form asked) reads them without crashing either."""
    attacks.ATTACKS[name](kit)  # builds the bundle
    folder = {"a timestamp attribute that is an INTEGER": "m-int", "a timestamp attribute nested 50,000 deep": "m-deep",
              "MANIFEST.psd1 with a second SignerInfo": "m-two"}[name]
    data = (kit.work / folder / mf.ROOT_NAME).read_bytes()
    verdict = verify_script(data, [kit.root])
    assert not verdict.ok and verdict.problems


def test_der_shape_is_checked_iteratively():
    from sfbgen.authenticode import _der_problem

    assert _der_problem(b"\x30\x03\x02\x01\x05") is None
    assert "after" in _der_problem(b"\x30\x03\x02\x01\x05\x00")
    assert "indefinite" in _der_problem(b"\x30\x80\x02\x01\x05\x00\x00")
    assert "shortest" in _der_problem(b"\x30\x81\x03\x02\x01\x05")
    assert "longer than" in _der_problem(b"\x30\x05\x02\x01")
    nested = b"\x05\x00"
    for _ in range(60):
        nested = b"\x30" + (bytes([len(nested)]) if len(nested) < 0x80 else b"\x81" + bytes([len(nested)])) + nested
    assert "nested more than" in _der_problem(nested)


def test_a_forged_summary_in_a_file_name_is_shown_escaped(kit, tmp_path, root_pem):
    bundle = tmp_path / "b"
    shutil.copytree(kit.bundle, bundle)
    (bundle / "x\r57 ok, 0 failed\x1b[2K.md").write_bytes(b"x")
    result = _cli("verify", bundle, "--trust", root_pem, "--signer", kit.signer.thumbprint)
    assert result.exit_code == 1 and "\r" not in result.stdout and "\x1b" not in result.stdout
    assert "x\\x0d57 ok, 0 failed\\x1b[2K.md" in result.stdout
    assert result.stdout.rstrip().endswith("1 failed")


def test_a_signature_base64_is_refused_when_rewrapped_even_at_64(kit, tmp_path):
    """Any layout but the signer's: here 64 characters a line, but with the last line split in two."""
    data = (kit.bundle / mf.ROOT_NAME).read_bytes()
    text, encoded = split_signature(data)
    lines = signature_block(encoded).split("\r\n")
    last = lines[-3]
    lines[-3:-2] = [last[:4], "# " + last[4:]] if len(last) > 6 else [last]
    rewrapped = (text + "\r\n" + "\r\n".join(lines)).encode("utf-8")
    assert base64.b64decode("".join(row[2:] for row in lines[1:-2])) == base64.b64decode(encoded)
    verdict = verify_script(rewrapped, [kit.root], canonical=True)
    assert not verdict.ok and "re-wrapped" in verdict.problems[0]


def test_compile_prints_the_serial_and_refuses_one_that_goes_back(tmp_path):
    out = tmp_path / "out"
    first = _cli("compile", CONTOSO, "--out", out, "--serial", 4)
    assert first.exit_code == 0 and "; serial 4" in first.stdout
    assert "; serial 4" in _cli("compile", CONTOSO, "--out", out).stdout
    back = _cli("compile", CONTOSO, "--out", out, "--serial", 3)
    assert back.exit_code == 2 and "not newer" in back.stderr
    assert _listing(out).serial == 4
