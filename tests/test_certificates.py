"""Certificate names against the example tables of Microsoft's environmental-requirements.md and
edge-environmental-requirements.md, written as topologies in our language."""

from __future__ import annotations

import re

import pytest

from sfbgen import check_text
from sfbgen.plan import build_plan

HEAD = """topology "Docs" {
    product 2015
    media "D:\\"
    sip_domain contoso.com primary
    sip_domain fabrikam.com
    simple_url meet "https://meet.contoso.com" for contoso.com
    simple_url meet "https://meet.fabrikam.com" for fabrikam.com
    simple_url dialin "https://dialin.contoso.com"
    simple_url admin "https://admin.contoso.com"
    certificates { authority online "ca.contoso.com\\Contoso CA" web separate }
"""


def certificates(body: str, extra: str = "", policy: str = ""):
    """Certificates per server for `body` (sites); `policy` adds to the topology's certificates block."""
    head = HEAD.replace(" web separate }", f" web separate {policy}}}")
    result = check_text(head + extra + body + "\n}\n")
    assert result.ok, [d.message for d in result.diagnostics]
    plan = build_plan(result.topology)
    return {s.fqdn: {",".join(c.usages): c for c in s.certificates} for s in plan.servers}, plan


def test_standard_edition_table():
    certs, _ = certificates('site "S" { standard_edition se01.contoso.com { web_services external webcon01.contoso.com } }')
    se = certs["se01.contoso.com"]
    # SN=se01.contoso.com; SAN=se01.contoso.com
    assert (se["Default"].subject, se["Default"].sans) == ("se01.contoso.com", ("se01.contoso.com",))
    # SN=se01.contoso.com; SAN=se01.contoso.com; SAN=meet.contoso.com; SAN=meet.fabrikam.com; SAN=dialin.contoso.com; SAN=admin.contoso.com
    internal = se["WebServicesInternal"]
    assert internal.subject == "se01.contoso.com"
    assert internal.sans == ("se01.contoso.com", "meet.contoso.com", "meet.fabrikam.com", "dialin.contoso.com", "admin.contoso.com")
    # SN=se01.contoso.com; SAN=webcon01.contoso.com; SAN=meet.contoso.com; SAN=meet.fabrikam.com; SAN=dialin.contoso.com
    external = se["WebServicesExternal"]
    assert external.subject == "se01.contoso.com"
    assert external.sans == ("webcon01.contoso.com", "meet.contoso.com", "meet.fabrikam.com", "dialin.contoso.com")
    assert "admin.contoso.com" not in external.sans  # the Admin URL is internal only


def test_enterprise_pool_member_table():
    body = 'site "S" { enterprise_pool eepool.contoso.com { web_services internal webint.contoso.com external webcon01.contoso.com front_end ee01.contoso.com front_end ee02.contoso.com front_end ee03.contoso.com } }'
    certs, _ = certificates(body)
    ee = certs["ee01.contoso.com"]
    # SN=eepool.contoso.com; SAN=eepool.contoso.com; SAN=ee01.contoso.com
    assert (ee["Default"].subject, ee["Default"].sans) == ("eepool.contoso.com", ("eepool.contoso.com", "ee01.contoso.com"))
    internal = ee["WebServicesInternal"]
    assert internal.subject == "eepool.contoso.com"  # "FQDN of the pool"
    assert {"webint.contoso.com", "ee01.contoso.com", "eepool.contoso.com", "meet.contoso.com", "meet.fabrikam.com",
            "dialin.contoso.com", "admin.contoso.com"} == set(internal.sans)
    external = ee["WebServicesExternal"]
    assert set(external.sans) == {"webcon01.contoso.com", "meet.contoso.com", "meet.fabrikam.com", "dialin.contoso.com"}
    # Every member gets its own certificate naming itself.
    assert "ee02.contoso.com" in certs["ee02.contoso.com"]["Default"].sans


