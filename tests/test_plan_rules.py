"""The plan's ordering rules, one test each; the typed runbook steps; the pool-kind registry.

Every ordering rule of sfbgen/plan.py (ORDERING_RULES) has a test here named after it, which checks
the dependencies the rule makes and that the plan without the rule lacks them. The registry of pool
kinds (sfbgen/pool_kinds.py) is kept equal to the grammar and the model, and no orchestrator or
template finds a step by its id or its script's file name.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from sfbgen import check_text, pool_kinds
from sfbgen import model as m
from sfbgen import plan as planning
from sfbgen.plan import ORDERING_RULES, PUBLISH_TOPOLOGY, StepKind, build_plan, step_id

ROOT = Path(__file__).resolve().parent.parent

# Every rule has work to do here: a Standard Edition server that holds the Central Management Store
# (and, first in the file, the OAuth certificate and the Edge export), an Enterprise pool, a
# Mediation pool with an offline authority, an Edge pool of two.
TOPOLOGY = r'''topology "Rules" {
    product 2015
    media "\\files.t.com\Media"
    sip_domain t.com primary
    simple_url meet "https://meet.t.com"
    simple_url dialin "https://dialin.t.com"
    certificates { authority online "ca.t.com\T CA" }
    site "One" {
        standard_edition se01.t.com {
            central_management_store
        }
        enterprise_pool pool.t.com {
            front_end fe01.t.com
            front_end fe02.t.com
            front_end fe03.t.com
        }
        mediation_pool med.t.com {
            next_hop pool.t.com
            server med01.t.com
            certificates { authority offline }
        }
        edge_pool edge.t.com {
            next_hop pool.t.com
            media "D:\Media"
            access_edge sip.t.com
            webconf_edge wc.t.com
            av_edge av.t.com
            server edge01.t.com
            server edge02.t.com
        }
    }
}
'''


@pytest.fixture(scope="module")
def topology():
    result = check_text(TOPOLOGY, "rules.sfb")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    return result.topology


def _edges(plan) -> set[tuple[str, str]]:
    """(before, step) for every direct dependency of the plan."""
    return {(before, step.id) for step in plan.steps for before in step.after}


def _without(topology, rule):
    return build_plan(topology, rules=tuple(r for r in ORDERING_RULES if r is not rule))


def _check_rule(topology, rule, expected: set[tuple[str, str]]) -> None:
    """The plan has every dependency of `expected`; the plan without `rule` has none of them."""
    full = _edges(build_plan(topology))
    assert expected and expected <= full, expected - full
    assert not expected & _edges(_without(topology, rule)), f"{rule.__name__} is not what makes these dependencies"


def test_cms_before_publish(topology):
    _check_rule(topology, planning.cms_before_publish, {(step_id("se01.t.com", 0), PUBLISH_TOPOLOGY)})


def test_publish_before_step_1(topology):
    domain_members = ("se01.t.com", "fe01.t.com", "fe02.t.com", "fe03.t.com", "med01.t.com")
    _check_rule(topology, planning.publish_before_step_1, {(PUBLISH_TOPOLOGY, step_id(s, 1)) for s in domain_members})
    # An Edge Server reads no published topology: its step 1 waits for the exported file instead.
    assert not {(PUBLISH_TOPOLOGY, step_id(s, 1)) for s in ("edge01.t.com", "edge02.t.com")} & _edges(build_plan(topology))


def test_steps_in_order_per_server(topology):
    expected = set()
    for s in ("se01.t.com", "fe01.t.com", "med01.t.com", "edge01.t.com", "edge02.t.com"):
        expected.add((step_id(s, 1), step_id(s, 2)))
    expected |= {(step_id("se01.t.com", 2), step_id("se01.t.com", 3)), (step_id("se01.t.com", 3), step_id("se01.t.com", 4))}
    # The offline authority: request, the CA's answer, then the import.
    med = "med01.t.com"
    expected |= {(step_id(med, 2), step_id(med, "3-request")), (step_id(med, "3-request"), step_id(med, "3-ca")),
                 (step_id(med, "3-ca"), step_id(med, 3)), (step_id(med, 3), step_id(med, 4))}
    _check_rule(topology, planning.steps_in_order_per_server, expected)
    # The members of an Enterprise pool have no step 4 of their own: the pool starts once.
    assert step_id("fe01.t.com", 4) not in {s.id for s in build_plan(topology).steps}


def test_oauth_certificate_first(topology):
    plan = build_plan(topology)
    assert plan.oauth is not None and plan.oauth.requested_on == "se01.t.com"
    done = step_id("se01.t.com", 3)
    expected = {(done, step_id(s, 3)) for s in ("fe01.t.com", "fe02.t.com", "fe03.t.com")}
    expected.add((done, step_id("med01.t.com", "3-request")))  # an offline step 3 waits from its first part
    _check_rule(topology, planning.oauth_certificate_first, expected)
    # Edge Servers do not use the OAuthTokenIssuer certificate.
    assert not {(done, step_id(s, 3)) for s in ("edge01.t.com", "edge02.t.com")} & _edges(plan)


def test_edge_config_export_after_host_step_1(topology):
    plan = build_plan(topology)
    assert plan.edge_config_host is not None and plan.edge_config_host.fqdn == "se01.t.com"
    _check_rule(topology, planning.edge_config_export_after_host_step_1,
                {(step_id("se01.t.com", 1), step_id("se01.t.com", "export-edge-config"))})


def test_edge_config_before_edge_step_1(topology):
    export = step_id("se01.t.com", "export-edge-config")
    expected = set()
    for s in ("edge01.t.com", "edge02.t.com"):
        expected |= {(export, step_id(s, "copy-config")), (step_id(s, "copy-config"), step_id(s, 1))}
    _check_rule(topology, planning.edge_config_before_edge_step_1, expected)
    copies = [s for s in build_plan(topology).steps if s.id == step_id("edge01.t.com", "copy-config")]
    assert copies[0].kind == StepKind.COPY and copies[0].copies == ("se01.t.com/out/CsConfiguration.zip",)


def test_edge_certificate_copy_after_request(topology):
    copy = step_id("edge02.t.com", "copy-edge-cert")
    _check_rule(topology, planning.edge_certificate_copy_after_request,
                {(step_id("edge01.t.com", 3), copy), (copy, step_id("edge02.t.com", 3))})
    # The first member obtains the certificates; it copies nothing.
    assert step_id("edge01.t.com", "copy-edge-cert") not in {s.id for s in build_plan(topology).steps}


def test_pool_start_after_every_member_step_3(topology):
    start = step_id("pool.t.com", "start-pool")
    _check_rule(topology, planning.pool_start_after_every_member_step_3,
                {(step_id(s, 3), start) for s in ("fe01.t.com", "fe02.t.com", "fe03.t.com")})
    step = next(s for s in build_plan(topology).steps if s.id == start)
    assert step.server == "fe01.t.com" and step.script == "fe01.t.com/4-Start-Pool.ps1"


def test_next_hop_starts_first(topology):
    start = step_id("pool.t.com", "start-pool")
    _check_rule(topology, planning.next_hop_starts_first,
                {(start, step_id(s, 4)) for s in ("med01.t.com", "edge01.t.com", "edge02.t.com")})


def test_every_rule_has_its_test_and_its_source():
    """A rule added to ORDERING_RULES without a test here, or without a cited source, fails."""
    module = sys.modules[__name__]
    for rule in ORDERING_RULES:
        assert callable(getattr(module, f"test_{rule.__name__}", None)), f"no test_{rule.__name__} in {__file__}"
        doc = rule.__doc__ or ""
        assert "Source:" in doc and re.search(r"seed|sfb-deployment\.md|\.md\b|Microsoft", doc), rule.__name__


def test_every_rule_changes_the_plan(topology):
    """No rule is redundant: leaving any one out changes the order of this topology's runbook."""
    full = _edges(build_plan(topology))
    for rule in ORDERING_RULES:
        assert _edges(_without(topology, rule)) < full, rule.__name__


