"""Every attack of the security reviews (issues 13 and 20), replayed against `sfbgen verify --trust` and
the compiler: each must be refused, and none may crash or hang the verifier.

Each attack is a function that prepares its case in a fresh copy of a signed bundle (or a folder of
its own) and returns the verifier's reports, or raises `Refused` when the compiler or a helper
refused outright. `run_attack` turns that into 'refused', 'accepted' or 'crashed'.
tests/test_trust.py runs every attack as a regression test; bench/reliability.py counts them for
RELIABILITY.md.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "contoso.sfb"
SCRIPT = "fe02.contoso.com/2-Setup-Components.ps1"


class Refused(Exception):
    """The attack was stopped before verification (by the compiler, or a check of its own)."""


@dataclass
class Kit:
    """A trusted root, a code-signing certificate it issued, and a bundle compiled and signed with it."""

    work: Path
    root: x509.Certificate
    root_key: object
    signer: object  # sfbgen.authenticode.SigningKey
    bundle: Path

    def copy(self, name: str) -> Path:
        target = self.work / name
        shutil.copytree(self.bundle, target, symlinks=True)
        return target

    def trust(self, **changes):
        """What a careful user gives: the root and the pinned signer (`signer=None` to pin none)."""
        from sfbgen.verify import Trust

        changes.setdefault("signer", self.signer.thumbprint)
        return Trust([self.root], deadline_s=changes.pop("deadline_s", 60.0), **changes)


def certificate(name, key, issuer=None, issuer_key=None, ca=None, eku=(ExtendedKeyUsageOID.CODE_SIGNING,), key_cert_sign=False,
                basic_constraints=True, days=365, not_before=None):
    now = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=bool(ca), path_length=None), critical=True)
    builder = builder.add_extension(x509.KeyUsage(not key_cert_sign, False, False, False, False, key_cert_sign, key_cert_sign, False, False), critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_kit(work: Path) -> Kit:
    from sfbgen.authenticode import SigningKey
    from sfbgen.compiler import compile_file

    root_key, leaf_key = _key(), _key()
    root = certificate("sfbgen attack root", root_key, ca=True, eku=(), key_cert_sign=True, days=3650)
    leaf = certificate("sfbgen attack signer", leaf_key, issuer=root, issuer_key=root_key)
    signer = SigningKey(leaf, leaf_key, [])
    bundle = work / "signed"
    compile_file(SAMPLE, bundle, signer)
    return Kit(work, root, root_key, signer, bundle)


def _verify(bundle: Path, trust):
    from sfbgen.verify import verify_bundle

    return verify_bundle(bundle, trust)


def _unsign(data: bytes) -> bytes:
    marker = b"\r\n# SIG # Begin signature block"
    return data[: data.index(marker) + 2] if marker in data else data


def _rewrite_manifests(bundle: Path, sign=None) -> None:
    """What the attacker did: recompute every hash of both manifests after an edit (signed with `sign`,
    or left unsigned with the `Signer` field kept or emptied)."""
    from sfbgen import manifest as mf
    from sfbgen.authenticode import split_signature
    from sfbgen.render import to_windows_text

    def refresh(path: Path, listing_path_prefix: str) -> None:
        listing = mf.parse(split_signature(path.read_bytes())[0])
        files = []
        for entry in listing.files:
            target = bundle / (listing_path_prefix + entry.path)
            if target.exists():
                data = target.read_bytes()
                import hashlib

                files.append(mf.Entry(entry.path, hashlib.sha256(data).hexdigest().upper(), len(data)))
        listing.files = files
        data = to_windows_text(mf.render(listing))
        path.write_bytes(sign(data) if sign else data)

    folder = SCRIPT.split("/")[0]
    refresh(bundle / folder / mf.SERVER_NAME, folder + "/")
    # Then the root's, whose entry for the server manifest follows that one's new bytes.
    refresh(bundle / mf.ROOT_NAME, "")


# ---------------------------------------------------------------------------------------------------
# The attacks of the review, one function each


def edited_script_and_both_manifests(kit: Kit):
    """A script gains a line and loses its signature; the hashes in both manifests are updated."""
    bundle = kit.copy("a1")
    target = bundle / SCRIPT
    target.write_bytes(_unsign(target.read_bytes()).replace(b"function Invoke-Main {", b"function Invoke-Main {\r\n    Invoke-Expression $env:EVIL"))
    _rewrite_manifests(bundle)
    return _verify(bundle, kit.trust())


def signer_set_to_nobody(kit: Kit):
    """The same, with the manifests' signer emptied (the review's "signer": null)."""
    from sfbgen import manifest as mf

    bundle = kit.copy("a2")
    for path in (bundle / mf.ROOT_NAME, bundle / SCRIPT.split("/")[0] / mf.SERVER_NAME):
        text = _unsign(path.read_bytes()).decode("utf-8-sig")
        path.write_bytes(("\ufeff" + "\n".join(row if not row.startswith("    Signer = ") else "    Signer = ''" for row in text.split("\n"))).encode("utf-8"))
    return _verify(bundle, kit.trust())


def second_signer_key(kit: Kit):
    """A second Signer key after the first (read last-wins by a lax parser)."""
    from sfbgen import manifest as mf

    bundle = kit.copy("a3")
    path = bundle / mf.ROOT_NAME
    text = path.read_bytes().decode("utf-8-sig")
    path.write_bytes(("\ufeff" + text.replace("    Files = @(", "    Signer = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'\n    Files = @(", 1)).encode("utf-8"))
    return _verify(bundle, kit.trust())


def script_deleted_with_its_entry(kit: Kit):
    bundle = kit.copy("a4")
    (bundle / SCRIPT).unlink()
    _rewrite_manifests(bundle)
    return _verify(bundle, kit.trust())


def script_deleted(kit: Kit):
    bundle = kit.copy("a5")
    (bundle / SCRIPT).unlink()
    return _verify(bundle, kit.trust())


def _unsigned_extra(kit: Kit, name: str):
    bundle = kit.copy("a6-" + name.replace(".", "_"))
    (bundle / "fe01.contoso.com" / name).write_bytes(b"\xef\xbb\xbfRemove-Item C:\\ -Recurse\r\n")
    return _verify(bundle, kit.trust())


def manifest_resigned_by_the_attacker(kit: Kit):
    """The attacker re-signs the edited manifests with a certificate of their own."""
    from sfbgen.authenticode import SigningKey

    key = _key()
    own_root = certificate("attacker root", key, ca=True, eku=(), key_cert_sign=True)
    leaf_key = _key()
    leaf = certificate("attacker signer", leaf_key, issuer=own_root, issuer_key=key)
    bundle = kit.copy("a7")
    target = bundle / SCRIPT
    target.write_bytes(SigningKey(leaf, leaf_key, [own_root]).sign(_unsign(target.read_bytes()) + b"Invoke-Expression $env:EVIL\r\n"))
    _rewrite_manifests(bundle, SigningKey(leaf, leaf_key, [own_root]).sign)
    return _verify(bundle, kit.trust())


def _bundle_signed_through(kit: Kit, issuer_cert, issuer_key, name: str):
    from sfbgen.authenticode import SigningKey
    from sfbgen.compiler import compile_file

    leaf_key = _key()
    leaf = certificate("signer below " + name, leaf_key, issuer=issuer_cert, issuer_key=issuer_key)
    out = kit.work / ("a8-" + name)
    signer = SigningKey(leaf, leaf_key, [issuer_cert])
    compile_file(ROOT / "samples" / "standard-edition.sfb", out, signer)
    return _verify(out, kit.trust(signer=signer.thumbprint))  # pinned: the chain is what must refuse it


def issuer_is_a_tls_certificate(kit: Kit):
    """A code-signing certificate issued by a CA:FALSE TLS certificate under the trusted root."""
    key = _key()
    tls = certificate("tls server", key, issuer=kit.root, issuer_key=kit.root_key, ca=False, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    return _bundle_signed_through(kit, tls, key, "tls")


def issuer_without_basic_constraints(kit: Kit):
    key = _key()
    odd = certificate("no basic constraints", key, issuer=kit.root, issuer_key=kit.root_key, eku=(), key_cert_sign=True, basic_constraints=False)
    return _bundle_signed_through(kit, odd, key, "nobc")


def issuer_for_tls_only(kit: Kit):
    """A real CA whose extended key usages say TLS only: Windows nests EKUs, so it cannot vouch for code."""
    key = _key()
    tls_ca = certificate("tls only CA", key, issuer=kit.root, issuer_key=kit.root_key, ca=True, eku=(ExtendedKeyUsageOID.SERVER_AUTH,), key_cert_sign=True)
    return _bundle_signed_through(kit, tls_ca, key, "tlsca")


def expired_signer_with_a_self_made_timestamp(kit: Kit):
    """A self-signed "TSA" stamps an expired signer's scripts."""
    from sfbgen.authenticode import SigningKey
    from sfbgen.compiler import compile_file

    tsa = TimestampServer()
    try:
        leaf_key = _key()
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
        leaf = certificate("short-lived signer", leaf_key, issuer=kit.root, issuer_key=kit.root_key, days=30, not_before=past)
        out = kit.work / "a9"
        signer = SigningKey(leaf, leaf_key, [], timestamp_url=tsa.url)
        signer_check = signer  # compile refuses an expired key through the CLI; the library signs what it is given
        compile_file(ROOT / "samples" / "standard-edition.sfb", out, signer_check)
    finally:
        tsa.close()
    return _verify(out, kit.trust(signer=signer.thumbprint))


