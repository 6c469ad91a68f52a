"""sfbgen import: real Topology Builder and published topology documents, and hostile ones.

The real documents are read from ../shared/topologies (written by other people, never copied here).
What each must become was read off the document by hand and is written out below: a test that only
compared the importer with itself could not fail.
"""

from __future__ import annotations

import json

import pytest

from sfbgen import check_text
from sfbgen.compiler import compile_file
from sfbgen.importer import ImportOptions, import_bytes, import_file
from tests.conftest import shared_path

OPTIONS = ImportOptions(media="\\\\files.contoso.com\\Media\\SfB", ca="ca01.contoso.com\\Contoso CA")

# Per document: every server that needs setup -> (pool, roles); the subject of its Default (or
# Edge external) certificate; the objects listed as not deployed; the product.
REAL = {
    "AutomatedLab_SfBAutomatedLab_Contoso.tbxml": dict(
        format="Topology Builder document",
        product="2015",
        servers={
            **{f"xfrontend{i}.contoso.com": ("frontendpool.contoso.com", ["FrontEnd", "Mediation"]) for i in range(1, 5)},
            **{f"xedge{i}.contoso.com": ("edgepool.contoso.com", ["Edge"]) for i in range(1, 4)},
        },
        names={"frontendpool.contoso.com": {"frontendpool.contoso.com", "meet.contoso.com", "dialin.contoso.com"},
               "ExternalEdge.contoso.com": {"ExternalEdge.contoso.com", "sip.contoso.com"}},
        not_deployed={"xOffice1.contoso.com", "xSQL1.contoso.com", "xFile1.contoso.com", "xFile2.contoso.com"},
        warnings={"SFB404", "SFB428"},  # product (SFB404), then one code per assumption (issue 21)
    ),
    "alvinchen1_ExchangeSkypeMDTAutomate_OTC.tbxml": dict(
        format="Topology Builder document",
        product="2019",
        servers={"OCT-EXH-002.otc.lab": ("OCT-EXH-002.otc.lab", ["StandardEdition", "Mediation"])},
        names={"OCT-EXH-002.otc.lab": {"OCT-EXH-002.otc.lab", "meet.otc.lab", "dialin.otc.lab"}},
        not_deployed=set(),
        warnings={"SFB404", "SFB427"},  # product (SFB404), then one code per assumption (issue 21)
    ),
    "rlevchenko_powershell-skype_DefaultTopology.xml": dict(
        format="published topology",
        product="2015",
        servers={"SKYPE-FE-01.tenant.rlevchenko.com": ("poolfe.tenant.rlevchenko.com", ["FrontEnd"])},
        names={"poolfe.tenant.rlevchenko.com": {"poolfe.tenant.rlevchenko.com", "SKYPE-FE-01.tenant.rlevchenko.com"}},
        not_deployed={"srv-sql-01.tenant.rlevchenko.com", "tenant.rlevchenko.com", "srv-owa-01.tenant.rlevchenko.com"},
        warnings={"SFB404", "SFB422"},  # product (SFB404), then one code per assumption (issue 21)
    ),
    "ibenbouzid_SkypeforBusiness_lab_V3_DefaultTopology_Skype.xml": dict(
        format="published topology",
        product="2015",
        servers={"skypefe.contoso.com": ("skypefe.contoso.com", ["StandardEdition", "Mediation"]),
                 "Edge.contoso.com": ("Edge.contoso.com", ["Edge"])},
        names={"skypefe.contoso.com": {"skypefe.contoso.com", "meet.contoso.com"}, "sip.contoso.com": {"sip.contoso.com"}},
        not_deployed={"sbc1.contoso.com"},
        warnings={"SFB404", "SFB422", "SFB428"},  # product (SFB404), then one code per assumption (issue 21)
    ),
    "ibenbouzid_SkypeforBusiness_lab_V2_DefaultTopology_Skype.xml": dict(
        format="published topology",
        product="2015",
        servers={"skypefe.contoso.com": ("skypefe.contoso.com", ["StandardEdition", "Mediation"]),
                 "Edge.contoso.com": ("Edge.contoso.com", ["Edge"])},
        names={"skypefe.contoso.com": {"skypefe.contoso.com"}, "sip.contoso.com": {"sip.contoso.com"}},
        not_deployed=set(),
        warnings={"SFB404", "SFB422", "SFB428"},  # product (SFB404), then one code per assumption (issue 21)
    ),
}


def _document(name: str) -> bytes:
    return shared_path("topologies", name).read_bytes()


@pytest.fixture(scope="module", params=sorted(REAL))
def imported(request):
    name = request.param
    result = import_bytes(_document(name), name, OPTIONS)
    return name, result


