"""The command line: translate arguments, call one library function, print, and map errors to exit codes.

Exit codes: 0 success (warnings allowed), 1 errors in the input or a failed verification,
2 usage (bad arguments, an unreadable file, an output folder sfbgen may not touch), 70 internal error.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Compile a Skype for Business Server topology (topo.sfb) into signed per-server PowerShell bundles and a runbook.",
)


class Format(str, Enum):
    text = "text"
    json = "json"


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
    from .diagnostics import render_json, render_text, summary

    if fmt is Format.json:
        sys.stdout.write(render_json(diagnostics))
        return
    if not diagnostics:
        return
    sources = {source.name: source.text} if source is not None else {}
    sys.stderr.write(render_text(diagnostics, sources, color=_use_color(sys.stderr)))
    sys.stderr.write(summary(diagnostics) + "\n")


def _exit_code(diagnostics) -> int:
    if any(d.code == "SFB001" for d in diagnostics):
        return 2
    return 1 if any(d.is_error for d in diagnostics) else 0


@app.command()
def check(
    file: Path = typer.Argument(..., help="The topology file (.sfb).", show_default=False),
    format: Format = typer.Option(Format.text, "--format", help="text for people, json for CI and editors."),
) -> None:
    """Check a topology: report every error and warning, or nothing when it is sound."""
    from .api import check_file

    result = check_file(file)
    _emit_diagnostics(result.diagnostics, result.source, format)
    code = _exit_code(result.diagnostics)
    if code == 0 and format is Format.text:
        typer.echo(f"{file}: ok", err=True)
    raise typer.Exit(code)


@app.command("compile")
def compile_(
    file: Path = typer.Argument(..., help="The topology file (.sfb).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle folder to write (replaced whole, atomically)."),
    format: Format = typer.Option(Format.text, "--format", help="How to print diagnostics."),
) -> None:
    """Compile a topology into per-server PowerShell bundles, RUNBOOK.md and plan.json."""
    from .compiler import compile_file
    from .diagnostics import DiagnosticsError, SfbgenError

    try:
        result = compile_file(file, out)
    except DiagnosticsError as exc:
        from .api import check_file

        _emit_diagnostics(exc.diagnostics, check_file(file).source, format)
        raise typer.Exit(_exit_code(exc.diagnostics))
    except SfbgenError as exc:
        typer.echo(f"sfbgen: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code)
    _emit_diagnostics(result.diagnostics, None, format)
    scripts = sum(name.endswith(".ps1") for name in result.files)
    typer.echo(f"wrote {out}: {len(result.plan.servers)} servers, {scripts} scripts, RUNBOOK.md, plan.json", err=True)
    if not result.signed:
        typer.echo(
            "WARNING: the bundle is NOT SIGNED. Servers with the AllSigned or RemoteSigned policy will refuse its scripts; "
            "compile with --sign-pfx (see RUNBOOK.md).",
            err=True,
        )


def main() -> None:
    """Entry point: run the app; turn anything unexpected into one line and exit 70, never a traceback."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("sfbgen: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("SFBGEN_DEBUG"):
            raise
        sys.stderr.write(
            f"sfbgen: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in sfbgen. Set SFBGEN_DEBUG=1 for details, and please report it.\n"
        )
        sys.exit(70)
