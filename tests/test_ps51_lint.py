"""The Windows PowerShell 5.1 lint (tests/ps51_lint.py) over every generated script: the compiled
samples and the import of every real document in ../shared/topologies, Invoke-Runbook.ps1 and
Test-Bundle.ps1 included. Each rule is shown to fire on a small bad snippet and to stay quiet on a
good one, so the lint cannot pass by finding nothing."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from fnmatch import fnmatch

import pytest

from tests import ps51_lint
from tests.conftest import SHARED, VALID_SAMPLES

CRLF = "\r\n"


def script(body: str, preamble: bool = True) -> bytes:
    """A script as sfbgen writes it (BOM, CRLF, StrictMode first) around `body`."""
    head = "Set-StrictMode -Version Latest\n$ErrorActionPreference = 'Stop'\n" if preamble else ""
    return ("\ufeff" + head + body.strip("\n") + "\n").replace("\n", CRLF).encode("utf-8")


# rule -> (bad, good): the bad one must produce a finding of that rule, the good one none.
CASES: dict[str, tuple[bytes, bytes]] = {
    "PS51-001": (script("$name = $env:USERNAME ?? 'unknown'\n$x = $a ? 1 : 2\nTest-Path $p && Write-Host 'x'"),
                 script("$name = $env:USERNAME\nif (-not $name) { $name = 'unknown' }\nWrite-Host 'a && b ?? c'  # || in a comment")),
    "PS51-002": (script("$p = Join-Path 'C:\\' 'a' -AdditionalChildPath 'b'\n$j = Get-Content $f -Raw | ConvertFrom-Json -AsHashtable"),
                 script("$p = Join-Path (Join-Path 'C:\\' 'a') 'b'\n$j = Get-Content -LiteralPath $f -Raw | ConvertFrom-Json")),
    "PS51-003": (script("if (Test-Json -Json $text) { 'ok' }"),
                 script("$null = $text | ConvertFrom-Json")),
    "PS51-004": (script("if ($IsWindows) { 'windows' }"),
                 script("if ([Environment]::OSVersion.Platform -eq 'Win32NT') { 'windows' }")),
    "PS51-005": (script("function F { process { 1 } clean { 2 } }"),
                 script("function F { process { 1 } end { 2 } }")),
    "PS51-010": ("\ufeff[CmdletBinding()]\r\nparam([string]$Folder = (Join-Path $PSScriptRoot 'x'))\r\nSet-StrictMode -Version Latest\r\n"
                 "$ErrorActionPreference = 'Stop'\r\n".encode("utf-8"),
                 "\ufeff[CmdletBinding()]\r\nparam([string]$Folder = '')\r\nSet-StrictMode -Version Latest\r\n$ErrorActionPreference = 'Stop'\r\n"
                 "if (-not $Folder) { $Folder = Join-Path $PSScriptRoot 'x' }\r\n".encode("utf-8")),
    "PS51-020": (script("$svc = Get-CsWindowsService -Name 'REPLICA'\nif ($svc.Health -eq 'Good') { 1 }\n"
                        "Get-CsCertificate | Where-Object { $_.Uses -match 'Default' }\n"
                        "$all = @(Get-CsWindowsService)\nforeach ($one in $all) { $one.Name }\n$x = (Get-CsPool -Identity $p).Members"),
                 script("$svc = Get-CsWindowsService -Name 'REPLICA'\nif ($svc.Status -eq 'Running') { 1 }\n"
                        "Get-CsCertificate | Where-Object { $_.Subject -eq 'CN=x' } | Select-Object -ExpandProperty Thumbprint\n"
                        "$pending = @(Request-CsCertificate -List)\nif ($pending.Count -gt 0) { $pending[0].RequestId }\n"
                        "$all = @(Get-CsWindowsService)\nforeach ($one in $all) { $one.DisplayName }\n$x = (Get-CsPool -Identity $p).Computers\n"
                        "$n = @(Request-CsCertificate -List).Count")),
    "PS51-030": (script("& 'icacls.exe' $Folder '/reset'\nStart-Process -FilePath 'setup.exe' -Wait"),
                 script("& 'icacls.exe' $Folder '/reset'\nif ($LASTEXITCODE -ne 0) { throw 'icacls' }\n"
                        "$process = Start-Process -FilePath 'setup.exe' -Wait -PassThru\nif ($process.ExitCode -ne 0) { throw 'setup' }\n"
                        "$null = & 'certutil.exe' -ping 2>&1\n$ok = ($global:LASTEXITCODE -eq 0)")),
    "PS51-031": (script("$out = & 'certutil.exe' -ping 2>&1\nif ($LASTEXITCODE -ne 0) { throw 'ca' }"),
                 script("$ErrorActionPreference = 'Continue'\n$out = & 'certutil.exe' -ping 2>&1\n$ok = $LASTEXITCODE -eq 0\n"
                        "$ErrorActionPreference = 'Stop'\n& 'icacls.exe' $f '/reset' | Out-Null\nif ($LASTEXITCODE) { throw 'icacls' }")),
    "PS51-040": (script("$when = [datetime]$record.finished\n$other = Get-Date '04.12.2026'"),
                 script("$when = [datetime]::ParseExact($record.finished, 'o', [Globalization.CultureInfo]::InvariantCulture)\n$now = Get-Date")),
    "PS51-041": (script("$text = (Get-Date).ToString('yyyy/MM/dd')\n$until = $cert.NotAfter.ToString()"),
                 script("$text = (Get-Date).ToString('o')\n$until = $cert.NotAfter.ToString('yyyy-MM-dd', [Globalization.CultureInfo]::InvariantCulture)")),
    "PS51-042": (script("$newest = Get-HotFix | Sort-Object InstalledOn | Select-Object -Last 1"),
                 script("$count = @(Get-HotFix).Count")),
    "PS51-050": (script("try { Invoke-Main } finally { Stop-Transcript; exit $code }"),
                 script("try { Invoke-Main } finally { Stop-Transcript }\nexit $code")),
    "PS51-051": (script("Start-Transcript -LiteralPath $log\nif (-not $ok) { exit 1 }\nStop-Transcript"),
                 script("Start-Transcript -LiteralPath $log\ntry {\n    if (-not $ok) { exit 1 }\n} finally {\n    Stop-Transcript\n}")),
    "PS51-060": (b"Set-StrictMode -Version Latest\n$ErrorActionPreference = 'Stop'\n",
                 script("Write-Host 'x'")),
    "PS51-061": ("\ufeff$x = 1\r\nSet-StrictMode -Version Latest\r\n$ErrorActionPreference = 'Stop'\r\n".encode("utf-8"),
                 script("$x = 1")),
    "PS51-062": (script("$m = Import-PowerShellDataFile -LiteralPath $p"),
                 ("\ufeff#Requires -Version 5.1\r\n" + script("$m = Import-PowerShellDataFile -LiteralPath $p").decode("utf-8-sig")).encode("utf-8")),
    "PS51-070": (script("$MediaFolder = 'E:\\'\n$SetupFolder = Join-Path $MediaFolder 'Setup\\amd64'"),
                 script("$MediaFolder = 'E:\\'\n$SetupFolder = $MediaFolder.TrimEnd('\\') + '\\Setup\\amd64'\n"
                        "$StateFolder = Join-Path $env:ProgramData 'sfbgen'\n$Share = Join-Path '\\\\files\\Media' 'x'")),
    "PS51-071": (script("$text | Set-Content -LiteralPath $path\n$text > $path"),
                 script("$text | Set-Content -LiteralPath $path -Encoding UTF8\n$text | Out-File -LiteralPath $path -Encoding ascii\n$x 2> $null")),
    "PS51-072": (script("$state = @{ servers = @(@{ name = 'a'; steps = @{ done = 1 } }) }\n$state | ConvertTo-Json"),
                 script("$state = [ordered]@{ done = @($Done.Keys | Sort-Object) }\n$state | ConvertTo-Json\n"
                        "$deep = @{ a = @(@{ b = @{ c = 1 } }) }\n$deep | ConvertTo-Json -Depth 5")),
    "PS51-080": (script("if ($items -eq $null) { 'none' }"),
                 script("if ($null -eq $items) { 'none' }")),
    "PS51-081": (script("$files = Get-ChildItem -LiteralPath $p\nif ($files.Count -gt 0) { 1 }\nif ((Get-Service).Count -gt 0) { 2 }"),
                 script("$files = @(Get-ChildItem -LiteralPath $p)\nif ($files.Count -gt 0) { 1 }\nif (@(Get-Service).Count -gt 0) { 2 }\n"
                        "function Get-List { $list = @(); return ,$list }\nif ((Get-List).Count -eq 0) { 3 }")),
    "PS51-090": (script("if ($cert.PublicKey.Key.KeySize -lt 2048) { 1 }"),
                 script("$rsa = [Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPublicKey($cert)\n"
                        "if ($rsa -and $rsa.KeySize -lt 2048) { 1 }\ntry { $size = $cert.PublicKey.Key.KeySize } catch { $size = 0 }")),
    "PS51-091": (script("$json | & 'powershell.exe' -File $path"),
                 script("$OutputEncoding = New-Object System.Text.UTF8Encoding($false)\n$json | & 'powershell.exe' -File $path")),
    "PS51-092": (script("$line = [Console]::In.ReadLine()"),
                 script("[Console]::InputEncoding = New-Object System.Text.UTF8Encoding($false)\n$line = [Console]::In.ReadLine()")),
    "PS51-093": (script("$done = Get-Content -LiteralPath $p -Raw | ConvertFrom-Json | Where-Object { $_.ok }"),
                 script("$done = @(Get-Content -LiteralPath $p -Raw | ConvertFrom-Json) | Where-Object { $_.ok }\n"
                        "$record = Get-Content -LiteralPath $p -Raw | ConvertFrom-Json")),
    "PS51-094": (script("$ids = @($Done.Keys)\n$ids | ConvertTo-Json -Depth 2\n@('a') | ConvertTo-Json"),
                 script("$ids = @($Done.Keys)\nConvertTo-Json -InputObject $ids -Depth 2\n$state = @{ ids = $ids }\n$state | ConvertTo-Json -Depth 3")),
}


def test_every_rule_has_an_id_a_one_line_title_and_a_citation():
    assert len(ps51_lint.RULES) >= 20
    for rule_id, rule in ps51_lint.RULES.items():
        assert re.fullmatch(r"PS51-\d{3}", rule_id)
        assert rule.title and "\n" not in rule.title
        assert re.search(r"learn\.microsoft\.com|github\.com/PowerShell/PowerShell/issues/\d+|github\.com/microsoft/|about_\w+|"
                         r"MicrosoftDocs/", rule.source), rule_id


def test_every_rule_has_a_bad_and_a_good_case():
    assert set(CASES) == set(ps51_lint.RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_the_bad_snippet_and_not_on_the_good_one(rule_id, pwsh):
    bad, good = CASES[rule_id]
    # Both snippets are PowerShell 5.1 code a parser reads (PS51-001's bad one is PowerShell 7 syntax).
    if rule_id != "PS51-001":
        assert pwsh.error_nodes(bad) == [], rule_id
    assert pwsh.error_nodes(good) == [], rule_id
    assert [f for f in ps51_lint.lint("bad.ps1", bad) if f.rule == rule_id], f"{rule_id} stays quiet on its bad snippet"
    assert [str(f) for f in ps51_lint.lint("good.ps1", good) if f.rule == rule_id] == []


def test_the_member_table_names_a_source_for_every_member():
    for cmdlet, members in ps51_lint.SKYPE_MEMBERS.items():
        for member, source in members.items():
            # Microsoft's pages, or the working scripts issue 18 cites (argiesen/Skype4B, alvinchen1/ExchangeSkypeMDTAutomate).
            assert re.match(r"\w", member) and any(mark in source for mark in ("MicrosoftDocs/", "argiesen/", "alvinchen1/")), (cmdlet, member)


# --- the generated scripts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowance:
    """A finding that remains in today's output, named and cited, with what must be done about it."""

    rule: str
    scripts: str  # a glob over "<sample or document>/<server>/<file>"
    text: str  # a regular expression the finding's text must match
    why: str
    todo: str