def test_imports_without_errors(imported):
    name, result = imported
    expected = REAL[name]
    assert result.text is not None, [d.message for d in result.diagnostics]
    assert not [d for d in result.diagnostics if d.is_error]
    assert {d.code for d in result.diagnostics} == expected["warnings"]
    assert result.format == expected["format"]
    assert {item.fqdn for item in result.not_deployed} == expected["not_deployed"]
    # Every object is accounted for: deployed, or named in the topology's comments.
    for item in result.not_deployed:
        assert f"#   {item.fqdn}: " in result.text


def test_checks_clean_and_compiles_a_bundle_per_server(imported, tmp_path):
    name, result = imported
    expected = REAL[name]
    check = check_text(result.text, "imported.sfb")
    assert check.ok, [d.message for d in check.diagnostics]
    (tmp_path / "imported.sfb").write_text(result.text, encoding="utf-8")
    compiled = compile_file(tmp_path / "imported.sfb", tmp_path / "out")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["product"] == expected["product"]
    servers = {s["fqdn"]: (s["pool"], s["roles"]) for s in plan["servers"]}
    assert servers == expected["servers"]
    for fqdn in expected["servers"]:
        assert (tmp_path / "out" / fqdn / "1-Install-LocalConfigurationStore.ps1").is_file()
    # The certificates name what the document names (subject -> names it must carry).
    subjects = {}
    for server in plan["servers"]:
        for cert in server["certificates"]:
            subjects.setdefault(cert["subject"], set()).update(cert["sans"])
    for subject, names in expected["names"].items():
        assert subject in subjects, sorted(subjects)
        assert names <= subjects[subject], (subject, sorted(subjects[subject]))
    assert compiled.plan is not None


def test_utf16_export_reads_like_utf8():
    """Windows PowerShell 5.1's `Get-CsTopology -AsXml > file` writes UTF-16LE with a BOM."""
    name = "ibenbouzid_SkypeforBusiness_lab_V3_DefaultTopology_Skype.xml"
    raw = _document(name)
    utf16 = import_bytes(b"\xff\xfe" + raw.decode("utf-8-sig").encode("utf-16-le"), name, OPTIONS)
    assert utf16.text == import_bytes(raw, name, OPTIONS).text


def test_import_is_deterministic():
    name = "AutomatedLab_SfBAutomatedLab_Contoso.tbxml"
    assert import_bytes(_document(name), name, OPTIONS).text == import_bytes(_document(name), name, OPTIONS).text


def test_product_option_wins_and_a_disagreement_is_warned_about():
    # issue 21: a --product that disagrees with the document's ServiceVersion is named (SFB424);
    # one that agrees is not warned about at all.
    name = "alvinchen1_ExchangeSkypeMDTAutomate_OTC.tbxml"
    result = import_bytes(_document(name), name, ImportOptions(media="D:\\", ca="ca.otc.lab\\CA", product="2015"))
    assert "product 2015" in result.text
    assert [d.code for d in result.diagnostics if "ServiceVersion" in d.message] == ["SFB424"]
    agreeing = import_bytes(_document(name), name, ImportOptions(media="D:\\", ca="ca.otc.lab\\CA", product="2019"))
    assert not any("ServiceVersion" in d.message for d in agreeing.diagnostics)


def test_missing_media_and_ca_are_warned_and_the_check_says_what_to_add():
    name = "rlevchenko_powershell-skype_DefaultTopology.xml"
    result = import_bytes(_document(name), name, ImportOptions())
    messages = " ".join(d.message for d in result.diagnostics)
    assert "--media" in messages and "offline request" in messages
    assert "SFB107" in {d.code for d in check_text(result.text).diagnostics}


# ---------------------------------------------------------------------------------------------------
# Hostile and malformed documents: a diagnostic with a line, never a traceback.

MINIMAL = """<Topology>
  <InternalDomains DefaultDomain="t.com"><InternalDomain Name="t.com" /></InternalDomains>
  <Sites><CentralSite SiteId="1"><Name>{site}</Name></CentralSite></Sites>
  <Clusters>
    <Cluster RequiresSetup="true" Fqdn="{fqdn}"><ClusterId SiteId="1" Number="1" /><Machine Fqdn="{fqdn}" /></Cluster>
  </Clusters>
  <SqlInstances><SqlInstance><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></SqlInstance></SqlInstances>
  <Services>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="Registrar" Instance="1" /><InstalledOn><ClusterId SiteId="1" Number="1" /></InstalledOn></Service>
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="UserStore" Instance="1" /><InstalledOn><SqlInstanceId Name="rtc"><ClusterId SiteId="1" Number="1" /></SqlInstanceId></InstalledOn></Service>
  </Services>
</Topology>
"""


