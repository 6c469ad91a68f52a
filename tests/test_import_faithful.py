"""sfbgen import, faithful to what the document says (issue 21; issue 18 for the Edge certificate).

Every case starts from a real document of ../shared/topologies (read there, never copied) and, for
what no real document at hand shows (a Lync Server 2013 document, an Admin URL named Cscp, a
template's placeholders, a document without a Meet URL), changes the few bytes that make the variant.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sfbgen import check_text
from sfbgen.diagnostics import CATALOG
from sfbgen.importer import ImportOptions, import_bytes
from tests.conftest import shared_path

OPTIONS = ImportOptions(media="\\\\files.contoso.com\\Media\\SfB", ca="ca01.contoso.com\\Contoso CA")
CONTOSO = "AutomatedLab_SfBAutomatedLab_Contoso.tbxml"
OTC = "alvinchen1_ExchangeSkypeMDTAutomate_OTC.tbxml"
V3 = "ibenbouzid_SkypeforBusiness_lab_V3_DefaultTopology_Skype.xml"
RLEV = "rlevchenko_powershell-skype_DefaultTopology.xml"


def _raw(name: str) -> bytes:
    return shared_path("topologies", name).read_bytes()


def _line_of(raw: bytes, needle: bytes, start: int = 0) -> int:
    return raw[: raw.index(needle, start)].count(b"\n") + 1


def _codes(result) -> list[str]:
    return [d.code for d in result.diagnostics]


# -- the product --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version,product", [(b"6", "Lync Server 2013"), (b"5", "Lync Server 2010")])
def test_a_lync_document_is_named_and_refused_unless_product_names_the_target(version, product):
    raw = _raw(V3).replace(b'ServiceVersion="7"', b'ServiceVersion="' + version + b'"')
    refused = import_bytes(raw, "lync.xml", OPTIONS)
    assert refused.text is None
    [error] = [d for d in refused.diagnostics if d.is_error]
    assert error.code == "SFB425"
    assert product in error.message and "--product" in error.message and "in place" in error.message
    assert error.span.line == _line_of(raw, b'ServiceVersion="' + version + b'"')  # the first service that says it
    # Named as the target, it is imported, and the difference is said.
    imported = import_bytes(raw, "lync.xml", ImportOptions(media="D:\\SfB", ca="ca01.contoso.com\\CA", product="2019"))
    assert imported.text is not None and "product 2019" in imported.text
    warning = next(d for d in imported.diagnostics if d.code == "SFB424")
    assert product in warning.message and "new servers" in warning.message
    assert "SFB404" not in _codes(imported)


def test_a_product_that_disagrees_with_service_version_is_warned_about():
    result = import_bytes(_raw(V3), V3, ImportOptions(media="D:\\SfB", ca="ca01.contoso.com\\CA", product="2019"))
    assert "product 2019" in result.text
    [warning] = [d for d in result.diagnostics if d.code == "SFB424"]
    assert "--product 2019" in warning.message and "Skype for Business Server 2015" in warning.message
    same = import_bytes(_raw(V3), V3, ImportOptions(media="D:\\SfB", ca="ca01.contoso.com\\CA", product="2015"))
    assert "SFB424" not in _codes(same) and "SFB404" not in _codes(same)


# -- simple URLs --------------------------------------------------------------------------------------

CSCP = (b'<SimpleUrl Component="Cscp" Domain="*" ActiveUrl="https://admin.contoso.com">'
        b'<SimpleUrlEntry Url="https://admin.contoso.com" /></SimpleUrl>\n')


def test_cscp_is_the_admin_url_and_its_host_reaches_the_front_end_certificate(tmp_path):
    raw = _raw(CONTOSO)
    at = raw.index(b"</SimpleUrlConfiguration>")
    raw = raw[:at] + CSCP + raw[at:]
    result = import_bytes(raw, "cscp.tbxml", OPTIONS)
    assert 'simple_url admin "https://admin.contoso.com"' in result.text
    assert "SFB405" not in _codes(result)  # not dropped as an unknown component any more
    from sfbgen.plan import build_plan

    check = check_text(result.text, "cscp.sfb")
    assert check.ok, [d.message for d in check.diagnostics]
    plan = build_plan(check.topology)
    names = {n for s in plan.servers if s.fqdn == "xfrontend1.contoso.com" for r in s.requests for n in r.sans}
    assert "admin.contoso.com" in names


def test_a_missing_meet_url_is_filled_with_topology_builders_default_and_a_warning():
    raw = _raw(CONTOSO)
    start = raw.index(b'<SimpleUrl Component="Meet"')
    end = raw.index(b"</SimpleUrl>", start) + len(b"</SimpleUrl>")
    raw = raw[:start] + raw[end:]
    result = import_bytes(raw, "nomeet.tbxml", OPTIONS)
    assert 'simple_url meet "https://meet.contoso.com" for contoso.com' in result.text
    [warning] = [d for d in result.diagnostics if d.code == "SFB423"]
    assert "https://meet.contoso.com" in warning.message
    assert warning.span.line == _line_of(raw, b'<InternalDomain Name="contoso.com"')
    assert check_text(result.text).ok
    # Before this, the document imported in silence and check refused it (SFB210).
    assert "SFB210" not in {d.code for d in check_text(result.text).diagnostics}


def test_a_missing_dialin_url_is_filled_too():
    raw = _raw(CONTOSO)
    start = raw.index(b'<SimpleUrl Component="Dialin"')
    end = raw.index(b"</SimpleUrl>", start) + len(b"</SimpleUrl>")
    result = import_bytes(raw[:start] + raw[end:], "nodialin.tbxml", OPTIONS)
    assert 'simple_url dialin "https://dialin.contoso.com"' in result.text
    assert "SFB423" in _codes(result)


# -- names that are no FQDN -----------------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", [b"[DOMAINID]", b"$SkypeFQDN", b"%FQDN%"])
def test_placeholders_are_refused_at_their_line(placeholder):
    raw = _raw(CONTOSO).replace(b'Fqdn="xfrontend2.contoso.com"', b'Fqdn="' + placeholder + b'.contoso.com"')
    result = import_bytes(raw, "template.tbxml", OPTIONS)
    assert result.text is None
    [error] = [d for d in result.diagnostics if d.is_error]
    assert error.code == "SFB429"
    assert placeholder.decode() in error.message and "placeholder" in error.message
    assert error.span.line == _line_of(raw, placeholder)


def test_a_placeholder_sip_domain_and_url_are_refused_at_their_lines():
    raw = _raw(CONTOSO).replace(b'ActiveUrl="https://meet.contoso.com"', b'ActiveUrl="https://meet.$SipDomain"')
    raw = raw.replace(b'<InternalDomain Name="contoso.com"', b'<InternalDomain Name="[DOMAINID]"')
    result = import_bytes(raw, "template.tbxml", OPTIONS)
    assert result.text is None
    lines = {d.span.line for d in result.diagnostics if d.code == "SFB429"}
    assert _line_of(raw, b"meet.$SipDomain") in lines
    assert _line_of(raw, b'Name="[DOMAINID]"') in lines


def test_a_real_fqdn_is_not_refused():
    assert "SFB429" not in _codes(import_bytes(_raw(CONTOSO), CONTOSO, OPTIONS))


# -- the options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options,needle", [
    (ImportOptions(media="\\files\\Media\\SfB"), "single quotes"),  # bash ate a backslash of "\\files..."
    (ImportOptions(media="Media\\SfB"), "not an absolute path"),
    (ImportOptions(media="D:\\\\Media"), "doubled backslash"),
    (ImportOptions(ca="ca01.contoso.com"), "not an online authority"),
    (ImportOptions(ca="ca01\\Contoso CA"), "not an online authority"),
])
def test_media_and_ca_are_validated_as_check_would(options, needle):
    result = import_bytes(_raw(RLEV), RLEV, options)
    assert result.text is None
    [error] = [d for d in result.diagnostics if d.is_error]
    assert error.code == "SFB426" and needle in error.message


def test_valid_media_and_ca_pass():
    result = import_bytes(_raw(RLEV), RLEV, ImportOptions(media="\\\\files\\Media\\SfB", ca="ca01.contoso.com\\Contoso CA"))
    assert result.text is not None and "SFB426" not in _codes(result)
    result = import_bytes(_raw(RLEV), RLEV, ImportOptions(media="D:\\"))
    assert result.text is not None


# -- one code per assumption ------------------------------------------------------------------------------


def test_each_assumption_has_its_own_code_with_a_source():
    result = import_bytes(_raw(V3), V3, ImportOptions())
    codes = _codes(result)
    # the product, the media, the simple URLs, the CA, the Edge's external certificate
    for code in ("SFB404", "SFB420", "SFB422", "SFB421", "SFB428"):
        assert codes.count(code) == 1, (code, codes)
        assert CATALOG[code].source
    assert len(set(codes)) == len(codes)


# -- the Central Management Store -------------------------------------------------------------------------


def test_an_unpublished_document_without_a_cms_suggests_it_on_the_first_standard_edition_server():
    raw = _raw(OTC)
    result = import_bytes(raw, OTC, OPTIONS)
    [warning] = [d for d in result.diagnostics if d.code == "SFB427"]
    assert "central_management_store" in warning.message and "OCT-EXH-002.otc.lab" in warning.message
    assert warning.span.line == _line_of(raw, b'Fqdn="OCT-EXH-002.otc.lab"')
    assert "# central_management_store" in result.text
    # Uncommented as the warning says, the topology checks clean and prepares the store (step 0).
    enabled = result.text.replace("# central_management_store", "central_management_store")
    check = check_text(enabled)
    assert check.ok, [d.message for d in check.diagnostics]
    # A published one, or one naming a store, gets no suggestion.
    published = import_bytes(raw.replace(b'IsPublished="false"', b'IsPublished="true"'), OTC, OPTIONS)
    assert "SFB427" not in _codes(published)
    assert "SFB427" not in _codes(import_bytes(_raw(V3), V3, OPTIONS))
    assert "SFB427" not in _codes(import_bytes(_raw(CONTOSO), CONTOSO, OPTIONS))  # an Enterprise pool, no Standard Edition


# -- what sfbgen does not deploy, named for what it is ---------------------------------------------------

EXTRA = """
    <Cluster RequiresSetup="true" Fqdn="{fqdn}"><ClusterId SiteId="1" Number="9" /><Machine Fqdn="{fqdn}" /></Cluster>