# ---------------------------------------------------------------------------------------------------
# Typed steps


def test_steps_are_typed(topology):
    plan = build_plan(topology)
    kinds = {s.id: s.kind for s in plan.steps}
    assert kinds[PUBLISH_TOPOLOGY] == StepKind.PUBLISH
    assert kinds[step_id("med01.t.com", "3-ca")] == StepKind.CA_WAIT
    assert kinds[step_id("edge02.t.com", "copy-edge-cert")] == StepKind.COPY
    for step in plan.steps:
        assert isinstance(step.kind, StepKind) and step.task is step.kind
        assert (step.script is not None) == (step.kind == StepKind.SCRIPT) == (not step.manual)
        assert bool(step.copies) == (step.kind == StepKind.COPY)
        # Step 3 (both parts of an offline one) takes the secrets; nothing else does.
        assert step.takes_secrets == (step.script is not None and step.script.endswith("/3-Request-Certificates.ps1"))
    assert {s.id for s in plan.steps if s.takes_secrets} >= {step_id("med01.t.com", "3-request"), step_id("med01.t.com", 3)}


def test_step_ids_come_from_one_helper():
    assert step_id("fe01.t.com", 3) == "fe01.t.com:3" and step_id(None, PUBLISH_TOPOLOGY) == "publish-topology"
    for name in ("plan.py", "patching.py"):
        text = (ROOT / "sfbgen" / name).read_text(encoding="utf-8")
        assert not re.search(r"""\b(add|depend)\(\s*f["']""", text), f"sfbgen/{name} makes a step id by hand"


