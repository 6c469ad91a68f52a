"""A Windows PowerShell 5.1 lint of the generated scripts (issue 18, item 2).

Nothing here runs PowerShell, so every script is proven by reading. Each rule is one pitfall of
Windows PowerShell 5.1 that would stop (or silently corrupt) a run on a real server; each names its
source: a learn.microsoft.com page, a PowerShell/PowerShell issue or an about_* help topic.

The rules read the syntax tree of tree-sitter-pwsh (tests/pwsh_tree.py) where one helps, and
regular expressions over the code (comments and string contents blanked out) otherwise.
`lint(name, data)` returns the findings of one script; tests/test_ps51_lint.py runs it over every
compiled sample and imported document, and shows each rule firing on a bad snippet and staying
quiet on a good one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

from tests import pwsh_tree


@dataclass(frozen=True)
class Finding:
    rule: str
    script: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.script}:{self.line}: {self.rule} {RULES[self.rule].title}: {self.text}"


@dataclass(frozen=True)
class Rule:
    id: str
    title: str  # one line
    source: str  # where the pitfall is documented
    check: Callable[[Script], Iterator[tuple[int, str]]]


RULES: dict[str, Rule] = {}


def rule(id: str, title: str, source: str):
    def register(check):
        assert id not in RULES, id
        RULES[id] = Rule(id, title, source, check)
        return check

    return register


STRING_TYPES = {"verbatim_string_characters", "expandable_string_literal", "verbatim_here_string_characters",
                "expandable_here_string_literal"}


class Script:
    """One generated script: its bytes, its syntax tree, and its code with comments and strings blanked."""

    def __init__(self, name: str, data: bytes):
        self.name = name
        self.data = data
        self.source = data[3:] if data.startswith(b"\xef\xbb\xbf") else data

    @cached_property
    def tree(self):
        return pwsh_tree.parse(self.source)

    @cached_property
    def nodes(self) -> list:
        return list(pwsh_tree.walk(self.tree.root_node))

    def of_type(self, *types: str) -> list:
        return [n for n in self.nodes if n.type in types]

    def text(self, node) -> str:
        return self.source[node.start_byte:node.end_byte].decode("utf-8")

    @cached_property
    def code(self) -> str:
        """The source with every comment and string content replaced by spaces (same offsets, same lines)."""
        buffer = bytearray(self.source)
        for node in self.nodes:
            if node.type == "comment" or node.type in STRING_TYPES:
                for i in range(node.start_byte, node.end_byte):
                    if buffer[i] not in (0x0A, 0x0D):
                        buffer[i] = 0x20
        return buffer.decode("utf-8", errors="replace")

    @cached_property
    def code_bytes(self) -> bytes:
        return self.code.encode("utf-8")

    def code_of(self, node) -> str:
        """A node's code, comments and strings blanked."""
        return self.code_bytes[node.start_byte:node.end_byte].decode("utf-8", errors="replace")

    @cached_property
    def _line_starts(self) -> list[int]:
        starts, code = [0], self.code
        for match in re.finditer("\n", code):
            starts.append(match.end())
        return starts

    def line_of(self, offset: int) -> int:
        import bisect

        return bisect.bisect_right(self._line_starts, offset)

    def line_text(self, line: int) -> str:
        return self.source.decode("utf-8").split("\n")[line - 1].strip()[:160]

    def matches(self, pattern: str, flags=re.IGNORECASE) -> Iterator[tuple[int, str]]:
        for match in re.finditer(pattern, self.code, flags):
            line = self.line_of(match.start())
            yield line, self.line_text(line)

    @cached_property
    def commands(self) -> list[Command]:
        out = []
        for node in self.of_type("command"):
            name = node.child_by_field_name("command_name")
            if name is None:
                continue
            params, stack = [], list(node.children)
            while stack:
                child = stack.pop()
                if child.type == "command":
                    continue
                if child.type == "command_parameter":
                    params.append(self.text(child).lstrip("-").split(":")[0].lower())
                stack.extend(child.children)
            invoked = any(c.type == "command_invocation_operator" for c in node.children)
            out.append(Command(node, self.text(name), params, invoked, node.start_point[0] + 1))
        return out


@dataclass
class Command:
    node: object
    name: str
    parameters: list[str]  # lower case, without the dash
    invoked: bool  # called through & (or .)
    line: int

    @property
    def lname(self) -> str:
        return self.name.strip("'\"").lower()


def enclosing(node, *types: str):
    node = node.parent
    while node is not None:
        if node.type in types:
            return node
        node = node.parent
    return None


def scope_of(node):
    """The function or script block a node runs in (the script itself: None)."""
    return enclosing(node, "function_statement", "script_block_expression")


# --- PowerShell 7 only ------------------------------------------------------------------------------

WHATS_NEW_70 = "https://learn.microsoft.com/powershell/scripting/whats-new/what-s-new-in-powershell-70"