# Each entry is a known defect of a file another engineer is rewriting at the same time (issue 18,
# item 1), or a fact only a lab can settle. None is a blanket skip: each matches one rule, one
# script family and one text.
ALLOWANCES: list[Allowance] = [
    # None today. The last one, PS51-020 "Name on the output of get-cswindowsservice" (4-Start-Pool.ps1,
    # 4-Start-Services.ps1: Get-CsWindowsService.md names Status, DisplayName and RoleName, not Name), was
    # fixed by printing DisplayName. An entry looks like:
    # Allowance("PS51-020", "*/4-Start-*.ps1", r"^Name on the output of get-cswindowsservice", "<why, with its source>",
    #           "TODO(issue 18): <what must change>"),
]


def _allowed(finding: ps51_lint.Finding) -> Allowance | None:
    for allowance in ALLOWANCES:
        if finding.rule == allowance.rule and fnmatch(finding.script, allowance.scripts) and re.search(allowance.text, finding.text):
            return allowance
    return None


def _scripts(result, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{name}": data for name, data in sorted(result.files.items()) if name.endswith(".ps1")}


@pytest.fixture(scope="module")
def sample_scripts(compiled) -> dict[str, bytes]:
    out = {}
    for stem, result in compiled.items():
        out.update(_scripts(result, stem))
    return out


@pytest.fixture(scope="module")
def imported_scripts(tmp_path_factory) -> dict[str, bytes]:
    folder = SHARED / "topologies"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available (../shared is not beside the checkout): the imports cannot be linted")
    from sfbgen.compiler import compile_file
    from sfbgen.importer import import_bytes
    from tests.test_import import OPTIONS

    out = {}
    base = tmp_path_factory.mktemp("lint-imports")
    documents = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".xml", ".tbxml"))
    assert documents, folder
    for document in documents:
        result = import_bytes(document.read_bytes(), document.name, OPTIONS)
        assert result.text is not None, document.name
        work = base / document.stem
        work.mkdir()
        (work / "t.sfb").write_text(result.text, encoding="utf-8")
        out.update(_scripts(compile_file(work / "t.sfb", work / "out"), document.stem))
    return out


