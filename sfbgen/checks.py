"""Semantic checks: every rule a published topology must satisfy, reported all at once.

Each check is a small function over the model that yields diagnostics; `run_checks` runs them all.
sfbgen is never stricter than Topology Builder: every refusal enforces a rule of Microsoft's, named
in the check's comment and, for every code, in `diagnostics.CATALOG` (its `source`); what no
Microsoft rule refuses is at most a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from . import model as m
from .diagnostics import UNSAFE_CHARACTERS, Diagnostic, Reporter, Span, visible
from .pool_kinds import NEXT_HOP_TARGETS, kind_of

Check = Callable[[m.Topology, "Reporter"], None]

SMART_SETUP_MODES = ("wsus", "microsoft_update", "off")
KEY_SIZES = (1024, 2048, 4096)
# X.520 upper bounds for the subject fields a certificate request carries.
SUBJECT_FIELD_MAX = 64
TEXT_MAX = 255
# The line that starts an Authenticode signature block (sfbgen.authenticode.BEGIN); refused in any value.
SIGNATURE_MARKER = "# SIG # Begin signature block"

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def fqdn_problem(value: str, wildcard: bool = False) -> str | None:
    """Why `value` is not a fully qualified domain name, or None when it is one.

    With `wildcard`, a leading '*.' label is accepted (the certificate stage warns about it).
    """
    if wildcard and value.startswith("*."):
        value = "wildcard" + value[1:]
    if len(value) > 253:
        return "it is longer than 253 characters"
    labels = value.split(".")
    if len(labels) < 2:
        return "it has no domain part (an FQDN looks like server.contoso.com)"
    for label in labels:
        if not label:
            return "it has an empty label (two dots in a row, or a dot at an end)"
        if not _LABEL.match(label):
            if len(label) > 63:
                return f"the label '{label[:20]}...' is longer than 63 characters"
            return f"the label '{label}' may hold only letters, digits and inner hyphens"
    if labels[-1].isdigit():
        return "it ends in a number, like an IP address; give the DNS name"
    return None


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _display(value: str) -> str:
    """A value shown inside a message, control characters made visible and length bounded."""
    shown = visible(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


# ---------------------------------------------------------------------------------------------------
# Free text


def _all_names(topology: m.Topology) -> Iterator[tuple[str, m.Name]]:
    """Every written value with a label for messages: the input to the text-safety checks."""
    yield "topology name", topology.name
    update = topology.cumulative_update
    for label, value in (
        ("media", topology.media), ("install_path", topology.install_path), ("windows_source", topology.windows_source),
        ("module_path", topology.module_path), ("cumulative update installer", update.installer if update else None),
        ("cumulative update arguments", update.arguments if update else None),
    ):
        if value:
            yield label, value
    for pool in topology.pools():
        for label, value in (("media", pool.media), ("windows_source", pool.windows_source)):
            if value:
                yield label, value
    for site in topology.sites:
        if site.windows_source:
            yield "windows_source", site.windows_source
    for policy in _policies(topology):
        for field in ("ca", "template", "organization", "unit", "city", "state", "country"):
            value = getattr(policy, field)
            if value:
                yield field, value
    for url in topology.simple_urls:
        yield "simple URL", url.url
    for site in topology.sites:
        yield "site name", site.name


def _policies(topology: m.Topology) -> list[m.CertificatePolicy]:
    """Every certificates block: the topology's, each pool's, each Edge pool's internal one."""
    found = [topology.certificates]
    for pool in topology.pools():
        found.append(pool.certificates)
        if isinstance(pool, m.EdgePool):
            found.append(pool.internal_certificates)
    return [policy for policy in found if policy is not None]


def check_text(topology: m.Topology, report: Reporter) -> None:
    for label, name in _all_names(topology):
        value = name.value
        bad = UNSAFE_CHARACTERS.search(value)
        if bad:
            char = bad.group()
            column = name.span.column + bad.start()
            report.control_character_in_text(
                Span(name.span.line, column, name.span.line, column + 1),
                f"the {label} contains the control character U+{ord(char):04X}",
                "remove it: values are written into PowerShell scripts and must be plain text",
            )
        elif SIGNATURE_MARKER.lower() in value.lower():
            report.signature_marker_in_text(
                name.span,
                f"the {label} contains the text '{SIGNATURE_MARKER}', which marks where a script's signature starts",
                "remove it: a script holding that text cannot be signed or verified reliably",
            )
        limit = SUBJECT_FIELD_MAX if label in ("organization", "unit", "city", "state") else TEXT_MAX
        if len(value) > limit:
            report.text_too_long(name.span, f"the {label} is {len(value)} characters long", f"keep it to {limit} characters")