def _minimal(site="S", fqdn="se.t.com") -> bytes:
    return MINIMAL.format(site=site, fqdn=fqdn).encode()


def test_minimal_published_topology_is_a_standard_edition_server():
    result = import_bytes(_minimal(), "m.xml", OPTIONS)
    assert "standard_edition se.t.com" in result.text
    assert check_text(result.text).ok


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Topology>&lol2;</Topology>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Topology>&x;</Topology>
"""

HOSTILE = [
    ("billion laughs", BILLION_LAUGHS, "SFB402", 2),
    ("external entity", EXTERNAL, "SFB402", 2),
    ("wrong root", b"<Project>\n</Project>\n", "SFB401", 1),
    ("not xml", b"topology \"T\" {\n}\n", "SFB402", 1),
    ("truncated", _minimal()[:300], "SFB402", None),
    ("empty", b"   \n", "SFB401", 1),
    ("bad utf-8", b"<Topology>\n\xff\xfe\xfd</Topology>", "SFB402", 2),
    ("name with a quote", _minimal(fqdn='se&quot;.t.com'), "SFB403", None),
    ("name with a brace", _minimal(fqdn="se}.t.com"), "SFB403", None),
    ("site with a quote", _minimal(site='S&quot; { evil'), "SFB403", None),
    ("no pool to set up", b"<Topology><Clusters /></Topology>", "SFB403", 1),
]


@pytest.mark.parametrize("what,raw,code,line", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_documents_get_a_diagnostic(what, raw, code, line):
    result = import_bytes(raw, "bad.xml", OPTIONS)
    assert result.text is None
    codes = {d.code for d in result.diagnostics}
    assert code in codes, [d.message for d in result.diagnostics]
    if line is not None:
        assert any(d.line == line for d in [dd.span for dd in result.diagnostics])


def test_a_hostile_site_name_stays_a_literal():
    """What the language can hold is written as written; the checks and the quoting do the rest."""
    result = import_bytes(_minimal(site="$(Remove-Item C:\\ -Recurse)"), "m.xml", OPTIONS)
    check = check_text(result.text)
    assert check.ok
    assert check.topology.sites[0].name.value == "$(Remove-Item C:\\ -Recurse)"


def test_too_large_is_refused_before_parsing(monkeypatch):
    from sfbgen import topology_xml

    monkeypatch.setattr(topology_xml, "MAX_XML_BYTES", 100)
    result = import_bytes(_minimal(), "big.xml", OPTIONS)
    assert [d.code for d in result.diagnostics] == ["SFB402"]


def test_missing_file(tmp_path):
    result = import_file(tmp_path / "nope.xml")
    assert [d.code for d in result.diagnostics] == ["SFB001"]


def test_cli_import_writes_atomically_and_refuses_to_overwrite(tmp_path):
    import subprocess
    import sys

    source = shared_path("topologies", "rlevchenko_powershell-skype_DefaultTopology.xml")
    out = tmp_path / "topo.sfb"
    def run(*args):
        return subprocess.run([sys.executable, "-m", "sfbgen", "import", str(source), *args], capture_output=True, text=True)
    first = run("--out", str(out), "--media", "D:\\", "--ca", "ca.t.com\\CA")
    assert first.returncode == 0, first.stderr
    assert "1 server in 1 pool" in first.stdout and "not deployed by sfbgen: srv-sql-01" in first.stdout
    assert "SFB404" in first.stderr and "SFB404" not in first.stdout
    assert out.read_text().startswith("# Imported by sfbgen import")
    again = run("--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["topo.sfb"]  # no temporary file left
    to_stdout = run("--media", "D:\\", "--ca", "ca.t.com\\CA")
    assert to_stdout.stdout == out.read_text()
    bad = tmp_path / "bad.xml"
    bad.write_bytes(BILLION_LAUGHS)
    refused = subprocess.run([sys.executable, "-m", "sfbgen", "import", str(bad)], capture_output=True, text=True)
    assert refused.returncode == 1 and "SFB402" in refused.stderr and "Traceback" not in refused.stderr


# ---------------------------------------------------------------------------------------------------
# The published-topology check the scripts run (Assert-PublishedTopology), read back from the scripts
# and replayed against the real published documents. There is no PowerShell here: this mirrors the
# function's steps (same elements, same attributes) so that the expectations compiled into the
# scripts are shown to agree with real published XML, and to disagree when the XML differs.

import re as _re  # noqa: E402 - the imports of this section, kept with it
import xml.etree.ElementTree as _ET  # noqa: E402

PUBLISHED = ["rlevchenko_powershell-skype_DefaultTopology.xml", "ibenbouzid_SkypeforBusiness_lab_V3_DefaultTopology_Skype.xml",
             "ibenbouzid_SkypeforBusiness_lab_V2_DefaultTopology_Skype.xml"]


def _local(element, path):
    level = [element]
    for step in path.split("/"):
        level = [c for e in level for c in e if c.tag.rpartition("}")[2] == step]
    return level


def _expectations(script: str) -> dict:
    def value(name):
        return _re.search(rf"^\${name} = (.*)$", script, _re.M).group(1)

    def strings(text):
        return _re.findall(r"'((?:[^']|'')*)'", text)
    edge = dict(_re.findall(r"(\w+) = '([^']*)'", value("ExpectedEdgeFqdns")))
    return {"server": strings(value("ServerFqdn"))[0], "pool": strings(value("PoolFqdn"))[0], "roles": strings(value("ExpectedRoles")),
            "director": value("ExpectedDirector") == "$true", "web_internal": strings(value("ExpectedWebInternal"))[0],
            "web_external": strings(value("ExpectedWebExternal"))[0], "edge": edge}


def _published_problems(xml: bytes, e: dict) -> list[str]:
    root = _ET.fromstring(xml)
    cluster = next((c for c in _local(root, "Clusters/Cluster") for m in _local(c, "Machine")
                    if (m.get("Fqdn") or c.get("Fqdn")).lower() == e["server"].lower()), None)
    if cluster is None:
        return ["no computer"]
    problems = []
    if cluster.get("Fqdn").lower() != e["pool"].lower():
        problems.append("pool")
    cid = _local(cluster, "ClusterId")[0]
    services = {}
    for service in _local(root, "Services/Service"):
        for on in _local(service, "InstalledOn/ClusterId"):
            if (on.get("SiteId"), on.get("Number")) == (cid.get("SiteId"), cid.get("Number")):
                services[_local(service, "ServiceId")[0].get("RoleName")] = service
    problems += [f"role {r}" for r in e["roles"] if r not in services]
    if e["web_external"] and "WebServices" in services:
        hosts = [s.get("Host") for s in _local(services["WebServices"], "WebService/ExternalSettings")]
        if e["web_external"] not in hosts:
            problems.append("external web")
    for owner, fqdn in e["edge"].items():
        ports = [p.get("ConfiguredFqdn") for p in _local(services.get("EdgeServer", root), "Ports/Port")
                 if p.get("Owner") == "urn:component:" + owner and p.get("InterfaceSide") == "External"]
        if fqdn not in ports:
            problems.append(owner)
    return problems


@pytest.mark.parametrize("name", PUBLISHED)
def test_scripts_expect_what_the_published_topology_says(name, tmp_path):
    raw = _document(name)
    result = import_bytes(raw, name, OPTIONS)
    (tmp_path / "t.sfb").write_text(result.text, encoding="utf-8")
    compiled = compile_file(tmp_path / "t.sfb", tmp_path / "out")
    for server in compiled.plan.servers:
        for step in ("1-Install-LocalConfigurationStore.ps1", "2-Setup-Components.ps1", "3-Request-Certificates.ps1"):
            script = compiled.files[f"{server.fqdn}/{step}"].decode("utf-8-sig")
            expect = _expectations(script)
            assert _published_problems(raw, expect) == [], (server.fqdn, step)
            # The same script refuses a topology whose pool, web services or Edge FQDN differ.
            renamed = raw.replace(server.pool.fqdn.value.encode(), b"renamed.example.com")
            assert _published_problems(renamed, expect), (server.fqdn, step)


def test_every_first_script_checks_the_published_topology_before_changing_anything(compiled):
    changes = {
        "1-Install-LocalConfigurationStore.ps1": "/BootstrapLocalMgmt",
        "2-Setup-Components.ps1": "Install-WindowsFeature -Name $missing",
        "3-Request-Certificates.ps1": "Request-CsCertificate",
    }
    for result in compiled.values():
        for server in result.plan.servers:
            for step, first_change in changes.items():
                text = result.files[f"{server.fqdn}/{step}"].decode("utf-8-sig")
                main = text[text.index("function Invoke-Main"):]
                if server.is_edge and step.startswith("1-"):
                    # An Edge Server checks the configuration it imported (it cannot read the store).
                    assert main.index("Assert-PublishedTopology -LocalStore") > main.index("Import-CsConfiguration")
                    continue
                assert "Assert-PublishedTopology" in main, (server.fqdn, step)
                if first_change in main:
                    assert main.index("Assert-PublishedTopology") < main.index(first_change), (server.fqdn, step)
