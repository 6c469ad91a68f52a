"""`sfbgen explain SFBnnn`: a code's rule, where the rule comes from, and an example fix.

The rule (title, severity) and its source are `sfbgen.diagnostics.CATALOG`'s; the examples below
show, for each code, a line that draws it and the line that fixes it (a topology line, or the
command or document change when the code is about a file or an import).
"""

from __future__ import annotations

from .diagnostics import CATALOG, RETIRED

# code -> (what draws it, what fixes it)
EXAMPLES: dict[str, tuple[str, str]] = {
    "SFB001": ("sfbgen check topo.sfb   (no such file)", "give the path of an existing, readable file"),
    "SFB002": ("a file saved in a legacy code page", "save it as UTF-8 (or UTF-16 with a byte-order mark)"),
    "SFB003": ("sfbgen check bundle.zip", "give the topology's text file (.sfb)"),
    "SFB004": ("a file of several megabytes", "give the topology file itself, not a log or an export"),
    "SFB005": ("an empty topo.sfb", 'write at least: topology "Contoso" { product 2019 ... }'),
    "SFB101": ("products 2015", "product 2015"),
    "SFB103": ('topology "Contoso" {   (no closing brace)', "close every block with }"),
    "SFB104": ('media "D:\\Media', 'media "D:\\Media"'),
    "SFB105": ("product 2015 ... product 2019", "keep one product line"),
    "SFB106": ("front_end fe01.contoso.com   (in an edge_pool)", "server edge01.contoso.com"),
    "SFB107": ('topology "Contoso" { ... }   (no product)', "product 2019"),
    "SFB108": ("mobility yes", "mobility on"),
    "SFB109": ("smart_setup wsus", 'cumulative_update "D:\\CU\\SkypeServerUpdateInstaller.exe" arguments "/silentmode"'),
    "SFB110": ("sfbgen check published.xml", "sfbgen import published.xml --out topo.sfb"),
    "SFB111": ('media "\\\\files\\\\Media"', 'media "\\\\files\\Media"'),
    "SFB201": ("front_end fe01.contoso.com   (twice)", "give each server its own FQDN"),
    "SFB202": ("front_end fe01", "front_end fe01.contoso.com"),
    "SFB203": ("front_end skypefrontend0001.contoso.com", "front_end sfbfe01.contoso.com (15 characters or fewer before the first dot)"),
    "SFB204": ("sip_domain contoso.com", "sip_domain contoso.com primary"),
    "SFB205": ("sip_domain a.com primary / sip_domain b.com primary", "sip_domain a.com primary / sip_domain b.com"),
    "SFB206": ("sip_domain contoso.com   (twice)", "keep one line per SIP domain"),
    "SFB207": ("enterprise_pool fe01.contoso.com { front_end fe01.contoso.com }", "enterprise_pool pool01.contoso.com { front_end fe01.contoso.com }"),
    "SFB208": ("mediation_pool med01.contoso.com { server med01.contoso.com  server med02.contoso.com }", "mediation_pool med.contoso.com { ... }"),
    "SFB209": ("mediation yes", "mediation collocated"),
    "SFB210": ("sip_domain fabrikam.com   (no Meet URL for it)", 'simple_url meet "https://meet.fabrikam.com" for fabrikam.com'),
    "SFB211": ("(no dialin URL)", 'simple_url dialin "https://dialin.contoso.com"'),
    "SFB212": ('simple_url meet "http://meet.contoso.com"', 'simple_url meet "https://meet.contoso.com"'),
    "SFB213": ('simple_url meet "https://meet.contoso.com:8443"', 'simple_url meet "https://meet.contoso.com"'),
    "SFB214": ('simple_url meet "https://pool01.contoso.com/meet"', 'simple_url meet "https://meet.contoso.com"'),
    "SFB215": ('simple_url meet "https://contoso.com/meet" and "https://contoso.com/meet/x"', "give each simple URL its own host or path"),
    "SFB216": ('simple_url meet "meet contoso"', 'simple_url meet "https://meet.contoso.com"'),
    "SFB217": ('simple_url meet "https://meet.x.com" for x.com   (x.com is no sip_domain)', "sip_domain x.com, or for contoso.com"),
    "SFB218": ('simple_url dialin "https://dialin.contoso.com"   (twice)', "keep one"),
    "SFB219": ('simple_url meeting "https://meet.contoso.com"', 'simple_url meet "https://meet.contoso.com"'),
    "SFB220": ("13 front_end lines in one enterprise_pool", "split the servers into two pools (12 each; 16 on 2019)"),
    "SFB221": ("product 2019 and an enterprise_pool of two front_end", "three front_end servers (or one)"),
    "SFB222": ("an enterprise_pool of two front_end", "add a third front_end"),
    "SFB223": ("an enterprise_pool of one front_end", "add front_end servers, or make it a standard_edition"),
    "SFB224": ("director_pool dir.contoso.com { }", "director_pool dir.contoso.com { server dir01.contoso.com }"),
    "SFB225": ("standard_edition se01.contoso.com { front_end fe01.contoso.com }", "standard_edition se01.contoso.com"),
    "SFB226": ("a topology of Edge pools only", "add the enterprise_pool or standard_edition they serve"),
    "SFB230": ("next_hop pool02.contoso.com   (no such pool)", "next_hop pool01.contoso.com"),
    "SFB231": ("next_hop med.contoso.com   (a Mediation pool)", "next_hop pool01.contoso.com"),
    "SFB232": ("edge_pool edge.contoso.com { ... }   (no next_hop)", "next_hop pool01.contoso.com"),
    "SFB240": ("edge_pool without av_edge", "av_edge av.contoso.com"),
    "SFB250": ("product 2013", "product 2019"),
    "SFB251": ('install_path "\\\\files\\SfB"', 'install_path "D:\\Program Files\\Skype for Business Server 2019"'),
    "SFB252": ('media "Media\\SfB"', 'media "\\\\files.contoso.com\\Media\\SfB"'),
    "SFB253": ('site "Redmond"   (twice)', "give each site its own name"),
    "SFB254": ("central_management_store on two standard_edition servers", "keep it on the first one"),
    "SFB255": ('media "\\\\files\\Media\\SfB" for an edge_pool', 'media "D:\\SfB"   (in the edge_pool)'),
    "SFB256": ("product 2015   (no windows_server, no cumulative_update)", 'cumulative_update "D:\\Updates\\SkypeServerUpdateInstaller.exe" arguments "/silentmode"'),
    "SFB257": ("front_end con.contoso.com   (CON is a Windows device)", "front_end fe01.contoso.com"),
    "SFB258": ("product 2019", "product subscription (with its install_path, module_path, windows_server), or: end_of_support acknowledged"),
    "SFB263": ("standard_edition se01.contoso.com { web_services internal web.contoso.com }", "web_services external web.contoso.com"),
    "SFB264": ("director_pool d.contoso.com { web_services internal w.contoso.com  server d01.contoso.com }", "leave the internal web services FQDN as the pool's"),
    "SFB270": ("a topology beyond --max-servers", "compile it in parts, or raise --max-servers"),
    "SFB271": ("a bundle beyond --max-output-mb", "raise --max-output-mb, or compile in parts"),
    "SFB290": ('organization "Contoso\\u001b[31m"', 'organization "Contoso"'),
    "SFB291": ('unit "# SIG # Begin signature block"', 'unit "Unified Communications"'),
    "SFB292": ("an organization of 80 characters", "keep it to 64"),
    "SFB301": ("key_size 3072", "key_size 2048"),
    "SFB302": ("key_size 1024", "key_size 2048"),
    "SFB303": ('authority online "ca01.contoso.com"', 'authority online "ca01.contoso.com\\Contoso Issuing CA"'),
    "SFB304": ('country "USA"', 'country "US"'),
    "SFB305": ("authority offline public with an internal-only name (pool01.contoso.local)", "request that name from the internal CA, or use a public name"),
    "SFB306": ("access_edge *.contoso.com", "access_edge sip.contoso.com"),
    "SFB307": ("a certificate of more than 100 names", "fewer SIP domains per pool, or web separate"),
    "SFB308": ('template "Web Server!"', 'template "WebServer"'),
    "SFB309": ('organization "Contoso, Ltd"', 'organization "Contoso Ltd"'),
    "SFB310": ('an edge_pool following authority online "ca01.contoso.com\\CA"', "certificates { authority offline public }   (in the edge_pool)"),
    "SFB401": ("sfbgen import project.xml   (root <Project>)", "sfbgen import published.xml (Get-CsTopology -AsXml > published.xml)"),
    "SFB402": ("a document with a DTD or cut short", "export it again: Get-CsTopology -AsXml > published.xml"),
    "SFB403": ('a site named Redmond "North"', "rename it in Topology Builder, publish, and export again"),
    "SFB404": ("a document whose services say ServiceVersion 7", "sfbgen import doc.xml --product 2015"),
    "SFB405": ("a Persistent Chat pool in the document", "set it up outside sfbgen; the rest is imported"),
    "SFB406": ("a document of millions of elements", "export the topology itself, not a concatenation"),
    "SFB420": ("sfbgen import doc.xml", 'sfbgen import doc.xml --media "D:\\SfB"'),
    "SFB421": ("sfbgen import doc.xml", "sfbgen import doc.xml --ca 'ca01.contoso.com\\Contoso Issuing CA'"),
    "SFB422": ("sfbgen import published.xml", "check Get-CsSimpleUrlConfiguration and correct the simple_url lines"),
    "SFB423": ("a .tbxml without a Meet URL for fabrikam.com", 'confirm simple_url meet "https://meet.fabrikam.com" for fabrikam.com'),
    "SFB424": ("sfbgen import 2015.xml --product 2019", "sfbgen import 2015.xml --product 2015 (or deploy 2019 as new servers, knowingly)"),
    "SFB425": ("sfbgen import lync2013.xml", "sfbgen import lync2013.xml --product 2019   (new servers)"),
    "SFB426": ('sfbgen import doc.xml --media "\\\\files\\Media"   (bash keeps one backslash)', "sfbgen import doc.xml --media '\\\\files\\Media'"),
    "SFB427": ("an unpublished .tbxml with one Standard Edition server", "central_management_store   (in that standard_edition block)"),
    "SFB428": ("an imported edge_pool", "keep certificates { authority offline public }, or import with --edge-external topology"),
    "SFB429": ('<Machine Fqdn="[DOMAINID].contoso.com" />', '<Machine Fqdn="fe01.contoso.com" />, then import again'),
}


def explain(code: str) -> str | None:
    """The text `sfbgen explain CODE` prints, or None when sfbgen has no such code."""
    code = code.strip().upper()
    if code.isdigit():
        code = f"SFB{code}"
    if code in RETIRED:
        return f"{code}: retired; it fires no more.\n  why: {RETIRED[code]}\n"
    rule = CATALOG.get(code)
    if rule is None:
        return None
    lines = [f"{code} ({rule.severity.value}): {rule.title}", f"  source:  {rule.source or '(none)'}"]
    example = EXAMPLES.get(code)
    if example:
        lines += [f"  example: {example[0]}", f"  fix:     {example[1]}"]
    else:
        lines.append("  fix:     the diagnostic's message ends with the fix")
    return "\n".join(lines) + "\n"
