"""Locating the grammar, templates and data files, in a checkout and in an installed wheel."""

from __future__ import annotations

import enum
import os
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


class CachePolicy(enum.Enum):
    """Whether a run may load cached code from disk (the parser tables are pickles, template bytecode is
    code). Passed by the caller to what builds the parser and the templates: a run that signs what it
    writes passes REFUSE and gets both built afresh from the grammar and templates themselves, whatever
    an earlier run in the same process used."""

    USE = "use"
    REFUSE = "refuse"

    @classmethod
    def for_signing(cls, signing: bool) -> CachePolicy:
        return cls.REFUSE if signing else cls.USE


def _private(path: Path, uid: int) -> bool:
    """A real folder (not a link), ours, that no one else may write to."""
    import os
    import stat

    info = os.lstat(path)
    return stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o077


def cache_dir(policy: CachePolicy = CachePolicy.USE) -> Path | None:
    """A private folder for caches (parser tables, compiled templates), or None when there is none.

    The caches hold code, so a file another user planted there would run as ours. The folder is the
    user's own cache folder, never the shared temp folder; it is used only when it and the folder
    holding it are ours (or root's for the latter) and closed to others, with no link along the way
    we create (`sfbgen/<version>`, mode 0700, checked with lstat), and never under CachePolicy.REFUSE
    (a run that signs).
    """
    if policy is CachePolicy.REFUSE:
        return None
    return _checked_cache_dir()


@cache
def _checked_cache_dir() -> Path | None:
    import os

    from . import __version__

    if os.environ.get("SFBGEN_NO_CACHE"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), ".cache"))
    if not hasattr(os, "getuid"):
        return None  # Windows: no owner check here, so no cache
    uid = os.getuid()
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        holder = os.stat(base)  # the user's cache folder may be a link; what it points to must be safe
        if holder.st_uid not in (uid, 0) or holder.st_mode & 0o022:
            return None
        folder = base
        for part in ("sfbgen", __version__):
            folder = folder / part
            if not folder.exists() and not folder.is_symlink():
                folder.mkdir(mode=0o700)
            elif not folder.is_symlink() and folder.is_dir() and folder.stat().st_uid == uid:
                folder.chmod(0o700)  # ours, but made open by an earlier version: close it
            if not _private(folder, uid):
                return None
    except OSError:
        return None
    return folder


def data_file(name: str) -> Path:
    """A data file shipped inside the package itself (sfbgen/data)."""
    return _PACKAGE / "data" / name


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system says it), at least 1. Here,
    in a module that imports nothing heavy, because `sfbgen diff` asks before it imports anything else."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
