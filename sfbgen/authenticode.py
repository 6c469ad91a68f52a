"""Authenticode signatures of PowerShell scripts: building them and checking them, in-process.

What is signed and how, as independent implementations agree (osslsigncode, relic, jsign,
OpenAuthenticode; see ../shared/reference/authenticode.md):
- the script text, decoded by its byte-order mark, up to the CRLF before the signature block,
  encoded as UTF-16LE, is hashed;
- the hash sits in an SpcIndirectDataContent with the PowerShell SIP's SpcSipInfo;
- a PKCS#7 SignedData (version 1, content directly under [0]) signs it with one SignerInfo whose
  signed attributes are contentType, SpcSpOpusInfo, SpcStatementType and messageDigest;
- the DER goes after the script as base64 comment lines between the `# SIG #` markers.
Without a signingTime attribute the signature is a pure function of script, key and certificate:
the same input gives the same bytes.

What is not signed in such a file — the block's line layout, the unsigned attributes, the
certificates and CRLs beside the SignerInfo, more SignerInfos — could be changed by anyone without
breaking the signature. `verify_script(canonical=True)` (what `sfbgen verify` asks) accepts only the one
form `SigningKey.sign` writes, so a signed file cannot be padded, re-wrapped or given other
certificates; every hostile structure (a "timestamp" that is an INTEGER, DER nested 50,000 deep) is a
refusal with its reason, never an exception.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from asn1crypto import algos, cms, core, tsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

BEGIN = "# SIG # Begin signature block"
END = "# SIG # End signature block"

OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_SIPINFO = "1.3.6.1.4.1.311.2.1.30"
OID_SPC_SP_OPUS_INFO = "1.3.6.1.4.1.311.2.1.12"
OID_SPC_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
OID_SPC_INDIVIDUAL = "1.3.6.1.4.1.311.2.1.21"
OID_RFC3161_TIMESTAMP = "1.3.6.1.4.1.311.3.3.1"
OID_COUNTERSIGNATURE = "1.2.840.113549.1.9.6"
# Digest algorithms a signature may use: SHA-256 or stronger (MD5 and SHA-1 are refused).
STRONG_HASHES = ("sha256", "sha384", "sha512")
# The PowerShell subject interface package {603BCC1F-4B59-4E08-B724-D2C6297EF351}, Windows byte order.
POWERSHELL_SIP_GUID = bytes.fromhex("1fcc3b60594b084eb724d2c6297ef351")

_HASHES: dict[str, type[hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
# The DER of a signature split around its three per-script values: the indirect data's two halves around
# the script digest, the signed attributes' two around the messageDigest, the whole DER's four pieces.
_Template = tuple[tuple[bytes, bytes], tuple[bytes, bytes], tuple[bytes, bytes, bytes, bytes]]


class AuthenticodeError(ValueError):
    """A script that cannot be signed, or a signature that cannot be read."""


# ---------------------------------------------------------------------------------------------------
# ASN.1 shapes asn1crypto does not have: Authenticode's content sits directly under [0], not in an
# OCTET STRING as CMS would have it.


class _SpcContentInfo(core.Sequence):
    _fields = [("content_type", cms.ContentType), ("content", core.Any, {"explicit": 0, "optional": True})]


class _AuthenticodeSignedData(core.Sequence):
    _fields = [
        ("version", cms.CMSVersion),
        ("digest_algorithms", cms.DigestAlgorithms),
        ("encap_content_info", _SpcContentInfo),
        ("certificates", cms.CertificateSet, {"implicit": 0, "optional": True}),
        ("crls", cms.RevocationInfoChoices, {"implicit": 1, "optional": True}),
        ("signer_infos", cms.SignerInfos),
    ]


class _AuthenticodeContentInfo(core.Sequence):
    _fields = [("content_type", cms.ContentType), ("content", _AuthenticodeSignedData, {"explicit": 0})]


def _der_tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + length + body


def _der_contents(der: bytes) -> bytes:
    """The contents of a DER TLV, without its tag and length."""
    first = der[1]
    if first < 0x80:
        return der[2:]
    return der[2 + (first & 0x7F) :]


# ---------------------------------------------------------------------------------------------------
# What is hashed


def _decode_script(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return "\ufeff" + data[3:].decode("utf-8")
    if data.startswith(b"\xff\xfe"):
        return "\ufeff" + data[2:].decode("utf-16-le")
    if data.startswith(b"\xfe\xff"):
        return "\ufeff" + data[2:].decode("utf-16-be")
    # Windows guesses for a file without a BOM; UTF-8 is the guess for ASCII-compatible text.
    return data.decode("utf-8")


def split_signature(data: bytes) -> tuple[str, str | None]:
    """(script text that is hashed, base64 of the signature or None when unsigned).

    The first signature marker starts the block, as osslsigncode reads it (a text that holds the
    marker twice is refused before signing), and nothing may follow the end line: bytes there would
    run without being signed.
    """
    text, encoded, _block = _split(data)
    return text, encoded


def _split(data: bytes) -> tuple[str, str | None, str]:
    """(text that is hashed, base64 of the signature or None, the block as it stands in the file)."""
    text = _decode_script(data)
    marker = "\r\n" + BEGIN + "\r\n"
    index = text.find(marker)
    if index < 0:
        if BEGIN in text:
            raise AuthenticodeError("a signature marker that does not start a signature block (a line end that is not CRLF?)")
        return text, None, ""
    block = text[index + len(marker) :]
    lines = []
    rest = block.split("\r\n")
    for position, line in enumerate(rest):
        if line == END:
            if any(rest[position + 1 :]):
                raise AuthenticodeError("there is text after the end of the signature block")
            break
        if not line.startswith("# "):
            raise AuthenticodeError("the signature block has a line that is not a '# ' comment")
        lines.append(line[2:])
    else:
        raise AuthenticodeError("the signature block has no end marker")
    return text[:index], "".join(lines), text[index + 2 :]


def signature_block(encoded: str) -> str:
    """The signature block exactly as `SigningKey.sign` writes it (and Set-AuthenticodeSignature):
    the markers, then 64 base64 characters a line, every line `# `-prefixed and ended by CRLF."""
    lines = [BEGIN] + ["# " + encoded[i : i + 64] for i in range(0, len(encoded), 64)] + [END]
    return "\r\n".join(lines) + "\r\n"


def script_digest(text: str, algorithm: str = "sha256") -> bytes:
    return hashlib.new(algorithm, text.encode("utf-16-le")).digest()


def _indirect_data(digest: bytes, algorithm: str = "sha256") -> bytes:
    """DER of SpcIndirectDataContent for a PowerShell script hash."""
    sip_info = core.Sequence.load(
        _der_tlv(0x30, core.Integer(65536).dump() + core.OctetString(POWERSHELL_SIP_GUID).dump() + core.Integer(0).dump() * 5)
    )
    attribute = _der_tlv(0x30, core.ObjectIdentifier(OID_SPC_SIPINFO).dump() + sip_info.dump())
    digest_info = _der_tlv(0x30, algos.DigestAlgorithm({"algorithm": algorithm, "parameters": core.Null()}).dump() + core.OctetString(digest).dump())
    return _der_tlv(0x30, attribute + digest_info)


# ---------------------------------------------------------------------------------------------------
# Signing


@dataclass
class SigningKey:
    """A code-signing certificate with its private key, and the chain to ship in each signature."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)
    timestamp_url: str | None = None
    # CRLs to carry in every signature (SignedData's crls), so that a verifier offline can check revocation.
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)

    def __post_init__(self):
        self._cert_der = [c.public_bytes(Encoding.DER) for c in [self.certificate, *self.chain]]
        cert = asn1_x509.Certificate.load(self._cert_der[0])
        self._sid = cms.SignerIdentifier(
            {"issuer_and_serial_number": cms.IssuerAndSerialNumber({"issuer": cert.issuer, "serial_number": cert.serial_number})}
        )
        self._cached_template: _Template | None | Literal[False] = False  # not built yet
        self._certificates = cms.CertificateSet([cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(d)}) for d in self._cert_der])

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def thumbprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()

    @property
    def not_after(self) -> str:
        return self.certificate.not_valid_after_utc.strftime("%Y-%m-%d")

    @property
    def timestamped(self) -> bool:
        return bool(self.timestamp_url)

    def _sign_bytes(self, data: bytes) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def signature_der(self, text: str) -> bytes:
        """The DER of the PKCS#7 signature over script `text` (as split_signature returns it)."""
        digest = script_digest(text)
        template = self._template()
        if template is None:
            return self._build(digest, self._sign_bytes)
        # Everything but the script hash, the messageDigest and the RSA signature is the same for every
        # script signed with this key: fill those three fixed-length holes of the pre-built DER.
        (ind_head, ind_tail), (attr_head, attr_tail), (der_a, der_b, der_c, der_d) = template
        message_digest = hashlib.sha256(ind_head + digest + ind_tail).digest()
        signature = self._sign_bytes(attr_head + message_digest + attr_tail)
        return der_a + digest + der_b + message_digest + der_c + signature + der_d

    def _template(self) -> _Template | None:
        """The DER split around the three per-script values, or None when they do not have fixed lengths."""
        if self._cached_template is not False:
            return self._cached_template
        self._cached_template = None
        if not isinstance(self.private_key, rsa.RSAPrivateKey) or self.timestamp_url:
            return None  # ECDSA signatures and timestamps vary in length
        placeholder_digest = hashlib.sha256(b"sfbgen placeholder script digest").digest()
        placeholder_signature = b"\x5a" * (self.private_key.key_size // 8)
        captured: list[bytes] = []

        def fake_sign(attrs: bytes) -> bytes:
            captured.append(attrs)
            return placeholder_signature

        der = self._build(placeholder_digest, fake_sign)
        indirect_contents = _der_contents(_indirect_data(placeholder_digest))
        placeholder_md = hashlib.sha256(indirect_contents).digest()
        attrs = captured[0]
        for needle, haystack in ((placeholder_digest, indirect_contents), (placeholder_md, attrs),
                                 (placeholder_digest, der), (placeholder_md, der), (placeholder_signature, der)):
            if haystack.count(needle) != 1:
                return None
        ind = indirect_contents.split(placeholder_digest)
        attr = attrs.split(placeholder_md)
        a, rest = der.split(placeholder_digest)
        b, rest = rest.split(placeholder_md)
        c, d = rest.split(placeholder_signature)
        self._cached_template = ((ind[0], ind[1]), (attr[0], attr[1]), (a, b, c, d))
        return self._cached_template

    def _build(self, digest: bytes, sign) -> bytes:
        """The whole structure, built field by field with asn1crypto."""
        indirect = _indirect_data(digest)
        attributes = [
            _attribute("1.2.840.113549.1.9.3", core.ObjectIdentifier(OID_SPC_INDIRECT_DATA).dump()),
            _attribute(OID_SPC_SP_OPUS_INFO, _der_tlv(0x30, b"")),
            _attribute(OID_SPC_STATEMENT_TYPE, _der_tlv(0x30, core.ObjectIdentifier(OID_SPC_INDIVIDUAL).dump())),
            _attribute("1.2.840.113549.1.9.4", core.OctetString(hashlib.sha256(_der_contents(indirect)).digest()).dump()),
        ]
        # DER orders the members of a SET OF by their encoding; verifiers re-encode it that way.
        signed_attrs_set = _der_tlv(0x31, b"".join(sorted(attributes)))
        signature = sign(signed_attrs_set)
        key_algorithm = (
            {"algorithm": "rsassa_pkcs1v15"} if isinstance(self.private_key, rsa.RSAPrivateKey) else {"algorithm": "sha256_ecdsa"}
        )
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": self._sid,
                "digest_algorithm": {"algorithm": "sha256", "parameters": core.Null()},
                "signed_attrs": cms.CMSAttributes.load(signed_attrs_set),
                "signature_algorithm": key_algorithm,
                "signature": signature,
            }
        )
        if self.timestamp_url:
            token = request_timestamp(self.timestamp_url, signature)
            signer_info["unsigned_attrs"] = cms.CMSAttributes(
                [cms.CMSAttribute({"type": OID_RFC3161_TIMESTAMP, "values": [cms.ContentInfo.load(token)]})]
            )
        signed_data = _AuthenticodeSignedData(
            {
                "version": "v1",
                "digest_algorithms": [{"algorithm": "sha256", "parameters": core.Null()}],
                "encap_content_info": _SpcContentInfo.load(
                    _der_tlv(0x30, core.ObjectIdentifier(OID_SPC_INDIRECT_DATA).dump() + _der_tlv(0xA0, indirect))
                ),
                "certificates": self._certificates,
                **({"crls": cms.RevocationInfoChoices([cms.RevocationInfoChoice({"crl": asn1_crl.CertificateList.load(crl.public_bytes(Encoding.DER))})
                                                        for crl in self.crls])} if self.crls else {}),
                "signer_infos": [signer_info],
            }
        )
        return _AuthenticodeContentInfo({"content_type": "signed_data", "content": signed_data}).dump()

    def sign(self, data: bytes) -> bytes:
        """`data` (a script as it will be written) with an Authenticode signature block appended."""
        text, existing = split_signature(data)
        if existing is not None:
            raise AuthenticodeError("the script is already signed")
        if _MARKER_LINE.search(text):
            raise AuthenticodeError(f"the script contains the line '{BEGIN}', which would cut it short for verifiers")
        if not text.endswith("\r\n"):
            raise AuthenticodeError("the script must end with CRLF before it is signed")
        encoded = base64.b64encode(self.signature_der(text[:-2])).decode("ascii")
        return data + signature_block(encoded).encode("ascii")


