"""Source spans and diagnostics: the one report type every stage of sfbgen speaks.

Every problem sfbgen finds in a topology — a lexical error, a syntax error, a semantic error, a
certificate warning — becomes a `Diagnostic` with a stable code from `CATALOG`, a message that states
the problem and then the fix, and the span of the offending text. Stages collect diagnostics; only the
CLI prints them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

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
    def point(cls, line: int, column: int) -> Span:
        return cls(line, column, line, column + 1)


NO_SPAN = Span(1, 1, 1, 1)


class Rule(NamedTuple):
    severity: Severity
    title: str
    # Where the rule comes from. A topology refusal (SFB2xx, SFB3xx error) cites the Microsoft rule it
    # enforces, so that sfbgen is never stricter than Topology Builder; "sfbgen:" marks a rule of the
    # language or of the scripts sfbgen writes, not of the platform.
    source: str = ""


E, W = Severity.ERROR, Severity.WARNING

# Microsoft documents cited below (MicrosoftDocs/OfficeDocs-SkypeForBusiness, Skype/SfbServer/...;
# cmdlet pages in MicrosoftDocs/office-docs-powershell, skype/skype-ps/SkypeForBusiness/...).
_TB = "help-topics/help-topobld/"
_SIMPLE_URLS = "plan-your-deployment/network-requirements/simple-urls.md, 'Simple URL naming and validation rules' (enforced by Topology Builder)"
_LANGUAGE = "sfbgen: the topology language"

# The catalog of every code sfbgen reports. Codes are stable: a code is never reused for a different
# problem, so CI filters and editor integrations can rely on them (retired codes: RETIRED).
#   SFB0xx  the input file itself          SFB1xx  syntax
#   SFB2xx  topology semantics             SFB3xx  certificates
#   SFB4xx  importing a Topology Builder or published topology document
CATALOG: dict[str, Rule] = {
    "SFB001": Rule(E, "file cannot be read", "sfbgen: input"),
    "SFB002": Rule(E, "file is not UTF-8 text", "sfbgen: input"),
    "SFB003": Rule(E, "file is binary", "sfbgen: input"),
    "SFB004": Rule(E, "file is too large", "sfbgen: input"),
    "SFB005": Rule(E, "file is empty", "sfbgen: input"),
    "SFB101": Rule(E, "unexpected text", _LANGUAGE),
    "SFB103": Rule(E, "unexpected end of file", _LANGUAGE),
    "SFB104": Rule(E, "unterminated string", _LANGUAGE),
    "SFB105": Rule(E, "setting given twice", _LANGUAGE),
    "SFB106": Rule(E, "setting not allowed here", _LANGUAGE),
    "SFB107": Rule(E, "required setting missing", _LANGUAGE),
    "SFB108": Rule(E, "unknown value", _LANGUAGE),
    "SFB109": Rule(W, "setting without effect", "the seed, step 4: Smart Setup runs inside Setup.exe, which sfbgen does not run"),
    "SFB110": Rule(E, "an XML topology given where the language is expected", "sfbgen: sfbgen import reads XML topologies"),
    "SFB111": Rule(W, "doubled backslash in a path", _LANGUAGE + ": strings are literal (no escapes)"),
    "SFB201": Rule(E, "duplicate FQDN", "Get-CsPool.md and Get-CsComputer.md: a pool's and a computer's Identity is its FQDN, so one FQDN names one of them"),
    "SFB202": Rule(E, "malformed FQDN", "RFC 1035 section 2.3.1 and RFC 1123 section 2.1 (host names)"),
    "SFB203": Rule(E, "computer name too long", "Microsoft, 'Naming conventions in Active Directory': NetBIOS computer names have at most 15 characters"),
    "SFB204": Rule(E, "no primary SIP domain", "published topology: InternalDomains names one DefaultDomain (every document in ../shared/topologies)"),
    "SFB205": Rule(E, "more than one primary SIP domain", "published topology: InternalDomains names one DefaultDomain"),
    "SFB206": Rule(E, "duplicate SIP domain", "published topology: an InternalDomain is known by its Name"),
    "SFB207": Rule(W, "pool FQDN equals its only member's FQDN", _TB + "add-front-end-pool-fqdn.md: a multiple computer pool has a pool FQDN of its own"),
    "SFB208": Rule(E, "pool FQDN equals a member's FQDN in a pool of several", _TB + "add-edge-server.md, add-mediation-server.md: only a single computer pool takes its computer's FQDN"),
    "SFB209": Rule(E, "collocated Mediation value unknown", _LANGUAGE),
    "SFB210": Rule(E, "Meet URL missing for a SIP domain", _SIMPLE_URLS),
    "SFB211": Rule(E, "Dial-in URL missing", _SIMPLE_URLS),
    "SFB212": Rule(E, "simple URL is not https", _SIMPLE_URLS),
    "SFB213": Rule(E, "simple URL has a port", _SIMPLE_URLS),
    "SFB214": Rule(E, "simple URL host is a pool FQDN", _SIMPLE_URLS),
    "SFB215": Rule(E, "simple URL is a prefix of another", _SIMPLE_URLS),
    "SFB216": Rule(E, "malformed simple URL", _SIMPLE_URLS),
    "SFB217": Rule(E, "simple URL names an unknown SIP domain", _SIMPLE_URLS + ": one Meet URL per SIP domain"),
    "SFB218": Rule(E, "duplicate simple URL", _SIMPLE_URLS),
    "SFB219": Rule(E, "unknown simple URL kind", _SIMPLE_URLS + ": Meet, Dial-In and Admin"),
    "SFB220": Rule(E, "Enterprise pool size out of range", "../shared/reference/sfb-deployment.md, 'Pool sizes': 12 Front End servers per pool, 16 on 2019"),
    "SFB221": Rule(E, "two-server Front End pool refused on Skype for Business Server 2019", "../shared/reference/sfb-deployment.md, 'Pool sizes': Skype for Business Server 2019 refuses two-server Front End pools"),
    "SFB222": Rule(W, "two-server Front End pool", "../shared/reference/sfb-deployment.md, 'Pool sizes' (3 or more recommended) and step 4 (the first start needs 85% of the pool)"),
    "SFB223": Rule(W, "one-server Front End pool", "../shared/reference/sfb-deployment.md, 'Pool sizes': 3 or more recommended"),
    "SFB224": Rule(E, "pool has no servers", _LANGUAGE + " (a pool's members are what sfbgen deploys)"),
    "SFB225": Rule(E, "Standard Edition server with members", _TB + "add-front-end-pool-fqdn.md: a Standard Edition server is a single computer"),
    "SFB226": Rule(E, "no Front End or Standard Edition pool", "the seed (Install Skype for Business Server on servers in the topology), Step 1 note: the Central Management Store is created on a Standard Edition server or with an Enterprise Front End pool"),
    "SFB230": Rule(E, "next hop unknown", _TB + "add-edge-server-next-hop.md, add-mediation-server-nexthop.md"),
    "SFB231": Rule(E, "next hop is not a Front End pool", _TB + "add-edge-server-next-hop.md (an Enterprise pool, a Standard Edition server, or a Director), add-mediation-server-nexthop.md (an Enterprise or Standard Edition server)"),
    "SFB232": Rule(E, "next hop missing", _TB + "add-edge-server-next-hop.md, add-mediation-server-nexthop.md"),
    "SFB240": Rule(E, "Edge pool FQDN missing", "plan-your-deployment/edge-server-deployments/edge-environmental-requirements.md: the external FQDNs of the Access, Web Conferencing and A/V Edge services (../shared/reference/sfb-deployment.md)"),
    "SFB250": Rule(E, "product version unsupported", _LANGUAGE),
    "SFB251": Rule(E, "install path not an absolute local path", "sfbgen: setup installs to a local folder (seed: 'drive and path for the installation')"),
    "SFB252": Rule(E, "media path not absolute", "sfbgen: the scripts read the media from an absolute path"),
    "SFB253": Rule(E, "duplicate site name", "Get-CsPool.md, -Site: a site is named by its DisplayName"),
    "SFB254": Rule(E, "second Central Management Store", "the seed, Step 1 note: the Central Management Store is created once, on the first Standard Edition server or with the first Enterprise pool"),
    "SFB255": Rule(W, "Edge pool reads a share", "deploy/deploy-edge-server: Edge Servers are in the perimeter network and not domain members; argiesen/Skype4B Install-CsServer README: media mounted or at a local path on the Edge"),
    "SFB256": Rule(W, "2015 on Windows Server 2016 or 2019 without a cumulative update", "plan-your-deployment/requirements-for-your-environment/server-requirements.md, 'Operating systems': Windows Server 2016 needs Skype for Business Server 2015 Cumulative Update 5 or later (KB4015888), Windows Server 2019 Cumulative Update 9 or later, installed on the core components before setup (manage/topology/disable-tls-1.0-1.1.md, 'Update Core Components'); sfbgen/data/platform.json, core_update_before_bootstrapper"),
    "SFB257": Rule(E, "server or pool FQDN is a Windows device name", "Microsoft, 'Naming Files, Paths, and Namespaces' (https://learn.microsoft.com/en-us/windows/win32/fileio/naming-a-file): 'Do not use the following reserved names for the name of a file: CON, PRN, AUX, NUL, COM1-COM9, LPT1-LPT9', also followed by an extension; a server's bundle folder is named by its FQDN, and sfbgen verify refuses a manifest that lists such a folder (sfbgen/manifest.py, RESERVED_DEVICE_NAMES)"),
    "SFB258": Rule(W, "product out of Microsoft's support", "Microsoft Lifecycle (learn.microsoft.com/lifecycle/products/skype-for-business-server-2015, -2019; MicrosoftDocs/lifecycle-data, supportDates.extendedEnd 10/14/2025): Skype for Business Server 2015 and 2019 left extended support on 2025-10-14; Subscription Edition follows the Modern Lifecycle Policy"),
    "SFB263": Rule(E, "internal web services override on a Standard Edition server", _TB + "add-front-end-web-services.md: 'You cannot override the internal Web Services pool FQDN for a Standard Edition server'"),
    "SFB264": Rule(E, "internal web services override on a single Director", _TB + "add-director-web-service.md: 'You cannot override the internal Web Services pool FQDN if you are only deploying a single Director'"),
    "SFB270": Rule(E, "too many servers for one compile", "sfbgen: compile limits (--max-servers; sfbgen/compiler.py, Limits)"),
    "SFB271": Rule(E, "bundle larger than one compile may write", "sfbgen: compile limits (--max-output-mb; sfbgen/compiler.py, Limits)"),
    "SFB290": Rule(E, "control character in text", "sfbgen: values are written into PowerShell scripts"),
    "SFB291": Rule(E, "signature marker in text", "sfbgen: ../shared/reference/authenticode.md, the signature block"),
    "SFB292": Rule(E, "text too long", "RFC 5280 appendix A (X.520 upper bounds of subject fields: 64); sfbgen: 255 for other text"),
    "SFB301": Rule(E, "key size not allowed", "Request-CsCertificate.md, -KeySize: 1024, 2048 or 4096"),
    "SFB302": Rule(W, "1024-bit key", "the seed, Step 3, Name and Security Settings: 2048 bits is the default"),
    "SFB303": Rule(E, "online authority malformed", "Request-CsCertificate.md, -CA: 'CA server FQDN\\CA name'"),
    "SFB304": Rule(E, "country code malformed", "Request-CsCertificate.md, -Country: a two-letter ISO 3166 code"),
    "SFB305": Rule(W, "internal-only name on a public certificate", "CA/Browser Forum baseline requirements: no internal names on public certificates"),
    "SFB306": Rule(W, "wildcard subject name", "../shared/reference/sfb-deployment.md, 'Certificates per role': no wildcard as a subject name"),
    "SFB307": Rule(W, "too many names for one certificate request", "public CAs' common limit of 100 names"),
    "SFB308": Rule(E, "certificate template malformed", "Request-CsCertificate.md, -Template: the template's name"),
    "SFB309": Rule(W, "comma in a subject field", "Request-CsCertificate.md: -Organization, -OU, -City, -State are strings; how a comma in them reaches the subject is not documented"),
    "SFB310": Rule(W, "Edge certificate requested online from the enterprise CA", "plan-your-deployment/edge-server-deployments/edge-environmental-requirements.md, 'Certificate planning': the external Edge certificate comes from a public CA; deploy/deploy-edge-server/deploy-edge-servers.md, 'Internal Edge interface certificates': the Edge Server, not a domain member, submits a request file"),
    "SFB401": Rule(E, "not a topology document", "sfbgen import: a Topology Builder document or a published topology"),
    "SFB402": Rule(E, "malformed or unsafe XML", "sfbgen import: XML 1.0 without DTDs or entities (defusedxml)"),
    "SFB403": Rule(E, "topology object cannot be expressed", "sfbgen import: the language's names and strings"),
    "SFB404": Rule(W, "product taken from the document's ServiceVersion", "sfbgen import: ServiceVersion 7 in the Skype for Business Server 2015 documents, 8 in the 2019 one (../shared/topologies/README.md); reconstructed, Microsoft does not document the attribute"),
    "SFB405": Rule(W, "object not deployed by sfbgen", "sfbgen import: every object of the document is accounted for"),
    "SFB420": Rule(W, "installation media not named", "sfbgen import: neither document format holds the media's path (../shared/topologies); the topology needs it (SFB107)"),
    "SFB421": Rule(W, "no certificate authority named: offline requests", "Request-CsCertificate.md, -CA (online) and -Output (offline request); neither document format names the CA"),
    "SFB422": Rule(W, "simple URLs assumed: a published topology holds none", _SIMPLE_URLS + "; Get-CsTopology -AsXml output has no SimpleUrlConfiguration (every published document in ../shared/topologies)"),
    "SFB423": Rule(W, "simple URL missing from the document: Topology Builder's default assumed", _SIMPLE_URLS + ": a Meet URL per SIP domain and a Dial-in URL are required; Topology Builder proposes https://meet.<SIP domain> and https://dialin.<default SIP domain>"),
    "SFB424": Rule(W, "--product disagrees with the document", "sfbgen import: the document's ServiceVersion (SFB404) names another product than --product"),
    "SFB425": Rule(E, "a Lync Server document", "Skype/SfbServer/deploy/upgrade-to-skype-for-business-server.md: Lync Server 2013 is upgraded in place with Topology Builder and Setup, which sfbgen does not run; ServiceVersion 6 in Lync Server 2013 documents (issue 21), 5 for 2010 reconstructed"),
    "SFB426": Rule(E, "import option value invalid", "the checks of the lines the options become: SFB252 (media path absolute), SFB111 (doubled backslash), SFB303 (Request-CsCertificate.md, -CA: 'CA server FQDN\\CA name')"),
    "SFB427": Rule(W, "unpublished document without a Central Management Store", "the seed, Step 1 note: the Central Management Store is created on the first Standard Edition server or with the first Enterprise pool; it is chosen when a topology is first published, so an unpublished Topology Builder document holds none"),
    "SFB428": Rule(W, "Edge external certificate assumed from a public CA", "plan-your-deployment/edge-server-deployments/edge-environmental-requirements.md and ../shared/reference/sfb-deployment.md, 'Certificates per role': the external Edge certificate is usually from a public CA, through an offline request"),
    "SFB429": Rule(E, "name in the document is not an FQDN", "RFC 1035 section 2.3.1 and RFC 1123 section 2.1 (host names), as SFB202; placeholders of published templates ([DOMAINID], $SkypeFQDN) are refused at their line"),
    "SFB406": Rule(E, "document beyond the import limits", "sfbgen import: elements, depth, attributes and values bounded (sfbgen/topology_xml.py, MAX_*), so memory stays in proportion to the document"),
    "SFB501": Rule(E, "in-place upgrade not documented for this product", "sfbgen patch --upgrade-to: Microsoft describes Subscription Edition as an in-place upgrade from Skype for Business Server 2019 and a side-by-side migration from 2015 (issue 23; sfbgen/data/platform.json, patch_in_place_upgrades, reconstructed)"),
    "SFB502": Rule(E, "Enterprise pool back end not named", "Skype/SfbServer/manage/topology/patch-or-update-a-back-end-or-standard-edition-server.md, step 11: Install-CsDatabase -Update -ConfiguredDatabases -SqlServerFqdn <SQL Server FQDN>; the topology does not name the SQL Server (sfbgen patch --back-end)"),
}

# Codes that no longer fire, never to be reused. Each went because Topology Builder accepts and
# publishes what it refused.
RETIRED: dict[str, str] = {
    "SFB260": "internal and external web services FQDNs equal: Topology Builder's default (both the pool FQDN)",
    "SFB261": "a web services FQDN equal to the pool FQDN: Topology Builder's default (add-front-end-web-services.md)",
    "SFB262": "no external web services FQDN: Topology Builder defaults it to the pool FQDN",
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
    # Every value shown goes through display: the file name (it may not be UTF-8, or hold a terminal
    # escape), the message (it quotes the document) and the source line.
    from .display import code_points as visible
    from .display import visible_path

    out: list[str] = []
    lines_by_file = {name: text.splitlines() for name, text in sources.items()}
    for d in diagnostics:
        sev = d.severity.value
        shown_file = visible_path(d.file)
        head = f"{shown_file}:{d.span.line}:{d.span.column}: {sev} {d.code}: {visible(d.message)}"
        if color:
            tint = _RED if d.is_error else _YELLOW
            head = (
                f"{_BOLD}{shown_file}:{d.span.line}:{d.span.column}:{_RESET} {tint}{_BOLD}{sev}{_RESET} "
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
    from .display import json_text

    # JSON escapes every control character; a lone surrogate (a file name that is not UTF-8) is written
    # as its JSON escape, so that the text can be written to any UTF-8 stream.
    return json_text([d.to_dict() for d in diagnostics], indent=2) + "\n"


def summary(diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
