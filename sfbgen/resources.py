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


def data_file(name: str) -> Path:
    """A data file shipped inside the package itself (sfbgen/data)."""
    return _PACKAGE / "data" / name
