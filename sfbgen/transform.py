"""Building the typed model from the parse tree, a separate pass after parsing.

Each grammar rule has a method of the same name. Statements become `Item`s; the enclosing block
collects them into a model object and reports what the grammar cannot: a setting given twice, or a
setting that the block's kind does not allow (a `front_end` in an Edge pool).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lark import Token, Transformer, Tree, v_args

from . import model as m
from .diagnostics import Diagnostic, DiagnosticBuilder, Reporter, Span
from .pool_kinds import BY_KEYWORD, KINDS, PoolKind


class Item(NamedTuple):
    key: str
    value: Any
    span: Span  # the whole statement


def _span(token: Token) -> Span:
    # Every token of the parser's lexer has its positions; only a Token made by hand lacks them.
    assert token.line is not None and token.column is not None and token.end_line is not None and token.end_column is not None
    return Span(token.line, token.column, token.end_line, token.end_column)


def _meta_span(meta) -> Span:
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _name(token: Token) -> m.Name:
    return m.Name.make(value=str(token), span=_span(token))


def _text(token: Token) -> m.Name:
    """A quoted string's content; the span covers the content, so a caret points inside the quotes."""
    line, col = token.line, token.column
    assert line is not None and col is not None  # a token of the parser's lexer
    return m.Name.make(value=str(token)[1:-1], span=Span(line, col + 1, line, col + len(token) - 1))


def _number(token: Token) -> m.Number:
    return m.Number.make(value=int(token), span=_span(token))


# The end of Microsoft's extended support, per product (Microsoft Lifecycle: learn.microsoft.com/
# lifecycle/products/skype-for-business-server-2015 and -2019; data in MicrosoftDocs/lifecycle-data,
# lifecycle-data/products/skype-for-business-server-2015.yml and -2019.yml, supportDates.extendedEnd
# 10/14/2025). Subscription Edition follows the Modern Lifecycle Policy: no end date.
END_OF_SUPPORT = {"2015": "2025-10-14", "2019": "2025-10-14"}

# Which statements repeat: every kind's member keyword (front_end, server), and these. Which ones
# each kind of pool allows is the registry's (PoolKind.items).
_REPEATABLE = {"sip_domain", "simple_url", "site", "pool"} | {k.member_keyword for k in KINDS if k.member_keyword}


