"""Steps 3 and 4 as a real server would run them (issue 18): read from the compiled scripts, since no
PowerShell runs here.

- No parameter default reads $PSScriptRoot, $PSCommandPath or $MyInvocation (PowerShell/PowerShell#4688).
- Certificate fitness accepts the subject Request-CsCertificate writes (the pool or the server FQDN),
  checks the SANs in the SAN extension itself, and never requests again what an earlier run obtained.
- Key sizes are read without PublicKey.Key on a certificate that is not RSA; secrets from standard
  input are decoded as UTF-8.
- Start-CsPool by Microsoft's rules: the documented minimum of members, -SkipServer only for members the
  operator names, a bounded wait for services still starting (and the same wait in 4-Start-Services.ps1).
- An Edge certificate sent online to the enterprise CA is warned about (SFB310).
- No member is read on a Skype cmdlet's output that Microsoft's pages do not name.
"""

from __future__ import annotations

import re

import pytest

from sfbgen import check_text
from sfbgen.compiler import compile_file
from sfbgen.platform import fact
from tests import pwsh_tree as pt

MINE = ("3-Request-Certificates.ps1", "4-Start-Pool.ps1", "4-Start-Services.ps1", "Export-EdgeConfiguration.ps1")


def _scripts(compiled, *suffixes: str):
    for sample, result in sorted(compiled.items()):
        for name, data in sorted(result.files.items()):
            if name.endswith(suffixes or MINE):
                yield f"{sample}:{name}", data


def _text(source: bytes, node) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8")


def _function(text: str, name: str) -> str:
    """The text of one top-level function of a generated script."""
    start = text.index(f"function {name}")
    end = text.index("\n}", start)
    return text[start:end + 2]


def _code(text: str) -> str:
    """The script without its comment lines (prose may name what the code must not use)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _blocks(text: str) -> list[str]:
    """Invoke-Main's part for each certificate of a step 3 script."""
    main = _function(text, "Invoke-Main")
    return main.split("# Certificate ")[1:]


# ---------------------------------------------------------------------------------------------------
# 1. Parameter defaults


AUTOMATIC = re.compile(r"^\$(PSScriptRoot|PSCommandPath|MyInvocation)\b", re.IGNORECASE)


def test_no_parameter_default_reads_the_script_location(compiled):
    """Windows PowerShell 5.1 evaluates an advanced script's parameter defaults before it sets
    $PSScriptRoot (PowerShell/PowerShell#4688): such a default is empty, and Join-Path fails on it."""
    seen = 0
    for name, source in _scripts(compiled):
        tree = pt.parse(source)
        block = next(n for n in tree.root_node.children if n.type == "param_block")
        for node in pt.walk(block):
            if node.type == "script_parameter_default":
                seen += 1
                for inner in pt.walk(node):
                    if inner.type == "variable":
                        assert not AUTOMATIC.match(_text(source, inner)), f"{name}: {_text(source, node)}"
    assert seen > 0


def test_the_response_folder_is_resolved_in_the_body(compiled):
    text = compiled["contoso"].files["edge01.contoso.com/3-Request-Certificates.ps1"].decode("utf-8-sig")
    assert "[string]$ResponseFolder = ''" in text
    body = text[text.index("\nparam(") :]
    body = body[body.index("\n)") :]
    default = "if (-not $ResponseFolder) { $ResponseFolder = Join-Path $PSScriptRoot 'responses' }"
    # Set before PowerShell resolves it and before any function can read it.
    assert body.index(default) < body.index("$ResponseFolder = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($ResponseFolder)") < body.index("function Invoke-Main")


# ---------------------------------------------------------------------------------------------------
# 2. The subject Request-CsCertificate writes; SANs strictly; never requested again


