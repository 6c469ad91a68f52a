"""RFC 3161 timestamps: signing against a timestamp server on loopback, and signatures outliving the certificate."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sfbgen.authenticode import SigningKey, verify_script

SCRIPT = "\ufeffWrite-Host 'stamped'\r\n".encode("utf-8")
GEN_TIME = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


def _certificate(name: str, key, usage, not_before, not_after, issuer=None, issuer_key=None):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=usage == ExtendedKeyUsageOID.TIME_STAMPING)
    )
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def tsa():
    from bench.attacks import TimestampServer

    server = TimestampServer(GEN_TIME)
    yield server
    server.close()


@pytest.fixture(scope="module")
def short_lived_key():
    """A code-signing certificate valid for the first half of 2026 only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate("sfbgen short-lived signer", key, ExtendedKeyUsageOID.CODE_SIGNING,
                        dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 7, 1, tzinfo=dt.UTC))
    return key, cert


def test_timestamped_signature_outlives_the_certificate(tsa, short_lived_key):
    key, cert = short_lived_key
    stamped = SigningKey(cert, key, timestamp_url=tsa.url).sign(SCRIPT)
    plain = SigningKey(cert, key).sign(SCRIPT)
    assert tsa.requests >= 1
    later = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)  # after the certificate expired
    verdict = verify_script(stamped, [cert], now=later, tsa_anchors=[tsa.cert])
    assert verdict.ok, verdict.problems
    assert verdict.timestamp == GEN_TIME
    expired = verify_script(plain, [cert], now=later, tsa_anchors=[tsa.cert])
    assert not expired.ok and "not valid at" in expired.problems[0]


def test_a_timestamp_from_an_authority_nobody_trusts_revives_nothing(tsa, short_lived_key):
    """The attack: a self-made "TSA" stamps an expired signer's signature. Unless the user trusts that
    authority for timestamping (--trust-tsa), the signature is judged now: expired."""
    key, cert = short_lived_key
    stamped = SigningKey(cert, key, timestamp_url=tsa.url).sign(SCRIPT)
    later = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    for trusted_tsa in ([], [cert]):  # no TSA anchor; an anchor that is not a timestamping authority
        verdict = verify_script(stamped, [cert], now=later, tsa_anchors=trusted_tsa)
        assert not verdict.ok and verdict.timestamp is None
        assert "timestamp is not trusted" in verdict.notes[0]


def test_timestamp_for_another_signature_is_refused(tsa, short_lived_key):
    key, cert = short_lived_key
    stamped = SigningKey(cert, key, timestamp_url=tsa.url).sign(SCRIPT)
    other = SigningKey(cert, key).sign(SCRIPT.replace(b"stamped", b"changed"))
    # Graft the timestamped signature block onto another script: the hash check must fail.
    body = other[: other.index(b"# SIG # Begin")]
    grafted = body + stamped[stamped.index(b"# SIG # Begin"):]
    assert not verify_script(grafted, [cert], now=GEN_TIME).ok


def test_unreachable_timestamp_server_is_a_clear_error(short_lived_key):
    from sfbgen.authenticode import AuthenticodeError

    key, cert = short_lived_key
    with pytest.raises(AuthenticodeError, match="did not answer"):
        SigningKey(cert, key, timestamp_url="http://127.0.0.1:9/").sign(SCRIPT)
