"""Generate published topologies (Get-CsTopology -AsXml) of the largest deployments, for `sfbgen import`.

The shape follows bench/generate.py (per site: two Enterprise pools of 12, an Edge pool of 4, a
Mediation pool of 4, two Standard Edition servers, a SQL server and a file server that need no
setup); the elements, attributes and the ports of each service follow the real published topologies
in ../shared/topologies, so that a document is as large per server as a real one.
"""

from __future__ import annotations

import sys

NS = "urn:schema:Microsoft.Rtc.Management.Deploy.Topology.2008"
SITE_SHAPE = [("enterprise", 12), ("enterprise", 12), ("edge", 4), ("mediation", 4), ("standard", 1), ("standard", 1)]
PORTS = 12  # ports per service, as in the real documents


def _service(site: int, role: str, instance: int, cluster: int, depends=(), extra: str = "", on_sql: str | None = None) -> str:
    deps = "".join(f'<Dependency Usage="Default"><ServiceId SiteId="{site}" RoleName="{r}" Instance="{i}" /></Dependency>' for r, i in depends)
    where = (f'<SqlInstanceId Name="{on_sql}"><ClusterId SiteId="{site}" Number="{cluster}" /></SqlInstanceId>' if on_sql
             else f'<ClusterId SiteId="{site}" Number="{cluster}" />')
    ports = "\n".join(
        f'        <Port Owner="urn:component:{role}" Usage="SipServer" InterfaceSide="Primary" InterfaceNumber="1" Port="{5060 + p}" Protocol="Mtls" UrlPath="/" AuthorizesRequests="true" />'
        for p in range(PORTS)
    )
    return (f'    <Service RoleVersion="1" ServiceVersion="8">\n      <ServiceId SiteId="{site}" RoleName="{role}" Instance="{instance}" />\n'
            f'      <DependsOn>{deps}</DependsOn>\n      <InstalledOn>{where}</InstalledOn>\n      <Ports>\n{ports}\n{extra}      </Ports>\n    </Service>')


def generate(servers: int) -> str:
    sites, clusters, sql, services = [], [], [], []
    made = site = 0
    while made < servers:
        site += 1
        sites.append(f'    <CentralSite SiteId="{site}"><Name>Site {site:04d}</Name><Location /></CentralSite>')
        number = 0
        hop = None
        instance = {}

        def next_instance(role, instance=instance):  # this site's counts
            instance[role] = instance.get(role, 0) + 1
            return instance[role]

        def cluster(fqdn, machines, setup=True, site=site):  # this site's cluster
            nonlocal number
            number += 1
            rows = "".join(f'\n      <Machine OrdinalInCluster="{i + 1}" Fqdn="{m}"><NetInterface InterfaceSide="Primary" InterfaceNumber="1" IPAddress="0.0.0.0" /></Machine>' for i, m in enumerate(machines))
            clusters.append(f'    <Cluster RequiresReplication="{str(setup).lower()}" RequiresSetup="{str(setup).lower()}" Fqdn="{fqdn}">\n      <ClusterId SiteId="{site}" Number="{number}" />{rows}\n    </Cluster>')
            return number

        sql_cluster = cluster(f"s{site}sql.scale.example", [f"s{site}sql.scale.example"], setup=False)
        sql.append(f'    <SqlInstance><SqlInstanceId Name="rtc"><ClusterId SiteId="{site}" Number="{sql_cluster}" /></SqlInstanceId></SqlInstance>')
        store = next_instance("UserStore")
        services.append(_service(site, "UserStore", store, sql_cluster, on_sql="rtc"))
        files = cluster(f"s{site}fs.scale.example", [f"s{site}fs.scale.example"], setup=False)
        services.append(_service(site, "FileStore", next_instance("FileStore"), files))
        for index, (kind, size) in enumerate(SITE_SHAPE):
            if made >= servers:
                break
            size = min(size, servers - made)
            if kind == "enterprise" and size == 2:
                size = 1
            tag = f"s{site}p{index}"
            if kind in ("enterprise", "standard"):
                fqdn = f"{tag}.scale.example" if kind == "enterprise" else f"{tag}se.scale.example"
                machines = [f"{tag}fe{i:02d}.scale.example" for i in range(size)] if kind == "enterprise" else [fqdn]
                number = cluster(fqdn, machines)
                if kind == "standard":
                    sql.append(f'    <SqlInstance><SqlInstanceId Name="rtc"><ClusterId SiteId="{site}" Number="{number}" /></SqlInstanceId></SqlInstance>')
                    own_store = next_instance("UserStore")
                    services.append(_service(site, "UserStore", own_store, number, on_sql="rtc"))
                registrar = next_instance("Registrar")
                web = next_instance("WebServices")
                services.append(_service(site, "Registrar", registrar, number, [("WebServices", web)], '        <RegistrarService IsDirector="false" />\n'))
                services.append(_service(site, "UserServices", next_instance("UserServices"), number, [("UserStore", store)]))
                services.append(_service(site, "WebServices", web, number, [("Registrar", registrar)],
                                         f'        <WebService><ExternalSettings Host="{tag}-ext.scale.example"><OverrideUrls /></ExternalSettings></WebService>\n'))
                hop = hop or ("Registrar", registrar)
            else:
                number = cluster(f"{tag}.scale.example", [f"{tag}m{i:02d}.scale.example" for i in range(size)])
                hop_dep = [hop] if hop else []
                if kind == "edge":
                    edge_ports = "".join(
                        f'        <Port Owner="urn:component:{owner}" Usage="SipClient" InterfaceSide="External" InterfaceNumber="1" Port="443" Protocol="Tls" UrlPath="/" AuthorizesRequests="false" ConfiguredFqdn="{tag}-{suffix}.scale.example" />\n'
                        for owner, suffix in (("AccessEdge", "sip"), ("DataEdge", "wc"), ("MediaRelayEdge", "av"))
                    )
                    services.append(_service(site, "EdgeServer", next_instance("EdgeServer"), number, hop_dep, edge_ports))
                else:
                    services.append(_service(site, "MediationServer", next_instance("MediationServer"), number, hop_dep))
            made += size
    return (f'<Topology Signature="00000000-0000-0000-0000-000000000000" xmlns="{NS}">\n'
            '  <InternalDomains AllowAllDomains="false" DefaultDomain="scale.example">\n'
            '    <InternalDomain Name="scale.example" Authoritative="false" AllowSubDomains="false" />\n  </InternalDomains>\n'
            "  <Sites>\n" + "\n".join(sites) + "\n  </Sites>\n"
            "  <Clusters>\n" + "\n".join(clusters) + "\n  </Clusters>\n"
            "  <SqlInstances>\n" + "\n".join(sql) + "\n  </SqlInstances>\n"
            "  <Services>\n" + "\n".join(services) + "\n  </Services>\n</Topology>\n")


if __name__ == "__main__":
    sys.stdout.write(generate(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