"""
EXTRA_SERVICE = """
    <Service ServiceVersion="7"><ServiceId SiteId="1" RoleName="{role}" Instance="9" /><InstalledOn><ClusterId SiteId="1" Number="9" /></InstalledOn></Service>
"""


@pytest.mark.parametrize("role,fqdn,words", [
    ("TrustedApplicationPool", "exch01.contoso.com", ["trusted application pool", "New-CsTrustedApplicationPool"]),
    ("PersistentChatServer", "pchat01.contoso.com", ["Persistent Chat pool"]),
])
def test_trusted_application_and_persistent_chat_servers_are_named_for_what_they_are(role, fqdn, words):
    raw = _raw(V3)
    at = raw.index(b"</Clusters>")
    raw = raw[:at] + EXTRA.format(fqdn=fqdn).encode() + raw[at:]
    at = raw.index(b"</Services>")
    raw = raw[:at] + EXTRA_SERVICE.format(role=role).encode() + raw[at:]
    result = import_bytes(raw, "extra.xml", OPTIONS)
    [warning] = [d for d in result.diagnostics if d.code == "SFB405" and fqdn in d.message]
    for word in words:
        assert word in warning.message
    if role == "TrustedApplicationPool":
        assert "Deployment Wizard" not in warning.message
    assert f"#   {fqdn}: " in result.text


# -- the Edge pool's external certificate (issue 18) ------------------------------------------------------


def _edge_external_authority(text: str) -> str:
    from sfbgen.plan import build_plan

    check = check_text(text)
    assert check.ok, [d.message for d in check.diagnostics]
    plan = build_plan(check.topology)
    [request] = [r for s in plan.servers if s.is_edge for r in s.requests if "AccessEdgeExternal" in r.usages]
    return request.authority


def test_an_imported_edge_pools_external_certificate_is_offline_from_a_public_ca():
    result = import_bytes(_raw(V3), V3, OPTIONS)  # --ca names an online enterprise CA
    assert "authority offline public" in result.text
    assert _edge_external_authority(result.text) == "offline"
    assert "SFB428" in _codes(result)
    # Unless the options say otherwise: then the topology's authority, like every other certificate.
    online = import_bytes(_raw(V3), V3, ImportOptions(media=OPTIONS.media, ca=OPTIONS.ca, edge_external="topology"))
    assert "authority offline public" not in online.text and "SFB428" not in _codes(online)
    assert _edge_external_authority(online.text) == "online"


# -- the command line -----------------------------------------------------------------------------------


def test_cli_refuses_a_lync_document_with_the_reason(tmp_path):
    lync = tmp_path / "lync.xml"
    lync.write_bytes(_raw(V3).replace(b'ServiceVersion="7"', b'ServiceVersion="6"'))
    run = subprocess.run([sys.executable, "-m", "sfbgen", "import", str(lync), "--media", "D:\\SfB"], capture_output=True, text=True)
    assert run.returncode == 1 and "SFB425" in run.stderr and "Lync Server 2013" in run.stderr
    run = subprocess.run([sys.executable, "-m", "sfbgen", "import", str(lync), "--media", "D:\\SfB", "--product", "2015",
                          "--edge-external", "topology"], capture_output=True, text=True)
    assert run.returncode == 0 and "SFB424" in run.stderr and "product 2015" in run.stdout
    assert "authority offline public" not in run.stdout


def test_cli_reports_the_bash_backslash_mistake(tmp_path):
    source = shared_path("topologies", RLEV)
    run = subprocess.run([sys.executable, "-m", "sfbgen", "import", str(source), "--media", "\\files\\Media\\SfB"], capture_output=True, text=True)
    assert run.returncode == 1 and "SFB426" in run.stderr and run.stdout == ""


def test_every_real_document_imports_checks_and_says_only_what_it_assumes():
    """What import says now, per real document, with --media and --ca given (the report of issue 21)."""
    expected = {
        CONTOSO: {"SFB404", "SFB428"},
        OTC: {"SFB404", "SFB427"},
        RLEV: {"SFB404", "SFB422"},
        V3: {"SFB404", "SFB422", "SFB428"},
        "ibenbouzid_SkypeforBusiness_lab_V2_DefaultTopology_Skype.xml": {"SFB404", "SFB422", "SFB428"},
    }
    for name, codes in expected.items():
        result = import_bytes(_raw(name), name, OPTIONS)
        assert set(_codes(result)) == codes, (name, [d.message for d in result.diagnostics])
        assert check_text(result.text).ok
        json.dumps([d.to_dict() for d in result.diagnostics])
