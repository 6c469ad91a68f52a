"""Authenticode: our signatures pass osslsigncode; our verifier agrees with it and with Windows' own samples."""

from __future__ import annotations

import base64
import subprocess

import pytest

from sfbgen.authenticode import AuthenticodeError, certificates_in_signature, verify_script
from tests.conftest import require_osslsigncode, shared_path

SCRIPT = "\ufeffWrite-Host 'Grüße, ‘quoted’ — ünïcödé'\r\nexit 0\r\n".encode("utf-8")


def osslsigncode_verify(path, ca) -> subprocess.CompletedProcess:
    return subprocess.run([require_osslsigncode(), "verify", "-CAfile", str(ca), "-in", str(path)], capture_output=True, text=True)


def test_signed_script_passes_osslsigncode(tmp_path, signing_key):
    path = tmp_path / "a.ps1"
    path.write_bytes(signing_key.sign(SCRIPT))
    run = osslsigncode_verify(path, signing_key.pem)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Signature verification: ok" in run.stdout
    assert verify_script(path.read_bytes(), [signing_key.certificate]).ok


def test_every_compiled_script_passes_osslsigncode(tmp_path, compiled, signing_key):
    files = compiled["contoso"].files
    names = [n for n in files if n.endswith(".ps1")]
    for name in names:
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(signing_key.sign(files[name]))
        run = osslsigncode_verify(path, signing_key.pem)
        assert run.returncode == 0, f"{name}: {run.stdout}{run.stderr}"


def test_signing_is_deterministic(signing_key):
    assert signing_key.sign(SCRIPT) == signing_key.sign(SCRIPT)


def _tampered(signed: bytes) -> dict[str, bytes]:
    body_end = signed.index(b"# SIG # Begin")
    sig_line = signed.index(b"# ", body_end + 40) + 10
    flipped_sig = bytearray(signed)
    flipped_sig[sig_line] = ord("A") if flipped_sig[sig_line] != ord("A") else ord("B")
    # The last byte of the DER is the RSA signature's (the SignerInfo comes last, without unsigned attributes).
    lines = signed[body_end:].decode("ascii").split("\r\n")
    der = bytearray(base64.b64decode("".join(line[2:] for line in lines[1:-2])))
    der[-1] ^= 0x01
    encoded = base64.b64encode(bytes(der)).decode("ascii")
    resigned = signed[:body_end] + ("\r\n".join([lines[0]] + ["# " + encoded[i:i + 64] for i in range(0, len(encoded), 64)] + lines[-2:])).encode("ascii")
    return {
        "altered-rsa-signature": resigned,
        "flip-one-byte": signed.replace(b"Write-Host", b"Write-Hosu", 1),
        "line-ending": signed.replace(b"\r\nexit", b"\nexit", 1),
        "no-bom": signed[3:],
        "altered-signature": bytes(flipped_sig),
    }


@pytest.mark.parametrize("kind", ["flip-one-byte", "line-ending", "no-bom", "altered-signature", "altered-rsa-signature"])
def test_tampering_fails_both_verifiers(tmp_path, signing_key, kind):
    bad = _tampered(signing_key.sign(SCRIPT))[kind]
    path = tmp_path / f"{kind}.ps1"
    path.write_bytes(bad)
    assert osslsigncode_verify(path, signing_key.pem).returncode != 0
    assert not verify_script(bad, [signing_key.certificate]).ok


def test_untrusted_signer_is_reported(signing_key):
    verdict = verify_script(signing_key.sign(SCRIPT), [])
    assert not verdict.ok and "trusted root" in verdict.problems[0]


def test_refuses_text_with_a_signature_marker(signing_key):
    with pytest.raises(AuthenticodeError):
        signing_key.sign(b"\xef\xbb\xbf'# SIG # Begin signature block'\r\n")
    with pytest.raises(AuthenticodeError):
        signing_key.sign(signing_key.sign(SCRIPT))


def test_accepts_osslsigncode_signatures(tmp_path, signing_key):
    source = tmp_path / "in.ps1"
    source.write_bytes(SCRIPT)
    out = tmp_path / "out.ps1"
    subprocess.run([require_osslsigncode(), "sign", "-certs", str(signing_key.pem), "-key", str(signing_key.key_pem),
                    "-h", "sha256", "-in", str(source), "-out", str(out)], check=True, capture_output=True)
    verdict = verify_script(out.read_bytes(), [signing_key.certificate])
    assert verdict.ok, verdict.problems
    tampered = out.read_bytes().replace(b"exit 0", b"exit 1")
    assert not verify_script(tampered, [signing_key.certificate]).ok


SAMPLES = {
    "oa-authenticode-timestamp.ps1": ("pkcs7-v1", True),
    "oa-expired-no-timestamp.ps1": ("signedcms-v3", False),
    "oa-expired-timestamp.ps1": ("signedcms-v3", True),
}