@rule("PS51-001", "an operator of PowerShell 7 (`??`, `??=`, `?.`, `?[]`, `? :`, `&&`, `||`)",
      WHATS_NEW_70 + " (new operators: ternary, pipeline chain, null-coalescing); "
      "about_Pipeline_Chain_Operators ('Beginning in PowerShell 7'); about_Operators (null-conditional `?.` `?[]`, 7.1)")
def _ps7_operators(s: Script):
    for node in s.of_type("ternary_expression", "null_coalesce_expression", "pipeline_chain_tail"):
        yield node.start_point[0] + 1, s.text(node)[:120]
    yield from s.matches(r"\?\?=?|\?\.|\?\[|&&|\|\|")


PS7_PARAMETERS = {
    # cmdlet: {parameter: the version that added it}
    "foreach-object": {"parallel": "7.0", "throttlelimit": "7.0", "asjob": "7.0"},
    "join-path": {"additionalchildpath": "6.0"},
    "convertfrom-json": {"ashashtable": "6.0", "depth": "6.2", "noenumerate": "7.0"},
    "get-content": {"asbytestream": "6.0"},
    "set-content": {"asbytestream": "6.0"},
    "add-content": {"asbytestream": "6.0"},
    "invoke-webrequest": {"skipcertificatecheck": "6.0", "authentication": "6.0", "sslprotocol": "6.0", "resume": "6.1"},
    "invoke-restmethod": {"skipcertificatecheck": "6.0", "authentication": "6.0", "sslprotocol": "6.0", "statuscodevariable": "7.0"},
    "select-string": {"raw": "7.0", "noemphasis": "7.0"},
    "get-childitem": {"followsymlink": "6.0"},
    "split-path": {"extension": "6.0", "leafbase": "6.0"},
    "convertto-json": {"enumsasstrings": "7.0", "asarray": "7.0"},
    "test-connection": {"tcpport": "6.0", "traceroute": "6.0"},
}