def test_director_web_certificates_accept_the_pool_or_the_server_as_subject(compiled):
    """Request-CsCertificate.md, -ComputerFqdn: the cmdlet "will automatically add the pool name to the
    Subject Name"; the Director's web certificates are planned with the server's FQDN (environmental-
    requirements.md): either is accepted, the planned one first."""
    server = compiled["fabrikam-2019"].plan.server("sfbdir01.fabrikam.com")
    web = {r.usages: r for r in server.requests}
    for usage in (("WebServicesInternal",), ("WebServicesExternal",)):
        assert web[usage].subject == "sfbdir01.fabrikam.com"
        assert web[usage].subjects == ("sfbdir01.fabrikam.com", "sfbdir.fabrikam.com")
    assert web[("Default",)].subjects == ("sfbdir.fabrikam.com", "sfbdir01.fabrikam.com")
    text = compiled["fabrikam-2019"].files["sfbdir01.fabrikam.com/3-Request-Certificates.ps1"].decode("utf-8-sig")
    internal = next(b for b in _blocks(text) if b.startswith("2 of 3: WebServicesInternal"))
    assert "Subjects = @('sfbdir01.fabrikam.com', 'sfbdir.fabrikam.com')" in internal
    problems = _function(text, "Get-CertificateProblems")
    assert "if (@($Want.Subjects) -notcontains $cn)" in problems


def test_edge_and_oauth_subjects_stay_as_planned(compiled):
    plan = compiled["contoso"].plan
    edge = {r.usages: r for r in plan.server("edge01.contoso.com").requests}
    assert edge[("Internal",)].subjects == ("edge.contoso.com",)
    assert edge[("AccessEdgeExternal", "DataEdgeExternal", "AudioVideoAuthentication")].subjects == (edge[("AccessEdgeExternal", "DataEdgeExternal", "AudioVideoAuthentication")].subject,)
    assert plan.oauth.subjects == (plan.oauth.subject,)


def test_sans_are_read_from_the_san_extension_not_from_dns_name_list(compiled):
    """DnsNameList adds the subject's common name to the SANs (PowerShell's CertificateProvider.cs,
    DnsNameProperty): a certificate lacking a SAN equal to its subject would pass."""
    for name, source in _scripts(compiled, "3-Request-Certificates.ps1"):
        text = source.decode("utf-8-sig")
        assert "DnsNameList" not in _code(text), name
        sans = _function(text, "Get-DnsAlternativeNames")
        assert "$extension.Oid.Value -ne '2.5.29.17'" in sans and "-eq 0x82" in sans, name
        assert "$present = Get-DnsAlternativeNames $Certificate" in _function(text, "Get-CertificateProblems"), name


def test_a_certificate_an_earlier_run_obtained_is_never_requested_again(compiled):
    checked = 0
    for name, source in _scripts(compiled, "3-Request-Certificates.ps1"):
        text = source.decode("utf-8-sig")
        for block in _blocks(text):
            if "Request-CsCertificate -New" not in block:
                continue
            # What an earlier run obtained is looked for first: a mismatch stops the run, naming it.
            assert block.index("Find-FitCertificate $want") < block.index("Assert-NoEarlierMismatch $want") < block.index("Request-CsCertificate -New"), name
            # What this run obtains is recorded before it is checked (Assert-Fit may stop the run).
            assert block.index("Save-CertificateRecord $want.Id $certificate.Thumbprint") < block.index("Assert-Fit $certificate $want"), name
        if "Assert-NoEarlierMismatch $want" not in text:
            continue  # only imports the Edge pool's shared certificates
        checked += 1
        earlier = _function(text, "Find-EarlierCertificate")
        assert "Read-CertificateRecord $Want.Id" in earlier and "$_.FriendlyName -eq $Want.FriendlyName" in earlier
        assert "Assert-Fit $earlier $Want" in _function(text, "Assert-NoEarlierMismatch")
        assert "it is not requested again" in _function(text, "Assert-Fit")
    assert checked


