"""Locating the grammar, templates and data files, in a checkout and in an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    """The folder `grammar` or `templates`.

    A wheel carries them as `sfbgen/_data/<name>` (see pyproject.toml); a checkout or an editable
    install keeps them at the top of the repository, beside the package.
    """
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"sfbgen is installed without its {name!r} folder")


@cache
def cache_dir() -> Path | None:
    """A private folder for caches (parser tables, compiled templates), or None when there is none.

    In the user's own cache folder, never the shared temp folder: the caches hold code (pickled parser
    tables, template bytecode), and a file another user planted there would run as ours.
    """
    import os

    from . import __version__

    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "sfbgen" / __version__
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
            return None
    except OSError:
        return None
    return folder


def data_file(name: str) -> Path:
    """A data file shipped inside the package itself (sfbgen/data)."""
    return _PACKAGE / "data" / name