def bytes_after_the_signature_block(kit: Kit):
    bundle = kit.copy("a10")
    target = bundle / SCRIPT
    target.write_bytes(target.read_bytes() + b"Invoke-Expression $env:EVIL\r\n")
    _rewrite_manifests(bundle, kit.signer.sign)  # even with manifests the trusted signer re-signed
    return _verify(bundle, kit.trust())


def playbook_step_swapped(kit: Kit):
    """The Ansible playbook edited to run something else: it is data, listed with its hash."""
    bundle = kit.copy("a10-yml")
    target = bundle / "ansible" / "site.yml"
    target.write_text(target.read_text(encoding="utf-8").replace("tasks/run-step.yml", "tasks/evil.yml", 1), encoding="utf-8")
    return _verify(bundle, kit.trust())


def orchestrator_edited(kit: Kit):
    """Invoke-Runbook.ps1 edited (its signature then no longer matches; the manifest's hash neither)."""
    bundle = kit.copy("a10-ps1")
    target = bundle / "Invoke-Runbook.ps1"
    target.write_bytes(target.read_bytes().replace(b"$ThrottleLimit = 8", b"$ThrottleLimit = 9", 1))
    return _verify(bundle, kit.trust())


def _in_skipped_place(kit: Kit, relative: str):
    bundle = kit.copy("a11-" + relative.replace("/", "_").replace(".", "_"))
    target = bundle / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\xef\xbb\xbfRemove-Item C:\\ -Recurse\r\n")
    return _verify(bundle, kit.trust())


def traversal_in_an_unsigned_manifest(kit: Kit):
    """`../` and absolute paths in a manifest (unsigned: checked with --unsigned, integrity only)."""
    from sfbgen import manifest as mf
    from sfbgen.compiler import compile_file

    out = kit.work / "a12"
    compile_file(ROOT / "samples" / "standard-edition.sfb", out)
    path = out / mf.ROOT_NAME
    text = path.read_text(encoding="utf-8-sig")
    path.write_text(text.replace("    Files = @(", "    Files = @(\n        @{ Path = '../../etc/passwd'; Sha256 = '" + "0" * 64 + "'; Size = 1 }", 1), encoding="utf-8-sig")
    return _verify(out, kit.trust(allow_unsigned=True))


def _listed_file_replaced_by_link(kit: Kit, name: str, destination: str):
    bundle = kit.copy(name)
    target = bundle / SCRIPT
    target.unlink()
    target.symlink_to(destination)
    return _verify(bundle, kit.trust())


def listed_file_replaced_by_a_link(kit: Kit):
    return _listed_file_replaced_by_link(kit, "a13", "/etc/passwd")


def listed_file_replaced_by_zero_device_link(kit: Kit):
    return _listed_file_replaced_by_link(kit, "a14", "/dev/zero")


def listed_file_replaced_by_8_gib(kit: Kit):
    bundle = kit.copy("a15")
    target = bundle / SCRIPT
    with open(target, "r+b") as stream:
        stream.truncate(8 * 1024 ** 3)  # sparse: costs nothing on disk
    return _verify(bundle, kit.trust())


def listed_file_replaced_by_a_fifo(kit: Kit):
    bundle = kit.copy("a16")
    target = bundle / SCRIPT
    target.unlink()
    os.mkfifo(target)
    return _verify(bundle, kit.trust(deadline_s=20.0))


def folder_link_in_the_bundle(kit: Kit):
    bundle = kit.copy("a17")
    (bundle / "fe01.contoso.com" / "out").symlink_to("/etc")
    return _verify(bundle, kit.trust())


