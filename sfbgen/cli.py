"""The command line: translate arguments, call one library function, print, and map errors to exit codes.

Exit codes: 0 success (warnings allowed), 1 errors in the input or a failed verification,
2 usage (bad arguments, an unreadable file, an output folder sfbgen may not touch), 70 internal error,
74 the system refused to write (a full disk, a folder we may not write to, a closed output stream),
120 the reader of our output went away.
"""

from __future__ import annotations

import gc
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from . import __version__
from .display import json_text, printable, visible, visible_path

app = typer.Typer(
    add_completion=True,  # --install-completion, --show-completion: bash, zsh, fish, PowerShell (typer)
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Compile a Skype for Business Server topology (topo.sfb) into signed per-server PowerShell bundles and a runbook.",
)


TABLE_WIDTH = 100  # what tables fit in, unless --wide
STDIN = "<stdin>"  # the name diagnostics give standard input (`check -`)


class Format(str, Enum):
    text = "text"
    json = "json"


def _plain_help_types() -> None:
    """Help that names values as a user writes them: `--out PATH`, `--days N`, `--format <text|json>`,
    never typer's Python types (`<list[Path]>`, `<str>`, `<int range>`; issue 21). An argument shows
    its name (or metavar) alone."""
    from typer import core

    typer_type = core._TyperParameter.display_type
    if getattr(typer_type, "sfbgen", False):
        return

    def display_type(self, ctx):
        descriptor = self.type_descriptor
        if descriptor.is_choice and not descriptor.is_list:
            return typer_type(self, ctx)  # the choices: <text|json>
        if isinstance(self, core.TyperArgument):
            return ""
        label = typer_type(self, ctx).lower()  # <path>, <list[Path]>, <int range>, <str>
        if "path" in label:
            return "PATH"
        if "int" in label or "float" in label:
            return "N"
        return "TEXT"

    # typer has no hook for this: its method is replaced (through Any, since a monkeypatch is not typed),
    # and marked, so that a second call keeps the first replacement.
    replacement: Any = display_type
    replacement.sfbgen = True
    parameter_class: Any = core._TyperParameter
    parameter_class.display_type = replacement