# ---------------------------------------------------------------------------------------------------
# Topology-wide settings


_ABSOLUTE_PATH = re.compile(r"^([A-Za-z]:\\|\\\\[^\\]+\\[^\\]+)")


def _check_path(value: m.Name | None, label: str, report: Reporter) -> None:
    if value is not None and not _ABSOLUTE_PATH.match(value.value):
        report.media_path_not_absolute(value.span, f"the {label} '{_display(value.value)}' is not absolute", "give a drive path such as D:\\ or a UNC path such as \\\\files\\Media\\SfB")
    _check_doubled_backslashes(value, label, report)


def _check_doubled_backslashes(value: m.Name | None, label: str, report: Reporter) -> None:
    """Strings are literal: a '\\\\' written out of habit (as in C or JSON) reaches the script as two."""
    if value is None:
        return
    inner = value.value[2:] if value.value.startswith("\\\\") else value.value
    position = inner.find("\\\\")
    if position >= 0:
        column = value.span.column + (len(value.value) - len(inner)) + position
        report.doubled_backslash_in_a_path(Span(value.span.line, column, value.span.line, column + 2),
                                           f"the {label} holds a doubled backslash; strings are literal, so it reaches the scripts as two",
                                           "write each backslash once, as Windows does (only a UNC path starts with two)")


def check_settings(topology: m.Topology, report: Reporter) -> None:
    from .platform import products

    name_span = topology.name.span
    if topology.product is None:
        report.required_setting_missing(name_span, "the topology does not say which product it deploys", "add 'product 2019', 'product 2015' or 'product subscription'")
    elif topology.product.value not in products():
        report.product_version_unsupported(
            topology.product.span,
            f"product {_display(topology.product.value)} is not a Skype for Business Server version sfbgen deploys",
            "write 'product 2015', 'product 2019' or 'product subscription'",
        )
    elif topology.product.value == "subscription":
        # Subscription Edition's install folder, module path and Windows Server versions are not in the
        # documents at hand (sfbgen/data/platform.json, 'products'): the topology says them.
        for label, value, example in (
            ("install_path", topology.install_path, 'install_path "C:\\Program Files\\Skype for Business Server"'),
            ("module_path", topology.module_path, 'module_path "C:\\Program Files\\Common Files\\Skype for Business Server\\Modules\\SkypeForBusiness\\SkypeForBusiness.psd1"'),
            ("windows_server", topology.windows_server or None, "windows_server 2019 2022"),
        ):
            if value is None:
                report.required_setting_missing(topology.product.span, f"Subscription Edition needs '{label}': sfbgen has no Microsoft source for its default", f"add {example}, as your installation media and Microsoft's system requirements say")
    if topology.media is None and any(pool.media is None for pool in topology.pools()):
        report.required_setting_missing(
            name_span,
            "the topology does not say where the installation media is",
            'add media "\\\\fileserver\\share\\SfB" (a UNC path or a local path such as D:\\), or a media line in every pool',
        )
    _check_path(topology.media, "media path", report)
    for pool in topology.pools():
        _check_path(pool.media, "media path", report)
        _check_path(pool.windows_source, "Windows source path", report)
    for site in topology.sites:
        _check_path(site.windows_source, "Windows source path", report)
    _check_path(topology.windows_source, "Windows source path", report)
    _check_path(topology.module_path, "module path", report)
    if topology.cumulative_update is not None:
        _check_path(topology.cumulative_update.installer, "cumulative update installer path", report)
    from .platform import fact

    known = fact("windows_server_builds")
    for version in topology.windows_server:
        if version.value not in known:
            report.unknown_value(version.span, f"'{_display(version.value)}' is not a Windows Server version sfbgen knows", "write some of " + ", ".join(known))
    _check_doubled_backslashes(topology.install_path, "install path", report)
    if topology.install_path is not None and not re.match(r"^[A-Za-z]:\\", topology.install_path.value):
        report.install_path_not_absolute(
            topology.install_path.span,
            f"the install path '{_display(topology.install_path.value)}' is not an absolute local path",
            "give a path on a local drive, such as D:\\Program Files\\Skype for Business Server 2015",
        )
    for label, value, allowed in (
        ("smart_setup", topology.smart_setup, SMART_SETUP_MODES),
        ("mobility", topology.mobility, ("on", "off")),
    ):
        if value is not None and value.value not in allowed:
            report.unknown_value(
                value.span,
                f"'{_display(value.value)}' is not a {label} setting",
                "write one of " + ", ".join(allowed),
            )
    if topology.smart_setup is not None and topology.smart_setup.value in ("wsus", "microsoft_update"):
        report.setting_without_effect(
            topology.smart_setup.span,
            "smart_setup has no effect: Smart Setup is part of Setup.exe's wizard, and sfbgen installs from the media with Bootstrapper.exe",
            'remove it, and name the update to install: cumulative_update "<path>\\SkypeServerUpdateInstaller.exe" arguments "<its switches>"',
        )
    for pool in topology.pools():
        if not kind_of(pool).perimeter:
            continue
        for label, path in (("installation media", topology.media_for(pool)), ("Windows sources", topology.windows_source_for(pool))):
            if path.startswith("\\\\"):
                report.edge_pool_reads_a_share(
                    pool.fqdn.span,
                    f"the Edge pool {pool.fqdn.value} reads its {label} from the share {_display(path)}",
                    "Edge Servers sit in the perimeter network and are not domain members: copy it to a local folder of each Edge Server and name that folder in the pool (media / windows_source)",
                )
    _check_core_update(topology, report)
    stores = [p for p in topology.pools() if isinstance(p, m.StandardEditionServer) and p.central_management_store is not None]
    for extra in stores[1:]:
        first, again = stores[0].central_management_store, extra.central_management_store
        assert first is not None and again is not None  # the stores were chosen for having one
        report.second_central_management_store(again, f"a second Central Management Store (the first is at {first.line}:{first.column})", "keep one: a deployment has one Central Management Store")