_MARKER_LINE = re.compile(re.escape(BEGIN), re.IGNORECASE)


def _attribute(oid: str, value_der: bytes) -> bytes:
    return _der_tlv(0x30, core.ObjectIdentifier(oid).dump() + _der_tlv(0x31, value_der))


def request_timestamp(url: str, signature: bytes) -> bytes:
    """An RFC 3161 timestamp token (DER ContentInfo) for `signature`, from the TSA at `url`."""
    import os
    import urllib.request

    nonce = int.from_bytes(os.urandom(8), "big")
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(signature).digest()},
            "nonce": nonce,
            "cert_req": True,
        }
    )
    http = urllib.request.Request(url, data=request.dump(), headers={"Content-Type": "application/timestamp-query"})
    try:
        with urllib.request.urlopen(http, timeout=30) as answer:
            response = tsp.TimeStampResp.load(answer.read())
    except OSError as exc:
        raise AuthenticodeError(f"the timestamp server {url} did not answer: {exc}") from exc
    status = response["status"]["status"].native
    if status not in ("granted", "granted_with_mods"):
        raise AuthenticodeError(f"the timestamp server {url} refused the request ({status})")
    token = response["time_stamp_token"]
    info = token["content"]["encap_content_info"]["content"].parsed
    if info["message_imprint"]["hashed_message"].native != hashlib.sha256(signature).digest() or info["nonce"].native != nonce:
        raise AuthenticodeError(f"the timestamp server {url} answered for another request")
    return token.dump()


