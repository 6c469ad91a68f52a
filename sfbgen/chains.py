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
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    if not anchors:
        return ["no trusted root was given (--trust)"]
    ca, ee = _policies(purpose)
    builder = (PolicyBuilder().store(Store(anchors)).time(at.astimezone(dt.timezone.utc).replace(tzinfo=None))
               .max_chain_depth(MAX_DEPTH).extension_policies(ca_policy=ca, ee_policy=ee))
    try:
        builder.build_client_verifier().verify(leaf, [c for c in intermediates if c != leaf])
    except VerificationError as exc:
        reason = str(exc).removeprefix("validation failed: ")
        if any(a.subject == leaf.subject and a != leaf for a in anchors) and leaf.issuer == leaf.subject:
            reason = "the trusted certificate of that name is another one (another key)"
        return [f"{leaf.subject.rfc4514_string()} does not chain to a trusted root for {'timestamping' if purpose == TIME_STAMPING else 'code signing'} at {at:%Y-%m-%d %H:%M} UTC: {reason}"]
    return []