# Comparisons that find a step by its id or its script's file name: what the orchestrators and the
# templates must never do (they read the step's kind, its `takes_secrets` and its `copies`).
_BY_NAME = [
    re.compile(r"""startswith\(\s*["']\d"""),  # step.id.startswith("3-")
    re.compile(r"""endswith\(\s*["'][^"']*\.ps1["']"""),  # script.endswith("3-Request-Certificates.ps1")
    re.compile(r"""-(?:c|i)?(?:like|notlike|match|eq|ne)\s+["'][^"'\s]*(?:\d-|\.ps1)"""),  # -like '3-*', -eq 'x.ps1'
    re.compile(r"""(?:==|!=|equalto["']?,)\s*["'][^"'\s]*\.ps1["']"""),  # == "3-Request-Certificates.ps1"
    re.compile(r"publish-topology"),  # the publish step, by its id
    re.compile(r"""sfbgen_script\s*(?:==|!=)|sfbgen_step\.(?:id|script)\s*(?:==|!=|\bin\b)"""),
    re.compile(r"""(?:step|entry|\$_|\$entry|\$Entry)\.(?:id|Id|script|Script)\s*(?:==|!=|-(?:eq|ne|like|match))"""),
    re.compile(r"""selectattr\(\s*["'](?:id|script)["']"""),
    re.compile(r""":(?:3-request|3-ca|start-pool|copy-config|copy-edge-cert|export-edge-config)\b"""),  # ids' suffixes
]


def _orchestrator_files() -> list[Path]:
    return [ROOT / "sfbgen" / "fleet.py", ROOT / "sfbgen" / "render.py", *sorted((ROOT / "templates").rglob("*.j2")),
            *sorted((ROOT / "templates").rglob("*.yml"))]


def test_no_orchestrator_or_template_finds_a_step_by_id_or_file_name():
    found = []
    for path in _orchestrator_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern in _BY_NAME:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line", [
    "if step.id.startswith(\"3-\"):", "$x = $Runbook | Where-Object { $_.Id -like '3-*' }",
    "{% if plan.steps | selectattr(\"id\", \"equalto\", \"publish-topology\") | list %}",
    "when: sfbgen_script == '3-Request-Certificates.ps1'", "if ($entry.Script -eq '3-Request-Certificates.ps1') {",
    "takes = script.endswith('/3-Request-Certificates.ps1')", "{% if step.id == x %}",
])
def test_the_grep_finds_what_it_forbids(line):
    assert any(pattern.search(line) for pattern in _BY_NAME), line


def test_orchestrators_know_every_kind():
    from sfbgen import fleet

    assert set(fleet.TASKS) == {k.value for k in StepKind} - {StepKind.MANUAL.value}
    for kind in fleet.TASKS:
        assert f"step-{kind}.yml" in fleet.STATIC_TASKS
    runbook = (ROOT / "templates" / "invoke-runbook.ps1.j2").read_text(encoding="utf-8")
    for kind in set(fleet.TASKS) - {"script"}:
        assert f"Kind -eq '{kind}'" in runbook, kind


# ---------------------------------------------------------------------------------------------------
# The pool-kind registry


def _grammar() -> str:
    return (ROOT / "grammar" / "sfb.lark").read_text(encoding="utf-8")