# ---------------------------------------------------------------------------------------------------
# Verifying


@dataclass
class Verdict:
    """What a signature check found: `problems` is empty when the signature is valid."""

    signed: bool
    problems: list[str] = field(default_factory=list)
    signer: str = ""
    thumbprint: str = ""
    timestamp: dt.datetime | None = None
    form: str = ""  # 'pkcs7-v1' (Set-AuthenticodeSignature) or 'signedcms-v3' (.NET SignedCms)
    notes: list[str] = field(default_factory=list)  # what was not held against it, and why

    @property
    def ok(self) -> bool:
        return self.signed and not self.problems


def _load_certificates(signed_data) -> list[x509.Certificate]:
    out = []
    for choice in signed_data["certificates"] or []:
        if choice.name == "certificate":
            out.append(x509.load_der_x509_certificate(choice.chosen.dump()))
    return out


def _find_signer(certs: list[x509.Certificate], sid) -> x509.Certificate | None:
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        for cert in certs:
            if cert.serial_number == serial and asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))["tbs_certificate"]["issuer"].dump() == issuer:
                return cert
    else:
        key_id = sid.chosen.native
        for cert in certs:
            try:
                if cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == key_id:
                    return cert
            except x509.ExtensionNotFound:
                continue
    return None


def _verify_raw(cert: x509.Certificate, signature: bytes, data: bytes, hash_name: str) -> bool:
    key = cert.public_key()
    algorithm = _HASHES.get(hash_name, hashes.SHA256)()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
        return True
    except InvalidSignature:
        return False