def _weak_digest(kit: Kit, algorithm: str):
    """A script signed with MD5 or SHA-1 by the trusted signer (osslsigncode -h)."""
    import shutil as _shutil

    tool = _shutil.which("osslsigncode")
    if tool is None:
        raise Refused("osslsigncode is not installed: the weak digest cannot be made here")
    pem, key = kit.work / "signer.pem", kit.work / "signer.key"
    pem.write_bytes(kit.signer.certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(kit.signer.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    bundle = kit.copy("a18-" + algorithm)
    target = bundle / SCRIPT
    plain = kit.work / f"plain-{algorithm}.ps1"
    plain.write_bytes(_unsign(target.read_bytes()))
    signed = kit.work / f"weak-{algorithm}.ps1"
    subprocess.run([tool, "sign", "-certs", str(pem), "-key", str(key), "-h", algorithm, "-in", str(plain), "-out", str(signed)],
                   check=True, capture_output=True)
    target.write_bytes(signed.read_bytes())
    _rewrite_manifests(bundle, kit.signer.sign)  # even with manifests the trusted signer re-signed
    return _verify(bundle, kit.trust())


def script_without_bom(kit: Kit):
    """A script the trusted signer signed without the byte-order mark: Windows may hash other text."""
    bundle = kit.copy("a19")
    target = bundle / SCRIPT
    target.write_bytes(kit.signer.sign(_unsign(target.read_bytes())[3:]))
    _rewrite_manifests(bundle, kit.signer.sign)
    return _verify(bundle, kit.trust())


def wrong_signer_asked(kit: Kit):
    """--signer names another certificate than the one that signed the bundle."""
    return _verify(kit.bundle, kit.trust(signer="0" * 40))


def planted_cache_behind_a_link(kit: Kit):
    """The cache folder is a link to a folder someone else prepared: no cached code is loaded from it."""
    import sfbgen.resources as resources

    base = kit.work / "cache-home"
    elsewhere = kit.work / "planted"
    elsewhere.mkdir(parents=True)
    (base / "sfbgen").mkdir(parents=True)
    from sfbgen import __version__

    (base / "sfbgen" / __version__).symlink_to(elsewhere)
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(base)
    resources._checked_cache_dir.cache_clear()
    try:
        if resources.cache_dir() is not None:
            return []  # accepted: a cache behind a link would be used
        raise Refused("the linked cache folder is not used")
    finally:
        if saved is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = saved
        resources._checked_cache_dir.cache_clear()


def codesign_cert_into_a_prepared_folder(kit: Kit):
    """codesign-cert writes into a folder where links wait at the names it writes."""
    folder = kit.work / "prepared"
    folder.mkdir()
    victim = kit.work / "victim.txt"
    victim.write_text("precious")
    (folder / "lab.cer").symlink_to(victim)
    (folder / "lab.pfx.tmp").symlink_to(kit.work / "leaked.pfx")
    env = dict(os.environ, SFBGEN_PFX_PASSWORD="pw")
    run = subprocess.run([os.sys.executable, "-m", "sfbgen", "codesign-cert", "--out", str(folder / "lab.pfx")], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise Refused(run.stderr.strip())
    if victim.read_text() != "precious" or (kit.work / "leaked.pfx").exists():
        return []  # accepted: the links were written through
    lab = x509.load_der_x509_certificate((folder / "lab.cer").read_bytes())
    if lab.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
        return []  # accepted: the lab certificate could issue others
    raise Refused("no link was followed, and the lab certificate is not a CA")


def forged_marker(kit: Kit):
    from sfbgen.compiler import compile_file
    from sfbgen.diagnostics import UsageError

    victim = kit.work / "someone-else"
    victim.mkdir()
    (victim / "precious.docx").write_bytes(b"data")
    (victim / ".sfbgen-bundle").write_text('{"generator": "sfbgen"}')
    try:
        compile_file(SAMPLE, victim)
    except UsageError as exc:
        raise Refused(str(exc)) from exc
    return []


def key_inside_out(kit: Kit):
    env = dict(os.environ, SFBGEN_PFX_PASSWORD="pw")
    out = kit.work / "bundle-with-key"
    out.mkdir()
    cli = [os.sys.executable, "-m", "sfbgen"]
    subprocess.run(cli + ["codesign-cert", "--out", str(out / "codesign.pfx")], env=env, check=True, capture_output=True)
    run = subprocess.run(cli + ["compile", str(SAMPLE), "--out", str(out), "--sign-pfx", str(out / "codesign.pfx")], env=env, capture_output=True, text=True)
    if (out / "codesign.pfx").exists() and run.returncode != 0:
        raise Refused(run.stderr.strip())
    return []


# ---------------------------------------------------------------------------------------------------
# Round three (issue 20): what a red team still got through verify


class Crashed(Exception):
    """The command line ended with exit 70 (an internal error) or a traceback."""


def _plant(kit: Kit, name: str, relative: str, data: bytes = b"\xef\xbb\xbfRemove-Item C:\\ -Recurse\r\n") -> Path:
    bundle = kit.copy(name)
    target = bundle / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return bundle


def _collision(kit: Kit, relative: str, like: str | None = None):
    """A second name for a listed file (or for another planted one), as Windows or macOS would merge them."""
    tag = "c-" + __import__("hashlib").sha256(relative.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    data = (kit.bundle / like).read_bytes().replace(b"exit 0", b"exit 1") if like and (kit.bundle / like).is_file() else b"evil\r\n"
    bundle = _plant(kit, tag, relative, data)
    return _verify(bundle, kit.trust())


def _two_planted(kit: Kit, first: str, second: str):
    bundle = _plant(kit, "c2-" + str(abs(hash((first, second))) % 10**8), first, b"one\r\n")
    (bundle / second).write_bytes(b"two\r\n")
    return _verify(bundle, kit.trust())


def _produced(kit: Kit, suffix: str, deployed: bool = False):
    """A file the servers produce, planted in a bundle fresh from compile (a CSR of the attacker's, say)."""
    from sfbgen import manifest as mf
    from sfbgen.authenticode import split_signature

    listing = mf.parse(split_signature((kit.bundle / mf.ROOT_NAME).read_bytes())[0])
    name = next(n for n in listing.produced_on_server if n.endswith(suffix))
    bundle = _plant(kit, "p-" + suffix.strip("."), name, b"-----BEGIN NEW CERTIFICATE REQUEST-----\r\nattacker\r\n")
    return _verify(bundle, kit.trust(deployed=deployed))


def _other_signer_under_the_root(kit: Kit, name: str):
    """A bundle signed by another code-signing certificate the same root issued (anyone's in the company)."""
    from sfbgen.authenticode import SigningKey
    from sfbgen.compiler import compile_file

    key = _key()
    leaf = certificate("someone else under the root", key, issuer=kit.root, issuer_key=kit.root_key)
    out = kit.work / name
    compile_file(ROOT / "samples" / "standard-edition.sfb", out, SigningKey(leaf, key, []))
    return out, SigningKey(leaf, key, [])


def unpinned_signer(kit: Kit):
    """No --signer: any code-signing certificate under the trusted root would have done."""
    out, _ = _other_signer_under_the_root(kit, "r-unpinned")
    return _verify(out, kit.trust(signer=None))


def unpinned_script(kit: Kit):
    """`verify FILE` without --signer."""
    from sfbgen.verify import verify_file

    out, _ = _other_signer_under_the_root(kit, "r-unpinned-file")
    return [verify_file(out / "sfb01.northwind.com" / "4-Start-Services.ps1", kit.trust(signer=None))]


def _revoked(kit: Kit, name: str, embed: bool):
    """The root revoked the signer (a CRL it signed); the CRL given with --crl, or carried in the signature."""
    from sfbgen.authenticode import SigningKey
    from sfbgen.compiler import compile_file

    key = _key()
    leaf = certificate("revoked signer", key, issuer=kit.root, issuer_key=kit.root_key)
    crl = revocation_list(kit.root, kit.root_key, [leaf.serial_number])
    signer = SigningKey(leaf, key, [], crls=[crl] if embed else [])
    out = kit.work / name
    compile_file(ROOT / "samples" / "standard-edition.sfb", out, signer)
    return _verify(out, kit.trust(signer=signer.thumbprint, crls=[] if embed else [crl]))


def revocation_list(issuer, issuer_key, serials, days: int = 7):
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(now).next_update(now + dt.timedelta(days=days)))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(issuer_key, hashes.SHA256())


def _older_bundle(kit: Kit, name: str):
    """(an older bundle of the same signer, the current one, the current topology file)."""
    from sfbgen.compiler import compile_file

    current = kit.work / (name + "-current")
    first = kit.work / (name + ".sfb")
    first.write_bytes(SAMPLE.read_bytes())
    compile_file(first, current, kit.signer)  # serial 1
    older = kit.work / (name + "-older")
    shutil.copytree(current, older)
    second = kit.work / (name + "-new.sfb")
    second.write_text(SAMPLE.read_text(encoding="utf-8").replace('"https://meet.fabrikam.com"', '"https://conf.fabrikam.com"'), encoding="utf-8")
    compile_file(second, current, kit.signer)  # the same folder: serial 2
    return older, current, second


def rollback_by_serial(kit: Kit):
    older, current, _ = _older_bundle(kit, "rb1")
    from sfbgen import manifest as mf
    from sfbgen.authenticode import split_signature

    serial = mf.parse(split_signature((current / mf.ROOT_NAME).read_bytes())[0]).serial
    return _verify(older, kit.trust(not_older_than=serial))


def rollback_by_topology(kit: Kit):
    import hashlib

    older, _, topology = _older_bundle(kit, "rb2")
    return _verify(older, kit.trust(expect_topology=hashlib.sha256(topology.read_bytes()).hexdigest()))


def older_server_folder(kit: Kit):
    """An older server folder (its scripts and its signed manifest.psd1) put in the current bundle."""
    older, current, _ = _older_bundle(kit, "rb3")
    folder = "fe01.contoso.com"
    shutil.rmtree(current / folder)
    shutil.copytree(older / folder, current / folder)
    return _verify(current, kit.trust())


def _manifest_signature(bundle: Path):
    from sfbgen import manifest as mf
    from sfbgen.authenticode import _split

    path = bundle / mf.ROOT_NAME
    data = path.read_bytes()
    text, encoded, _ = _split(data)
    return path, data, text, __import__("base64").b64decode(encoded)


def _write_block(path: Path, text: str, der: bytes, width: int = 64) -> None:
    import base64

    from sfbgen.authenticode import BEGIN, END

    encoded = base64.b64encode(der).decode("ascii")
    lines = [BEGIN] + ["# " + encoded[i:i + width] for i in range(0, len(encoded), width)] + [END]
    path.write_bytes(("\ufeff" + text.removeprefix("\ufeff") + "\r\n" + "\r\n".join(lines) + "\r\n").encode("utf-8"))


def _tlv(tag: int, body: bytes) -> bytes:
    from sfbgen.authenticode import _der_tlv

    return _der_tlv(tag, body)


def _rebuilt(der: bytes, signer_info: bytes | None = None, extra_signer_infos: int = 0, certificates: bytes | None = None) -> bytes:
    """The signature's DER rebuilt field by field, with the SignerInfo, the certificates or the number of
    SignerInfos changed (nothing the signature covers)."""
    from asn1crypto import core

    from sfbgen.authenticode import _AuthenticodeContentInfo

    info = _AuthenticodeContentInfo.load(der)
    data = info["content"]
    one = signer_info if signer_info is not None else data["signer_infos"][0].dump()
    fields = [data["version"].dump(), data["digest_algorithms"].dump(), data["encap_content_info"].dump(),
              certificates if certificates is not None else data["certificates"].dump(),
              data["crls"].dump(), _tlv(0x31, one * (1 + extra_signer_infos))]
    signed_data = _tlv(0x30, b"".join(fields))
    return _tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.7.2").dump() + _tlv(0xA0, signed_data))


def _with_unsigned(der: bytes, attributes: bytes) -> bytes:
    """The SignerInfo with `attributes` (DER of Attribute values, concatenated) as its unsigned attributes."""
    from sfbgen.authenticode import _AuthenticodeContentInfo, _der_contents

    signer_info = _AuthenticodeContentInfo.load(der)["content"]["signer_infos"][0].dump()
    return _rebuilt(der, signer_info=_tlv(0x30, _der_contents(signer_info) + _tlv(0xA1, attributes)))


def _attribute(oid: str, value: bytes) -> bytes:
    from asn1crypto import core

    return _tlv(0x30, core.ObjectIdentifier(oid).dump() + _tlv(0x31, value))


def _malleated(kit: Kit, name: str, change) -> list:
    bundle = kit.copy(name)
    path, _data, text, der = _manifest_signature(bundle)
    result = change(path, text, der)
    if result is not None:
        _write_block(path, text, result)
    return _verify(bundle, kit.trust())


def rewrapped_base64(kit: Kit):
    """The same signature, 76 base64 characters a line instead of 64 (what signed is unchanged)."""
    return _malleated(kit, "m-wrap", lambda path, text, der: _write_block(path, text, der, width=76))


def megabytes_of_unsigned_attributes(kit: Kit):
    from asn1crypto import core

    return _malleated(kit, "m-big", lambda path, text, der: _with_unsigned(der, _attribute("1.2.3.4", core.OctetString(b"A" * 1_700_000).dump())))


def extra_certificate(kit: Kit):
    """A certificate that is not the signer's chain, added to the signature's certificates."""
    from asn1crypto import x509 as asn1_x509

    from sfbgen.authenticode import _AuthenticodeContentInfo, _der_contents

    key = _key()
    stranger = certificate("a stranger", key, ca=True, eku=(), key_cert_sign=True)

    def change(path, text, der):
        certs = _AuthenticodeContentInfo.load(der)["content"]["certificates"].dump()
        added = asn1_x509.Certificate.load(stranger.public_bytes(serialization.Encoding.DER)).dump()
        return _rebuilt(der, certificates=_tlv(0xA0, _der_contents(certs) + added))

    return _malleated(kit, "m-cert", change)


def second_signer_info(kit: Kit):
    return _malleated(kit, "m-two", lambda path, text, der: _rebuilt(der, extra_signer_infos=1))


def timestamp_that_is_an_integer(kit: Kit):
    from asn1crypto import core

    from sfbgen.authenticode import OID_RFC3161_TIMESTAMP

    return _malleated(kit, "m-int", lambda path, text, der: _with_unsigned(der, _attribute(OID_RFC3161_TIMESTAMP, core.Integer(5).dump())))


def deeply_nested_timestamp(kit: Kit):
    """A "timestamp" of 50,000 nested SEQUENCEs (a parser that recurses runs out of stack)."""
    from sfbgen.authenticode import OID_RFC3161_TIMESTAMP

    def nested(depth: int) -> bytes:
        inner, headers = b"\x05\x00", []
        length = len(inner)
        for _ in range(depth):
            header = _tlv(0x30, b"")[:1] + (bytes([length]) if length < 0x80 else
                                            bytes([0x80 | ((length.bit_length() + 7) // 8)]) + length.to_bytes((length.bit_length() + 7) // 8, "big"))
            headers.append(header)
            length += len(header)
        return b"".join(reversed(headers)) + inner

    return _malleated(kit, "m-deep", lambda path, text, der: _with_unsigned(der, _attribute(OID_RFC3161_TIMESTAMP, nested(50_000))))


def _block_edit(kit: Kit, name: str, edit):
    bundle = kit.copy(name)
    from sfbgen import manifest as mf

    path = bundle / mf.ROOT_NAME
    path.write_bytes(edit(path.read_bytes()))
    return _verify(bundle, kit.trust())


def block_with_lf_line_ends(kit: Kit):
    def edit(data: bytes) -> bytes:
        index = data.index(b"\r\n# SIG # Begin")
        return data[:index] + data[index:].replace(b"\r\n", b"\n")
    return _block_edit(kit, "b-lf", edit)


def block_with_a_trailing_space(kit: Kit):
    return _block_edit(kit, "b-space", lambda data: data.replace(b"# SIG # End signature block\r\n", b"# SIG # End signature block \r\n"))


def two_signature_blocks(kit: Kit):
    return _block_edit(kit, "b-two", lambda data: data + data[data.index(b"# SIG # Begin"):])


def _weak_key(bits_or_curve):
    """A key cryptography would not generate (RSA below 1024 bits): made from two primes here."""
    import random

    if not isinstance(bits_or_curve, int):
        from cryptography.hazmat.primitives.asymmetric import ec

        return ec.generate_private_key(bits_or_curve)
    if bits_or_curve >= 1024:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits_or_curve)
    rng = random.Random(bits_or_curve)

    def prime(bits: int) -> int:
        while True:
            n = rng.getrandbits(bits) | (1 << bits - 1) | (1 << bits - 2) | 1
            if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)) and n % 65537 != 1:
                return n

    p, q, e = prime(bits_or_curve // 2), prime(bits_or_curve // 2), 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
                                 rsa.RSAPublicNumbers(e, p * q)).private_key()


def weak_signer_key(kit: Kit, bits_or_curve, label: str):
    """A signer under the trusted root, pinned by the user, whose key is too weak (factorable, or a short curve)."""
    from sfbgen.authenticode import SigningKey
    from sfbgen.compiler import compile_file

    key = _weak_key(bits_or_curve)
    leaf = certificate(f"weak {label} signer", key, issuer=kit.root, issuer_key=kit.root_key)
    signer = SigningKey(leaf, key, [])
    out = kit.work / f"w-{label}"
    compile_file(ROOT / "samples" / "standard-edition.sfb", out, signer)
    return _verify(out, kit.trust(signer=signer.thumbprint))


def script_without_bom_checked_alone(kit: Kit):
    """`verify FILE`: a script without a BOM whose non-ASCII text was signed over its UTF-8 reading
    (Windows PowerShell 5.1 reads it as ANSI: what runs is not what was verified)."""
    from sfbgen.verify import verify_file

    path = kit.work / "no-bom.ps1"
    path.write_bytes(kit.signer.sign("Write-Host 'Grüße'\r\nexit 0\r\n".encode()))
    return [verify_file(path, kit.trust())]


def _cli(*arguments: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", LC_ALL="C.UTF-8", PYTHONPATH=str(ROOT))
    env.pop("SFBGEN_DEBUG", None)
    return subprocess.run([os.sys.executable, "-m", "sfbgen", *arguments], capture_output=True, env=env, timeout=300)


def _root_pem(kit: Kit) -> Path:
    path = kit.work / "root.pem"
    if not path.exists():
        path.write_bytes(kit.root.public_bytes(serialization.Encoding.PEM))
    return path


def _cli_outcome(run: subprocess.CompletedProcess, what: str):
    if run.returncode == 70 or b"Traceback" in run.stderr or b"internal error" in run.stderr:
        raise Crashed(f"exit {run.returncode}: {run.stderr.decode('utf-8', 'replace').strip()[-200:]}")
    if run.returncode == 1 and b"FAILED" in run.stdout:
        last = [line for line in run.stdout.decode("utf-8", "replace").splitlines() if line.startswith("FAILED")][0]
        raise Refused(f"{what}: {last[:180]}")
    return []


def non_utf8_name_in_the_bundle(kit: Kit):
    """A file whose name is not UTF-8, under strict UTF-8 output: refused and named, never exit 70."""
    bundle = kit.copy("n-bytes")
    with open(os.path.join(os.fsencode(bundle / "fe01.contoso.com"), b"evil-\xff\xfe.ps1"), "wb") as stream:
        stream.write(b"\xef\xbb\xbfRemove-Item C:\\ -Recurse\r\n")
    return _cli_outcome(_cli("verify", str(bundle), "--trust", str(_root_pem(kit)), "--signer", kit.signer.thumbprint), "the CLI")


def non_utf8_name_checked_alone(kit: Kit):
    name = os.path.join(os.fsencode(kit.work), b"script-\xff.ps1")
    with open(name, "wb") as stream:
        stream.write(b"\xef\xbb\xbfexit 0\r\n")
    return _cli_outcome(_cli("verify", os.fsdecode(name), "--trust", str(_root_pem(kit)), "--signer", kit.signer.thumbprint), "the CLI")


def forged_summary_in_a_file_name(kit: Kit):
    """A planted name with CR and ANSI escapes that would overwrite the real verdict with "0 failed"."""
    bundle = kit.copy("n-forge")
    (bundle / "x\r57 ok, 0 failed\x1b[K\x1b[1A\x1b[2K.md").write_bytes(b"x")
    run = _cli("verify", str(bundle), "--trust", str(_root_pem(kit)), "--signer", kit.signer.thumbprint)
    if b"\r" in run.stdout or b"\x1b" in run.stdout:
        return []  # accepted: the terminal would show the forged line
    return _cli_outcome(run, "shown escaped")


def verify_cli_without_signer(kit: Kit):
    """The command line without --signer: refused, naming the signer's thumbprint and subject to pin."""
    run = _cli("verify", str(kit.bundle), "--trust", str(_root_pem(kit)))
    if kit.signer.thumbprint.encode() not in run.stdout:
        return []  # not refused the way it must be: nothing to pin
    return _cli_outcome(run, "no --signer")


ROUND_THREE = {
    "a case variant of Test-Bundle.ps1 beside it": lambda kit: _collision(kit, "fe01.contoso.com/test-bundle.ps1", "fe01.contoso.com/Test-Bundle.ps1"),
    "ANSIBLE/site.yml beside ansible/site.yml": lambda kit: _collision(kit, "ANSIBLE/site.yml", "ansible/site.yml"),
    "RUNBOOK.md with a Kelvin sign": lambda kit: _collision(kit, "RUNBOO\u212a.md", "RUNBOOK.md"),
    "RUNBOOK.md in full-width letters (NFKC)": lambda kit: _collision(kit, "\uff32\uff35\uff2e\uff22\uff2f\uff2f\uff2b.md", "RUNBOOK.md"),
    "two names that differ only in Unicode normalization (NFC/NFD)": lambda kit: _two_planted(kit, "caf\u00e9.md", "cafe\u0301.md"),
    "RUNBOOK.md with a trailing dot": lambda kit: _collision(kit, "RUNBOOK.md.", "RUNBOOK.md"),
    "RUNBOOK.md with a trailing space": lambda kit: _collision(kit, "RUNBOOK.md ", "RUNBOOK.md"),
    "a ':' stream of RUNBOOK.md": lambda kit: _collision(kit, "RUNBOOK.md:evil", "RUNBOOK.md"),
    "a reserved device name (NUL.md)": lambda kit: _collision(kit, "NUL.md"),
    "a reserved device name in a server folder (fe01/COM1.ps1)": lambda kit: _collision(kit, "fe01.contoso.com/COM1.ps1"),
    "a .req planted in a fresh bundle": lambda kit: _produced(kit, ".req"),
    "a .pfx planted in a fresh bundle": lambda kit: _produced(kit, ".pfx"),
    "a CsConfiguration.zip planted in a fresh bundle": lambda kit: _produced(kit, "CsConfiguration.zip"),
    "a CA answer planted in a fresh bundle": lambda kit: _produced(kit, ".cer"),
    "a bundle of another signer under the root, no --signer": unpinned_signer,
    "a script of another signer under the root, verify FILE without --signer": unpinned_script,
    "the verify command line without --signer": verify_cli_without_signer,
    "a signer its root revoked (CRL given with --crl)": lambda kit: _revoked(kit, "v-given", embed=False),
    "a signer its root revoked (CRL carried in the signature)": lambda kit: _revoked(kit, "v-embedded", embed=True),
    "an older bundle of the same signer (--not-older-than)": rollback_by_serial,
    "an older bundle of the same signer (--expect-topology)": rollback_by_topology,
    "an older server folder in the current bundle": older_server_folder,
    "MANIFEST.psd1 re-wrapped at 76 characters a line": rewrapped_base64,
    "MANIFEST.psd1 with 1.7 MB of unsigned attributes": megabytes_of_unsigned_attributes,
    "MANIFEST.psd1 with a certificate beyond the signer's chain": extra_certificate,
    "MANIFEST.psd1 with a second SignerInfo": second_signer_info,
    "an RSA-512 signer key": lambda kit: weak_signer_key(kit, 512, "rsa512"),
    "an RSA-768 signer key": lambda kit: weak_signer_key(kit, 768, "rsa768"),
    "an RSA-1024 signer key": lambda kit: weak_signer_key(kit, 1024, "rsa1024"),
    "a P-192 signer key": lambda kit: weak_signer_key(kit, __import__("cryptography.hazmat.primitives.asymmetric.ec", fromlist=["SECP192R1"]).SECP192R1(), "p192"),
    "verify FILE of a script without a BOM (non-ASCII text)": script_without_bom_checked_alone,
    "a timestamp attribute that is an INTEGER": timestamp_that_is_an_integer,
    "a timestamp attribute nested 50,000 deep": deeply_nested_timestamp,
    "a signature block with LF line ends": block_with_lf_line_ends,
    "a signature block with a trailing space": block_with_a_trailing_space,
    "two signature blocks": two_signature_blocks,
    "a file name that is not UTF-8, strict UTF-8 output (bundle)": non_utf8_name_in_the_bundle,
    "a file name that is not UTF-8, strict UTF-8 output (verify FILE)": non_utf8_name_checked_alone,
    "a file name with CR and ANSI escapes forging '0 failed'": forged_summary_in_a_file_name,
}


# ---------------------------------------------------------------------------------------------------
# Round three (issue 20): unbounded inputs to import, fmt, compile and diff, and output injection.
# Each raises Refused with what stopped it, returns [] when the attack got through, and raises
# anything else when it crashed sfbgen.


def _import_refused(raw: bytes) -> None:
    from sfbgen.importer import ImportOptions, import_bytes

    started = time.monotonic()
    result = import_bytes(raw, "hostile.xml", ImportOptions(media="D:\\", ca="ca.t.com\\CA"))
    if result.text is not None:
        return None
    refusal = next(d for d in result.diagnostics if d.is_error)
    raise Refused(f"{refusal.code}: {refusal.message[:110]} ({time.monotonic() - started:.1f} s)")


def import_of_42_mb_of_empty_elements(kit: Kit):
    _import_refused(b"<Topology>" + b"<a/>" * (42 * 1024 * 1024 // 4) + b"</Topology>")
    return []


def import_of_a_tag_with_a_million_attributes(kit: Kit):
    _import_refused(b"<Topology " + b" ".join(b"a%d='1'" % i for i in range(1_000_000)) + b"/>")
    return []


def import_of_100000_nested_elements(kit: Kit):
    _import_refused(b"<Topology>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Topology>")
    return []


def import_of_400001_small_elements(kit: Kit):
    _import_refused(b"<Topology>" + b'<Machine Fqdn="a.b.ccc"/>' * 400_001 + b"</Topology>")
    return []


def fmt_of_misindented_lines(kit: Kit):
    """50,000 lines, every other one mis-indented, a blank line after each: once quadratic in difflib."""
    from bench.generate import generate
    from sfbgen.formatter import format_text
    from sfbgen.formatting_files import format_file

    text = format_text(generate(15_200))[0]
    normal, bad = kit.work / "fmt-normal.sfb", kit.work / "fmt-bad.sfb"
    normal.write_text(text.replace("\n    site", "\n  site", 1))
    bad.write_text("\n\n".join(("  " if i % 2 else "") + line for i, line in enumerate(text.split("\n"))))
    timings = []
    for path in (normal, bad):
        started = time.monotonic()
        format_file(path, write=False, show_diff=True)
        timings.append(time.monotonic() - started)
    if timings[1] > 8 * timings[0] + 0.5:
        return []  # accepted: the pathological file costs more than linear time
    raise Refused(f"linear: {timings[1]:.1f} s for the pathological file, {timings[0]:.1f} s for the normal one")


def compile_of_12000_servers(kit: Kit):
    """The red team's 430 KB topology of 12,000 servers (1.2 GB in 60,000 files)."""
    from bench.generate import generate
    from sfbgen.compiler import compile_file
    from sfbgen.diagnostics import DiagnosticsError

    source = kit.work / "huge.sfb"
    source.write_text(generate(12_000))
    out = kit.work / "huge-bundle"
    try:
        compile_file(source, out, keep_files=False)
    except DiagnosticsError as exc:
        if out.exists():
            return []  # accepted: something was written
        raise Refused(f"{exc.diagnostics[0].code}: {exc.diagnostics[0].message[:140]}") from exc
    return []


def compile_past_the_output_cap(kit: Kit):
    """A bundle larger than --max-output-mb (1 MB here, for a sample of 1.1 MB)."""
    run = subprocess.run([os.sys.executable, "-m", "sfbgen", "compile", str(SAMPLE), "--out", str(kit.work / "capped"), "--max-output-mb", "1"],
                         capture_output=True, text=True)
    if run.returncode == 1 and "SFB271" in run.stderr and not (kit.work / "capped").exists():
        raise Refused(run.stderr.strip().splitlines()[0].split(": ", 1)[-1][:160])
    if run.returncode == 70:
        raise RuntimeError(run.stderr)
    return []


def _hostile_plan(kit: Kit, how: str):
    import json

    from sfbgen.diagnostics import UsageError
    from sfbgen.difference import snapshot

    document = json.loads((kit.bundle / "plan.json").read_text(encoding="utf-8"))
    raw = None
    if how == "wrong types":
        document["servers"][0]["fqdn"] = ["fe01"]
    elif how == "huge":
        document["servers"][0]["certificates"][0]["sans"] = ["a.t.com"] * 20_000
    elif how == "deep nesting":
        raw = b'{"servers": [], "runbook": [], "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    elif how == "missing keys":
        del document["servers"][0]["pool"]
    elif how == "markup in roles":
        document["servers"][0]["roles"] = ['<img src="https://evil.example/beacon">', "[Approve](https://evil.example)"]
    path = kit.work / f"plan-{how.replace(' ', '-')}.json"
    path.write_bytes(raw if raw is not None else json.dumps(document).encode("utf-8"))
    try:
        snapshot(path)
    except UsageError as exc:
        raise Refused(str(exc).split(": ", 1)[-1][:160]) from exc
    return []


def diff_markdown_from_an_old_plan(kit: Kit):
    """An old plan.json's certificate names as an <img> beacon, a fake link and a table break."""
    import json
    import re

    from sfbgen.difference import compare, markdown, snapshot

    document = json.loads((kit.bundle / "plan.json").read_text(encoding="utf-8"))
    for server in document["servers"]:
        for certificate in server["certificates"]:
            certificate["sans"] = ['<img src="https://evil.example/b">', "[Approve](https://evil.example)", "a | b"]
    path = kit.work / "plan-markdown.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    text = markdown(compare(snapshot(path), snapshot(SAMPLE)))
    for line in text.splitlines():
        outside = re.sub(r"`[^`]*`", "", line)
        if "<img" in outside or "](" in outside or (line.startswith("|") and len(re.findall(r"(?<!\\)\|", line)) != 5):
            return []  # accepted: markup or a table break got out
    raise Refused("every value in a code span, '|' escaped in the table")


_FORGING_DOCUMENT = """<Topology>
  <InternalDomains DefaultDomain="t.com"><InternalDomain Name="t.com" /></InternalDomains>
  <Sites><CentralSite SiteId="1"><Name>S</Name></CentralSite></Sites>
  <Clusters>
    <Cluster RequiresSetup="true" Fqdn="se.t.com"><ClusterId SiteId="1" Number="1" /><Machine Fqdn="se.t.com" /></Cluster>
    <Cluster RequiresSetup="false" Fqdn="sql.t.com&#13;imported x.xml: 0 servers\u009b2K"><ClusterId SiteId="1" Number="2" /></Cluster>
  </Clusters>
  <SqlInstances><SqlInstance><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></SqlInstance></SqlInstances>
  <Services>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="Registrar" Instance="1" /><InstalledOn><ClusterId SiteId="1" Number="1" /></InstalledOn></Service>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="UserStore" Instance="1" /><InstalledOn><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></InstalledOn></Service>
  </Services>
</Topology>
"""


def import_summary_forged_by_the_document(kit: Kit):
    document = kit.work / "forging.xml"
    document.write_text(_FORGING_DOCUMENT, encoding="utf-8")
    run = subprocess.run([os.sys.executable, "-m", "sfbgen", "import", str(document), "--out", str(kit.work / "forging.sfb"),
                          "--media", "D:\\", "--ca", "ca.t.com\\CA"], capture_output=True)
    said = (run.stdout + run.stderr).decode("utf-8")
    if run.returncode == 70:
        raise RuntimeError(said)
    if "\r" in said or "\x9b" in said:
        return []  # accepted: the summary can be overwritten on a terminal
    raise Refused("shown as " + next(line for line in said.splitlines() if "sql.t.com" in line).strip()[:120])


def _strict_utf8_with_a_name_not_utf8(kit: Kit, command: str):
    folder = os.fsencode(kit.work / f"names-{command}")
    os.makedirs(folder, exist_ok=True)
    topology = b"t\xff\x1b[2J.sfb"
    shutil.copy(SAMPLE, os.path.join(folder, topology))
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    cli = [os.sys.executable, "-m", "sfbgen"]
    if command == "diff":
        subprocess.run(cli + ["compile", topology, "--out", b"b\xfe"], cwd=folder, env=env, capture_output=True, check=True)
    args = {"check": [b"check", topology], "compile": [b"compile", topology, b"--out", b"b\xfe"], "diff": [b"diff", b"b\xfe", topology]}[command]
    run = subprocess.run(cli + args, cwd=folder, env=env, capture_output=True)
    said = (run.stdout + run.stderr).decode("utf-8", "replace")
    if run.returncode == 70 or "internal error" in said:
        raise RuntimeError(said[-300:])
    if "\x1b" in said:
        return []
    shown = next((line for line in said.splitlines() if "\\xff" in line), said.splitlines()[0] if said else "")
    raise Refused(f"exit {run.returncode}, shown as {shown.strip()[:110]}")


BOUNDED_AND_INJECTION = {
    "import of 42 MB of empty elements": import_of_42_mb_of_empty_elements,
    "import of a tag with a million attributes": import_of_a_tag_with_a_million_attributes,
    "import of 100,000 nested elements": import_of_100000_nested_elements,
    "import of 400,001 small elements": import_of_400001_small_elements,
    "fmt of 50,000 mis-indented lines": fmt_of_misindented_lines,
    "compile of 12,000 servers (430 KB of topology)": compile_of_12000_servers,
    "compile of a bundle past --max-output-mb": compile_past_the_output_cap,
    **{f"diff of a hostile plan.json ({how})": (lambda kit, how=how: _hostile_plan(kit, how))
       for how in ("wrong types", "huge", "deep nesting", "missing keys", "markup in roles")},
    "diff Markdown from an old plan.json (an img beacon, a link, a table break)": diff_markdown_from_an_old_plan,
    "import summary forged by control characters of the document": import_summary_forged_by_the_document,
    **{f"a file name that is not UTF-8, strict UTF-8 output ({command})": (lambda kit, command=command: _strict_utf8_with_a_name_not_utf8(kit, command))
       for command in ("check", "compile", "diff")},
}


ATTACKS = {
    "manifest hashes updated after a script was edited and unsigned": edited_script_and_both_manifests,
    "manifest signer set to nobody": signer_set_to_nobody,
    "a second Signer key in the manifest": second_signer_key,
    "a script deleted with its manifest entry": script_deleted_with_its_entry,
    "a script deleted": script_deleted,
    **{f"an unsigned {ext} added": (lambda kit, ext=ext: _unsigned_extra(kit, "evil" + ext)) for ext in (".PS1", ".ps1xml", ".psc1", ".bat", ".cmd", ".ps1")},
    "the manifests re-signed by the attacker's own certificate": manifest_resigned_by_the_attacker,
    "a code-signing certificate issued by a CA:FALSE TLS certificate": issuer_is_a_tls_certificate,
    "an issuer without basicConstraints": issuer_without_basic_constraints,
    "an issuer whose EKUs say TLS only": issuer_for_tls_only,
    "an expired signer revived by a self-made timestamp": expired_signer_with_a_self_made_timestamp,
    "bytes after the signature block": bytes_after_the_signature_block,
    "the Ansible playbook edited to run another task file": playbook_step_swapped,
    "Invoke-Runbook.ps1 edited": orchestrator_edited,
    **{f"a script at {place}": (lambda kit, place=place: _in_skipped_place(kit, place)) for place in (
        "fe01.contoso.com/out/evil.ps1", "fe01.contoso.com/requests/evil.ps1", "fe01.contoso.com/responses/evil.cmd",
        "fe01.contoso.com/CsConfiguration.zip", "fe01.contoso.com/deep/EdgeExternal.pfx", "edge01.contoso.com/out/CsConfiguration.zip/x")},
    "../ and absolute paths in a manifest": traversal_in_an_unsigned_manifest,
    "a listed file replaced by a link": listed_file_replaced_by_a_link,
    "a listed file replaced by a link to /dev/zero": listed_file_replaced_by_zero_device_link,
    "a listed file replaced by 8 GiB": listed_file_replaced_by_8_gib,
    "a listed file replaced by a FIFO": listed_file_replaced_by_a_fifo,
    "a folder link inside the bundle": folder_link_in_the_bundle,
    "a script signed with an MD5 digest": lambda kit: _weak_digest(kit, "md5"),
    "a script signed with a SHA-1 digest": lambda kit: _weak_digest(kit, "sha1"),
    "a signed script without its byte-order mark": script_without_bom,
    "--signer names another certificate": wrong_signer_asked,
    "cached code planted behind a linked cache folder": planted_cache_behind_a_link,
    "codesign-cert into a folder with links at its names": codesign_cert_into_a_prepared_folder,
    "a forged .sfbgen-bundle marker on someone's folder": forged_marker,
    "--sign-pfx inside --out": key_inside_out,
    **ROUND_THREE,
    **BOUNDED_AND_INJECTION,
}


def run_attack(kit: Kit, name: str) -> tuple[str, str]:
    """('refused' | 'accepted' | 'crashed', what was said)."""
    started = time.monotonic()
    try:
        reports = ATTACKS[name](kit)
    except Refused as exc:
        return "refused", str(exc)[:200]
    except Exception as exc:  # noqa: BLE001 - a crash is what is being counted
        return "crashed", f"{type(exc).__name__}: {exc}"
    failures = [r for r in reports if not r.ok]
    elapsed = time.monotonic() - started
    if not failures:
        return "accepted", "every file reported ok"
    return "refused", f"{failures[0].path}: {'; '.join(failures[0].problems)[:160]} ({elapsed:.1f} s)"


def run_all() -> dict[str, tuple[str, str]]:
    work = Path(tempfile.mkdtemp(prefix="sfbgen-attacks-"))
    try:
        kit = make_kit(work)
        return {name: run_attack(kit, name) for name in ATTACKS}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# A timestamp authority nobody trusts, on loopback (also used by tests/test_timestamp.py)


class TimestampServer:
    """A minimal RFC 3161 timestamp authority with a self-signed certificate."""

    GEN_TIME = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)

    def __init__(self, gen_time: dt.datetime | None = None):
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        from asn1crypto import tsp

        self.gen_time = gen_time or dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=35)
        self.key = _key()
        start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        self.cert = certificate("self-made TSA", self.key, eku=(ExtendedKeyUsageOID.TIME_STAMPING,), days=3650 * 3, not_before=start)
        self.requests = 0
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                authority.requests += 1
                answer = authority.respond(tsp.TimeStampReq.load(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def respond(self, request) -> bytes:
        import hashlib

        from asn1crypto import algos, cms, core, tsp
        from asn1crypto import x509 as asn1_x509
        from cryptography.hazmat.primitives.asymmetric import padding

        info = tsp.TSTInfo({
            "version": "v1", "policy": "1.2.3.4", "message_imprint": request["message_imprint"],
            "serial_number": self.requests, "gen_time": self.gen_time, "nonce": request["nonce"],
        })
        info_der = info.dump()
        cert = asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))
        attrs = cms.CMSAttributes([
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(info_der).digest()]}),
        ])
        signature = self.key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
        signed = cms.SignedData({
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(info_der)},
            "certificates": [cert],
            "signer_infos": [{
                "version": "v1",
                "sid": cms.SignerIdentifier({"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": attrs,
                "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
                "signature": signature,
            }],
        })
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()

    def close(self):
        self.http.shutdown()


# ---------------------------------------------------------------------------------------------------
# `python -m bench.attacks`: replay every attack, print the counts, and (--update-reliability) rewrite
# RELIABILITY.md's "Attacks on trust" section the way bench/reliability.py writes it, without its
# minutes of fuzzing and kills.


def attack_section(attacks: dict) -> list[str]:
    """RELIABILITY.md's "Attacks on trust" section (bench/reliability.py's report() writes it with this too)."""
    return [
        "## Attacks on trust",
        "",
        "Every attack of the security review, replayed by `bench/attacks.py` (and by `tests/test_trust.py`):",
        f"{attacks['tried']} tried, {attacks['refused']} refused, {attacks['accepted']} accepted (must be 0), {attacks['crashed']} crashed (must be 0).",
        "",
        "| attack | outcome | what stopped it |",
        "|---|---|---|",
        *[f"| {name} | {outcome} | {said.replace('|', '/')[:110]} |" for name, (outcome, said) in attacks["results"].items()],
        "",
    ]


def main() -> int:
    import argparse
    import sys

    sys.path.insert(0, str(ROOT))
    from bench.reliability import attack_trials

    parser = argparse.ArgumentParser(description="Replay every attack on sfbgen verify and the compiler.")
    parser.add_argument("--update-reliability", action="store_true", help="rewrite RELIABILITY.md's attack table")
    args = parser.parse_args()
    attacks = attack_trials()
    for name, (outcome, said) in attacks["results"].items():
        print(f"{outcome:8}  {name}: {said[:150]}")
    print(f"{attacks['tried']} tried, {attacks['refused']} refused, {attacks['accepted']} accepted, {attacks['crashed']} crashed")
    if args.update_reliability:
        path = ROOT / "RELIABILITY.md"
        text = path.read_text(encoding="utf-8")
        start = text.index("## Attacks on trust")
        end = text.index("\n## ", start + 1) + 1
        path.write_text(text[:start] + "\n".join(attack_section(attacks)) + "\n" + text[end:], encoding="utf-8")
    return 1 if attacks["accepted"] or attacks["crashed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