def test_registry_is_the_grammar():
    """The registry's keywords are the grammar's pool alternatives, each a rule `kw: "kw" WORD pool_body`
    whose body is optional exactly for the kinds that have no members."""
    grammar = _grammar()

    def alternatives(rule: str) -> list[str]:
        found = re.search(rf"^{rule}:(.*?)\n\s*\n", grammar, re.MULTILINE | re.DOTALL)
        assert found is not None, rule
        return [word.strip() for word in found.group(1).split("|")]

    assert alternatives("_pool") == [k.keyword for k in pool_kinds.KINDS]
    items = set(alternatives("_pool_item"))
    for kind in pool_kinds.KINDS:
        rule = re.search(rf'^{kind.keyword}: "{kind.keyword}" WORD pool_body(\?)?$', grammar, re.MULTILINE)
        assert rule is not None, kind.keyword
        assert bool(rule.group(1)) == (kind.member_keyword is None), kind.keyword
        assert kind.items <= items, kind.items - items
        assert kind.member_keyword is None or kind.member_keyword in kind.items


def test_registry_is_the_model():
    union = m.Pool.__origin__.__args__ if hasattr(m.Pool, "__origin__") else ()
    classes = [c for c in union]
    assert classes == [k.model for k in pool_kinds.KINDS]
    for kind in pool_kinds.KINDS:
        assert kind.model.model_fields["kind"].default == kind.kind
        assert issubclass(kind.model, m.WebPool) == kind.web_facing
        assert ("next_hop" in kind.model.model_fields) == bool(kind.next_hops) == ("next_hop" in kind.items)
        for hop in kind.next_hops:
            assert hop in pool_kinds.BY_KIND
    assert pool_kinds.FRONT_END_KINDS == ("enterprise", "standard")
    assert m.POOL_WORD is pool_kinds.POOL_WORD  # the model's old name of the table, read from the registry


def test_registry_reaches_every_stage():
    """What a kind says is what the transformer builds and the plan does, for every kind."""
    from sfbgen.platform import windows_features

    lines = {
        "enterprise": "enterprise_pool p.t.com { front_end a.t.com front_end b.t.com front_end c.t.com }",
        "standard": "standard_edition s.t.com",
        "director": "director_pool d.t.com { server d1.t.com }",
        "mediation": "mediation_pool m.t.com { next_hop s.t.com server m1.t.com }",
        "edge": 'edge_pool e.t.com { next_hop d.t.com media "D:\\M" access_edge x.t.com webconf_edge y.t.com av_edge z.t.com server e1.t.com }',
    }
    assert set(lines) == set(pool_kinds.BY_KIND)
    text = ('topology "K" { product 2015 media "D:\\\\" sip_domain t.com primary simple_url meet "https://meet.t.com" '
            'simple_url dialin "https://dialin.t.com" certificates { authority online "ca.t.com\\C" } site "S" { '
            + " ".join(lines.values()) + " } }")
    result = check_text(text)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    plan = build_plan(result.topology)
    for server in plan.servers:
        kind = pool_kinds.kind_of(server.pool)
        assert type(server.pool) is kind.model and server.role == kind.role and server.is_edge == kind.perimeter
        scripts = [s.kind for s in server.scripts if s.step]
        expected = [k for k in kind.scripts if k != "start-pool" or server.member_index == 0]
        assert scripts == expected, (server.fqdn, scripts)
        assert windows_features((server.role,))  # every role has its Windows features
    # A statement the kind does not allow is refused by the transformer, naming the kind's block.
    bad = check_text(text.replace("server d1.t.com", "server d1.t.com next_hop p.t.com"))
    assert any(d.code == "SFB106" and "Director pool" in d.message for d in bad.diagnostics)


def test_registry_reads_documents():
    """Topology Builder's role names tell the kinds apart, as the importer reads them."""
    pick = pool_kinds.kind_of_cluster
    assert pick({"Registrar", "UserServices", "WebServices"}, False).kind == "enterprise"
    assert pick({"Registrar", "UserServices", "WebServices", "UserStore"}, False).kind == "standard"
    assert pick({"Registrar", "WebServices"}, True).kind == "director"
    assert pick({"Registrar", "UserServices", "MediationServer"}, False).kind == "enterprise"  # collocated Mediation
    assert pick({"EdgeServer"}, False).kind == "edge"
    assert pick({"MediationServer"}, False).kind == "mediation"
    assert pick({"FileStore"}, False) is None and pick(set(), False) is None
    services = {k.xml.service for k in pool_kinds.KINDS}
    assert services == set(pool_kinds.XML_PRECEDENCE)
    assert not services & set(pool_kinds.NOT_DEPLOYED_ROLES)
    for kind in pool_kinds.KINDS:
        assert kind.xml.service in kind.published_roles