def test_director_table():
    body = ('site "S" { standard_edition se01.contoso.com { web_services external sex.contoso.com } '
            'director_pool pool.contoso.com { web_services external directorwebcon01.contoso.com server dir01.contoso.com } }')
    certs, _ = certificates(body)
    d = certs["dir01.contoso.com"]
    assert d["Default"].subject == "pool.contoso.com" and "dir01.contoso.com" in d["Default"].sans
    assert d["WebServicesInternal"].subject == "dir01.contoso.com"
    assert {"dir01.contoso.com", "meet.contoso.com", "meet.fabrikam.com", "dialin.contoso.com", "admin.contoso.com"} <= set(d["WebServicesInternal"].sans)
    assert d["WebServicesExternal"].subject == "dir01.contoso.com"
    assert set(d["WebServicesExternal"].sans) == {"directorwebcon01.contoso.com", "meet.contoso.com", "meet.fabrikam.com", "dialin.contoso.com"}


def test_mediation_pool_table():
    body = ('site "S" { standard_edition se01.contoso.com { web_services external sex.contoso.com } '
            "mediation_pool medsvr-pool.contoso.com { next_hop se01.contoso.com server medsvr01.contoso.com server medsvr02.contoso.com } }")
    certs, _ = certificates(body)
    # SN=medsvr-pool.contoso.net; SAN=medsvr-pool.contoso.net; SAN=medsvr01.contoso.net
    cert = certs["medsvr01.contoso.com"]["Default"]
    assert (cert.subject, cert.sans) == ("medsvr-pool.contoso.com", ("medsvr-pool.contoso.com", "medsvr01.contoso.com"))
    assert list(certs["medsvr01.contoso.com"]) == ["Default"]


def test_edge_internal_and_external():
    body = ('site "S" { standard_edition se01.contoso.com { web_services external sex.contoso.com } '
            "edge_pool edgepool.contoso.com { next_hop se01.contoso.com access_edge sip.contoso.com "
            "webconf_edge webcon.contoso.com av_edge av.contoso.com server edge01.contoso.com server edge02.contoso.com } }")
    certs, plan = certificates(body)
    for fqdn in ("edge01.contoso.com", "edge02.contoso.com"):
        # deploy-edge-servers.md, "Internal Edge interface certificates", steps 3-6: one internal
        # certificate for the pool's internal FQDN, requested on one Edge Server, exported with its
        # private key and assigned on each.
        internal = certs[fqdn]["Internal"]
        assert (internal.subject, internal.sans, internal.exportable_key) == ("edgepool.contoso.com", (), True)
        assert (internal.scope, internal.requested_on, internal.pfx_name) == ("pool", "edge01.contoso.com", "EdgeInternal.pfx")
        external = certs[fqdn]["AccessEdgeExternal,DataEdgeExternal,AudioVideoAuthentication"]
        assert external.subject == "sip.contoso.com"
        assert external.sans == ("sip.contoso.com", "webcon.contoso.com", "sip.fabrikam.com")
        assert "av.contoso.com" not in external.sans
        assert external.exportable_key and external.scope == "pool"
        assert external.requested_on == "edge01.contoso.com"  # one request for the whole pool
    assert not plan.server("edge01.contoso.com").imports_shared(external)
    assert plan.server("edge02.contoso.com").imports_shared(external)
    assert plan.server("edge02.contoso.com").imports_shared(internal)


def test_a_public_edge_policy_leaves_the_internal_certificate_to_the_internal_ca():
    """The pool's `certificates` block is the external certificate's; the internal one follows the
    topology's (the internal CA) unless `internal_certificates` says otherwise, and a request for a
    public CA never carries a template name (an Active Directory Certificate Services notion)."""
    edge = ("edge_pool edgepool.contoso.com { next_hop se01.contoso.com access_edge sip.contoso.com "
            "webconf_edge webcon.contoso.com av_edge av.contoso.com certificates { authority offline public } %s server edge01.contoso.com }")
    base = 'site "S" { standard_edition se01.contoso.com { web_services external sex.contoso.com } ' + edge + " }"
    certs, _ = certificates(base % "", policy='template "WebServer" ')
    internal, external = certs["edge01.contoso.com"]["Internal"], certs["edge01.contoso.com"]["AccessEdgeExternal,DataEdgeExternal,AudioVideoAuthentication"]
    assert (external.authority, external.policy.public, external.policy.template) == ("offline", True, None)
    assert (internal.policy.public, internal.policy.template) == (False, "WebServer")
    # The internal CA, by an offline request: an Edge Server cannot enroll online.
    assert internal.authority == "offline"
    certs, _ = certificates(base % "internal_certificates { authority offline }", policy='template "WebServer" ')
    internal = certs["edge01.contoso.com"]["Internal"]
    assert (internal.authority, internal.policy.public, internal.policy.template) == ("offline", False, "WebServer")