def _lint_all(scripts: dict[str, bytes]) -> tuple[list[str], set[Allowance]]:
    problems, used = [], set()
    for name, data in scripts.items():
        for finding in ps51_lint.lint(name, data):
            allowance = _allowed(finding)
            if allowance is None:
                problems.append(str(finding))
            else:
                used.add(allowance)
    return problems, used


def test_the_samples_give_every_kind_of_script(sample_scripts):
    names = {name.rsplit("/", 1)[-1] for name in sample_scripts}
    assert {"Invoke-Runbook.ps1", "Test-Bundle.ps1", "0-Prepare-CentralManagementStore.ps1", "1-Install-LocalConfigurationStore.ps1",
            "2-Setup-Components.ps1", "3-Request-Certificates.ps1", "4-Start-Pool.ps1", "4-Start-Services.ps1",
            "Export-EdgeConfiguration.ps1"} <= names
    assert len(VALID_SAMPLES) == len({n.split("/", 1)[0] for n in sample_scripts})


def _report(problems: list[str], used: set[Allowance], scripts: dict[str, bytes]) -> None:
    unused = [a for a in ALLOWANCES if a not in used and any(fnmatch(n, a.scripts) for n in scripts)]
    for allowance in unused:  # fixed meanwhile: the allowance can go (a warning, so that a fix never breaks the tree)
        warnings.warn(f"allowance no longer needed: {allowance.rule} {allowance.scripts} {allowance.text}", stacklevel=2)
    assert problems == [], f"{len(problems)} findings:\n" + "\n".join(problems[:60])


def test_compiled_samples_pass_the_lint(sample_scripts):
    problems, used = _lint_all(sample_scripts)
    _report(problems, used, sample_scripts)


def test_imported_documents_pass_the_lint(imported_scripts):
    assert any(n.endswith("/Invoke-Runbook.ps1") for n in imported_scripts)
    problems, used = _lint_all(imported_scripts)
    _report(problems, used, imported_scripts)


def test_every_allowance_is_named_cited_and_narrow():
    for allowance in ALLOWANCES:
        assert allowance.rule in ps51_lint.RULES
        assert allowance.todo.startswith("TODO") and allowance.why
        assert allowance.scripts not in ("*", "**") and allowance.text not in ("", ".*")
