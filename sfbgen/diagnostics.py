"""Source spans and diagnostics: the one report type every stage of sfbgen speaks.

Every problem sfbgen finds in a topology — a lexical error, a syntax error, a semantic error, a
certificate warning — becomes a `Diagnostic` with a stable code from `CATALOG`, a message that states
the problem and then the fix, and the span of the offending text. Stages collect diagnostics; only the
CLI prints them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, NamedTuple


# Characters no topology value may hold, and that are never shown raw: C0/C1 controls, DEL, line and
# paragraph separators, and the bidirectional controls that make a reader see another text than the
# one a program runs. The checks refuse them (SFB290), the PowerShell layer will not write them, and
# messages and source lines show them as code points.
UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str, keep_tabs: bool = False) -> str:
    """`text` with every unsafe character written as its code point (\\u001b).

    `keep_tabs` leaves tabs alone: a source line indented with tabs is shown as the user wrote it.
    """

    def code_point(match: re.Match) -> str:
        char = match.group()
        return char if keep_tabs and char == "\t" else f"\\u{ord(char):04x}"

    return UNSAFE_CHARACTERS.sub(code_point, text)


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


class Span(NamedTuple):
    """A region of the source text; lines and columns count from 1, end_column is exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, line: int, column: int) -> "Span":
        return cls(line, column, line, column + 1)


NO_SPAN = Span(1, 1, 1, 1)


class Rule(NamedTuple):
    severity: Severity
    title: str


E, W = Severity.ERROR, Severity.WARNING