def test_oauth_once_global_and_first():
    body = ('site "S" { enterprise_pool p.contoso.com { web_services external w.contoso.com front_end a1.contoso.com front_end a2.contoso.com front_end a3.contoso.com } '
            "standard_edition se01.contoso.com { web_services external sex.contoso.com } }")
    _, plan = certificates(body, policy="key_size 1024 ")
    owners = [s.fqdn for s in plan.servers if s.oauth]
    assert owners == ["a1.contoso.com"]
    assert plan.oauth.usages == ("OAuthTokenIssuer",) and plan.oauth.scope == "global"
    assert plan.oauth.key_size >= 2048  # even when the policy says 1024
    assert all(c.usages != ("OAuthTokenIssuer",) for s in plan.servers for c in s.certificates)


def test_mobility_and_sip_names():
    body = 'site "S" { standard_edition se01.contoso.com { web_services external ext.contoso.com } }'
    certs, _ = certificates(body, "    mobility on\n", policy="sip_names on ")
    se = certs["se01.contoso.com"]
    assert {"lyncdiscoverinternal.contoso.com", "lyncdiscoverinternal.fabrikam.com"} <= set(se["WebServicesInternal"].sans)
    assert {"lyncdiscover.contoso.com", "lyncdiscover.fabrikam.com"} <= set(se["WebServicesExternal"].sans)
    assert {"sip.contoso.com", "sip.fabrikam.com"} <= set(se["Default"].sans)
    # Names Request-CsCertificate does not add by itself go in -DomainName.
    assert set(se["Default"].extra_names) == {"sip.contoso.com", "sip.fabrikam.com"}


def test_combined_by_default():
    text = HEAD.replace(" web separate", "") + 'site "S" { standard_edition se01.contoso.com { web_services external ext.contoso.com } }\n}\n'
    plan = build_plan(check_text(text).topology)
    (cert,) = plan.server("se01.contoso.com").certificates
    assert cert.usages == ("Default", "WebServicesInternal", "WebServicesExternal")
    assert cert.subject == "se01.contoso.com"
    assert set(cert.sans) == {"se01.contoso.com", "meet.contoso.com", "meet.fabrikam.com", "dialin.contoso.com", "admin.contoso.com", "ext.contoso.com"}


def test_pool_policy_overrides_topology():
    body = ('site "S" { standard_edition se01.contoso.com { web_services external ext.contoso.com '
            'certificates { authority offline key_size 4096 organization "Override" } } }')
    certs, _ = certificates(body, policy='organization "Top" country "US" ')
    cert = certs["se01.contoso.com"]["Default"]
    assert cert.authority == "offline" and cert.key_size == 4096
    assert cert.policy.organization == "Override" and cert.policy.country == "US"


@pytest.mark.parametrize("authority,expected", [("online", "Request-CsCertificate -New -Type $types -CA 'ca01.contoso.com\\Contoso Issuing CA'"),
                                                ("offline", "Request-CsCertificate -New -Type $types -Output $requestFile")])
def test_step3_emits_documented_calls(compiled, authority, expected):
    files = compiled["contoso"].files
    server = "fe02.contoso.com" if authority == "online" else "edge01.contoso.com"
    text = files[f"{server}/3-Request-Certificates.ps1"].decode("utf-8-sig")
    assert expected in text
    assert "Set-CsCertificate -Type $types -Thumbprint $certificate.Thumbprint" in text
    # Never a stored credential: CaPassword takes its value only from -CaCredential, the secrets on
    # stdin or a prompt, never from a literal.
    assert not re.search(r"CaPassword\s*=\s*['\"]", text)
    assert "CaPassword = $CaCredential.GetNetworkCredential().Password" in text


def test_oauth_assigned_globally_in_script(compiled):
    text = compiled["contoso"].files["fe01.contoso.com/3-Request-Certificates.ps1"].decode("utf-8-sig")
    assert "Set-CsCertificate -Identity 'Global' -Type $types -Thumbprint $certificate.Thumbprint" in text
    other = compiled["contoso"].files["fe02.contoso.com/3-Request-Certificates.ps1"].decode("utf-8-sig")
    assert "OAuthTokenIssuer" not in other