@v_args(meta=True)
class TopologyBuilder(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self._reporter = Reporter(file)
        self.diagnostics: list[Diagnostic] = self._reporter.diagnostics

    # -- helpers ------------------------------------------------------------------------------------

    def _collect(self, items: list[Item], block: str, allowed: set[str] | None = None) -> dict[str, Any]:
        """Fold statements into {key: value}; repeatable keys into lists; report repeats and misfits."""
        fields: dict[str, Any] = {}
        first_span: dict[str, Span] = {}
        for item in items:
            if allowed is not None and item.key not in allowed:
                self._report_misplaced(item, block)
                continue
            if item.key in _REPEATABLE:
                fields.setdefault(item.key, []).append(item.value)
            elif item.key in fields:
                first = first_span[item.key]
                self._reporter.setting_given_twice(
                    item.span,
                    f"'{item.key}' is given twice in this {block} (first at {first.line}:{first.column})",
                    "keep one of them",
                )
            else:
                fields[item.key] = item.value
                first_span[item.key] = item.span
        return fields

    def _report_misplaced(self, item: Item, block: str) -> None:
        fixes = {
            "front_end": "Front End servers belong in an enterprise_pool; other pools list members with 'server'",
            "server": "an enterprise_pool lists its members with 'front_end'",
            "web_services": "only Front End, Standard Edition and Director pools have web services",
            "next_hop": "only Edge and Mediation pools have a next hop",
            "mediation": "only a Front End pool or Standard Edition server collocates the Mediation Server role; a stand-alone one is a mediation_pool",
            "internal_certificates": "only an Edge pool has an internal certificate of its own",
            "central_management_store": "only a Standard Edition server holds the Central Management Store here (an Enterprise pool's is on its SQL Server)",
        }
        fix = fixes.get(item.key, f"remove it, or move it to a pool that has '{item.key}'")
        if block == "Standard Edition server" and item.key in ("front_end", "server"):
            self._reporter.standard_edition_server_with_members(
                item.span,
                "a Standard Edition server is a pool of one: it has no members",
                "remove this line, or make the pool an enterprise_pool",
            )
            return
        article = "an" if block[:1].lower() in "aeiou" else "a"
        self._reporter.setting_not_allowed_here(item.span, f"'{item.key}' is not allowed in {article} {block}", fix)

    # -- topology -----------------------------------------------------------------------------------

    def start(self, meta, children):
        return children[0]

    def topology(self, meta, children):
        name, *items = children
        fields = self._collect(items, "topology")
        self._support(fields.get("product"), fields.get("end_of_support"))
        return m.Topology.make(
            span=_meta_span(meta),
            name=_text(name),
            product=fields.get("product"),
            media=fields.get("media"),
            windows_source=fields.get("windows_source"),
            cumulative_update=fields.get("cumulative_update"),
            module_path=fields.get("module_path"),
            windows_server=tuple(fields.get("windows_server", ())),
            install_path=fields.get("install_path"),
            smart_setup=fields.get("smart_setup"),
            mobility=fields.get("mobility"),
            sip_domains=tuple(fields.get("sip_domain", ())),
            simple_urls=tuple(fields.get("simple_url", ())),
            certificates=fields.get("certificates"),
            sites=tuple(fields.get("site", ())),
        )

    def product(self, meta, children):
        return Item("product", _name(children[0]), _meta_span(meta))

    def end_of_support(self, meta, children):
        return Item("end_of_support", _name(children[0]), _meta_span(meta))

    def _support(self, product: m.Name | None, acknowledged: m.Name | None) -> None:
        """The acknowledgement's value; SFB258 itself is `support_diagnostics`' (the check command's)."""
        if acknowledged is not None and acknowledged.value != "acknowledged":
            self._reporter.unknown_value(acknowledged.span, f"'{acknowledged.value}' is not an end_of_support setting", "write end_of_support acknowledged")

    def media(self, meta, children):
        return Item("media", _text(children[0]), _meta_span(meta))

    def windows_source(self, meta, children):
        return Item("windows_source", _text(children[0]), _meta_span(meta))

    def cumulative_update(self, meta, children):
        update = m.CumulativeUpdate.make(span=_meta_span(meta), installer=_text(children[0]), arguments=_text(children[1]))
        return Item("cumulative_update", update, _meta_span(meta))

    def module_path(self, meta, children):
        return Item("module_path", _text(children[0]), _meta_span(meta))

    def windows_server(self, meta, children):
        return Item("windows_server", tuple(_name(c) for c in children), _meta_span(meta))

    def internal_certificates(self, meta, children):
        policy = self.certificates(meta, children).value
        return Item("internal_certificates", policy, _meta_span(meta))

    def central_management_store(self, meta, children):
        return Item("central_management_store", _meta_span(meta), _meta_span(meta))

    def install_path(self, meta, children):
        return Item("install_path", _text(children[0]), _meta_span(meta))

    def smart_setup(self, meta, children):
        return Item("smart_setup", _name(children[0]), _meta_span(meta))

    def mobility(self, meta, children):
        return Item("mobility", _name(children[0]), _meta_span(meta))

    def sip_domain(self, meta, children):
        domain = m.SipDomain.make(span=_meta_span(meta), name=_name(children[0]), primary=len(children) > 1)
        return Item("sip_domain", domain, _meta_span(meta))

    def simple_url(self, meta, children):
        kind, url, *rest = children
        url_model = m.SimpleUrl.make(span=_meta_span(meta), kind=_name(kind), url=_text(url), domain=rest[0] if rest else None)
        return Item("simple_url", url_model, _meta_span(meta))

    def simple_url_domain(self, meta, children):
        return _name(children[0])

    # -- certificates -------------------------------------------------------------------------------

    def certificates(self, meta, children):
        fields = self._collect(children, "certificates block")
        authority = fields.pop("authority", None)
        values: dict[str, Any] = {}
        if authority is not None:
            kind, ca, public, span = authority
            values.update(authority=kind, authority_span=span, ca=ca, public=public)
        return Item("certificates", m.CertificatePolicy.make(span=_meta_span(meta), **values, **fields), _meta_span(meta))

    def authority_online(self, meta, children):
        return Item("authority", ("online", _text(children[0]), False, _meta_span(meta)), _meta_span(meta))

    def authority_offline(self, meta, children):
        return Item("authority", ("offline", None, bool(children), _meta_span(meta)), _meta_span(meta))

    def template(self, meta, children):
        return Item("template", _text(children[0]), _meta_span(meta))

    def key_size(self, meta, children):
        return Item("key_size", _number(children[0]), _meta_span(meta))

    def organization(self, meta, children):
        return Item("organization", _text(children[0]), _meta_span(meta))

    def unit(self, meta, children):
        return Item("unit", _text(children[0]), _meta_span(meta))

    def city(self, meta, children):
        return Item("city", _text(children[0]), _meta_span(meta))

    def state(self, meta, children):
        return Item("state", _text(children[0]), _meta_span(meta))

    def country(self, meta, children):
        return Item("country", _text(children[0]), _meta_span(meta))

    def web_certificates(self, meta, children):
        return Item("web", _name(children[0]), _meta_span(meta))

    def sip_names(self, meta, children):
        return Item("sip_names", _name(children[0]), _meta_span(meta))

    # -- sites and pools ----------------------------------------------------------------------------

    def site(self, meta, children):
        name, *items = children
        site_name = _text(name)
        fields = self._collect([i if isinstance(i, Item) else Item("pool", i, i.span) for i in items], "site")
        # Pools were built before their site was known; give each its site now.
        pools = tuple(pool.model_copy(update={"site": site_name.value}) for pool in fields.get("pool", ()))
        site = m.Site.make(span=_meta_span(meta), name=site_name, pools=pools, windows_source=fields.get("windows_source"))
        return Item("site", site, _meta_span(meta))

    def pool_body(self, meta, children):
        return list(children)

    def __default__(self, data, children, meta):
        # Every pool block (enterprise_pool, standard_edition, ...) is one rule named by its keyword
        # in the registry (sfbgen/pool_kinds.py), built by `_pool`; Lark calls this for a rule that
        # has no method of its own.
        kind = BY_KEYWORD.get(data)
        if kind is None:
            return super().__default__(data, children, meta)
        return self._pool(kind, meta, children)

    def _pool(self, kind: PoolKind, meta, children):
        fqdn, *body = children
        items = body[0] if body else []
        fields = self._collect(items, kind.block, set(kind.items))
        members = fields.pop(kind.member_keyword, []) if kind.member_keyword else []
        web = fields.pop("web_services", None)
        values: dict[str, Any] = dict(span=_meta_span(meta), fqdn=_name(fqdn), site="", **fields)
        if kind.member_keyword is None:
            # A Standard Edition server is its own (only) member.
            values["servers"] = (m.Server.make(span=_span(fqdn), fqdn=_name(fqdn)),)
        else:
            values["servers"] = tuple(members)
        if web:
            values.update(web)
        return kind.model.make(**values)

    def front_end(self, meta, children):
        return Item("front_end", m.Server.make(span=_meta_span(meta), fqdn=_name(children[0])), _meta_span(meta))

    def server(self, meta, children):
        return Item("server", m.Server.make(span=_meta_span(meta), fqdn=_name(children[0])), _meta_span(meta))

    def web_services(self, meta, children):
        values: dict[str, m.Name] = {}
        for side, fqdn, span in children:
            key = f"web_{side}"
            if key in values:
                self._reporter.setting_given_twice(span, f"'{side}' is given twice in this web_services line", "keep one of them")
            values[key] = fqdn
        return Item("web_services", values, _meta_span(meta))

    def web_fqdn(self, meta, children):
        side, fqdn = children
        return (str(side), _name(fqdn), _meta_span(meta))

    def next_hop(self, meta, children):
        return Item("next_hop", _name(children[0]), _meta_span(meta))

    def access_edge(self, meta, children):
        return Item("access_edge", _name(children[0]), _meta_span(meta))

    def webconf_edge(self, meta, children):
        return Item("webconf_edge", _name(children[0]), _meta_span(meta))

    def av_edge(self, meta, children):
        return Item("av_edge", _name(children[0]), _meta_span(meta))

    def mediation(self, meta, children):
        return Item("mediation", _name(children[0]), _meta_span(meta))


def support_diagnostics(topology: m.Topology, text: str, file: str) -> list[Diagnostic]:
    """SFB258, which `sfbgen check` reports: the product left Microsoft's extended support
    (END_OF_SUPPORT), and the topology has no `end_of_support acknowledged` line.

    A warning of the check command only (issue 21 left the choice open): check is where a topology
    is reviewed, and where an administrator expects to hear it; compile, certs and the library keep
    their output as it was, so a pipeline that compiles a 2019 topology does not change. The
    acknowledgement is a line of the topology, so the decision is reviewed with it."""
    product = topology.product
    if product is None:
        return []
    ended = END_OF_SUPPORT.get(product.value)
    if ended is None:
        return []
    from .parser import token_stream  # the one tokenizer (issue 22): a comment is one token, never two words

    words = [token.text for token in token_stream(text)]
    if any(a == "end_of_support" and b == "acknowledged" for a, b in zip(words, words[1:], strict=False)):
        return []
    return [DiagnosticBuilder(file).product_out_of_support(
        product.span,
        f"Skype for Business Server {product.value} left Microsoft's extended support on {ended}: it gets no more security updates "
        f"(Microsoft Lifecycle, skype-for-business-server-{product.value})",
        "plan the move to Skype for Business Server Subscription Edition (product subscription), its supported successor; "
        "to deploy this product knowingly (a lab, a migration), add the line: end_of_support acknowledged",
    )]


def build_model(tree: Tree, file: str) -> tuple[m.Topology, list[Diagnostic]]:
    """Transform a parse tree into the topology model, with the structural diagnostics found on the way."""
    builder = TopologyBuilder(file)
    topology = builder.transform(tree)
    return topology, builder.diagnostics
