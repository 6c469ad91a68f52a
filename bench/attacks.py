"""Every attack of the security review (issue 13), replayed against `sfbgen verify --trust` and the
compiler: each must be refused, and none may crash or hang the verifier.

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
        from sfbgen.verify import Trust

        return Trust([self.root], deadline_s=changes.pop("deadline_s", 60.0), **changes)


def certificate(name, key, issuer=None, issuer_key=None, ca=None, eku=(ExtendedKeyUsageOID.CODE_SIGNING,), key_cert_sign=False,
                basic_constraints=True, days=365, not_before=None):
    now = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
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
        path.write_bytes(("\ufeff" + "\n".join(l if not l.startswith("    Signer = ") else "    Signer = ''" for l in text.split("\n"))).encode("utf-8"))
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
    compile_file(ROOT / "samples" / "standard-edition.sfb", out, SigningKey(leaf, leaf_key, [issuer_cert]))
    return _verify(out, kit.trust())


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
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
        leaf = certificate("short-lived signer", leaf_key, issuer=kit.root, issuer_key=kit.root_key, days=30, not_before=past)
        out = kit.work / "a9"
        signer = SigningKey(leaf, leaf_key, [], timestamp_url=tsa.url)
        signer_check = signer  # compile refuses an expired key through the CLI; the library signs what it is given
        compile_file(ROOT / "samples" / "standard-edition.sfb", out, signer_check)
    finally:
        tsa.close()
    return _verify(out, kit.trust())


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

    GEN_TIME = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc)

    def __init__(self, gen_time: dt.datetime | None = None):
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        from asn1crypto import tsp

        self.gen_time = gen_time or dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=35)
        self.key = _key()
        start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
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