@rule("PS51-002", "a cmdlet parameter (or -Encoding value) that PowerShell 6 or 7 added",
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.management/join-path (Join-Path: -AdditionalChildPath 'introduced in PowerShell 6.0'; "
      "ConvertFrom-Json: -AsHashtable 6.0, -Depth 6.2; Get-Content: -AsByteStream 6.0; ForEach-Object: -Parallel 7.0; "
      "Invoke-WebRequest: -SkipCertificateCheck 6.0); about_Character_Encoding (5.1's -Encoding values: no utf8NoBOM/utf8BOM)")
def _ps7_parameters(s: Script):
    for command in s.commands:
        added = PS7_PARAMETERS.get(command.lname, {})
        for parameter in command.parameters:
            if parameter in added:
                yield command.line, f"{command.name} -{parameter} (PowerShell {added[parameter]})"
    yield from s.matches(r"-Encoding[\s:]+['\"]?(utf8NoBOM|utf8BOM|utf32BE)\b")


PS7_COMMANDS = {"test-json": "6.1", "join-string": "6.2", "get-error": "7.0", "get-uptime": "6.0",
                "remove-service": "6.0", "remove-alias": "6.0", "convertfrom-markdown": "6.1", "start-threadjob": "7.0 (ThreadJob module)",
                "foreach-object -parallel": "7.0"}


@rule("PS51-003", "a cmdlet that Windows PowerShell 5.1 does not have",
      "https://learn.microsoft.com/powershell/scripting/whats-new/differences-from-windows-powershell "
      "(Test-Json 6.1, Join-String 6.2, Get-Error 7.0, Get-Uptime/Remove-Service/Remove-Alias 6.0)")
def _ps7_commands(s: Script):
    for command in s.commands:
        if command.lname in PS7_COMMANDS:
            yield command.line, f"{command.name} (PowerShell {PS7_COMMANDS[command.lname]})"


@rule("PS51-004", "an automatic variable of PowerShell 6+ ($IsWindows, $IsLinux, $IsMacOS, $IsCoreCLR): undefined in 5.1, an error under StrictMode",
      "about_Automatic_Variables ($IsWindows etc.: 'PowerShell 6.0 and later'); Set-StrictMode ('-Version 1.0: prohibits references to uninitialized variables')")
def _ps6_variables(s: Script):
    yield from s.matches(r"\$(IsWindows|IsLinux|IsMacOS|IsCoreCLR)\b")


@rule("PS51-005", "a `clean {}` block (PowerShell 7.3)",
      "about_Functions_Advanced_Methods (the clean block, 'added in PowerShell 7.3')")
def _clean_block(s: Script):
    for node in s.of_type("named_block"):
        name = next((c for c in node.children if c.type == "block_name"), None)
        if name is not None and s.text(name).lower() == "clean":
            yield node.start_point[0] + 1, s.text(node)[:80]


# --- parameter defaults -----------------------------------------------------------------------------

@rule("PS51-010", "an automatic variable ($PSScriptRoot, $PSCommandPath, $MyInvocation) in a script parameter's default: empty in an advanced script",
      "https://github.com/PowerShell/PowerShell/issues/4688 ($PSScriptRoot is not populated when used in a default value for a script parameter, 5.1)")
def _automatic_in_defaults(s: Script):
    for block in s.tree.root_node.children:
        if block.type != "param_block":
            continue
        for default in (n for n in pwsh_tree.walk(block) if n.type == "script_parameter_default"):
            for variable in (n for n in pwsh_tree.walk(default) if n.type == "variable"):
                if re.fullmatch(r"\$(PSScriptRoot|PSCommandPath|MyInvocation)", s.text(variable), re.IGNORECASE):
                    yield variable.start_point[0] + 1, s.line_text(variable.start_point[0] + 1)


# --- Skype cmdlets' output members (StrictMode) -------------------------------------------------------

SKYPE_DOCS = "MicrosoftDocs/office-docs-powershell/skype/skype-ps/SkypeForBusiness/"
ARGIESEN = "argiesen/Skype4B Install-CsServer/Install-CsServer.ps1"

# The members of each Skype cmdlet's output that a script may read, each with where it is named.
# Under Set-StrictMode -Version Latest a member that does not exist is an error, so a member read on
# an output object must be one Microsoft's page (or a cited working script) names.
SKYPE_MEMBERS: dict[str, dict[str, str]] = {
    "get-cswindowsservice": {
        "Status": SKYPE_DOCS + "Get-CsWindowsService.md, example 7 ($_.Status -eq \"Running\")",
        "DisplayName": SKYPE_DOCS + "Get-CsWindowsService.md, example 8 ($_.DisplayName)",
        "RoleName": SKYPE_DOCS + "Get-CsWindowsService.md, examples 4 and 9 (-ExpandProperty RoleName, $_.RoleName)",
    },
    "get-cscertificate": {
        "Thumbprint": "MicrosoftDocs/OfficeDocs-SkypeForBusiness Skype/SfbServer/manage/authentication/assign-a-server-to-server-certificate.md "
                      "($x = (Get-CsCertificate -Type Default).Thumbprint)",
        "NotAfter": SKYPE_DOCS + "Get-CsCertificate.md, example 3 ($_.NotAfter)",
        "Issuer": SKYPE_DOCS + "Get-CsCertificate.md, example 4 ($_.Issuer)",
        "Subject": SKYPE_DOCS + "Get-CsCertificate.md, example 5 ($_.Subject)",
    },
    "request-cscertificate": {
        "CertificateUses": ARGIESEN + " (Request-CsCertificate -List | Where-Object CertificateUses -match $Name)",
        "RequestId": ARGIESEN + " (Request-CsCertificate -Retrieve -RequestId $pending.RequestId)",
    },
    "get-cspool": {
        "Computers": SKYPE_DOCS + "Get-CsPool.md, example 2 (-ExpandProperty Computers: 'an array of objects representing each computer')",
        "Services": SKYPE_DOCS + "Get-CsPool.md, example 5 ($_.Services.Count)",
        "Site": SKYPE_DOCS + "Get-CsPool.md, example 4 ('pools where the Site property is equal to Redmond')",
    },
    # -AsXml: the document as a string, read only through [xml]/LoadXml.
    "get-cstopology": {},
    # OUTPUTS: String ('reports back the location of the configuration store'), Get-CsConfigurationStoreLocation.md;
    # since Lync Server 2013 an object with BackEndServer and MirrorBackEndServer: a script reads BackEndServer
    # only after asking PSObject.Properties whether the object has it, and the plain value otherwise.
    "get-csconfigurationstorelocation": {
        "BackEndServer": "alvinchen1/ExchangeSkypeMDTAutomate Scripts/USS-SKYPE-CONFIG-2.ps1, Set-SfB-CentralMgmtStore (Skype for Business "
                         "Server 2019: '(Get-CsConfigurationStoreLocation).BackEndServer -eq \"$SkypeFQDN\\rtc\"'); Get-LyncInfo.ps1 (ccook, "
                         "emptymessage.com, a public Lync environment report), Get-CmsConfiguration: 'Get-CsConfigurationStoreLocation | "
                         "Select -Expand BackEndServer' for Lync 2013 and later",
    },
}
INTRINSIC = {"count", "length"}  # on an array made with @(): about_Intrinsic_Members (see PS51-081 for unwrapped results)
# On any object, wrapped or not: about_Intrinsic_Members ('PSObject': the object's members, as
# PSObject.Properties['Name'], which asks for a property without reading it under StrictMode).
ANY_OBJECT = {"psobject"}
TYPE_PRESERVING = {"where-object", "sort-object", "select-object", "where", "?", "sort"}


def _skype_source(pipeline_text: str) -> str | None:
    match = re.match(r"\s*@?\(?\s*((?:Get|Request|Test)-Cs\w+)", pipeline_text, re.IGNORECASE)
    return match.group(1).lower() if match else None


def _member_reads(text: str, variable: str) -> Iterator[str]:
    for match in re.finditer(r"\$" + re.escape(variable) + r"(?:\[[^\]]*\])?\.(\w+)", text, re.IGNORECASE):
        yield match.group(1)


@rule("PS51-020", "a member read on a Skype cmdlet's output that neither Microsoft's page nor a cited working script names (StrictMode)",
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.core/set-strictmode "
      "('-Version 2.0 ... Prohibits references to non-existent properties of an object'); the members allowed, each with its source, are in SKYPE_MEMBERS")
def _skype_members(s: Script):
    allowed = {k: {m.lower() for m in v} for k, v in SKYPE_MEMBERS.items()}

    def check(cmdlet: str, member: str, line: int, text: str):
        if cmdlet not in allowed:
            return (line, f"{member} on {cmdlet}: the lint has no documented members for it (add them to SKYPE_MEMBERS with a source)")
        if member.lower() not in allowed[cmdlet]:
            return (line, f"{member} on the output of {cmdlet}: {text}")
        return None

    # `$x = Get-Cs... | Where-Object ...`, then `$x.Member` / `$x[0].Member` in the same scope.
    for node in s.of_type("assignment_expression"):
        left = s.text(node.children[0]).strip()
        value = node.child_by_field_name("value")
        if value is None or not re.fullmatch(r"\$\w+", left):
            continue
        value_text = s.text(value)
        cmdlet = _skype_source(value_text)
        if cmdlet is None:
            continue
        if re.search(r"\|\s*(ForEach-Object|%|Select-Object\s+-ExpandProperty)\b", value_text, re.IGNORECASE):
            continue  # the pipeline's output is no longer the cmdlet's object
        wrapped = value_text.lstrip().startswith("@(")
        scope = scope_of(node)
        scope_text = s.text(scope) if scope is not None else s.source.decode("utf-8")
        after = scope_text[max(0, (node.end_byte - (scope.start_byte if scope is not None else 0))):]
        names = [left[1:]]
        # `foreach ($item in $x) { $item.Member }`: the loop variable holds the same objects.
        names += re.findall(r"foreach\s*\(\s*\$(\w+)\s+in\s+\$" + re.escape(left[1:]) + r"\s*\)", after, re.IGNORECASE)
        for name in names:
            for member in _member_reads(after, name):
                if wrapped and name == left[1:] and member.lower() in INTRINSIC:
                    continue
                if member.lower() in ANY_OBJECT:
                    continue
                found = check(cmdlet, member, node.start_point[0] + 1, f"${name}.{member}")
                if found:
                    yield found
    # `(Get-Cs... -X y).Member`
    for match in re.finditer(r"\((?:@\()?\s*((?:Get|Request|Test)-Cs\w+)\b[^()]*\)\)?\.(\w+)", s.code, re.IGNORECASE):
        wrapped = s.code[match.start():match.start() + 3].startswith("(@(") or s.code[max(0, match.start() - 1)] == "@"
        if wrapped and match.group(2).lower() in INTRINSIC:
            continue
        line = s.line_of(match.start())
        found = check(match.group(1).lower(), match.group(2), line, s.line_text(line))
        if found:
            yield found
    # `Get-Cs... | Where-Object { $_.Member }`, `| Select-Object -ExpandProperty Member`, `| Sort-Object Member`.
    for pipeline in s.of_type("pipeline"):
        elements = [c for c in pipeline.children if c.type == "pipeline_chain"]
        for chain in elements:
            stages = [c for c in chain.children if c.type == "command"]
            if not stages:
                continue
            first = s.text(stages[0])
            cmdlet = _skype_source(first)
            if cmdlet is None:
                continue
            for stage in stages[1:]:
                name = s.text(stage.child_by_field_name("command_name") or stage).lower()
                stage_text = s.text(stage)
                members = [m for m in re.findall(r"\$_\.(\w+)", stage_text)]
                members += re.findall(r"-(?:ExpandProperty|Property)\s+'?(\w+)", stage_text, re.IGNORECASE)
                if name in ("where-object", "where", "?"):
                    members += re.findall(r"^\S+\s+(?!-)'?([A-Za-z]\w*)'?\s+-", stage_text)
                if name in ("sort-object", "sort"):
                    members += re.findall(r"^\S+\s+(?:-Property\s+)?'?([A-Za-z]\w*)", stage_text)
                for member in members:
                    found = check(cmdlet, member, stage.start_point[0] + 1, stage_text[:100])
                    if found:
                        yield found
                if name not in TYPE_PRESERVING or re.search(r"-ExpandProperty", stage_text, re.IGNORECASE):
                    break


# --- native executables ---------------------------------------------------------------------------

@rule("PS51-030", "a native executable run without reading its exit code ($LASTEXITCODE, or .ExitCode of Start-Process -PassThru)",
      "about_Automatic_Variables ($LASTEXITCODE: 'the exit code of the last native program'); "
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.management/start-process (-PassThru returns the process, whose ExitCode is set after -Wait); "
      "about_Preference_Variables ($ErrorActionPreference does not apply to native programs' exit codes in 5.1)")
def _native_exit_codes(s: Script):
    executables = {}
    for node in s.of_type("assignment_expression"):
        left = s.text(node.children[0]).strip().lower()
        if re.search(r"\.exe['\"]\s*\)?\s*$", s.text(node)):
            executables[left] = True
    for command in s.commands:
        target = command.lname
        native = target.endswith(".exe") or (command.invoked and target.lower() in executables)
        started = target == "start-process" and "wait" in command.parameters
        if not (native or started):
            continue
        scope = scope_of(command.node)
        scope_text = s.text(scope) if scope is not None else s.source.decode("utf-8")
        offset = command.node.end_byte - (scope.start_byte if scope is not None else 0)
        after = scope_text[offset:]
        if native and not re.search(r"\$(global:)?LASTEXITCODE\b", after, re.IGNORECASE):
            yield command.line, s.line_text(command.line)
        if started:
            assignment = enclosing(command.node, "assignment_expression")
            variable = s.text(assignment.children[0]).strip() if assignment is not None else ""
            if "passthru" not in command.parameters or not variable or (variable + ".ExitCode").lower() not in after.lower():
                yield command.line, s.line_text(command.line)


def _preference_before(s: Script, node) -> str:
    """The value of the last `$ErrorActionPreference = '...'` before `node` in its scope chain ('Stop' at the top)."""
    scope = scope_of(node)
    while True:
        assignments = [n for n in s.of_type("assignment_expression")
                       if re.match(r"\$(global:|script:)?ErrorActionPreference\b", s.text(n.children[0]).strip(), re.IGNORECASE)
                       and scope_of(n) == scope and n.start_byte < node.start_byte]
        if assignments:
            value = re.search(r"'(\w+)'", s.text(assignments[-1]))
            return value.group(1) if value else "?"
        if scope is None:
            return "Stop"  # the preamble every generated script begins with (PS51-061)
        scope = scope_of(scope)


@rule("PS51-031", "a native program's stderr redirected (2>&1, 2>) while $ErrorActionPreference is 'Stop': in 5.1 its first stderr line is a terminating error",
      "https://github.com/PowerShell/PowerShell/issues/3996 (native stderr and $ErrorActionPreference); "
      "https://github.com/MicrosoftDocs/PowerShell-Docs/issues/6466 (only PowerShell 7.1 stopped applying it to stderr)")
def _native_stderr(s: Script):
    for command in s.commands:
        if not command.lname.endswith(".exe"):
            continue
        chain = enclosing(command.node, "pipeline_chain")
        redirected = re.search(r"\b2>", s.code_of(command.node)) or (chain is not None and re.search(r"\b2>", s.code_of(chain)))
        if redirected and _preference_before(s, command.node).lower() == "stop":
            yield command.line, s.line_text(command.line)


# --- culture ---------------------------------------------------------------------------------------

@rule("PS51-040", "a date parsed from a string in a culture-dependent way ([datetime] cast of a string, Get-Date <string>, [datetime]::Parse without a culture, -as [datetime])",
      "about_Type_Conversion / about_Parsing (casts use the invariant culture, cmdlet parameters the current one); "
      "https://learn.microsoft.com/dotnet/api/system.datetime.parse (Parse(String) uses the current culture)")
def _date_parsing(s: Script):
    yield from s.matches(r"\[datetime\]\s*(?=[$'\"(])")
    yield from s.matches(r"-as\s+\[datetime\]")
    yield from s.matches(r"\bGet-Date\s+(?:-Date\s+)?(?=[$'\"(])")
    for line, text in s.matches(r"\[datetime\]::Parse(Exact)?\("):
        if "invariantculture" not in text.lower():
            yield line, text


DATE_EXPRESSIONS = r"(\(Get-Date\)|\[datetime\]::(Utc)?Now|\.(InstalledOn|NotAfter|NotBefore|LastWriteTime|CreationTime|StartTime|TimeCreated))"


@rule("PS51-041", "a date written with .ToString() without an invariant format and culture (the calendar and separators follow the server's culture)",
      "https://learn.microsoft.com/dotnet/standard/base-types/custom-date-and-time-format-strings "
      "('/' and ':' are the culture's separators; the culture's calendar is used); the 'o' and 's' formats are invariant")
def _date_formatting(s: Script):
    text = s.source.decode("utf-8")
    for match in re.finditer(DATE_EXPRESSIONS + r"(\.ToUniversalTime\(\)|\.ToLocalTime\(\))?\.ToString\((?P<arguments>[^)]*)\)", text, re.IGNORECASE):
        arguments = match.group("arguments")
        if "invariantculture" in arguments.lower() or re.fullmatch(r"\s*'[osu]'\s*", arguments, re.IGNORECASE):
            continue  # the round-trip and sortable formats are culture-invariant
        line = s.line_of(match.start())
        yield line, s.line_text(line)


@rule("PS51-042", "Get-HotFix's InstalledOn: a script property that parses a date string and throws on servers of another culture",
      "https://github.com/microsoft/mdefordownlevelserver/issues/15 (Sort-Object InstalledOn: 'String was not recognized as a valid DateTime' on "
      "Windows Server 2012 R2); https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-hotfix")
def _installed_on(s: Script):
    if any(c.lname == "get-hotfix" for c in s.commands):
        yield from s.matches(r"\bInstalledOn\b")


# --- exit -----------------------------------------------------------------------------------------

@rule("PS51-050", "`exit` inside a finally block (it replaces the exit code and any error being thrown)",
      "about_Try_Catch_Finally ('a Finally block runs ... even if you ... use CTRL+C'; leaving a finally block by exit discards what was being handled)")
def _exit_in_finally(s: Script):
    for node in s.of_type("flow_control_statement"):
        if s.text(node).lower().startswith("exit") and enclosing(node, "finally_clause") is not None:
            yield node.start_point[0] + 1, s.text(node)


@rule("PS51-051", "`exit` after Start-Transcript that is not inside a try whose finally stops the transcript",
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.host/start-transcript ('To stop a transcript, use Stop-Transcript'; a transcript left running keeps its file open); about_Try_Catch_Finally")
def _exit_skips_transcript(s: Script):
    starts = [c for c in s.commands if c.lname == "start-transcript"]
    stops = [c for c in s.commands if c.lname == "stop-transcript"]
    if not starts:
        return
    begin = min(c.node.start_byte for c in starts)
    end = max((c.node.start_byte for c in stops), default=len(s.source))
    for node in s.of_type("flow_control_statement"):
        if not s.text(node).lower().startswith("exit") or not begin < node.start_byte < end:
            continue
        guarded, current = False, node
        while (current := enclosing(current, "try_statement")) is not None:
            final = next((c for c in current.children if c.type == "finally_clause"), None)
            if final is not None and "stop-transcript" in s.text(final).lower():
                guarded = True
                break
        if not guarded:
            yield node.start_point[0] + 1, s.text(node)


# --- the file and its preamble --------------------------------------------------------------------

@rule("PS51-060", "not UTF-8 with a byte-order mark and CRLF line ends",
      "about_Character_Encoding ('Without a BOM, Windows PowerShell misinterprets your script as being encoded in the legacy \"ANSI\" codepage'); "
      "about_Signing (Authenticode hashes the bytes as written)")
def _bom_crlf(s: Script):
    if not s.data.startswith(b"\xef\xbb\xbf"):
        yield 1, "no UTF-8 byte-order mark"
    lone = re.search(rb"(?<!\r)\n|\r(?!\n)", s.data)
    if lone:
        line = s.data[:lone.start()].count(b"\n") + 1
        yield line, "a line end that is not CRLF"


@rule("PS51-061", "`Set-StrictMode -Version Latest` and `$ErrorActionPreference = 'Stop'` are not the first statements",
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.core/set-strictmode ('-Version Latest'); about_Preference_Variables ($ErrorActionPreference: 'Stop' makes "
      "non-terminating errors stop the script)")
def _preamble(s: Script):
    statements = next((c for c in s.tree.root_node.children if c.type == "statement_list"), None)
    first = [s.text(c) for c in (statements.children if statements is not None else []) if c.type != "comment"][:2]
    normal = [re.sub(r"\s+", " ", t.strip()) for t in first]
    if normal[:1] != ["Set-StrictMode -Version Latest"] or len(normal) < 2 or normal[1] != "$ErrorActionPreference = 'Stop'":
        yield (statements.start_point[0] + 1 if statements is not None else 1), " / ".join(first)[:120]


@rule("PS51-062", "Import-PowerShellDataFile (Windows PowerShell 5.0 and later) without `#Requires -Version 5.0` or later",
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/import-powershelldatafile ('This cmdlet was introduced in PowerShell 5.0'); "
      "about_Requires (#Requires -Version stops an older PowerShell before the script runs)")
def _data_file_requires(s: Script):
    uses = [c for c in s.commands if c.lname == "import-powershelldatafile"]
    required = re.search(r"^#Requires\s+-Version\s+([5-9])", s.source.decode("utf-8"), re.IGNORECASE | re.MULTILINE)
    if uses and not required:
        yield uses[0].line, s.line_text(uses[0].line)


# --- paths, files, JSON ---------------------------------------------------------------------------

@rule("PS51-070", "Join-Path on a drive other than C: outside any try (Join-Path throws when the drive does not exist)",
      "https://github.com/PowerShell/PowerShell/issues/4386 (Join-Path checks that the drive exists); "
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.management/join-path")
def _join_path_drive(s: Script):
    literals: dict[str, str] = {}
    for node in s.of_type("assignment_expression"):
        left = s.text(node.children[0]).strip().lower()
        match = re.fullmatch(r"\s*'([^']*)'\s*", s.text(node.child_by_field_name("value") or node))
        if match:
            literals[left] = match.group(1)
    for command in s.commands:
        if command.lname != "join-path" or enclosing(command.node, "try_statement") is not None:
            continue
        if scope_of(command.node) is not None:
            continue  # inside a function: it runs inside the runner's try
        arguments = s.text(command.node)[len(command.name):].split()
        first = next((a for a in arguments if not a.startswith("-")), "")
        path = literals.get(first.lower(), first.strip("'"))
        if re.match(r"[A-BD-Za-bd-z]:", path):
            yield command.line, s.line_text(command.line) + f"  ({first} = {path!r})"


WRITERS = {"set-content", "add-content", "out-file", "export-csv"}


@rule("PS51-071", "a file written without -Encoding, or with `>`/`>>` (5.1 writes ANSI with Set-Content, UTF-16 with Out-File and `>`)",
      "about_Character_Encoding ('In Windows PowerShell 5.1 ... Out-File and the redirection operators > and >> use UTF-16LE; "
      "Set-Content and Add-Content use the Default (ANSI) encoding')")
def _file_encoding(s: Script):
    for command in s.commands:
        if command.lname in WRITERS and "encoding" not in command.parameters:
            yield command.line, s.line_text(command.line)
    for node in s.of_type("redirection"):
        text = s.text(node)
        if re.match(r"\s*\d?>>?(?!\s*\$null)", text) and not re.match(r"\s*\d?>&", text):
            yield node.start_point[0] + 1, text


def container_depth(code: str) -> int:
    """How deeply @{...}, @(...) and [pscustomobject]@{...} literals nest in `code` (strings blanked)."""
    stack, deepest = [], 0
    for index, char in enumerate(code):
        if char in "{(":
            stack.append(index > 0 and code[index - 1] == "@")
            deepest = max(deepest, sum(stack))
        elif char in "})" and stack:
            stack.pop()
    return deepest


@rule("PS51-072", "ConvertTo-Json without -Depth on data nested deeper than its default depth of 2 (deeper levels are silently written as text)",
      "https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/convertto-json ('-Depth: Specifies how many levels of contained objects are included in the JSON "
      "representation. The default value is 2')")
def _json_depth(s: Script):
    for command in s.commands:
        if command.lname != "convertto-json" or "depth" in command.parameters:
            continue
        chain = enclosing(command.node, "pipeline_chain")
        stages = [c for c in chain.children if c.type in ("command", "unary_expression")] if chain is not None else []
        if not stages or stages[0] is command.node:
            yield command.line, s.line_text(command.line)  # -InputObject: the shape is not visible here
            continue
        source = s.code_of(stages[0])
        variable = re.fullmatch(r"\s*\(?\s*(\$\w+)\s*\)?\s*", source)
        if variable:
            name = variable.group(1).lower()
            scope = scope_of(command.node)
            assignments = [n for n in s.of_type("assignment_expression")
                           if s.text(n.children[0]).strip().lower() == name and scope_of(n) == scope and n.start_byte < command.node.start_byte]
            if not assignments:
                yield command.line, s.line_text(command.line) + "  (its input is not assigned in view)"
                continue
            source = s.code_of(assignments[-1].child_by_field_name("value"))
        if container_depth(source) > 2:
            yield command.line, s.line_text(command.line)


# --- comparisons and StrictMode -------------------------------------------------------------------

@rule("PS51-080", "$null on the right of -eq/-ne (against an array it filters instead of testing)",
      "https://learn.microsoft.com/powershell/utility-modules/psscriptanalyzer/rules/possibleincorrectcomparisonwithnull; about_Comparison_Operators")
def _null_right(s: Script):
    yield from s.matches(r"-[ci]?(eq|ne)\s+\$null\b")


@rule("PS51-081", "`.Count` read on a command's result that is not wrapped in @() (a single object has no Count under StrictMode in 5.1)",
      "https://github.com/PowerShell/PowerShell/issues/2798 (Set-StrictMode complains about .Count on a single object); "
      "about_Intrinsic_Members")
def _unwrapped_count(s: Script):
    array_functions = set()
    for node in s.of_type("function_statement"):
        body = s.text(node)
        name = s.text(next(c for c in node.children if c.type == "function_name")).lower()
        if re.search(r"return\s*,\s*\$", body) and not re.search(r"return\s+(?!,)\S", body):
            array_functions.add(name)
    command_names = {c.lname for c in s.commands}
    for node in s.of_type("assignment_expression"):
        left = s.text(node.children[0]).strip()
        value = node.child_by_field_name("value")
        if value is None or not re.fullmatch(r"\$\w+", left):
            continue
        value_text = s.text(value).strip()
        first_word = re.match(r"[A-Za-z][\w-]*", value_text)
        if not first_word or first_word.group(0).lower() not in command_names or first_word.group(0).lower() in array_functions:
            continue
        if first_word.group(0).lower() in ("new-object", "get-item", "get-acl", "import-powershelldatafile", "join-path", "get-date"):
            continue
        scope = scope_of(node)
        scope_text = s.text(scope) if scope is not None else s.source.decode("utf-8")
        after = scope_text[node.end_byte - (scope.start_byte if scope is not None else 0):]
        reassigned = re.search(re.escape(left) + r"\s*(\+)?=", after)
        read = re.search(re.escape(left) + r"\.Count\b", after, re.IGNORECASE)
        if read and not (reassigned and reassigned.start() < read.start()):
            yield node.start_point[0] + 1, s.line_text(node.start_point[0] + 1)
    for match in re.finditer(r"(?<!@)\(\s*([A-Za-z][\w-]*)[^()]*\)\.Count\b", s.code):
        name = match.group(1).lower()
        if name in command_names and name not in array_functions:
            line = s.line_of(match.start())
            yield line, s.line_text(line)


# --- certificates and standard input --------------------------------------------------------------

@rule("PS51-090", "`.PublicKey.Key` (throws NotSupportedException for ECDSA keys, which LocalMachine\\My may hold)",
      "https://learn.microsoft.com/dotnet/api/system.security.cryptography.x509certificates.publickey.key "
      "('only RSA and DSA keys are supported'; .NET Framework 4.x throws for other algorithms)")
def _public_key(s: Script):
    for match in re.finditer(r"\.PublicKey\.Key\b", s.code):
        node = s.tree.root_node.descendant_for_byte_range(len(s.code[:match.start()].encode("utf-8")), len(s.code[:match.end()].encode("utf-8")))
        guard = enclosing(node, "try_statement", "catch_clause")
        if guard is not None and guard.type == "try_statement" and any(c.type == "catch_clauses" or c.type == "catch_clause" for c in guard.children):
            continue  # the NotSupportedException is caught
        line = s.line_of(match.start())
        yield line, s.line_text(line)


@rule("PS51-091", "text piped to a native program without setting $OutputEncoding (5.1 sends ASCII: non-ASCII characters become '?')",
      "about_Preference_Variables ($OutputEncoding: in Windows PowerShell the default is ASCIIEncoding)")
def _output_encoding(s: Script):
    if re.search(r"\$OutputEncoding\s*=", s.code, re.IGNORECASE):
        return
    for pipeline in s.of_type("pipeline_chain"):
        stages = [c for c in pipeline.children if c.type in ("command", "unary_expression")]
        for _position, stage in enumerate(stages[1:], 1):
            if stage.type == "command" and s.text(stage.child_by_field_name("command_name") or stage).strip("'\"").lower().endswith(".exe"):
                yield stage.start_point[0] + 1, s.line_text(stage.start_point[0] + 1)


@rule("PS51-092", "[Console]::In read without setting [Console]::InputEncoding (5.1 decodes standard input in the console's OEM code page)",
      "https://learn.microsoft.com/dotnet/api/system.console.inputencoding (the default is the console's input code page)")
def _input_encoding(s: Script):
    if re.search(r"\[Console\]::InputEncoding\s*=", s.code, re.IGNORECASE):
        return
    yield from s.matches(r"\[Console\]::In\b")


@rule("PS51-093", "ConvertFrom-Json piped straight into Where-Object/ForEach-Object/Select-Object/Sort-Object (5.1 sends a JSON array as one object)",
      "https://github.com/PowerShell/PowerShell/issues/3424 (ConvertFrom-Json sends objects converted from a JSON array as an array through the "
      "pipeline; enumerated only from PowerShell 7.0)")
def _json_array_pipeline(s: Script):
    yield from s.matches(r"ConvertFrom-Json[^|;\n)]*\|\s*(Where-Object|ForEach-Object|Select-Object|Sort-Object|where|%|\?)\b")


@rule("PS51-094", "an array piped into ConvertTo-Json (a one-element array is written without its brackets; pass it with -InputObject)",
      "https://github.com/PowerShell/PowerShell/issues/11857 and https://github.com/PowerShell/PowerShell/issues/18203 "
      "(the pipeline unrolls the array; ConvertTo-Json -InputObject keeps it)")
def _array_into_json(s: Script):
    for command in s.commands:
        if command.lname != "convertto-json":
            continue
        chain = enclosing(command.node, "pipeline_chain")
        stages = [c for c in chain.children if c.type in ("command", "unary_expression")] if chain is not None else []
        if not stages or stages[0] is command.node:
            continue
        source = s.code_of(stages[0]).strip()
        if source.startswith("@(") or source.startswith(","):
            yield command.line, s.line_text(command.line)
            continue
        variable = re.fullmatch(r"\(?\s*(\$\w+)\s*\)?", source)
        if variable:
            scope = scope_of(command.node)
            assignments = [n for n in s.of_type("assignment_expression")
                           if s.text(n.children[0]).strip().lower() == variable.group(1).lower() and scope_of(n) == scope
                           and n.start_byte < command.node.start_byte]
            if assignments and s.code_of(assignments[-1].child_by_field_name("value")).strip().startswith("@("):
                yield command.line, s.line_text(command.line)


def lint(name: str, data: bytes, only: set[str] | None = None) -> list[Finding]:
    """The findings of every rule (or of the rules in `only`) on one script."""
    script = Script(name, data)
    findings = []
    for rule_id, entry in RULES.items():
        if only is not None and rule_id not in only:
            continue
        for line, text in entry.check(script):
            findings.append(Finding(rule_id, name, line, text))
    return sorted(set(findings), key=lambda f: (f.script, f.line, f.rule, f.text))
