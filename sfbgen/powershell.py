"""Emitting PowerShell: the one quoting function, and Skype cmdlet calls checked against the catalog.

Every value that comes from a topology reaches a script through `quote` (a single-quoted literal,
where PowerShell expands nothing) or `comment` (a line comment). Every Skype for Business cmdlet call
is built by `cmdlet`, which refuses a call that fits none of the cmdlet's documented parameter sets
in `data/cmdlets.json` (copied from ../shared/reference/sfb-cmdlets.json, which lists them with their
sources in MicrosoftDocs/office-docs-powershell).
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache

from .diagnostics import UNSAFE_CHARACTERS
from .resources import data_file

# PowerShell treats these four Unicode characters as single quotes too: each must be doubled inside
# a single-quoted string, or a topology value could end the string and become code.
_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_QUOTE_RE = re.compile(f"([{_SINGLE_QUOTES}])")

# Parameters every cmdlet accepts (PowerShell's common parameters).
COMMON_PARAMETERS = frozenset(
    {"Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ErrorVariable",
     "WarningVariable", "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable"}
)


class UnsafeValue(ValueError):
    """A value that cannot be written into a script safely (the checks should have refused it)."""


class CmdletSignatureError(ValueError):
    """A cmdlet call that fits none of the cmdlet's documented parameter sets: a bug in sfbgen."""


# Nothing we quote may hold an unsafe character (diagnostics.UNSAFE_CHARACTERS): a line break would let a
# value start a new statement after a comment, and control characters have no business in a script.
def _refuse_unsafe(value: str) -> str:
    match = UNSAFE_CHARACTERS.search(value)
    if match:
        raise UnsafeValue(f"control character U+{ord(match.group()):04X} in a value written to a script")
    return value


def quote(value: object) -> str:
    """`value` as a PowerShell single-quoted string literal: inert, whatever it contains."""
    return _quote_text(str(value))


# The same few hundred values (FQDNs, paths) are quoted in every script of a topology: remember them.
@lru_cache(maxsize=4096)
def _quote_text(text: str) -> str:
    return "'" + _QUOTE_RE.sub(r"\1\1", _refuse_unsafe(text)) + "'"


def comment(value: object) -> str:
    """`value` made safe to stand inside a `#` line comment (no line break can end the comment)."""
    return UNSAFE_CHARACTERS.sub("?", str(value))


class Raw(str):
    """A PowerShell expression written by sfbgen itself (a variable, a sub-expression) — never topology text."""


def var(name: str) -> Raw:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a variable name: {name!r}")
    return Raw("$" + name)


@cache
def catalog() -> dict:
    return json.loads(data_file("cmdlets.json").read_text(encoding="utf-8"))


def _argument(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("an empty list cannot be passed as a cmdlet argument")
        return ",".join(_argument(v) for v in value)
    return quote(value)


def parameter_set_for(name: str, parameters: set[str]) -> str:
    """The documented parameter set of cmdlet `name` that accepts exactly `parameters`, or raise."""
    return _parameter_set_for(name, frozenset(parameters))


@cache
def _parameter_set_for(name: str, parameters: frozenset[str]) -> str:
    entry = catalog().get(name)
    if entry is None:
        raise CmdletSignatureError(f"{name} is not in the cmdlet catalog")
    named = parameters - COMMON_PARAMETERS
    fitting = []
    for set_name, params in entry["parameter_sets"].items():
        required = {p for p, spec in params.items() if spec["required"]}
        if named <= set(params) and required <= named:
            fitting.append(set_name)
    if not fitting:
        sets = "; ".join(f"{k}: {sorted(v)}" for k, v in entry["parameter_sets"].items())
        raise CmdletSignatureError(f"{name} {sorted(named)} fits no documented parameter set ({sets})")
    return fitting[0]


@cache
def is_switch(name: str, parameter: str) -> bool:
    for params in catalog()[name]["parameter_sets"].values():
        if parameter in params:
            return bool(params[parameter]["switch"])
    return parameter in ("Verbose", "Debug")


def cmdlet(name: str, **parameters: object) -> str:
    """A call of Skype cmdlet `name`, its parameters by name, checked against the catalog.

    A True value of a switch parameter writes `-Name`; None leaves a parameter out; every other value is
    an argument: strings are quoted, `Raw` expressions are written as they are.
    """
    if name not in catalog():
        raise CmdletSignatureError(f"{name} is not in the cmdlet catalog")
    # None leaves a parameter out, and so does False for a switch; False stays for a [bool] parameter.
    given = {
        k: v for k, v in parameters.items() if v is not None and not (v is False and is_switch(name, k))
    }
    parameter_set_for(name, set(given))
    parts = [name]
    for param, value in given.items():
        if is_switch(name, param):
            # A switch takes its value after a colon (-Confirm:$false); a bare switch means $true.
            parts.append(f"-{param}" if value is True else f"-{param}:{_argument(value)}")
        else:
            parts.append(f"-{param} {_argument(value)}")
    return " ".join(parts)