def _check_core_update(topology: m.Topology, report: Reporter) -> None:
    # SFB256: server-requirements.md (Operating systems): Skype for Business Server 2015 on Windows Server
    # 2016 needs Cumulative Update 5 or later, on 2019 Cumulative Update 9 or later, on the core components
    # before setup (sfbgen/data/platform.json, 'core_update_before_bootstrapper'). Without a
    # cumulative_update, step 1 stops on such a server; a warning, since the servers may all run 2012 R2.
    from .platform import fact, product

    if topology.product is None or topology.cumulative_update is not None:
        return
    version = topology.product.value
    if version not in fact("core_update_before_bootstrapper")["products"]:
        return
    stated = [v.value for v in topology.windows_server]
    windows = stated or (product(version)["windows_server"] or [])
    newer = [v for v in windows if v in ("2016", "2019")]
    if not newer:
        return
    where = "the topology's windows_server names " + " and ".join(f"Windows Server {v}" for v in newer) if stated else \
        "the topology does not say which Windows Server its servers run (windows_server), so they may run Windows Server 2016 or 2019"
    report.core_update_missing(
        topology.product.span,
        f"{where}; {product(version)['title']} needs its core components updated there (Cumulative Update 5 on 2016, 9 on 2019) before setup, "
        "and no cumulative_update is named, so step 1 stops on such a server",
        'add cumulative_update "<folder>\\SkypeServerUpdateInstaller.exe" arguments "/silentmode" (a path every server reads), '
        "or windows_server 2012 2012R2 when no server runs a later Windows Server",
    )


def check_sites(topology: m.Topology, report: Reporter) -> None:
    # SFB253: Get-CsPool.md, -Site (a site is named by its DisplayName). SFB226: the seed, Step 1 note.
    seen: dict[str, m.Site] = {}
    for site in topology.sites:
        key = site.name.value.casefold()
        if key in seen:
            first = seen[key].name.span
            report.duplicate_site_name(
                site.name.span,
                f"the site '{_display(site.name.value)}' is defined twice (first at {first.line}:{first.column})",
                "give every site its own name, or merge the two blocks",
            )
        else:
            seen[key] = site
    if not any(kind_of(pool).front_end for pool in topology.pools()):
        report.no_front_end_pool(
            topology.name.span,
            "the topology has no Front End pool or Standard Edition server",
            "add an enterprise_pool or a standard_edition: every deployment needs one to hold its configuration",
        )


