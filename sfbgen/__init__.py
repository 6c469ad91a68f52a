"""sfbgen: compile a Skype for Business Server topology into signed per-server deployment bundles."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "check_file", "check_text", "compile_file"]


def __getattr__(name: str):
    # The API is imported on first use, so `sfbgen --version` and `--help` start instantly.
    if name in ("check_file", "check_text", "CheckResult"):
        from . import api

        return getattr(api, name)
    if name in ("compile_file", "CompileResult"):
        from . import compiler

        return getattr(compiler, name)
    raise AttributeError(name)