@dataclass
class _Timestamp:
    when: dt.datetime | None = None
    tsa: x509.Certificate | None = None  # the certificate that signed the timestamp
    pool: list[x509.Certificate] = field(default_factory=list)  # certificates that came with it
    problems: list[str] = field(default_factory=list)


# What a well-formed signature can hold. sfbgen's signatures nest about 20 deep (a timestamp token with
# its certificates, inside an unsigned attribute); a "timestamp" 50,000 deep is refused before it is parsed.
MAX_DER_DEPTH = 40
MAX_TIMESTAMP_BYTES = 64 * 1024
# Signer keys: RSA of 2,048 bits or more, or ECDSA on P-256, P-384 or P-521 (NIST SP 800-131A Rev. 2,
# https://csrc.nist.gov/pubs/sp/800/131/a/r2/final: RSA below 2048 and curves below 224 bits are
# disallowed; Microsoft's Trusted Root Program requires RSA 2048 or ECC P-256/P-384/P-521,
# https://learn.microsoft.com/en-us/security/trusted-root/program-requirements).
MIN_RSA_BITS = 2048
STRONG_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def key_problem(cert: x509.Certificate, who: str = "the signer") -> str | None:
    """Why the key of `cert` is too weak to trust, or None."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"{who} has an RSA-{key.key_size} key; sfbgen accepts RSA-{MIN_RSA_BITS} or more, or ECDSA P-256 or stronger"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in STRONG_CURVES:
            names = {"secp192r1": "P-192", "secp224r1": "P-224"}
            return f"{who} has an ECDSA key on {names.get(key.curve.name, key.curve.name)}; sfbgen accepts P-256, P-384 or P-521 (or RSA-{MIN_RSA_BITS} or more)"
        return None
    return f"{who} has a {type(key).__name__.removesuffix('PublicKey') or 'kind of'} key, which Authenticode signatures sfbgen checks cannot use"


def _der_problem(der: bytes, max_depth: int = MAX_DER_DEPTH) -> str | None:
    """Why `der` is not exactly one definite-length DER value nested at most `max_depth` deep, or None.

    Iterative, so no nesting can exhaust the stack; the ASN.1 parsers see only what passed."""
    n = len(der)
    ends = [n]  # where each open constructed value ends; the first entry is the whole buffer
    pos, values = 0, 0
    while True:
        while len(ends) > 1 and pos == ends[-1]:
            ends.pop()
        if pos == n:
            break
        if len(ends) == 1:
            values += 1
            if values > 1:
                return "data after the signature's DER"
        if pos + 2 > ends[-1]:
            return "a value cut short"
        tag = der[pos]
        pos += 1
        if tag & 0x1F == 0x1F:  # a tag number in more bytes
            for _count in range(5):
                if pos >= ends[-1]:
                    return "a value cut short"
                pos += 1
                if not der[pos - 1] & 0x80:
                    break
            else:
                return "a tag number that is too long"
        if pos >= ends[-1]:
            return "a value cut short"
        first = der[pos]
        pos += 1
        if first == 0x80:
            return "an indefinite length (BER, not DER)"
        if first & 0x80:
            octets = first & 0x7F
            if octets > 4 or pos + octets > ends[-1]:
                return "a length that does not fit"
            length = int.from_bytes(der[pos : pos + octets], "big")
            if length < 0x80 or der[pos] == 0:
                return "a length not in its shortest form (not DER)"
            pos += octets
        else:
            length = first
        end = pos + length
        if end > ends[-1]:
            return "a value longer than the one that holds it"
        if tag & 0x20:
            if len(ends) > max_depth:
                return f"values nested more than {max_depth} deep"
            ends.append(end)
        else:
            pos = end
    return None if values == 1 else "no value"


def _timestamp(signer_info, signature: bytes, certs: list[x509.Certificate]) -> _Timestamp:
    """The time a timestamp vouches for, who vouches for it, and problems with it (an empty result when there is none)."""
    try:
        return _read_timestamp(signer_info, signature, certs)
    except _MALFORMED as exc:
        return _Timestamp(problems=[f"a malformed timestamp ({_reason(exc)})"])


def _read_timestamp(signer_info, signature: bytes, certs: list[x509.Certificate]) -> _Timestamp:
    attrs = signer_info["unsigned_attrs"]
    if isinstance(attrs, core.Void) or len(attrs) == 0:
        return _Timestamp()
    for attr in attrs:
        oid = attr["type"].dotted
        if oid == OID_RFC3161_TIMESTAMP:
            if len(attr["values"]) != 1:
                return _Timestamp(problems=["the RFC 3161 timestamp attribute holds more or less than one token"])
            token = cms.ContentInfo.load(attr["values"][0].dump(), strict=True)
            if token["content_type"].native != "signed_data":
                return _Timestamp(problems=["the RFC 3161 timestamp is not a SignedData"])
            signed_token = token["content"]
            if signed_token["encap_content_info"]["content_type"].native != "tst_info":
                return _Timestamp(problems=["the RFC 3161 timestamp holds no TSTInfo"])
            info_der = bytes(signed_token["encap_content_info"]["content"])
            info = tsp.TSTInfo.load(info_der, strict=True)
            imprint = info["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            if algorithm not in STRONG_HASHES:
                return _Timestamp(problems=[f"the RFC 3161 timestamp uses {algorithm}; sfbgen accepts SHA-256 or stronger"])
            if hashlib.new(algorithm, signature).digest() != imprint["hashed_message"].native:
                return _Timestamp(problems=["the RFC 3161 timestamp is for another signature"])
            # The token itself must be signed by the timestamp authority's certificate it carries.
            if len(signed_token["signer_infos"]) != 1:
                return _Timestamp(problems=["the RFC 3161 timestamp token has more or less than one signer"])
            token_signer = signed_token["signer_infos"][0]
            token_certs = _load_certificates(signed_token)
            tsa = _find_signer(token_certs, token_signer["sid"])
            token_hash = token_signer["digest_algorithm"]["algorithm"].native
            digests = [a["values"][0].native for a in token_signer["signed_attrs"] if a["type"].native == "message_digest"]
            if (tsa is None or token_hash not in STRONG_HASHES or digests != [hashlib.new(token_hash, info_der).digest()]
                    or not _verify_raw(tsa, token_signer["signature"].native, _reencode_set(token_signer["signed_attrs"]), token_hash)):
                return _Timestamp(problems=["the RFC 3161 timestamp token does not verify"])
            when = info["gen_time"].native
            if not isinstance(when, dt.datetime):
                return _Timestamp(problems=["the RFC 3161 timestamp has no time"])
            return _Timestamp(when, tsa, token_certs + certs)
        if oid == OID_COUNTERSIGNATURE:
            counter = cms.SignerInfo.load(attr["values"][0].dump(), strict=True)
            when, digest = None, None
            for sattr in counter["signed_attrs"]:
                if sattr["type"].native == "signing_time":
                    when = sattr["values"][0].native
                elif sattr["type"].native == "message_digest":
                    digest = sattr["values"][0].native
            algorithm = counter["digest_algorithm"]["algorithm"].native
            if algorithm not in STRONG_HASHES:
                return _Timestamp(problems=[f"the timestamp countersignature uses {algorithm}; sfbgen accepts SHA-256 or stronger"])
            if digest != hashlib.new(algorithm, signature).digest():
                return _Timestamp(problems=["the timestamp countersignature is for another signature"])
            tsa = _find_signer(certs, counter["sid"])
            signed = _reencode_set(counter["signed_attrs"])
            if tsa is None or not isinstance(when, dt.datetime) or not _verify_raw(tsa, counter["signature"].native, signed, algorithm):
                return _Timestamp(problems=["the timestamp countersignature does not verify"])
            return _Timestamp(when, tsa, certs)
    return _Timestamp()


def _reencode_set(signed_attrs) -> bytes:
    """The DER the signature covers: the signed attributes as a SET OF (tag 0x31), not [0]."""
    return b"\x31" + signed_attrs.dump()[1:]


# What a hostile signature can make the ASN.1 and certificate parsers raise; each is a refusal, never a crash.
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError, UnicodeError)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(exc).__name__)


def verify_script(data: bytes, anchors: list[x509.Certificate], now: dt.datetime | None = None,
                  tsa_anchors: list[x509.Certificate] | None = None, require_bom: bool = False,
                  canonical: bool = False, crls: list[x509.CertificateRevocationList] | tuple = ()) -> Verdict:
    """Check the Authenticode signature of one script against the trust `anchors`.

    A timestamp counts only when its authority chains to one of `tsa_anchors` for timestamping;
    otherwise the signer's certificate must be valid `now`. Digests must be SHA-256 or stronger, the
    signer's key RSA-2048 / P-256 or stronger, and there is exactly one SignerInfo.
    `require_bom`: the file must start with the UTF-8 byte-order mark sfbgen writes (without one,
    Windows guesses the encoding, and may hash other text than this check does).
    `canonical`: the signature must be in the one form `SigningKey.sign` writes — its block laid out
    as sfbgen lays it out, no unsigned attribute but one RFC 3161 timestamp, no certificate beyond
    the signer's chain, no CRL that no CA of that chain issued — so that nothing can be added to a
    signed file without breaking it.
    `crls`: certificate revocation lists (with those the signature carries): a certificate of the
    chain that its issuer revoked fails; when no current CRL of an issuer is at hand, a note says that
    revocation could not be checked.
    """
    now = now or dt.datetime.now(dt.UTC)
    if require_bom and not data.startswith(b"\xef\xbb\xbf"):
        return Verdict(signed=False, problems=["the script does not start with the UTF-8 byte-order mark sfbgen writes "
                                               "(without one Windows PowerShell 5.1 reads it in the machine's ANSI code page: "
                                               "what runs would not be what was checked)"])
    try:
        return _verify(data, anchors, now, tsa_anchors or [], canonical, list(crls))
    except _MALFORMED as exc:
        return Verdict(signed=True, problems=[f"malformed signature ({_reason(exc)})"])


def _verify(data: bytes, anchors, now: dt.datetime, tsa_anchors, canonical: bool, given_crls) -> Verdict:
    from .chains import CODE_SIGNING, TIME_STAMPING, chain_problems, crl_issued_by, revocation, verified_chain

    try:
        text, encoded, block = _split(data)
    except (AuthenticodeError, UnicodeDecodeError) as exc:
        return Verdict(signed=True, problems=[f"unreadable signature block: {exc}"])
    if encoded is None:
        return Verdict(signed=False, problems=["not signed"])
    try:
        der = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        return Verdict(signed=True, problems=[f"the signature block is not base64 ({_reason(exc)})"])
    if canonical and block != signature_block(base64.b64encode(der).decode("ascii")):
        return Verdict(signed=True, problems=["the signature block is not laid out as the signer wrote it "
                                              "(64 base64 characters a line, CRLF): it was re-wrapped after signing"])
    shape = _der_problem(der)
    if shape:
        return Verdict(signed=True, problems=[f"malformed signature: {shape}"])
    try:
        info = _AuthenticodeContentInfo.load(der, strict=True)
        signed_data = info["content"]
        version = signed_data["version"].native
        content = signed_data["encap_content_info"]["content"]
        raw = content.dump()
        if raw[:1] == b"\xa0":  # the explicit [0] around the content
            raw = _der_contents(raw)
        if raw[:1] == b"\x04":  # .NET SignedCms: the content in an OCTET STRING
            indirect_der = core.OctetString.load(raw).native
            digested = indirect_der
            form = "signedcms-v3"
        else:
            indirect_der = raw
            digested = _der_contents(raw)
            form = "pkcs7-v1"
        indirect = core.Sequence.load(indirect_der)
        digest_info = core.Sequence.load(indirect[1].dump())
        algorithm = algos.DigestAlgorithm.load(digest_info[0].dump())["algorithm"].native
        embedded_hash = core.OctetString.load(digest_info[1].dump()).native
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            return Verdict(signed=True, problems=[f"the signature holds {len(signer_infos)} SignerInfos; a script is signed by exactly one"])
        signer_info = signer_infos[0]
        certs = _load_certificates(signed_data)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return Verdict(signed=True, problems=[f"malformed signature: {_reason(exc)}"])

    verdict = Verdict(signed=True, form=form)
    signer_hash = signer_info["digest_algorithm"]["algorithm"].native
    for label, name in (("script digest", algorithm), ("signature digest", signer_hash)):
        if name not in STRONG_HASHES:
            verdict.problems.append(f"the {label} is {name}; sfbgen accepts SHA-256 or stronger")
    if verdict.problems:
        return verdict
    if info["content_type"].dotted != "1.2.840.113549.1.7.2":
        verdict.problems.append("the signature is not a PKCS#7 SignedData")
    if signed_data["encap_content_info"]["content_type"].dotted != OID_SPC_INDIRECT_DATA:
        verdict.problems.append("the signed content is not an Authenticode SpcIndirectDataContent")
    if version not in ("v1", "v3"):
        verdict.problems.append(f"unexpected SignedData version {version}")
    if script_digest(text, algorithm) != embedded_hash:
        verdict.problems.append("the script was changed after it was signed (hash mismatch)")
    message_digest = content_type = None
    seen_types: set[str] = set()
    for attr in signer_info["signed_attrs"]:
        kind = attr["type"].dotted
        if kind in seen_types or len(attr["values"]) != 1:
            verdict.problems.append(f"the signed attribute {kind} is given more than once")
        seen_types.add(kind)
        if attr["type"].native == "message_digest":
            message_digest = attr["values"][0].native
        elif attr["type"].native == "content_type":
            content_type = attr["values"][0].dotted
    if content_type != OID_SPC_INDIRECT_DATA:
        verdict.problems.append("the signed attributes name another content type")
    if message_digest != hashlib.new(signer_hash, digested).digest():
        verdict.problems.append("the signed attributes do not match the signed content (messageDigest)")
    if canonical:
        verdict.problems += _shape_problems(signed_data, signer_info, form, version, signer_hash)
    signer = _find_signer(certs, signer_info["sid"])
    if signer is None:
        verdict.problems.append("the signer's certificate is not in the signature")
        return verdict
    verdict.signer = signer.subject.rfc4514_string()
    verdict.thumbprint = signer.fingerprint(hashes.SHA1()).hex().upper()
    weak = key_problem(signer, f"the signer {verdict.signer}")
    if weak:
        verdict.problems.append(weak)
        return verdict
    signature = signer_info["signature"].native
    if not _verify_raw(signer, signature, _reencode_set(signer_info["signed_attrs"]), signer_hash):
        verdict.problems.append("the signature does not verify with the signer's key")
    stamp = _timestamp(signer_info, signature, certs)
    verdict.problems.extend(stamp.problems)
    at = now
    if stamp.when is not None and stamp.tsa is not None:
        # A timestamp counts only from an authority the user trusts for timestamping.
        distrust = chain_problems(stamp.tsa, stamp.pool, tsa_anchors, stamp.when, TIME_STAMPING)
        if distrust:
            verdict.notes.append("the timestamp is not trusted (" + distrust[0].split(": ", 1)[-1] + "); validity is judged now")
        else:
            verdict.timestamp = stamp.when
            at = stamp.when
    chain, problems = verified_chain(signer, certs, anchors, at, CODE_SIGNING)
    verdict.problems.extend(problems)
    if chain is None:
        return verdict
    for ca in chain[1:]:
        weak = key_problem(ca, f"the issuing CA {ca.subject.rfc4514_string()}")
        if weak:
            verdict.problems.append(weak)
    embedded, crl_problems = _embedded_crls(signed_data)
    verdict.problems += crl_problems
    if canonical:
        extra = [c for c in certs if c not in chain]
        if extra:
            verdict.problems.append("the signature carries certificates beyond the signer's chain: "
                                    + ", ".join(c.subject.rfc4514_string() for c in extra[:3]) + (" ..." if len(extra) > 3 else ""))
        if any(not any(crl_issued_by(crl, ca) for ca in chain) for crl in embedded):
            verdict.problems.append("the signature carries a CRL that no CA of the signer's chain issued")
    revoked, unchecked = revocation(chain, given_crls + embedded, now)
    verdict.problems += revoked
    verdict.notes += unchecked
    return verdict


def _shape_problems(signed_data, signer_info, form: str, version: str, signer_hash: str) -> list[str]:
    """What makes a signature other than the one form `SigningKey.sign` writes (besides the block's layout,
    the certificates and the CRLs, checked where the chain is known)."""
    problems = []
    if form != "pkcs7-v1" or version != "v1":
        problems.append("the signature is in the .NET SignedCms form (SignedData v3), not the one sfbgen writes")
    algorithms = [a["algorithm"].native for a in signed_data["digest_algorithms"]]
    if algorithms != [signer_hash]:
        problems.append(f"the signature lists the digest algorithms {algorithms}, not only its signer's {signer_hash}")
    if signer_info["version"].native != "v1" or signer_info["sid"].name != "issuer_and_serial_number":
        problems.append("the SignerInfo is not version 1 with the issuer and serial number")
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            problems.append(f"the signature carries a certificate of another kind ({choice.name})")
            break
    for choice in signed_data["crls"] or []:
        if choice.name != "crl":
            problems.append("the signature carries revocation information that is not a CRL")
            break
    attrs = signer_info["unsigned_attrs"]
    if not isinstance(attrs, core.Void) and len(attrs):
        kinds = [attr["type"].dotted for attr in attrs]
        if kinds != [OID_RFC3161_TIMESTAMP]:
            problems.append(f"the signature carries unsigned attributes ({', '.join(kinds[:3])}{' ...' if len(kinds) > 3 else ''}); "
                            "only one RFC 3161 timestamp may be added to a signature")
        elif len(attrs[0]["values"]) != 1 or len(attrs[0]["values"][0].dump()) > MAX_TIMESTAMP_BYTES:
            problems.append(f"the RFC 3161 timestamp is not one token of at most {MAX_TIMESTAMP_BYTES} bytes")
    return problems


def _embedded_crls(signed_data) -> tuple[list[x509.CertificateRevocationList], list[str]]:
    """The CRLs a signature carries (SignedData's crls), and problems reading them."""
    out, problems = [], []
    for choice in signed_data["crls"] or []:
        if choice.name != "crl":
            continue
        try:
            out.append(x509.load_der_x509_crl(choice.chosen.dump()))
        except ValueError as exc:
            problems.append(f"the signature carries a malformed CRL ({_reason(exc)})")
    return out, problems


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from PEM (one or many) or DER bytes."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def certificates_in_signature(data: bytes) -> list[x509.Certificate]:
    """The certificates a signed script carries (tests use them as trust anchors)."""
    _, encoded = split_signature(data)
    if encoded is None:
        return []
    return _load_certificates(_AuthenticodeContentInfo.load(base64.b64decode(encoded))["content"])