# ---------------------------------------------------------------------------------------------------
# FQDNs


def _fqdns(topology: m.Topology) -> Iterator[tuple[str, m.Name, m.Pool]]:
    """Every FQDN that names a computer or a service, with what it names."""
    for pool in topology.pools():
        yield kind_of(pool).word, pool.fqdn, pool
        if kind_of(pool).member_keyword is not None:
            for server in pool.servers:
                yield "server", server.fqdn, pool
        if isinstance(pool, m.WebPool):
            if pool.web_internal:
                yield "internal web services FQDN", pool.web_internal, pool
            if pool.web_external:
                yield "external web services FQDN", pool.web_external, pool
        if isinstance(pool, m.EdgePool):
            for label, value in (
                ("Access Edge FQDN", pool.access_edge),
                ("Web Conferencing Edge FQDN", pool.webconf_edge),
                ("A/V Edge FQDN", pool.av_edge),
            ):
                if value:
                    yield label, value, pool


def _may_share(a: tuple[str, m.Name, m.Pool], b: tuple[str, m.Name, m.Pool]) -> bool:
    """FQDNs that are allowed to be equal (each case is Topology Builder's, see the citations)."""
    (label_a, _, pool_a), (label_b, _, pool_b) = a, b
    if pool_a is not pool_b:
        return False
    labels = {label_a, label_b}
    edge_labels = {"Access Edge FQDN", "Web Conferencing Edge FQDN", "A/V Edge FQDN"}
    if labels <= edge_labels:
        return True  # one external FQDN for all three Edge services (single-IP Edge, distinct ports)
    web_labels = {"internal web services FQDN", "external web services FQDN"}
    if labels <= web_labels | {kind_of(pool_a).word}:
        # Topology Builder's defaults: both web services FQDNs are the pool FQDN unless overridden
        # (add-front-end-web-services.md; every real document in ../shared/topologies).
        return True
    if labels == {kind_of(pool_a).word, "server"}:
        return True  # a pool named after a member: SFB207 / SFB208 say whether that is allowed
    return False


def check_fqdns(topology: m.Topology, report: Reporter) -> None:
    # SFB201: Get-CsPool.md / Get-CsComputer.md, -Identity is the FQDN. SFB202: RFC 1035 2.3.1, RFC 1123 2.1.
    # SFB203: Microsoft, "Naming conventions in Active Directory" (NetBIOS computer names: 15 characters).
    seen: dict[str, tuple[str, m.Name, m.Pool]] = {}
    for entry in _fqdns(topology):
        label, name, pool = entry
        problem = fqdn_problem(name.value, wildcard=label == "Access Edge FQDN")
        if problem:
            report.malformed_fqdn(name.span, f"the {label} '{_display(name.value)}' is not a valid FQDN: {problem}", "write a fully qualified DNS name")
            continue
        if label == "server" or kind_of(pool).member_keyword is None and label == kind_of(pool).word:  # a computer's own name
            host = name.value.split(".")[0]
            if len(host) > 15:
                report.computer_name_too_long(
                    name.span,
                    f"the computer name '{host}' is {len(host)} characters long; Windows computer names have at most 15",
                    "use the server's real FQDN, whose first label is its computer name",
                )
        key = name.value.lower().rstrip(".")
        if key in seen and not _may_share(seen[key], entry):
            first_label, first, _ = seen[key]
            report.duplicate_fqdn(
                name.span,
                f"'{name.value}' is used twice: here as {label} and at {first.span.line}:{first.span.column} as {first_label}",
                "give every server, pool and service its own FQDN",
            )
        else:
            seen.setdefault(key, entry)


# The names sfbgen.manifest.RESERVED_DEVICE_NAMES holds all start so: a first label that does not is no
# device, and the manifest module (with the PowerShell layer it imports) is not loaded for the check.
_DEVICE_LIKE = re.compile(r"(?i)^(?:CON|PRN|AUX|NUL|COM|LPT|CLOCK)")


