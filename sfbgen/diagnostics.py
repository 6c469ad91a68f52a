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


class DiagnosticBuilder:
    """One named constructor per catalog code: the only way a stage makes a diagnostic.

    As Bicep's DiagnosticBuilder: a call site names the problem (`build.duplicate_fqdn(span, ...)`), never
    a code string, so an unknown code cannot be written and the severity always comes from `CATALOG`.
    Each constructor returns the diagnostic; a `Reporter` also collects it. The message is the one
    `diagnostic` writes ('problem. Fix.'). tests/test_diagnostic_builders.py keeps the methods and the
    catalog equal.
    """

    def __init__(self, file: str = "<input>"):
        self.file = file

    def _emit(self, made: Diagnostic) -> Diagnostic:
        return made

    def _make(self, code: str, span: Span, problem: str, fix: str) -> Diagnostic:
        return self._emit(diagnostic(code, span, problem, fix, self.file))

    def file_cannot_be_read(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB001: file cannot be read."""
        return self._make("SFB001", span, problem, fix)

    def file_not_utf8(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB002: file is not UTF-8 text."""
        return self._make("SFB002", span, problem, fix)

    def file_is_binary(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB003: file is binary."""
        return self._make("SFB003", span, problem, fix)

    def file_is_too_large(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB004: file is too large."""
        return self._make("SFB004", span, problem, fix)

    def file_is_empty(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB005: file is empty."""
        return self._make("SFB005", span, problem, fix)

    def unexpected_text(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB101: unexpected text."""
        return self._make("SFB101", span, problem, fix)

    def unexpected_end_of_file(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB103: unexpected end of file."""
        return self._make("SFB103", span, problem, fix)

    def unterminated_string(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB104: unterminated string."""
        return self._make("SFB104", span, problem, fix)

    def setting_given_twice(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB105: setting given twice."""
        return self._make("SFB105", span, problem, fix)

    def setting_not_allowed_here(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB106: setting not allowed here."""
        return self._make("SFB106", span, problem, fix)

    def required_setting_missing(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB107: required setting missing."""
        return self._make("SFB107", span, problem, fix)

    def unknown_value(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB108: unknown value."""
        return self._make("SFB108", span, problem, fix)

    def setting_without_effect(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB109: setting without effect."""
        return self._make("SFB109", span, problem, fix)

    def xml_where_language_expected(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB110: an XML topology given where the language is expected."""
        return self._make("SFB110", span, problem, fix)

    def doubled_backslash_in_a_path(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB111: doubled backslash in a path."""
        return self._make("SFB111", span, problem, fix)

    def duplicate_fqdn(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB201: duplicate FQDN."""
        return self._make("SFB201", span, problem, fix)

    def malformed_fqdn(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB202: malformed FQDN."""
        return self._make("SFB202", span, problem, fix)

    def computer_name_too_long(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB203: computer name too long."""
        return self._make("SFB203", span, problem, fix)

    def no_primary_sip_domain(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB204: no primary SIP domain."""
        return self._make("SFB204", span, problem, fix)

    def more_than_one_primary_sip_domain(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB205: more than one primary SIP domain."""
        return self._make("SFB205", span, problem, fix)

    def duplicate_sip_domain(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB206: duplicate SIP domain."""
        return self._make("SFB206", span, problem, fix)

    def pool_named_after_only_member(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB207: pool FQDN equals its only member's FQDN."""
        return self._make("SFB207", span, problem, fix)

    def pool_named_after_a_member(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB208: pool FQDN equals a member's FQDN in a pool of several."""
        return self._make("SFB208", span, problem, fix)

    def collocated_mediation_value_unknown(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB209: collocated Mediation value unknown."""
        return self._make("SFB209", span, problem, fix)

    def meet_url_missing_for_a_sip_domain(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB210: Meet URL missing for a SIP domain."""
        return self._make("SFB210", span, problem, fix)

    def dial_in_url_missing(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB211: Dial-in URL missing."""
        return self._make("SFB211", span, problem, fix)

    def simple_url_is_not_https(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB212: simple URL is not https."""
        return self._make("SFB212", span, problem, fix)

    def simple_url_has_a_port(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB213: simple URL has a port."""
        return self._make("SFB213", span, problem, fix)

    def simple_url_host_is_a_pool_fqdn(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB214: simple URL host is a pool FQDN."""
        return self._make("SFB214", span, problem, fix)

    def simple_url_is_a_prefix_of_another(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB215: simple URL is a prefix of another."""
        return self._make("SFB215", span, problem, fix)

    def malformed_simple_url(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB216: malformed simple URL."""
        return self._make("SFB216", span, problem, fix)

    def simple_url_unknown_sip_domain(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB217: simple URL names an unknown SIP domain."""
        return self._make("SFB217", span, problem, fix)

    def duplicate_simple_url(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB218: duplicate simple URL."""
        return self._make("SFB218", span, problem, fix)

    def unknown_simple_url_kind(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB219: unknown simple URL kind."""
        return self._make("SFB219", span, problem, fix)

    def enterprise_pool_size_out_of_range(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB220: Enterprise pool size out of range."""
        return self._make("SFB220", span, problem, fix)

    def two_server_pool_refused(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB221: two-server Front End pool refused on Skype for Business Server 2019."""
        return self._make("SFB221", span, problem, fix)

    def two_server_front_end_pool(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB222: two-server Front End pool."""
        return self._make("SFB222", span, problem, fix)

    def one_server_front_end_pool(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB223: one-server Front End pool."""
        return self._make("SFB223", span, problem, fix)

    def pool_has_no_servers(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB224: pool has no servers."""
        return self._make("SFB224", span, problem, fix)

    def standard_edition_server_with_members(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB225: Standard Edition server with members."""
        return self._make("SFB225", span, problem, fix)

    def no_front_end_pool(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB226: no Front End or Standard Edition pool."""
        return self._make("SFB226", span, problem, fix)

    def next_hop_unknown(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB230: next hop unknown."""
        return self._make("SFB230", span, problem, fix)

    def next_hop_is_not_a_front_end_pool(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB231: next hop is not a Front End pool."""
        return self._make("SFB231", span, problem, fix)

    def next_hop_missing(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB232: next hop missing."""
        return self._make("SFB232", span, problem, fix)

    def edge_pool_fqdn_missing(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB240: Edge pool FQDN missing."""
        return self._make("SFB240", span, problem, fix)

    def product_version_unsupported(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB250: product version unsupported."""
        return self._make("SFB250", span, problem, fix)

    def install_path_not_absolute(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB251: install path not an absolute local path."""
        return self._make("SFB251", span, problem, fix)

    def media_path_not_absolute(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB252: media path not absolute."""
        return self._make("SFB252", span, problem, fix)

    def duplicate_site_name(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB253: duplicate site name."""
        return self._make("SFB253", span, problem, fix)

    def second_central_management_store(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB254: second Central Management Store."""
        return self._make("SFB254", span, problem, fix)

    def edge_pool_reads_a_share(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB255: Edge pool reads a share."""
        return self._make("SFB255", span, problem, fix)

    def core_update_missing(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB256: 2015 on Windows Server 2016 or 2019 without a cumulative update."""
        return self._make("SFB256", span, problem, fix)

    def windows_device_name(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB257: server or pool FQDN is a Windows device name."""
        return self._make("SFB257", span, problem, fix)

    def product_out_of_support(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB258: product out of Microsoft's support."""
        return self._make("SFB258", span, problem, fix)

    def web_services_override_on_standard_edition(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB263: internal web services override on a Standard Edition server."""
        return self._make("SFB263", span, problem, fix)

    def web_services_override_on_single_director(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB264: internal web services override on a single Director."""
        return self._make("SFB264", span, problem, fix)

    def too_many_servers_for_one_compile(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB270: too many servers for one compile."""
        return self._make("SFB270", span, problem, fix)

    def bundle_too_large(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB271: bundle larger than one compile may write."""
        return self._make("SFB271", span, problem, fix)

    def control_character_in_text(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB290: control character in text."""
        return self._make("SFB290", span, problem, fix)

    def signature_marker_in_text(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB291: signature marker in text."""
        return self._make("SFB291", span, problem, fix)

    def text_too_long(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB292: text too long."""
        return self._make("SFB292", span, problem, fix)

    def key_size_not_allowed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB301: key size not allowed."""
        return self._make("SFB301", span, problem, fix)

    def weak_key_size(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB302: 1024-bit key."""
        return self._make("SFB302", span, problem, fix)

    def online_authority_malformed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB303: online authority malformed."""
        return self._make("SFB303", span, problem, fix)

    def country_code_malformed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB304: country code malformed."""
        return self._make("SFB304", span, problem, fix)

    def internal_name_on_public_certificate(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB305: internal-only name on a public certificate."""
        return self._make("SFB305", span, problem, fix)

    def wildcard_subject_name(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB306: wildcard subject name."""
        return self._make("SFB306", span, problem, fix)

    def too_many_certificate_names(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB307: too many names for one certificate request."""
        return self._make("SFB307", span, problem, fix)

    def certificate_template_malformed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB308: certificate template malformed."""
        return self._make("SFB308", span, problem, fix)

    def comma_in_a_subject_field(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB309: comma in a subject field."""
        return self._make("SFB309", span, problem, fix)

    def edge_certificate_from_enterprise_ca(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB310: Edge certificate requested online from the enterprise CA."""
        return self._make("SFB310", span, problem, fix)

    def not_a_topology_document(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB401: not a topology document."""
        return self._make("SFB401", span, problem, fix)

    def malformed_or_unsafe_xml(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB402: malformed or unsafe XML."""
        return self._make("SFB402", span, problem, fix)

    def topology_object_cannot_be_expressed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB403: topology object cannot be expressed."""
        return self._make("SFB403", span, problem, fix)

    def product_from_service_version(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB404: product taken from the document's ServiceVersion."""
        return self._make("SFB404", span, problem, fix)

    def object_not_deployed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB405: object not deployed by sfbgen."""
        return self._make("SFB405", span, problem, fix)

    def installation_media_not_named(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB420: installation media not named."""
        return self._make("SFB420", span, problem, fix)

    def no_certificate_authority(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB421: no certificate authority named: offline requests."""
        return self._make("SFB421", span, problem, fix)

    def simple_urls_assumed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB422: simple URLs assumed: a published topology holds none."""
        return self._make("SFB422", span, problem, fix)

    def simple_url_default_assumed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB423: simple URL missing from the document: Topology Builder's default assumed."""
        return self._make("SFB423", span, problem, fix)

    def product_disagrees_with_the_document(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB424: --product disagrees with the document."""
        return self._make("SFB424", span, problem, fix)

    def lync_server_document(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB425: a Lync Server document."""
        return self._make("SFB425", span, problem, fix)

    def import_option_value_invalid(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB426: import option value invalid."""
        return self._make("SFB426", span, problem, fix)

    def unpublished_without_cms(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB427: unpublished document without a Central Management Store."""
        return self._make("SFB427", span, problem, fix)

    def edge_external_certificate_assumed(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB428: Edge external certificate assumed from a public CA."""
        return self._make("SFB428", span, problem, fix)

    def document_name_not_fqdn(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB429: name in the document is not an FQDN."""
        return self._make("SFB429", span, problem, fix)

    def document_beyond_limits(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB406: document beyond the import limits."""
        return self._make("SFB406", span, problem, fix)

    def in_place_upgrade_undocumented(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB501: in-place upgrade not documented for this product."""
        return self._make("SFB501", span, problem, fix)

    def back_end_not_named(self, span: Span, problem: str, fix: str) -> Diagnostic:
        """SFB502: Enterprise pool back end not named."""
        return self._make("SFB502", span, problem, fix)


class Reporter(DiagnosticBuilder):
    """The one reporter: every diagnostic a stage builds through it is collected, in `diagnostics`."""

    def __init__(self, file: str = "<input>"):
        super().__init__(file)
        self.diagnostics: list[Diagnostic] = []

    def _emit(self, made: Diagnostic) -> Diagnostic:
        self.diagnostics.append(made)
        return made

    def sorted(self) -> list[Diagnostic]:
        return sort_diagnostics(self.diagnostics)


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