# The catalog of every code sfbgen reports. Codes are stable: a code is never reused for a different
# problem, so CI filters and editor integrations can rely on them.
#   SFB0xx  the input file itself          SFB1xx  syntax
#   SFB2xx  topology semantics             SFB3xx  certificates
CATALOG: dict[str, Rule] = {
    "SFB001": Rule(E, "file cannot be read"),
    "SFB002": Rule(E, "file is not UTF-8 text"),
    "SFB003": Rule(E, "file is binary"),
    "SFB004": Rule(E, "file is too large"),
    "SFB005": Rule(E, "file is empty"),
    "SFB101": Rule(E, "unexpected text"),
    "SFB103": Rule(E, "unexpected end of file"),
    "SFB104": Rule(E, "unterminated string"),
    "SFB105": Rule(E, "setting given twice"),
    "SFB106": Rule(E, "setting not allowed here"),
    "SFB107": Rule(E, "required setting missing"),
    "SFB108": Rule(E, "unknown value"),
    "SFB201": Rule(E, "duplicate FQDN"),
    "SFB202": Rule(E, "malformed FQDN"),
    "SFB203": Rule(E, "computer name too long"),
    "SFB204": Rule(E, "no primary SIP domain"),
    "SFB205": Rule(E, "more than one primary SIP domain"),
    "SFB206": Rule(E, "duplicate SIP domain"),
    "SFB210": Rule(E, "Meet URL missing for a SIP domain"),
    "SFB211": Rule(E, "Dial-in URL missing"),
    "SFB212": Rule(E, "simple URL is not https"),
    "SFB213": Rule(E, "simple URL has a port"),
    "SFB214": Rule(E, "simple URL host is a pool FQDN"),
    "SFB215": Rule(E, "simple URL is a prefix of another"),
    "SFB216": Rule(E, "malformed simple URL"),
    "SFB217": Rule(E, "simple URL names an unknown SIP domain"),
    "SFB218": Rule(E, "duplicate simple URL"),
    "SFB219": Rule(E, "unknown simple URL kind"),
    "SFB220": Rule(E, "Enterprise pool size out of range"),
    "SFB221": Rule(E, "two-server Front End pool refused on Skype for Business Server 2019"),
    "SFB222": Rule(W, "two-server Front End pool"),
    "SFB223": Rule(W, "one-server Front End pool"),
    "SFB224": Rule(E, "pool has no servers"),
    "SFB225": Rule(E, "Standard Edition server with members"),
    "SFB226": Rule(E, "no Front End or Standard Edition pool"),
    "SFB230": Rule(E, "next hop unknown"),
    "SFB231": Rule(E, "next hop is not a Front End pool"),
    "SFB232": Rule(E, "next hop missing"),
    "SFB240": Rule(E, "Edge pool FQDN missing"),
    "SFB250": Rule(E, "product version unsupported"),
    "SFB251": Rule(E, "install path not an absolute local path"),
    "SFB252": Rule(E, "media path not absolute"),
    "SFB253": Rule(E, "duplicate site name"),
    "SFB260": Rule(E, "web services FQDNs equal"),
    "SFB261": Rule(E, "web services FQDN equals the pool FQDN"),
    "SFB262": Rule(E, "external web services FQDN missing"),
    "SFB263": Rule(E, "web services not allowed for this role"),
    "SFB290": Rule(E, "control character in text"),
    "SFB291": Rule(E, "signature marker in text"),
    "SFB292": Rule(E, "text too long"),
    "SFB301": Rule(E, "key size not allowed"),
    "SFB302": Rule(W, "1024-bit key"),
    "SFB303": Rule(E, "online authority malformed"),
    "SFB304": Rule(E, "country code malformed"),
    "SFB305": Rule(W, "internal-only name on a public certificate"),
    "SFB306": Rule(W, "wildcard subject name"),
    "SFB307": Rule(W, "too many names for one certificate request"),
    "SFB308": Rule(E, "certificate template malformed"),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in one place of one file."""

    code: str
    severity: Severity
    message: str
    span: Span
    file: str = "<input>"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
        }


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] if text else text


def diagnostic(code: str, span: Span, problem: str, fix: str, file: str = "<input>") -> Diagnostic:
    """Build a diagnostic whose message reads 'problem. Fix.' with the severity from the catalog."""
    rule = CATALOG[code]
    problem = problem.strip().rstrip(".")
    return Diagnostic(code, rule.severity, f"{problem}. {_sentence(fix)}.", span, file)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Source order, then code: the order a reader fixes them in, and a stable one for snapshots."""
    return sorted(diagnostics, key=lambda d: (d.file, d.span.line, d.span.column, d.code, d.message))


class SfbgenError(Exception):
    """Base of every error the library raises on purpose; the CLI maps it to an exit code."""

    exit_code = 1


class DiagnosticsError(SfbgenError):
    """The input has errors; `diagnostics` holds every one found (and any warnings)."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = diagnostics
        self.sources = sources or {}  # file name -> text, for rendering source lines
        errors = sum(d.is_error for d in diagnostics)
        super().__init__(f"{errors} error(s) in the topology")


class UsageError(SfbgenError):
    """The request itself is wrong (an output folder we may not touch, a missing key...)."""

    exit_code = 2


# ---------------------------------------------------------------------------------------------------
# Rendering

_RED, _YELLOW, _BOLD, _CYAN, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[1m", "\x1b[36m", "\x1b[0m"


def render_text(diagnostics: Iterable[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    """Render diagnostics as `file:line:col: severity CODE: message`, the source line and a caret."""
    out: list[str] = []
    lines_by_file = {name: text.splitlines() for name, text in sources.items()}
    for d in diagnostics:
        sev = d.severity.value
        head = f"{d.file}:{d.span.line}:{d.span.column}: {sev} {d.code}: {visible(d.message)}"
        if color:
            tint = _RED if d.is_error else _YELLOW
            head = (
                f"{_BOLD}{d.file}:{d.span.line}:{d.span.column}:{_RESET} {tint}{_BOLD}{sev}{_RESET} "
                f"{_BOLD}{d.code}{_RESET}: {visible(d.message)}"
            )
        out.append(head)
        lines = lines_by_file.get(d.file, [])
        if 1 <= d.span.line <= len(lines):
            raw = lines[d.span.line - 1]
            shown = visible(raw[:400], keep_tabs=True)
            prefix = visible(raw[: d.span.column - 1], keep_tabs=True)
            if d.span.end_line == d.span.line:
                width = max(1, len(visible(raw[d.span.column - 1 : d.span.end_column - 1], keep_tabs=True)))
            else:
                width = max(1, len(visible(raw[d.span.column - 1 :], keep_tabs=True)))
            gutter = f"{d.span.line:>5} | "
            caret = " " * len(prefix) + "^" + "~" * (width - 1)
            if len(prefix) < 400:
                out.append(gutter + shown)
                out.append(" " * (len(gutter) - 2) + "| " + (f"{_CYAN}{caret}{_RESET}" if color else caret))
    return "\n".join(out) + ("\n" if out else "")


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diagnostics], indent=2, ensure_ascii=False) + "\n"


def summary(diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