def check_device_names(topology: m.Topology, report: Reporter) -> None:
    # SFB257: a server's bundle folder is named by its FQDN (and a Standard Edition server's by its pool
    # FQDN). Microsoft, "Naming Files, Paths, and Namespaces"
    # (https://learn.microsoft.com/en-us/windows/win32/fileio/naming-a-file): "Do not use the following
    # reserved names for the name of a file: CON, PRN, AUX, NUL, COM1 ... COM9, LPT1 ... LPT9", "also
    # avoid these names followed immediately by an extension" (NUL.txt is NUL), so 'con.contoso.com' is
    # the device CON on Windows. Such a folder cannot be made there, and `sfbgen verify` refuses the
    # manifest that lists it (sfbgen/manifest.py, path_problem): refused here, before anything is written.
    seen: set[tuple[int, int]] = set()
    for pool in topology.pools():
        for what, name in ((kind_of(pool).word, pool.fqdn), *(("server", server.fqdn) for server in pool.servers)):
            if not _DEVICE_LIKE.match(name.value) or (name.span.line, name.span.column) in seen:
                continue
            seen.add((name.span.line, name.span.column))
            from .manifest import reserved_device

            device = reserved_device(name.value)
            if device and not fqdn_problem(name.value):  # a malformed FQDN is SFB202's
                report.windows_device_name(
                    name.span,
                    f"the {what} FQDN '{_display(name.value)}' begins with {device}, a device name Windows reserves: the folder of its bundle could not exist on Windows",
                    "give the computer another name, with no CON, PRN, AUX, NUL, COM1-9 or LPT1-9 before the first dot",
                )


def check_sip_domains(topology: m.Topology, report: Reporter) -> None:
    # SFB204-206: the published topology names one DefaultDomain among its InternalDomains.
    seen: dict[str, m.SipDomain] = {}
    for domain in topology.sip_domains:
        problem = fqdn_problem(domain.name.value)
        if problem:
            report.malformed_fqdn(domain.name.span, f"the SIP domain '{_display(domain.name.value)}' is not a valid domain name: {problem}", "write a DNS domain such as contoso.com")
        key = domain.name.value.lower()
        if key in seen:
            report.duplicate_sip_domain(domain.name.span, f"the SIP domain '{domain.name.value}' is listed twice", "list each SIP domain once")
        seen.setdefault(key, domain)
    primaries = [d for d in topology.sip_domains if d.primary]
    if not primaries:
        span = topology.sip_domains[0].span if topology.sip_domains else topology.name.span
        report.no_primary_sip_domain(span, "no SIP domain is marked primary", "mark exactly one: sip_domain contoso.com primary")
    for extra in primaries[1:]:
        first = primaries[0].span
        report.more_than_one_primary_sip_domain(
            extra.span,
            f"a second primary SIP domain (the first is at {first.line}:{first.column})",
            "mark exactly one SIP domain primary",
        )


# ---------------------------------------------------------------------------------------------------
# Simple URLs


def _url_key(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or "") + parts.path.rstrip("/")