def test_a_pending_request_is_retrieved_only_when_this_script_made_one(compiled):
    text = compiled["contoso"].files["fe02.contoso.com/3-Request-Certificates.ps1"].decode("utf-8-sig")
    block = next(b for b in _blocks(text) if "Request-CsCertificate -New" in b)
    retrieve = block[block.index("$record = Read-CertificateRecord $want.Id"):]
    assert retrieve.index("if ($null -ne $record -and $record -eq '' -and $pending -gt 0) {") < retrieve.index("Request-CsCertificate -Retrieve")
    assert retrieve.index("Request-CsCertificate -Retrieve -Confirm:$false") < retrieve.index("} elseif ($PSCmdlet.ShouldProcess") < retrieve.index("Request-CsCertificate -New")


def test_offline_answers_are_matched_by_every_name(compiled):
    """With the pool or the server accepted as subject, the subject alone no longer tells the answers
    apart: a -CertificateResponse file is taken for a request only when it carries all its names."""
    text = compiled["fabrikam-2019"].files["sfbedge01.fabrikam.com/3-Request-Certificates.ps1"].decode("utf-8-sig")
    assert "if (Test-CertificateNames $candidate $Want) { return $path }" in _function(text, "Find-Response")


# ---------------------------------------------------------------------------------------------------
# 3. Key-type-proof key size


def test_public_key_key_is_read_only_for_rsa_keys(compiled):
    """.NET Framework's PublicKey.Key fails on an ECDSA certificate (NotSupportedException), and
    Find-FitCertificate looks at every certificate of LocalMachine\\My."""
    for name, source in _scripts(compiled, "3-Request-Certificates.ps1"):
        text = source.decode("utf-8-sig")
        size = _function(text, "Get-RsaKeySize")
        assert _code(text).count("PublicKey.Key") == _code(size).count("PublicKey.Key") == 1, name
        assert size.index("$Certificate.PublicKey.Oid.Value -ne '1.2.840.113549.1.1.1'") < size.index("GetRSAPublicKey($Certificate)") < size.index("PublicKey.Key")
        assert "try { return [int]$Certificate.PublicKey.Key.KeySize } catch { return 0 }" in size
        problems = _function(text, "Get-CertificateProblems")
        assert "$size = Get-RsaKeySize $Certificate" in problems and "'its key is not an RSA key'" in problems


# ---------------------------------------------------------------------------------------------------
# 4. Secrets on standard input, as UTF-8


def test_standard_input_is_read_as_utf8(compiled):
    found = 0
    for name, source in _scripts(compiled, "3-Request-Certificates.ps1"):
        text = source.decode("utf-8-sig")
        if "$SecretsFromInput" not in text:
            continue
        found += 1
        assert "[Console]::In.ReadLine()" not in text, name
        reader = _function(text, "Read-StandardInputLine")
        set_encoding = reader.index("[Console]::InputEncoding = $utf8")
        assert reader.index("$utf8 = New-Object System.Text.UTF8Encoding($false)") < set_encoding
        assert set_encoding < reader.index("[Console]::OpenStandardInput()") < reader.index(".ReadLine()")
        assert "New-Object System.IO.StreamReader([Console]::OpenStandardInput(), $utf8)" in reader
        assert "$line = Read-StandardInputLine" in _function(text, "Get-InputSecret")
    assert found


# ---------------------------------------------------------------------------------------------------
# 5. Start-CsPool by Microsoft's rules


def test_the_pool_start_minimum_is_microsofts_table():
    table = fact("pool_start_minimum")
    documented = {2: 1, 3: 3, 4: 3, 5: 4, 6: 5, 7: 5, 8: 6, 9: 7, 10: 8, 11: 9, 12: 10, 16: 12}
    assert {int(k): v for k, v in table.items() if int(k) in documented} == documented
    assert sorted(fact("pool_start_documented_sizes")) == sorted(documented)
    assert set(table) == {str(n) for n in range(1, 17)}
    assert all(table[str(n)] <= table[str(n + 1)] for n in range(1, 16))  # never fewer for a larger pool