_plain_help_types()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sfbgen {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """sfbgen: the Skype for Business Server Deployment Wizard, as a compiler."""


def _use_color(stream) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _emit_diagnostics(diagnostics, source, fmt: Format) -> None:
    _emit_text_or_json(diagnostics, {source.name: source.text} if source is not None else {}, fmt)


def _exit_for(error, fmt: Format):
    """Report an error sfbgen raised on purpose (the topology's diagnostics, or a refused request) and exit."""
    from .diagnostics import DiagnosticsError

    if isinstance(error, DiagnosticsError):
        _emit_text_or_json(error.diagnostics, error.sources, fmt)
        raise typer.Exit(_exit_code(error.diagnostics))
    typer.echo(f"sfbgen: error: {visible(error)}", err=True)
    raise typer.Exit(error.exit_code)


def _exit_code(diagnostics) -> int:
    if any(d.code == "SFB001" for d in diagnostics):
        return 2
    return 1 if any(d.is_error for d in diagnostics) else 0


@app.command()
def check(
    files: list[Path] = typer.Argument(..., metavar="FILE", help="The topology files (.sfb), one or more; - reads standard input.", show_default=False),
    format: Format = typer.Option(Format.text, "--format", help="text for people, json for CI and editors."),
) -> None:
    """Check topologies: report every error and warning, or nothing when they are sound."""
    from .api import check_bytes, check_file

    diagnostics, sources = [], {}
    for file in files:
        # `-` is standard input, as for fmt (issue 21); its diagnostics name it <stdin>.
        result = check_bytes(sys.stdin.buffer.read(), STDIN) if str(file) == "-" else check_file(file)
        diagnostics += result.diagnostics
        if result.topology is not None:
            from .diagnostics import sort_diagnostics
            from .transform import support_diagnostics

            # SFB258 (a product out of Microsoft's support) is the check command's own warning.
            assert result.source is not None  # the topology was read from it
            diagnostics[len(diagnostics) - len(result.diagnostics):] = sort_diagnostics(
                result.diagnostics + support_diagnostics(result.topology, result.source.text, result.source.name))
        if result.source is not None:
            sources[result.source.name] = result.source.text
    # One report for all files (one JSON list, one summary line), in the order the files were given.
    _emit_text_or_json(diagnostics, sources, format)
    code = _exit_code(diagnostics)
    if format is Format.text:
        failed = {d.file for d in diagnostics if d.is_error}
        for file in files:
            if (STDIN if str(file) == "-" else str(file)) not in failed:
                typer.echo(f"{STDIN if str(file) == '-' else visible_path(file)}: ok")
    raise typer.Exit(code)


def _signer(sign_pfx, sign_cert, sign_key, timestamp_url):
    """The signing key the options name, or None; passwords come from the environment or a prompt."""
    from .diagnostics import UsageError

    if sign_pfx is None and sign_cert is None and sign_key is None:
        if timestamp_url:
            raise UsageError("--timestamp-url needs a signing certificate (--sign-pfx, or --sign-cert with --sign-key)")
        return None
    from . import signing

    ask = (lambda prompt: typer.prompt(prompt, hide_input=True, err=True)) if sys.stdin.isatty() else None
    if sign_pfx is not None:
        if sign_cert is not None or sign_key is not None:
            raise UsageError("give either --sign-pfx or --sign-cert with --sign-key, not both")
        return signing.load_pfx(sign_pfx, ask, timestamp_url)
    if sign_cert is None or sign_key is None:
        raise UsageError("--sign-cert and --sign-key go together")
    return signing.load_pem(sign_cert, sign_key, ask, timestamp_url)


def _write_bundle(out: Path, format: Format, signing: tuple, write):
    """What compile and patch share: load the signer (`signing`: --sign-pfx, --sign-cert, --sign-key,
    --timestamp-url), call `write(signer, protected)` and map its failures to exit codes."""
    from .diagnostics import SfbgenError

    sign_pfx, sign_cert, sign_key, timestamp_url = signing
    try:
        signer = _signer(sign_pfx, sign_cert, sign_key, timestamp_url)
        # The key and certificate files are inputs --out may never contain: replacing the bundle would delete them.
        keys = tuple(p for p in (sign_pfx, sign_cert, sign_key) if p is not None)
        return write(signer, keys)
    except SfbgenError as exc:  # DiagnosticsError included
        _exit_for(exc, format)
    except OSError as exc:
        # Writing the bundle failed (a full disk, a read-only folder): what was there before is as it was.
        typer.echo(f"sfbgen: error: could not write the bundle: {visible(exc)}. {visible_path(out)} is unchanged.", err=True)
        raise typer.Exit(74) from None


@app.command("compile")
def compile_(
    file: Path = typer.Argument(..., help="The topology file (.sfb).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle folder to write (replaced whole, atomically)."),
    sign_pfx: Path | None = typer.Option(None, "--sign-pfx", help="Sign every script with this PKCS#12 file; its password from SFBGEN_PFX_PASSWORD or a prompt."),
    sign_cert: Path | None = typer.Option(None, "--sign-cert", help="Sign with this PEM certificate (with --sign-key); extra certificates in the file form the chain."),
    sign_key: Path | None = typer.Option(None, "--sign-key", help="The PEM private key for --sign-cert."),
    timestamp_url: str | None = typer.Option(None, "--timestamp-url", help="An RFC 3161 timestamp server, so signatures outlive the certificate."),
    serial: int | None = typer.Option(None, "--serial", help="The compile serial for the manifests (default: the previous bundle's in --out, plus one when the topology, signer or sfbgen changed; else 1)."),
    format: Format = typer.Option(Format.text, "--format", help="How to print diagnostics."),
    max_servers: int = typer.Option(10_000, "--max-servers", min=1, help="Refuse, before writing anything, a topology of more servers than this."),
    max_output_mb: int = typer.Option(2048, "--max-output-mb", min=1, help="Refuse, before writing anything, a bundle larger than this many MB."),
) -> None:
    """Compile a topology into per-server PowerShell bundles, RUNBOOK.md and plan.json."""
    from .compiler import Limits, compile_file

    def write(signer, keys):
        return compile_file(file, out, signer, keep_files=False, protected=keys, serial=serial,
                            limits=Limits(max_servers, max_output_mb))

    result = _write_bundle(out, format, (sign_pfx, sign_cert, sign_key, timestamp_url), write)
    _emit_text_or_json(result.diagnostics, _source_text(file), format)
    scripts = sum(len(s.scripts) for s in result.plan.servers)
    signed = "signed" if result.signed else "unsigned"
    typer.echo(f"wrote {visible_path(out)}: {_count(len(result.plan.servers), 'server')}, {scripts} {signed} scripts, RUNBOOK.md, plan.json, ansible/; serial {result.serial}")
    if not result.signed:
        typer.echo(
            "WARNING: the bundle is NOT SIGNED. Servers with the AllSigned or RemoteSigned policy will refuse its scripts; "
            "compile with --sign-pfx (see RUNBOOK.md).",
            err=True,
        )


@app.command("patch")
def patch(
    file: Path = typer.Argument(..., help="The topology file (.sfb) of the deployment to update.", show_default=False),
    installer: str = typer.Option(..., "--installer", help="The update installer as the servers read it (a local or UNC path), e.g. \\\\files\\CU\\SkypeServerUpdateInstaller.exe."),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle folder to write (replaced whole, atomically)."),
    arguments: str = typer.Option("", "--arguments", help="The installer's switches (Microsoft documents none for SkypeServerUpdateInstaller.exe)."),
    target_version: str = typer.Option("", "--target-version", help="The version the update brings: a server already there is skipped."),
    edge_installer: str = typer.Option("", "--edge-installer", help="Where Edge Servers (not domain members) read the installer (default: --installer)."),
    back_end: list[str] = typer.Option([], "--back-end", help="POOL=SQLFQDN: an Enterprise pool's back end SQL Server (the topology does not name it); once per pool."),
    collocated_stores: list[str] = typer.Option([], "--collocated-stores", help="POOL: its back end also holds Archiving or Monitoring databases (-ExcludeCollocatedStores)."),
    upgrade_to: str = typer.Option("", "--upgrade-to", help="subscription: the in-place upgrade from Skype for Business Server 2019 with the Subscription Edition installer."),
    windows_server: str = typer.Option("", "--windows-server", help="With --upgrade-to: the Windows Server versions the new product runs on, e.g. 2019,2022."),
    version_entry: str = typer.Option("", "--version-entry", help="The installed product (Programs and Features) whose version is compared (default: the product's Core Components)."),
    pools: str = typer.Option("serial", "--pools", help="serial: one pool after another (a failure stops the walk); independent: a pool waits only for its next hop's pool."),
    sign_pfx: Path | None = typer.Option(None, "--sign-pfx", help="Sign every script with this PKCS#12 file; its password from SFBGEN_PFX_PASSWORD or a prompt."),
    sign_cert: Path | None = typer.Option(None, "--sign-cert", help="Sign with this PEM certificate (with --sign-key)."),
    sign_key: Path | None = typer.Option(None, "--sign-key", help="The PEM private key for --sign-cert."),
    timestamp_url: str | None = typer.Option(None, "--timestamp-url", help="An RFC 3161 timestamp server, so signatures outlive the certificate."),
    serial: int | None = typer.Option(None, "--serial", help="The compile serial for the manifests (as compile's)."),
    format: Format = typer.Option(Format.text, "--format", help="How to print diagnostics."),
) -> None:
    """Compile one update (or the in-place upgrade to Subscription Edition) into a signed bundle: Microsoft's procedure per role, pools one after another."""
    from .diagnostics import UsageError
    from .patching import PatchSettings, patch_file

    def write(signer, keys):
        pairs = []
        for item in back_end:
            pool, sep, sql = item.partition("=")
            if not sep or not pool or not sql:
                raise UsageError(f"--back-end {visible(item)}: write POOL=SQLFQDN")
            pairs.append((pool.strip(), sql.strip()))
        settings = PatchSettings(
            installer=installer, arguments=arguments, target_version=target_version, edge_installer=edge_installer,
            back_ends=tuple(pairs), collocated_stores=tuple(collocated_stores), upgrade_to=upgrade_to.strip().lower(),
            version_entry=version_entry, pools=pools.strip().lower(), windows_server=tuple(v.strip() for v in windows_server.split(",") if v.strip()))
        return patch_file(file, out, settings, signer, protected=keys, serial=serial)

    result = _write_bundle(out, format, (sign_pfx, sign_cert, sign_key, timestamp_url), write)
    _emit_text_or_json(result.diagnostics, _source_text(file), format)
    pool_count = len(result.plan.windows)
    signed = "signed" if result.signed else "unsigned"
    typer.echo(f"wrote {visible_path(out)}: patch of {_count(len(result.plan.servers), 'server')} in {_count(pool_count, 'pool')}, "
               f"{len(result.plan.steps)} steps in {len(result.plan.waves())} waves, {signed}, RUNBOOK.md, plan.json, ansible/; serial {result.serial}")
    if not result.signed:
        typer.echo("WARNING: the bundle is NOT SIGNED. Servers with the AllSigned policy will refuse its scripts; run sfbgen patch with --sign-pfx.", err=True)


@app.command("diff")
def diff(
    old: Path = typer.Argument(..., help="What is deployed: a topology file, a compiled bundle folder, or its plan.json.", show_default=False),
    new: Path = typer.Argument(..., help="The changed topology file (or a bundle, or a plan.json).", show_default=False),
    format: Format = typer.Option(Format.text, "--format", help="text: Markdown for a pull-request comment; json for CI."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 0 when nothing changes, 2 when something does, 1 on any error (as Terraform's -detailed-exitcode)."),
) -> None:
    """Show what a topology change does to the deployment: servers, scripts, certificates, steps to run."""
    from .diagnostics import SfbgenError
    from .difference import compare, markdown, snapshots

    try:
        try:
            before, after = snapshots(old, new)
        except SfbgenError as exc:  # DiagnosticsError included
            _exit_for(exc, Format.text)
        except OSError as exc:
            typer.echo(f"sfbgen: error: cannot read: {visible(exc)}", err=True)
            raise typer.Exit(2) from None
    except typer.Exit as stop:
        # With --exit-code, 2 means "a change": every error is 1 then, whatever its kind.
        raise typer.Exit(1 if exit_code and stop.exit_code else stop.exit_code) from None
    difference = compare(before, after)
    if format is Format.json:
        # Values from an old plan.json were validated and made visible; any byte that was not UTF-8 in a
        # file name is shown as its escape, so that no output stream can refuse the text.
        sys.stdout.write(json_text(difference.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(printable(markdown(difference)))
    if exit_code and not difference.empty:
        raise typer.Exit(2)


@app.command()
def certs(
    file: Path = typer.Argument(..., help="The topology file (.sfb).", show_default=False),
    format: Format = typer.Option(Format.text, "--format", help="table for people, json for machines."),
    wide: bool = typer.Option(False, "--wide", help="One line per certificate, however long (the text fits 100 columns otherwise)."),
) -> None:
    """Print every certificate the topology needs: server, usages, subject, names, key and authority."""
    from .api import compile_path

    # Every warning the pipeline gives (the checks' and the plan's certificates', once each) goes to
    # stderr (issue 21: certs printed none), so that the table on stdout stays the table.
    result = compile_path(file)
    _emit_diagnostics(result.diagnostics, result.source, Format.text)
    if not result.ok:
        raise typer.Exit(_exit_code(result.diagnostics))
    plan = result.plan
    assert plan is not None  # result.ok
    rows = []
    for server in plan.servers:
        for request in server.requests:
            rows.append((server.fqdn, request))
    if format is Format.json:
        import json

        document = [{"server": fqdn, **request.to_plan()} for fqdn, request in rows]
        typer.echo(json.dumps(document, indent=2))
        return
    if wide:
        table = [("SERVER", "USAGES", "SUBJECT", "KEY", "AUTHORITY", "SUBJECT ALTERNATIVE NAMES")]
        for fqdn, r in rows:
            how = f"copied from {r.requested_on}" if plan.server(fqdn).imports_shared(r) else r.authority
            key = f"{r.key_size}{' exportable' if r.exportable_key else ''}"
            table.append((fqdn, ",".join(r.usages), r.subject, key, how, ", ".join(r.sans) or "(none)"))
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[5])
        return
    # Within 100 columns: one block per certificate, its names wrapped.
    import textwrap

    for fqdn, r in rows:
        how = f"copied from {r.requested_on}" if plan.server(fqdn).imports_shared(r) else r.authority
        key = f"{r.key_size} bits{', exportable' if r.exportable_key else ''}"
        typer.echo(textwrap.shorten(f"{fqdn}: {', '.join(r.usages)}", width=TABLE_WIDTH, placeholder="..."))
        typer.echo("    " + textwrap.shorten(f"subject {r.subject}; {key}; {how}", width=TABLE_WIDTH - 4, placeholder="..."))
        names = ", ".join(r.sans) or "(none)"
        for line in textwrap.wrap(names, width=TABLE_WIDTH, initial_indent="    names   ", subsequent_indent="            ", break_on_hyphens=False):
            typer.echo(line)


@app.command()
def verify(
    paths: list[Path] = typer.Argument(..., help="A compiled bundle folder, or signed script files.", show_default=False),
    trust: list[Path] = typer.Option([], "--trust", help="A PEM or DER root certificate the signer must chain to (repeatable)."),
    trust_tsa: list[Path] = typer.Option([], "--trust-tsa", help="A root certificate trusted for timestamps (repeatable); without one, no timestamp counts."),
    signer: str | None = typer.Option(None, "--signer", help="The SHA-1 thumbprint the bundle must be signed with (required, here or in --trust-file)."),
    trust_file: Path | None = typer.Option(None, "--trust-file", help='A JSON file that pins the signer and the roots: {"signer": THUMBPRINT, "roots": [THUMBPRINT, ...]}.'),
    crl: list[Path] = typer.Option([], "--crl", help="A certificate revocation list (PEM or DER) of a CA of the signer's chain (repeatable)."),
    deployed: bool = typer.Option(False, "--deployed", help="The bundle has been used on servers: accept the files they produce (named in the manifest)."),
    expect_topology: Path | None = typer.Option(None, "--expect-topology", help="The topology file the bundle must be compiled from (its SHA-256 must match)."),
    not_older_than: int | None = typer.Option(None, "--not-older-than", help="Refuse a bundle whose compile serial is lower than this one (a rollback)."),
    unsigned: bool = typer.Option(False, "--unsigned", help="Check an unsigned bundle's integrity only (nothing proves who made it)."),
    format: Format = typer.Option(Format.text, "--format", help="text for people; json: one document on stdout (format_version 1): every file, ok or its problems and warnings."),
) -> None:
    """Check a bundle: its signed manifest first, then every file and every script's signature."""
    from .display import visible, visible_path
    from .verify import Trust, TrustInputError, trust_inputs, verify_bundle, verify_file

    if not hasattr(os, "O_NOFOLLOW"):
        # Windows: Python cannot open a file there without following a link or junction, and a
        # verifier that can be led elsewhere proves nothing. The bundle checks itself on Windows.
        typer.echo("sfbgen: error: sfbgen verify needs Linux or macOS (it opens every file without following links); "
                   "on Windows run the bundle's Test-Bundle.ps1 with -ExecutionPolicy AllSigned, which checks the same", err=True)
        raise typer.Exit(2)
    if not trust and not unsigned:
        typer.echo("sfbgen: error: give --trust ROOT.pem (the root the bundle's signer chains to) and --signer THUMBPRINT; "
                   "--unsigned checks only the integrity of an unsigned bundle", err=True)
        raise typer.Exit(2)
    try:
        options: Trust = trust_inputs(trust, trust_tsa, signer, trust_file, crl, expect_topology, not_older_than)
    except TrustInputError as exc:
        typer.echo(f"sfbgen: error: {visible(exc)}", err=True)
        raise typer.Exit(2) from None
    options.allow_unsigned, options.deployed = unsigned, deployed
    reports = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            reports.extend(verify_bundle(path, options))
        elif path.exists() or path.is_symlink():
            reports.append(verify_file(path, options))
        else:
            typer.echo(f"sfbgen: error: no such file or folder: {visible_path(path)}", err=True)
            raise typer.Exit(2)
    failed = sum(1 for report in reports if not report.ok)
    if format is Format.json:
        # JSON escapes every control character itself; names that are not UTF-8 are shown with `visible`.
        files = [{"path": visible(r.path), "ok": r.ok, "problems": [visible(p) for p in r.problems], "note": visible(r.note),
                  "warnings": [visible(w) for w in r.warnings]} for r in reports]
        sys.stdout.write(json_text({"format_version": VERIFY_JSON_VERSION, "command": "verify", "ok": len(reports) - failed,
                                    "failed": failed, "files": files}))
        raise typer.Exit(1 if failed else 0)
    failed = 0
    # Names and problems come from the bundle (a planted file's name, a certificate's subject): shown
    # with `visible`, so that no CR, escape or byte that is not UTF-8 can overwrite or forge a line.
    for report in reports:
        if report.ok:
            typer.echo(visible(f"ok      {report.path}" + (f"  ({report.note})" if report.note else "")))
        else:
            failed += 1
            typer.echo(visible(f"FAILED  {report.path}: {'; '.join(report.problems)}"))
        for warning in report.warnings:
            typer.echo(visible(f"        warning: {warning}"))
    typer.echo(f"{len(reports) - failed} ok, {failed} failed")
    raise typer.Exit(1 if failed else 0)


VERIFY_JSON_VERSION = 1  # `verify --format json`: bumped when a field changes meaning or goes


@app.command("codesign-cert")
def codesign_cert(
    out: Path = typer.Option(..., "--out", help="The PKCS#12 file to write (its password from SFBGEN_PFX_PASSWORD or a prompt)."),
    name: str = typer.Option("sfbgen lab code signing", "--name", help="The certificate's common name."),
    days: int = typer.Option(365, "--days", help="How long it is valid."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file (and its .cer): the key it holds is lost."),
) -> None:
    """Make a self-signed code-signing certificate for a lab, and say how to trust it on the servers."""
    from cryptography.hazmat.primitives import serialization

    from .signing import PASSWORD_VARIABLE, make_codesign_certificate, write_new_file, write_pfx

    # An existing key may be the one the servers already trust: never replace it unasked (issue 21).
    existing = [p for p in (out, out.with_suffix(".cer")) if p.exists() or p.is_symlink()]
    if existing and not force:
        typer.echo(f"sfbgen: error: {', '.join(visible_path(p) for p in existing)} exists; a new key would replace the one the servers may trust. "
                   "Choose another --out, or add --force to replace it", err=True)
        raise typer.Exit(2)
    password = os.environ.get(PASSWORD_VARIABLE)
    if not password:
        if not sys.stdin.isatty():
            typer.echo(f"sfbgen: error: set {PASSWORD_VARIABLE} to the password for {out}", err=True)
            raise typer.Exit(2)
        password = typer.prompt(f"Password for {out}", hide_input=True, confirmation_prompt=True, err=True)
    key, cert = make_codesign_certificate(name, days=days)
    write_pfx(out, key, cert, password.encode("utf-8"))
    cer = out.with_suffix(".cer")
    write_new_file(cer, cert.public_bytes(serialization.Encoding.DER), 0o644)
    thumbprint = cert.fingerprint(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA1"]).SHA1()).hex().upper()
    typer.echo(f"wrote {out} (key and certificate) and {cer} (certificate only); thumbprint {thumbprint}")
    typer.echo(
        f"It is not a CA: it signs scripts and can vouch for nothing else. On every server, trust it for AllSigned:\n"
        f"  Import-Certificate -FilePath .\\{cer.name} -CertStoreLocation Cert:\\LocalMachine\\Root\n"
        f"  Import-Certificate -FilePath .\\{cer.name} -CertStoreLocation Cert:\\LocalMachine\\TrustedPublisher\n"
        f"and check bundles with: sfbgen verify BUNDLE --trust {cer} --signer {thumbprint}",
    )


class Product(str, Enum):
    """--product's choices: the products of data/platform.json (tests/test_cli_day_one.py keeps them equal)."""

    v2015 = "2015"
    v2019 = "2019"
    subscription = "subscription"


@app.command()
def explain(
    code: str = typer.Argument(..., metavar="CODE", help="A diagnostic code, such as SFB221.", show_default=False),
) -> None:
    """Print a diagnostic code's rule, the source it comes from, and an example fix."""
    from .explain import explain as text_of

    text = text_of(code)
    if text is None:
        typer.echo(f"sfbgen: error: {visible(code)} is not a code sfbgen reports; codes look like SFB221", err=True)
        raise typer.Exit(2)
    sys.stdout.write(text)


class EdgeExternal(str, Enum):
    public = "public"
    topology = "topology"


@app.command("fmt")
def fmt(
    files: list[Path] = typer.Argument(..., metavar="FILE", help="The topology files (.sfb) to format in place; - reads standard input and writes standard output.", show_default=False),
    check_only: bool = typer.Option(False, "--check", help="Change nothing: list the files that are not formatted, and exit 1 if there are any."),
    show_diff: bool = typer.Option(False, "--diff", help="Change nothing: show what formatting would change, as a unified diff."),
    format: Format = typer.Option(Format.text, "--format", help="With --check: json prints one document (format_version 1): every file, whether it is formatted, and the diagnostics."),
) -> None:
    """Rewrite topologies in their one canonical form (comments kept), so that a pull request shows only real changes."""
    from .formatting_files import FormatOutcome, format_file, format_stdin

    if format is Format.json and not check_only:
        typer.echo("sfbgen: error: --format json goes with --check", err=True)
        raise typer.Exit(2)
    diagnostics, sources, unformatted, report = [], {}, [], []
    for file in files:
        if str(file) == "-":
            outcome = format_stdin(sys.stdin.buffer.read(), sys.stdout, write=not (check_only or show_diff), show_diff=show_diff)
        else:
            outcome = format_file(file, write=not (check_only or show_diff), show_diff=show_diff)
        diagnostics += outcome.diagnostics
        sources.update(outcome.sources)
        report.append({"file": STDIN if str(file) == "-" else visible_path(file), "formatted": outcome.state is not FormatOutcome.CHANGED,
                       "ok": not any(d.is_error for d in outcome.diagnostics)})
        if outcome.state is FormatOutcome.CHANGED:
            unformatted.append(file)
            if format is Format.json:
                pass
            elif show_diff:
                # Exact when piped (for patch); on a terminal, a control character or escape of the
                # file (in a comment) is shown as its code point, never played.
                sys.stdout.write(_shown_diff(outcome.diff) if _isatty(sys.stdout) else outcome.diff)
            elif check_only:
                typer.echo(f"{visible_path(file)}: not formatted")
            elif str(file) != "-":
                typer.echo(f"{visible_path(file)}: formatted", err=True)
    if format is Format.json:
        for entry in report:
            entry["ok"] = entry["ok"] and entry["formatted"]
        sys.stdout.write(json_text({"format_version": FMT_JSON_VERSION, "command": "fmt --check", "files": report,
                                    "diagnostics": [d.to_dict() for d in diagnostics]}, indent=2) + "\n")
    else:
        _emit_text_or_json(diagnostics, sources, Format.text)
    code = _exit_code(diagnostics)
    if code:
        raise typer.Exit(code)
    raise typer.Exit(1 if unformatted and (check_only or show_diff) else 0)


FMT_JSON_VERSION = 1  # `fmt --check --format json`: bumped when a field changes meaning or goes


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A Topology Builder document (.tbxml) or a published topology (Get-CsTopology -AsXml > file).", show_default=False),
    out: Path | None = typer.Option(None, "--out", "-o", help="The .sfb file to write (stdout when not given)."),
    media: str | None = typer.Option(None, "--media", help="Where the installation media is (the document does not say)."),
    ca: str | None = typer.Option(None, "--ca", help='The online enterprise CA, "<CA FQDN>\\<CA name>".'),
    offline_ca: bool = typer.Option(False, "--offline-ca", help="Every certificate is an offline request (the default when --ca is not given)."),
    product: Product | None = typer.Option(None, "--product", help="The product, when the document's ServiceVersion does not say it exactly (required for a Lync Server document)."),
    edge_external: EdgeExternal = typer.Option(EdgeExternal.public, "--edge-external", help="An Edge pool's external certificate: public (an offline request to a public CA) or topology (the topology's authority)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
    format: Format = typer.Option(Format.text, "--format", help="text for people; json: one document on stdout (format_version 1) with the diagnostics, the pools and, without --out, the topology."),
) -> None:
    """Import the topology already published (or saved by Topology Builder) as a topology file."""
    from .diagnostics import has_errors
    from .importer import ImportOptions, import_file

    if ca and offline_ca:
        typer.echo("sfbgen: error: give --ca or --offline-ca, not both", err=True)
        raise typer.Exit(2)
    if out is not None:
        if out.exists() and not force:
            typer.echo(f"sfbgen: error: {visible_path(out)} exists; add --force to replace it", err=True)
            raise typer.Exit(2)
        if out.exists() and out.resolve() == file.resolve():
            typer.echo(f"sfbgen: error: --out {visible_path(out)} is the document itself", err=True)
            raise typer.Exit(2)
    result = import_file(file, ImportOptions(media=media, ca=ca, offline_ca=offline_ca, product=product.value if product else None,
                                             edge_external=edge_external.value))
    if format is Format.json:
        _import_json(file, out, result)
    _emit_text_or_json(result.diagnostics, {}, Format.text)
    if result.text is None:
        raise typer.Exit(2 if any(d.code == "SFB001" for d in result.diagnostics) else 1)
    if out is None:
        sys.stdout.write(result.text)
    else:
        from .bundle import write_file_atomically

        write_file_atomically(out, result.text.encode("utf-8"))
    # The summary goes to stdout, unless stdout carries the topology itself.
    to_stderr = out is None
    # Every value from the document or the command line made visible: a control character in a name
    # of the document cannot forge a line of this summary.
    typer.echo(f"imported {visible_path(file)} ({result.format}): {_count(result.servers, 'server')} in {_count(len(result.pools), 'pool')}"
               + (f" -> {visible_path(out)}" if out else ""), err=to_stderr)
    for item in result.not_deployed:
        typer.echo(f"  not deployed by sfbgen: {visible(item.fqdn)}: {visible(item.what)} (line {item.line})", err=to_stderr)
    raise typer.Exit(1 if has_errors(result.diagnostics) else 0)


IMPORT_JSON_VERSION = 1  # `import --format json`: bumped when a field changes meaning or goes


def _import_json(file: Path, out: Path | None, result) -> None:
    """`sfbgen import --format json`: everything the text output says, as one JSON document on stdout;
    the topology is written to --out, or carried in the document when there is no --out. Exits."""
    from .diagnostics import has_errors

    if result.text is not None and out is not None:
        from .bundle import write_file_atomically

        write_file_atomically(out, result.text.encode("utf-8"))
    document = {
        "format_version": IMPORT_JSON_VERSION,
        "command": "import",
        "document": visible_path(file),
        "document_format": result.format,
        "ok": result.text is not None and not has_errors(result.diagnostics),
        "out": visible_path(out) if out is not None and result.text is not None else None,
        "servers": result.servers,
        "pools": [{"fqdn": pool.cluster.fqdn, "kind": pool.kind, "site": pool.site, "line": pool.cluster.line,
                   "servers": [machine.fqdn for machine in pool.cluster.machines]} for pool in result.pools],
        "not_deployed": [{"fqdn": item.fqdn, "what": item.what, "line": item.line} for item in result.not_deployed],
        "diagnostics": [d.to_dict() for d in result.diagnostics],
        "topology": result.text if out is None else None,
    }
    sys.stdout.write(json_text(document, indent=2) + "\n")
    if result.text is None:
        raise typer.Exit(2 if any(d.code == "SFB001" for d in result.diagnostics) else 1)
    raise typer.Exit(1 if has_errors(result.diagnostics) else 0)


def _isatty(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def _shown_diff(diff: str) -> str:
    from .display import code_points

    return "".join(code_points(line) + "\n" for line in diff.split("\n")[:-1]) if diff else ""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _source_text(file: Path) -> dict[str, str]:
    """The topology's text, to show source lines under warnings (nothing when it cannot be read)."""
    from .source import read_source

    source, _ = read_source(file)
    return {source.name: source.text} if source is not None else {}


def _emit_text_or_json(diagnostics, sources, fmt: Format) -> None:
    from .diagnostics import render_json, render_text, summary

    if fmt is Format.json:
        sys.stdout.write(render_json(diagnostics))
    elif diagnostics:
        sys.stderr.write(render_text(diagnostics, sources, color=_use_color(sys.stderr)))
        sys.stderr.write(summary(diagnostics) + "\n")


def main() -> None:
    """Entry point: run the app; turn anything unexpected into one line and exit 70, never a traceback."""
    # A run builds one large graph of long-lived objects (parse tree, model, plan) that makes next to
    # no reference cycles, and frees it at exit. With CPython's default thresholds the cyclic collector
    # walks that growing graph hundreds of times: a third of a 5,000-server compile, for nothing (peak
    # memory is the same without it). Collect rarely rather than never, so that no input can make
    # garbage pile up without bound. The library leaves its caller's settings alone.
    gc.set_threshold(100_000, 50, 100)
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc.code)
        if code == 1 and _pipe_closed():
            code = 120  # click caught the EPIPE of a closed pipe (`| head`) and exits 1: the documented code is 120
    except KeyboardInterrupt:
        _say("sfbgen: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = 120  # the reader of our output went away (`| head`): nothing left to say, and no one to say it to
    except OSError as exc:
        # The system refused us something (ENOSPC, EACCES, EROFS, a closed stream): not a bug, so say
        # what was refused, and where.
        _say(f"sfbgen: error: {visible(exc)}\n")
        code = 74
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("SFBGEN_DEBUG"):
            raise
        _say(
            f"sfbgen: internal error: {type(exc).__name__}: {visible(exc)}\n"
            "This is a bug in sfbgen. Set SFBGEN_DEBUG=1 for details, and please report it.\n"
        )
        code = 70
    _exit_now(code)


def _pipe_closed() -> bool:
    """Whether click (or typer) met a closed output pipe: on EPIPE it swaps sys.stdout and sys.stderr
    for a PacifyFlushWrapper and exits 1 (click/core.py, BaseCommand.main; typer/core.py, _main; typer
    0.29 carries its own copy of click, typer._click, hence the class is known by its name)."""
    return any(type(stream).__name__ == "PacifyFlushWrapper" for stream in (sys.stdout, sys.stderr))


def _say(text: str) -> None:
    """A last word on stderr, when there is still a stderr to say it on."""
    try:
        sys.stderr.write(text)
    except (AttributeError, OSError):  # None (started with 2>&-), or a descriptor closed under us
        pass


def _exit_status(code: object) -> int:
    """What the process exits with for SystemExit(code), as Python itself would (a message: print it, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    _say(f"{code}\n")
    return 1


def _exit_now(code: int) -> None:
    """Flush our output and end the process without tearing the interpreter down.

    By now every file sfbgen wrote is closed (bundles are committed or removed) and any worker process
    has been joined. What a normal exit would still do is free, one by one, every object of the run:
    about a tenth of a second after compiling 1,000 servers, for a process that is ending anyway. mypy ends
    the same way, for the same reason (mypy.util.hard_exit).
    """
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: the stream was closed before we started (`2>&-`)
                stream.flush()
    except (BrokenPipeError, OSError):
        # The reader went away (`sfbgen check --format json | head`): what was written is lost, say so
        # by the exit code, as Python does when it cannot flush at exit.
        code = code or 120
    os._exit(code)