def _sample(name: str):
    """A Windows-signed sample, its signer (the self-signed CN=PowerShell) and the roots of the
    timestamp authority that stamped it (the anchors a user would trust for timestamping)."""
    from sfbgen.authenticode import _AuthenticodeContentInfo, _load_certificates, split_signature

    data = shared_path("authenticode-samples", name).read_bytes()
    anchors = [c for c in certificates_in_signature(data) if c.subject.rfc4514_string() == "CN=PowerShell"]
    signed_data = _AuthenticodeContentInfo.load(base64.b64decode(split_signature(data)[1]))["content"]
    pool = _load_certificates(signed_data)
    for attr in signed_data["signer_infos"][0]["unsigned_attrs"] or []:
        if attr["type"].dotted == "1.3.6.1.4.1.311.3.3.1":
            from asn1crypto import cms

            pool += _load_certificates(cms.ContentInfo.load(attr["values"][0].dump())["content"])
    tsa_roots = [c for c in pool if c.subject.rfc4514_string().startswith("CN=DigiCert Trusted Root G4")
                 or (c.issuer == c.subject and c.subject.rfc4514_string() != "CN=PowerShell")]
    return data, anchors, tsa_roots


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_windows_signed_samples(name):
    data, anchors, tsa_roots = _sample(name)
    form, valid = SAMPLES[name]
    verdict = verify_script(data, anchors, tsa_anchors=tsa_roots)
    assert verdict.form == form
    assert verdict.ok is valid, verdict.problems
    if not valid:
        assert any("not valid at" in p for p in verdict.problems)  # expired, and no timestamp to save it
    tampered = data.replace(b"Write-Host test", b"Write-Host tesT")
    assert tampered != data
    assert not verify_script(tampered, anchors, tsa_anchors=tsa_roots).ok


@pytest.mark.parametrize("name", ["oa-authenticode-timestamp.ps1", "oa-expired-timestamp.ps1"])
def test_a_timestamp_counts_only_from_a_trusted_authority(name):
    """The certificates expired in 2023: without trusting the timestamp authority, the signature is
    judged now, and is invalid (Windows trusts a timestamp only from a trusted TSA)."""
    data, anchors, _ = _sample(name)
    verdict = verify_script(data, anchors)
    assert not verdict.ok and verdict.timestamp is None
    assert any("timestamp is not trusted" in note for note in verdict.notes)


def test_timestamp_extends_validity():
    """The timestamped sample validates although its certificate expired; its timestamp is read."""
    data, anchors, tsa_roots = _sample("oa-expired-timestamp.ps1")
    verdict = verify_script(data, anchors, tsa_anchors=tsa_roots)
    assert verdict.timestamp is not None
    assert anchors[0].not_valid_before_utc <= verdict.timestamp <= anchors[0].not_valid_after_utc


def test_signature_block_format(signing_key):
    signed = signing_key.sign(SCRIPT)
    block = signed[len(SCRIPT):].decode("ascii")
    lines = block.split("\r\n")
    assert lines[0] == "# SIG # Begin signature block" and lines[-2] == "# SIG # End signature block" and lines[-1] == ""
    body = [line[2:] for line in lines[1:-2]]
    assert all(len(chunk) == 64 for chunk in body[:-1]) and 0 < len(body[-1]) <= 64
    base64.b64decode("".join(body), validate=True)


def test_fast_path_equals_the_full_build(signing_key):
    """Signing fills a DER template built once per key; it must equal building the structure each time."""
    from sfbgen.authenticode import script_digest, split_signature

    signed = signing_key.sign(SCRIPT)
    text, encoded = split_signature(signed)
    full = signing_key._build(script_digest(text), signing_key._sign_bytes)
    assert base64.b64decode(encoded) == full


def test_nothing_may_follow_the_signature_block(signing_key):
    """Bytes after the end line would run without being signed."""
    signed = signing_key.sign(SCRIPT)
    for tail in (b"Remove-Item C:\\ -Recurse\r\n", b"# just a comment\r\n", b"x"):
        verdict = verify_script(signed + tail, [signing_key.certificate])
        assert not verdict.ok and "after the end of the signature block" in verdict.problems[0]
    assert verify_script(signed, [signing_key.certificate]).ok


def test_the_first_signature_marker_starts_the_block(signing_key):
    """A second block appended after a valid one is not read instead of the first (osslsigncode cuts at the first)."""
    signed = signing_key.sign(SCRIPT)
    doubled = signed + signed[signed.index(b"# SIG # Begin"):]
    assert not verify_script(doubled, [signing_key.certificate]).ok


def test_a_bom_is_required_where_asked(signing_key):
    without = signing_key.sign(SCRIPT[3:])  # SCRIPT starts with the UTF-8 byte-order mark
    assert verify_script(without, [signing_key.certificate]).ok  # a valid signature, in itself
    verdict = verify_script(without, [signing_key.certificate], require_bom=True)
    assert not verdict.ok and "byte-order mark" in verdict.problems[0]