def check_simple_urls(topology: m.Topology, report: Reporter) -> None:
    # SFB210-219: simple-urls.md, "Simple URL naming and validation rules" (Topology Builder enforces them).
    domains = {d.name.value.lower(): d for d in topology.sip_domains}
    primary = (topology.primary_sip_domain or "").lower()
    pool_fqdns = {pool.fqdn.value.lower() for pool in topology.pools()}
    meet_for: dict[str, m.SimpleUrl] = {}
    singles: dict[str, m.SimpleUrl] = {}
    valid: list[m.SimpleUrl] = []
    for url in topology.simple_urls:
        kind = url.kind.value
        if kind not in ("meet", "dialin", "admin"):
            report.unknown_simple_url_kind(url.kind.span, f"'{_display(kind)}' is not a kind of simple URL", "write meet, dialin or admin")
            continue
        if url.domain is not None and kind != "meet":
            report.setting_not_allowed_here(url.domain.span, f"a {kind} URL serves every SIP domain and takes no 'for'", "remove 'for ...'")
        if kind == "meet":
            domain = (url.domain.value if url.domain else primary).lower()
            if url.domain is not None and domain not in domains:
                report.simple_url_unknown_sip_domain(url.domain.span, f"'{_display(url.domain.value)}' is not one of the topology's SIP domains", _did_you_mean(url.domain.value, [d.name.value for d in topology.sip_domains], "add it with sip_domain, or name a listed domain"))
            elif domain in meet_for:
                first = meet_for[domain].span
                report.duplicate_simple_url(url.span, f"a second Meet URL for {domain} (the first is at {first.line}:{first.column})", "keep one Meet URL per SIP domain")
            else:
                meet_for[domain] = url
        elif kind in singles:
            first = singles[kind].span
            report.duplicate_simple_url(url.span, f"a second {kind} URL (the first is at {first.line}:{first.column})", f"keep one {kind} URL")
        else:
            singles[kind] = url
        if _check_url_syntax(url, pool_fqdns, report):
            valid.append(url)
    for name, sip_domain in domains.items():
        if name not in meet_for and not fqdn_problem(name):
            report.meet_url_missing_for_a_sip_domain(sip_domain.span, f"the SIP domain {sip_domain.name.value} has no Meet URL", f'add simple_url meet "https://meet.{sip_domain.name.value}" for {sip_domain.name.value}')
    if "dialin" not in singles and topology.sip_domains:
        report.dial_in_url_missing(topology.name.span, "the topology has no Dial-in URL", f'add simple_url dialin "https://dialin.{topology.primary_sip_domain}"')
    keys = sorted(((_url_key(u.url.value).lower(), u) for u in valid), key=lambda pair: pair[0])
    for (key_a, a), (key_b, b) in zip(keys, keys[1:], strict=False):
        if key_b == key_a or key_b.startswith(key_a + "/"):
            report.simple_url_is_a_prefix_of_another(
                b.url.span,
                f"the URL {b.url.value} starts with the URL {a.url.value} (at {a.span.line}:{a.span.column}), so requests for one reach the other",
                "give every simple URL its own host or its own path",
            )


def _check_url_syntax(url: m.SimpleUrl, pool_fqdns: set[str], report: Reporter) -> bool:
    value = url.url.value
    if not value.lower().startswith("https://"):
        scheme = value.split("://")[0] if "://" in value else "no scheme"
        report.simple_url_is_not_https(url.url.span, f"the simple URL '{_display(value)}' uses {scheme}, not https", "write it as https://host[/path]")
        return False
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        report.malformed_simple_url(url.url.span, f"'{_display(value)}' is not a valid URL", "write it as https://host[/path]")
        return False
    if parts.username or parts.password or parts.query or parts.fragment or " " in value:
        report.malformed_simple_url(url.url.span, f"the simple URL '{_display(value)}' has a user, query, fragment or space", "write it as https://host[/path]")
        return False
    if port is not None or value[8:].split("/")[0].endswith(":"):
        report.simple_url_has_a_port(url.url.span, f"the simple URL '{_display(value)}' names a port", "remove the port: simple URLs are served on 443")
        return False
    host = parts.hostname or ""
    problem = fqdn_problem(host)
    if problem:
        report.malformed_simple_url(url.url.span, f"the host of '{_display(value)}' is not a valid FQDN: {problem}", "write it as https://host[/path]")
        return False
    if host.lower() in pool_fqdns:
        report.simple_url_host_is_a_pool_fqdn(url.url.span, f"the simple URL host {host} is a pool FQDN", "use a host of its own, such as meet.<sipdomain>")
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Pools


def check_pools(topology: m.Topology, report: Reporter) -> None:
    # SFB220-223: pool sizes of sfbgen/data/platform.json (products), from sfb-deployment.md "Pool sizes".
    from .platform import product

    version = topology.product_version
    rules = product(version)
    for pool in topology.pools():
        count = len(pool.servers)
        kind = kind_of(pool)
        what = kind.word
        if count == 0:
            report.pool_has_no_servers(pool.fqdn.span, f"the {what} {pool.fqdn.value} has no servers", f"add its members with '{kind.member_keyword or 'server'} <fqdn>'")
            continue
        _check_pool_named_after_member(pool, report)
        limits = kind.limits(version)
        if limits is None:
            continue
        limit, two_allowed = limits
        if count > limit:
            report.enterprise_pool_size_out_of_range(pool.fqdn.span, f"the pool {pool.fqdn.value} has {count} Front End servers; Skype for Business Server {version} allows {limit}", "split it into two pools")
        elif count == 2 and not two_allowed:
            report.two_server_pool_refused(pool.fqdn.span, f"the pool {pool.fqdn.value} has two Front End servers, which {rules['title']} refuses", "use three or more Front End servers (or one)")
        elif count == 2:
            report.two_server_front_end_pool(pool.fqdn.span, f"the pool {pool.fqdn.value} has two Front End servers: if either stops, the pool may lose quorum", "use three or more Front End servers")
        elif count == 1:
            report.one_server_front_end_pool(pool.fqdn.span, f"the pool {pool.fqdn.value} has one Front End server and no redundancy", "use three or more Front End servers, or a Standard Edition server")


