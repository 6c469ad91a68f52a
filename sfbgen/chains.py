"""Certificate paths: does a signer's certificate chain to a root the user trusts, for a purpose?

Path building and RFC 5280 validation are pyca/cryptography's (`cryptography.x509.verification`,
Rust, maintained with the library sfbgen already signs with) rather than hand-written checks: it
requires CA:TRUE and keyCertSign on every issuer, honours path length constraints and validity at the
time asked, refuses weak signature algorithms, and bounds the chain depth. What Windows adds for code
signing is expressed as its extension policies:

- the end-entity certificate must carry the purpose's extended key usage (codeSigning, or
  timeStamping for a timestamp authority) and must not be a CA;
- an issuer that lists extended key usages must list the purpose (or anyExtendedKeyUsage): Windows
  nests EKUs down the chain, so a TLS-only CA cannot vouch for a code-signing certificate.

A self-signed end-entity certificate given as the trust anchor (a lab certificate) verifies against itself.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x448, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID

CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING
TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")
MAX_DEPTH = 8


def _policies(purpose: x509.ObjectIdentifier):
    from cryptography.x509.verification import Criticality, ExtensionPolicy

    name = "timeStamping" if purpose == TIME_STAMPING else "codeSigning"

    def leaf_purpose(_policy, _cert, ext):
        if ext is None or purpose not in ext:
            raise ValueError(f"the certificate is not for {name} (extended key usage)")

    def leaf_not_ca(_policy, _cert, ext):
        if ext is not None and ext.ca:
            raise ValueError("the signing certificate is itself a CA")

    def leaf_signs(_policy, _cert, ext):
        if ext is not None and not ext.digital_signature:
            raise ValueError("the certificate's key usage does not allow digital signatures")

    def issuer_purpose(_policy, _cert, ext):
        if ext is not None and purpose not in ext and _ANY_EKU not in ext:
            raise ValueError(f"an issuing CA's extended key usages do not include {name}")

    ee = (ExtensionPolicy.permit_all()
          .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, leaf_purpose)
          .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, leaf_not_ca)
          .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, leaf_signs))
    ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, issuer_purpose)
    return ca, ee


def chain_problems(leaf: x509.Certificate, intermediates: list[x509.Certificate], anchors: list[x509.Certificate],
                   at: dt.datetime, purpose: x509.ObjectIdentifier = CODE_SIGNING) -> list[str]:
    """What stops `leaf` from chaining to one of `anchors` for `purpose` at time `at`; empty when it does."""
    return verified_chain(leaf, intermediates, anchors, at, purpose)[1]


def verified_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate], anchors: list[x509.Certificate],
                   at: dt.datetime, purpose: x509.ObjectIdentifier = CODE_SIGNING) -> tuple[list[x509.Certificate] | None, list[str]]:
    """(the path from `leaf` to its trusted root, leaf first, or None; what stops it)."""
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    if not anchors:
        return None, ["no trusted root was given (--trust)"]
    ca, ee = _policies(purpose)
    builder = (PolicyBuilder().store(Store(anchors)).time(at.astimezone(dt.UTC).replace(tzinfo=None))
               .max_chain_depth(MAX_DEPTH).extension_policies(ca_policy=ca, ee_policy=ee))
    try:
        verified = builder.build_client_verifier().verify(leaf, [c for c in intermediates if c != leaf])
    except VerificationError as exc:
        reason = str(exc).removeprefix("validation failed: ")
        if any(a.subject == leaf.subject and a != leaf for a in anchors) and leaf.issuer == leaf.subject:
            reason = "the trusted certificate of that name is another one (another key)"
        return None, [f"{leaf.subject.rfc4514_string()} does not chain to a trusted root for {'timestamping' if purpose == TIME_STAMPING else 'code signing'} at {at:%Y-%m-%d %H:%M} UTC: {reason}"]
    return list(verified.chain), []


# ---------------------------------------------------------------------------------------------------
# Revocation: certificate revocation lists (RFC 5280, section 5 and 6.3), given by the user (--crl) or
# carried in the signature (SignedData's crls, RFC 5652 section 5.1). Nothing is fetched: sfbgen never
# goes on the network to verify.

_STRONG_CRL_HASHES = ("sha256", "sha384", "sha512")


def crl_issued_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """True when `issuer` signed `crl` (its name and key), with SHA-256 or stronger."""
    try:
        algorithm = crl.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - an algorithm cryptography does not know
        return False
    if algorithm is None or algorithm.name not in _STRONG_CRL_HASHES or crl.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    if isinstance(key, (x25519.X25519PublicKey, x448.X448PublicKey)):
        return False  # a key-agreement key signs nothing (cryptography raises TypeError for it)
    try:
        return crl.is_signature_valid(key)
    except (TypeError, ValueError):
        return False


def _complete_for(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    """True when `crl` lists every revoked certificate of its scope, and `cert` is in that scope:
    not a delta CRL, not for some reasons only, not indirect, and not for the other kind of certificate."""
    try:
        return _complete(crl, cert)
    except ValueError:  # extensions cryptography cannot read: the CRL cannot vouch for anything
        return False


def _complete(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    extensions = crl.extensions
    try:
        extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        return False
    except x509.ExtensionNotFound:
        pass
    try:
        point = extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return True
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if point.only_some_reasons or point.indirect_crl or point.only_contains_attribute_certs:
        return False
    return not (point.only_contains_ca_certs and not is_ca) and not (point.only_contains_user_certs and is_ca)


def revocation(chain: list[x509.Certificate], crls: list[x509.CertificateRevocationList], now: dt.datetime) -> tuple[list[str], list[str]]:
    """(problems: a certificate of `chain` its issuer revoked; notes: where revocation could not be checked).

    A revoked certificate fails whatever the reason and date: a signature of a revoked signer is
    never trusted. A CRL counts only when the certificate's issuer signed it."""
    problems, notes = [], []
    for cert, issuer in zip(chain, chain[1:], strict=False):
        name, issuer_name = cert.subject.rfc4514_string(), issuer.subject.rfc4514_string()
        usable = [crl for crl in crls if crl_issued_by(crl, issuer)]
        entries = [entry for crl in usable if (entry := crl.get_revoked_certificate_by_serial_number(cert.serial_number)) is not None]
        if entries:
            when = entries[0].revocation_date_utc
            problems.append(f"{name} was revoked by {issuer_name} on {when:%Y-%m-%d}: nothing it signed is trusted")
            continue
        complete = [crl for crl in usable if _complete_for(crl, cert)]
        current = [crl for crl in complete if crl.next_update_utc is None or crl.next_update_utc >= now]
        if not complete:
            notes.append(f"revocation of {name} could not be checked: no CRL of {issuer_name} was given (--crl) or carried in the signature")
        elif not current:
            # No CRL is current, so each has a next update (one without would be current).
            newest = max(crl.next_update_utc for crl in complete if crl.next_update_utc is not None)
            notes.append(f"revocation of {name} could not be checked: the newest CRL of {issuer_name} expired on {newest:%Y-%m-%d} (give a current one with --crl)")
    return problems, notes