@pytest.mark.parametrize("sample,server,minimum", [("contoso", "fe01.contoso.com", 3), ("fabrikam-2019", "sfbfe01.fabrikam.com", 3)])
def test_start_pool_refuses_below_the_documented_minimum(compiled, sample, server, minimum):
    text = compiled[sample].files[f"{server}/4-Start-Pool.ps1"].decode("utf-8-sig")
    assert f"$MinimumToStart = {minimum}\r\n" in text
    main = _function(text, "Invoke-Main")
    check = "if ($ready.Count -lt $MinimumToStart) {"
    assert main.index("$problem = Get-MemberProblem $member") < main.index(check) < main.index("Start-CsPool -PoolFqdn")
    assert "Nothing was changed" in main[main.index(check):main.index(check) + 600]


def test_skip_server_only_for_members_the_operator_names(compiled):
    text = compiled["contoso"].files["fe01.contoso.com/4-Start-Pool.ps1"].decode("utf-8-sig")
    assert "[string[]]$SkipServer = @()" in text
    main = _function(text, "Invoke-Main")
    # A name that is not a member is refused; only a member that is not ready and named is skipped.
    assert "if ($Members -notcontains $name) {" in main
    assert "} elseif ($SkipServer -contains $member) {\r\n            $skipped += $member" in main
    assert main.count("$skipped += ") == 1
    calls = [c for c in pt.commands(text.encode("utf-8")) if c.name == "Start-CsPool"]
    assert sorted(c.text for c in calls) == ["Start-CsPool -PoolFqdn $PoolFqdn -Confirm:$false", "Start-CsPool -PoolFqdn $PoolFqdn -SkipServer $skipped -Confirm:$false"]
    assert main.index("if ($skipped.Count -gt 0) {\r\n                Start-CsPool -PoolFqdn $PoolFqdn -SkipServer $skipped") > 0
    # A pool started without a member is not recorded as done.
    assert main.index("if ($skipped.Count -gt 0) {\r\n        # The pool runs without them") < main.index("Set-StepDone 4")


def test_every_member_not_ready_is_named_before_anything_starts(compiled):
    text = compiled["contoso"].files["fe01.contoso.com/4-Start-Pool.ps1"].decode("utf-8-sig")
    member = _function(text, "Get-MemberProblem")
    assert "Assert-StepDone -Step 3 -Script '3-Request-Certificates.ps1' -Computer $member" in member
    assert "Invoke-Command -ComputerName $member" in member and "catch {\r\n        return $_.Exception.Message" in member


@pytest.mark.parametrize("script", ["fe01.contoso.com/4-Start-Pool.ps1", "se01.contoso.com/4-Start-Services.ps1", "edge01.contoso.com/4-Start-Services.ps1"])
def test_services_still_starting_are_waited_for_with_a_bound(compiled, script):
    text = compiled["contoso"].files[script].decode("utf-8-sig")
    assert re.search(r"\[int\]\$ServiceStartTimeoutSeconds = \d+", text)
    main = _function(text, "Invoke-Main")
    start = "Start-CsPool -PoolFqdn" if "Start-Pool" in script else "Start-CsWindowsService"
    after = main[main.index(start):]
    assert "$notRunning = Wait-ServicesSettled" in after and "$ServiceStartTimeoutSeconds" in after
    assert "Where-Object { $_.Status -ne 'Running' }" not in text  # the old immediate verdict
    wait = _function(text, "Wait-ServicesSettled")
    assert "$deadline = (Get-Date).AddSeconds($TimeoutSeconds)" in wait and "Start-Sleep -Seconds" in wait
    assert "if ($changing -eq 0 -or (Get-Date) -ge $deadline) { return ,$notRunning }" in wait
    assert "$settled = @(" + ", ".join(f"'{s}'" for s in fact("service_settled_states")) + ")" in wait


def test_pool_minimum_for_sizes_outside_the_table_is_marked(tmp_path):
    fronts = "\n".join(f"            front_end fe{i}.t.com" for i in range(1, 14))
    text = rf"""topology "T" {{
    product 2019
    media "\\fs.t.com\SfB"
    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates {{ authority online "ca.t.com\CA" }}
    site "S" {{
        enterprise_pool pool.t.com {{
            web_services external web.t.com
{fronts}
        }}
    }}
}}
"""
    path = tmp_path / "t.sfb"
    path.write_text(text, encoding="utf-8")
    result = compile_file(path, tmp_path / "out")
    script = result.files["fe1.t.com/4-Start-Pool.ps1"].decode("utf-8-sig")
    assert "$MinimumToStart = 12\r\n" in script
    assert "this pool size is not in its table: reconstructed" in script