def _check_pool_named_after_member(pool: m.Pool, report: Reporter) -> None:
    """A single computer pool takes its computer's FQDN (Topology Builder's "Single computer pool":
    add-edge-server.md, add-mediation-server.md: "If you are deploying a single Mediation Server, the
    FQDN you specify will be the FQDN of the single Mediation Server"); a pool of several has a pool
    FQDN of its own, which DNS load balancing resolves to all its members."""
    kind = kind_of(pool)
    if kind.member_keyword is None:
        return  # a Standard Edition server is its own pool by definition
    named = [s for s in pool.servers if s.fqdn.value.lower().rstrip(".") == pool.fqdn.value.lower().rstrip(".")]
    if not named:
        return
    what = kind.word
    if len(pool.servers) > 1:
        report.pool_named_after_a_member(named[0].fqdn.span, f"the {what} {pool.fqdn.value} has {len(pool.servers)} members, and one of them has the pool's FQDN", "give the pool an FQDN of its own; only a single computer pool takes its computer's FQDN")
    elif not kind.single_computer_pool:
        report.pool_named_after_only_member(named[0].fqdn.span, f"the {what} {pool.fqdn.value} is named after its only Front End server", "give the pool an FQDN of its own if you will add members later, or make it a standard_edition")


def check_web_services(topology: m.Topology, report: Reporter) -> None:
    """Overrides of the internal web services FQDN, where Topology Builder forbids them.

    Both FQDNs default to the pool FQDN, and may equal each other (add-front-end-web-services.md).
    """
    for pool in topology.pools():
        if not isinstance(pool, m.WebPool):
            continue
        internal = pool.web_internal
        if internal is None or internal.value.lower() == pool.fqdn.value.lower():
            continue  # no override: the internal web services FQDN is the pool FQDN
        if pool.kind == "standard":
            report.web_services_override_on_standard_edition(internal.span, "a Standard Edition server's internal web services FQDN is always its own FQDN", "remove 'internal ...' from web_services")
        elif pool.kind == "director" and len(pool.servers) == 1:
            report.web_services_override_on_single_director(internal.span, "a single Director's internal web services FQDN is always its pool FQDN", "remove 'internal ...' from web_services, or add Directors to the pool")


def check_collocated_mediation(topology: m.Topology, report: Reporter) -> None:
    for pool in topology.pools():
        if isinstance(pool, m.WebPool) and pool.mediation is not None and not pool.collocated_mediation:
            report.collocated_mediation_value_unknown(pool.mediation.span, f"'{_display(pool.mediation.value)}' is not a mediation setting", "write 'mediation collocated', or remove the line")


def _did_you_mean(value: str, candidates: list[str], fix: str) -> str:
    """The fix, led by the defined name a mistyped reference most likely meant."""
    import difflib

    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.8)
    return f"did you mean {by_lower[close[0]]}? If not, {fix}" if close else fix


def check_next_hops(topology: m.Topology, report: Reporter) -> None:
    # SFB230-232: Topology Builder help, add-edge-server-next-hop.md and add-mediation-server-nexthop.md.
    pools = {pool.fqdn.value.lower(): pool for pool in topology.pools()}
    pool_of_server = {server.fqdn.value.lower(): pool for pool, server in topology.servers()}
    for pool in topology.pools():
        kind = kind_of(pool)
        if not kind.next_hops:
            continue
        assert isinstance(pool, (m.EdgePool, m.MediationPool))
        what = kind.word
        if pool.next_hop is None:
            report.next_hop_missing(pool.fqdn.span, f"the {what} {pool.fqdn.value} has no next hop", "add 'next_hop <Front End pool FQDN>' inside its block")
            continue
        target = pool.next_hop.value.lower()
        if target in pools:
            hop = pools[target]
            if hop.kind not in kind.next_hops:
                report.next_hop_is_not_a_front_end_pool(pool.next_hop.span, f"the next hop {pool.next_hop.value} is {_a(kind_of(hop).word)}", "name a Front End pool or a Standard Edition server")
        elif target in pool_of_server:
            owner = pool_of_server[target]
            report.next_hop_unknown(pool.next_hop.span, f"{pool.next_hop.value} is a server, not a pool", f"name its pool: next_hop {owner.fqdn.value}")
        else:
            candidates = [p.fqdn.value for p in topology.pools() if p.kind in NEXT_HOP_TARGETS]
            report.next_hop_unknown(pool.next_hop.span, f"the next hop {_display(pool.next_hop.value)} is not a pool in this topology",
                                    _did_you_mean(pool.next_hop.value, candidates, "name a Front End pool or Standard Edition server defined here"))


