"""Loading the organisation's code-signing key, and making a self-signed one for a lab.

Passwords come from the environment (SFBGEN_PFX_PASSWORD) or a terminal prompt, never from the
command line, and are never written anywhere.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .authenticode import SigningKey, key_problem
from .diagnostics import UsageError

PASSWORD_VARIABLE = "SFBGEN_PFX_PASSWORD"


def _password(prompt: str, ask) -> bytes | None:
    value = os.environ.get(PASSWORD_VARIABLE)
    if value is None and ask is not None:
        value = ask(prompt)
    return value.encode("utf-8") if value else None


def load_pfx(path: Path, ask=None, timestamp_url: str | None = None) -> SigningKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, _password(f"Password of {path}: ", ask))
    except ValueError as exc:
        raise UsageError(f"cannot open {path}: wrong password ({PASSWORD_VARIABLE}) or not a PKCS#12 file") from exc
    if key is None or cert is None:
        raise UsageError(f"{path} holds no private key and certificate")
    return _checked(cert, key, chain_of(cert, list(extra or [])), timestamp_url)


def load_pem(cert_path: Path, key_path: Path, ask=None, timestamp_url: str | None = None) -> SigningKey:
    try:
        certs = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
        key_data = Path(key_path).read_bytes()
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the signing certificate or key: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_data, None)
    except TypeError:  # the key is encrypted
        try:
            key = serialization.load_pem_private_key(key_data, _password(f"Password of {key_path}: ", ask))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"cannot decrypt {key_path}: wrong password ({PASSWORD_VARIABLE})") from exc
    except ValueError as exc:
        raise UsageError(f"{key_path} is not a PEM private key") from exc
    return _checked(certs[0], key, chain_of(certs[0], certs[1:]), timestamp_url)


def chain_of(cert: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """The issuers of `cert` among `others`, in order up to a self-signed root: the certificates a
    signature carries. Anything else a PKCS#12 or PEM file holds is left out, since `sfbgen verify`
    refuses a signature that carries certificates beyond its signer's chain."""
    chain: list[x509.Certificate] = []
    current = cert
    while current.issuer != current.subject and len(chain) < 8:
        issuer = next((c for c in others if c not in chain and c.subject == current.issuer and _issued(current, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return chain


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _checked(cert: x509.Certificate, private_key: PrivateKeyTypes, chain: list[x509.Certificate], timestamp_url: str | None) -> SigningKey:
    """The SigningKey of a certificate and key read from a file, once they are fit to sign with."""
    subject = cert.subject.rfc4514_string()  # SigningKey.subject
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
            raise UsageError(f"{subject} is not a code-signing certificate (no codeSigning extended key usage)")
    except x509.ExtensionNotFound:
        pass
    weak = key_problem(cert, f"the signing certificate {subject}")
    if weak:
        raise UsageError(weak)
    public = private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if public != cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise UsageError("the private key does not belong to the signing certificate")
    # key_problem passed only an RSA or ECDSA certificate, and the key is that certificate's.
    assert isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    key = SigningKey(cert, private_key, chain, timestamp_url)
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise UsageError(f"the signing certificate {key.subject} is not valid now (valid until {key.not_after})")
    return key


def make_codesign_certificate(common_name: str = "sfbgen lab code signing", key_size: int = 3072, days: int = 365):
    """A self-signed code-signing certificate and its key, for a lab."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        # Not a CA: the lab certificate signs scripts and nothing else. Trusted as its own root, it
        # cannot issue a certificate that would be trusted too.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_new_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` through a private temporary file in the same folder (mkstemp: O_EXCL,
    a name no one could prepare), then rename it into place: a link or file planted at the temporary
    name cannot receive the key, and a link at `path` is replaced, never written through."""
    import tempfile

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(handle, mode) if hasattr(os, "fchmod") else None
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_pfx(path: Path, key, cert, password: bytes) -> None:
    data = pkcs12.serialize_key_and_certificates(
        b"sfbgen", key, cert, None, serialization.BestAvailableEncryption(password)
    )
    write_new_file(path, data, 0o600)