# ---------------------------------------------------------------------------------------------------
# 6. Edge certificates sent online to the enterprise CA


EDGE_TOPOLOGY = r"""topology "T" {
    product 2015
    media "\\fs.t.com\SfB"
    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates { authority online "ca.t.com\T CA" }
    site "S" {
        standard_edition se.t.com
        edge_pool edge.t.com {
            next_hop se.t.com
            access_edge sip.t.com
            webconf_edge wc.t.com
            av_edge av.t.com
            media "D:\SfB"
            %s
            server edge1.t.com
        }
    }
}
"""


@pytest.mark.parametrize("block,warned", [
    ("", ["external"]),  # the topology's online CA reaches the external certificate
    ("certificates { authority offline public }", []),
    ("certificates { authority offline }", []),
    ('certificates { authority offline public } internal_certificates { authority online "ca.t.com\\T CA" }', ["internal"]),
])
def test_an_edge_certificate_online_to_the_enterprise_ca_is_warned_about(block, warned):
    result = check_text(EDGE_TOPOLOGY % block, "t.sfb")
    assert result.ok
    found = [d for d in result.diagnostics if d.code == "SFB310"]
    assert [("external" if "external certificate" in d.message else "internal") for d in found] == warned
    for d in found:
        assert d.severity.value == "warning" and "ca.t.com\\T CA" in d.message and "authority offline" in d.message
        assert (d.span.line, d.span.column) == (10, 19)  # the Edge pool's name


def test_the_samples_send_no_edge_certificate_online():
    from tests.conftest import VALID_SAMPLES

    for sample in VALID_SAMPLES:
        result = check_text(sample.read_text(encoding="utf-8"), sample.name)
        assert "SFB310" not in {d.code for d in result.diagnostics}, sample.name


# ---------------------------------------------------------------------------------------------------
# 7. Only members Microsoft's pages name, read on a Skype cmdlet's output


# What the scripts may read on each cmdlet's output, with the page that names it.
DOCUMENTED_MEMBERS = {
    # manage/authentication/assign-a-server-to-server-certificate.md: (Get-CsCertificate -Type Default).Thumbprint
    "Get-CsCertificate": {"Thumbprint"},
    # Get-CsWindowsService.md: examples 7 (Status) and 8 (DisplayName)
    "Get-CsWindowsService": {"Status", "DisplayName"},
    # Request-CsCertificate.md, Start-CsPool.md, Start-CsWindowsService.md, Get-CsPoolFabricState.md,
    # Export-CsConfiguration.md: OUTPUTS None, or nothing the scripts read
}


def test_no_undocumented_member_is_read_on_skype_cmdlet_output(compiled):
    for name, source in _scripts(compiled):
        text = source.decode("utf-8-sig")
        # Members the earlier scripts read and Microsoft documents nowhere.
        for member in (".CertificateUses", ".RequestId", "$reference", "$_.Name"):
            assert member not in text, (name, member)
        for line in text.splitlines():
            for cmdlet in re.findall(r"\b((?:Get|Request|Start|Import|Export|Set)-Cs[A-Za-z]+)\b", line):
                rest = line[line.index(cmdlet):]
                members = set(re.findall(r"-ExpandProperty (\w+)", rest)) | set(re.findall(r"\$_\.(\w+)", rest))
                members.discard("Exception")  # $_ in a catch block: the error, not the cmdlet's output
                assert members <= DOCUMENTED_MEMBERS.get(cmdlet, set()), (name, line.strip())
        if "function Wait-ServicesSettled" in text:
            wait = _function(text, "Wait-ServicesSettled")
            assert set(re.findall(r"\$service\.(\w+)", wait)) == DOCUMENTED_MEMBERS["Get-CsWindowsService"]