def check_edges(topology: m.Topology, report: Reporter) -> None:
    # SFB240: edge-environmental-requirements.md, the external FQDNs of the three Edge services.
    for pool in topology.pools():
        if not isinstance(pool, m.EdgePool):
            continue
        for word, value in (("access_edge", pool.access_edge), ("webconf_edge", pool.webconf_edge), ("av_edge", pool.av_edge)):
            if value is None:
                report.edge_pool_fqdn_missing(pool.fqdn.span, f"the Edge pool {pool.fqdn.value} has no '{word}' FQDN", f"add '{word} <external fqdn>' inside its block")


# ---------------------------------------------------------------------------------------------------
# Certificate policy


def check_certificate_policy(topology: m.Topology, report: Reporter) -> None:
    # SFB301/303/304/308: Request-CsCertificate.md (-KeySize, -CA, -Country, -Template).
    for policy in _policies(topology):
        if policy.key_size is not None:
            size = policy.key_size.value
            if size not in KEY_SIZES:
                report.key_size_not_allowed(policy.key_size.span, f"a key size of {size} bits is not supported", "use 2048 (the default) or 4096")
            elif size == 1024:
                report.weak_key_size(policy.key_size.span, "1024-bit keys are weak and rejected by most public CAs", "use 2048 or 4096")
        if policy.ca is not None:
            ca_fqdn, sep, ca_name = policy.ca.value.partition("\\")
            if not sep or not ca_name.strip() or fqdn_problem(ca_fqdn):
                report.online_authority_malformed(policy.ca.span, f"'{_display(policy.ca.value)}' is not an online authority", 'write it as "<CA server FQDN>\\<CA name>", e.g. "ca01.contoso.com\\Contoso Issuing CA"')
        for label in ("organization", "unit", "city", "state"):
            value = getattr(policy, label)
            if value is not None and "," in value.value:
                report.comma_in_a_subject_field(value.span, f"the {label} '{_display(value.value)}' holds a comma, and Request-CsCertificate documents no escaping of the subject it builds from it", "check the issued certificate's subject (the script checks the common name only), or leave the comma out")
        if policy.country is not None and not re.fullmatch(r"[A-Z]{2}", policy.country.value):
            report.country_code_malformed(policy.country.span, f"the country '{_display(policy.country.value)}' is not a two-letter country code", "write an ISO 3166 code such as US or DE")
        if policy.template is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]*", policy.template.value):
            report.certificate_template_malformed(policy.template.span, f"'{_display(policy.template.value)}' is not a certificate template name", "give the template's name as the CA administrator defined it (letters, digits, spaces, . _ -)")
        for label, value, allowed in (("web", policy.web, ("combined", "separate")), ("sip_names", policy.sip_names, ("on", "off"))):
            if value is not None and value.value not in allowed:
                report.unknown_value(value.span, f"'{_display(value.value)}' is not a '{label}' setting", "write one of " + ", ".join(allowed))


CHECKS: tuple[Check, ...] = (
    check_text,
    check_settings,
    check_sites,
    check_fqdns,
    check_device_names,
    check_sip_domains,
    check_simple_urls,
    check_pools,
    check_web_services,
    check_collocated_mediation,
    check_next_hops,
    check_edges,
    check_certificate_policy,
)


def run_checks(topology: m.Topology, file: str) -> list[Diagnostic]:
    """Run every semantic check; return all diagnostics (errors and warnings)."""
    report = Reporter(file)
    for check in CHECKS:
        check(topology, report)
    return report.diagnostics
