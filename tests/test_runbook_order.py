"""The runbook never puts a step before one it depends on: a property over generated topologies."""

from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbgen import check_text
from sfbgen.plan import build_plan, step_id
from sfbgen.pool_kinds import kind_of


@st.composite
def topologies(draw):
    product = draw(st.sampled_from([2015, 2019]))
    counter = iter(range(10_000))
    lines = [f'topology "Gen" {{ product {product} media "D:\\"', "sip_domain g.com primary",
             'simple_url meet "https://meet.g.com"', 'simple_url dialin "https://dialin.g.com"',
             'certificates { authority online "ca.g.com\\G CA" }']
    front_end_pools: list[str] = []
    directors: list[str] = []
    cms = draw(st.booleans())  # the first Standard Edition server holds the Central Management Store
    later: list[tuple[str, str, int, bool]] = []  # kind, fqdn, servers, offline
    for s in range(draw(st.integers(1, 3))):
        lines.append(f'site "S{s}" {{')
        for _ in range(draw(st.integers(0, 2))):
            n = next(counter)
            size = draw(st.sampled_from([1, 3, 4, 5]))
            offline = draw(st.booleans())
            members = " ".join(f"front_end fe{n}x{i}.g.com" for i in range(size))
            cert = " certificates { authority offline }" if offline else ""
            lines.append(f"enterprise_pool pool{n}.g.com {{ web_services external web{n}.g.com {members}{cert} }}")
            front_end_pools.append(f"pool{n}.g.com")
        for _ in range(draw(st.integers(0 if front_end_pools else 1, 2))):
            n = next(counter)
            store = " central_management_store" if cms and not any(p.startswith("se") for p in front_end_pools) else ""
            lines.append(f"standard_edition se{n}.g.com {{ web_services external sex{n}.g.com{store} }}")
            front_end_pools.append(f"se{n}.g.com")
        if draw(st.booleans()):
            n = next(counter)
            members = " ".join(f"server dir{n}x{i}.g.com" for i in range(draw(st.integers(1, 2))))
            lines.append(f"director_pool dir{n}.g.com {{ {members} }}")
            directors.append(f"dir{n}.g.com")
        for kind in ("mediation", "edge"):
            if draw(st.booleans()):
                later.append((kind, f"{kind[:3]}{next(counter)}.g.com", draw(st.integers(1, 3)), draw(st.booleans())))
        lines.append("}")
    lines.append('site "Perimeter" {')
    for kind, fqdn, size, offline in later:
        hop = draw(st.sampled_from(front_end_pools + (directors if kind == "edge" else [])))
        host = fqdn.split(".")[0]
        servers = " ".join(f"server {host}m{i}.g.com" for i in range(size))
        cert = " certificates { authority offline }" if offline else ""
        if kind == "edge":
            lines.append(f"edge_pool {fqdn} {{ next_hop {hop} access_edge a{host}.g.com webconf_edge w{host}.g.com av_edge v{host}.g.com {servers}{cert} }}")
        else:
            lines.append(f"mediation_pool {fqdn} {{ next_hop {hop} {servers}{cert} }}")
    lines.append("} }")
    return "\n".join(lines)


def _ancestors(steps):
    by_id = {s.id: s for s in steps}

    @cache
    def up(key):
        out = set()
        for a in by_id[key].after:
            out |= {a} | up(a)
        return frozenset(out)

    return up


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies())
def test_no_step_before_its_dependencies(text):
    result = check_text(text)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    plan = build_plan(result.topology)
    steps = plan.steps
    position = {s.id: i for i, s in enumerate(steps)}
    assert len(position) == len(steps), "step ids are unique"
    for step in steps:
        for before in step.after:
            assert position[before] < position[step.id], f"{step.id} comes before {before}"
    up = _ancestors(steps)
    ids = set(position)

    def last3(server):
        return step_id(server, 3)

    def first3(server):
        return step_id(server, "3-request") if step_id(server, "3-request") in ids else step_id(server, 3)

    for server in plan.servers:
        s = server.fqdn
        assert step_id(s, 1) in up(step_id(s, 2)) and step_id(s, 2) in up(first3(s))
        if "publish-topology" in ids and not server.is_edge:
            assert "publish-topology" in up(step_id(s, 1)), "the topology is published before step 1"
        if server.is_edge:
            assert step_id(plan.edge_config_host.fqdn, "export-edge-config") in up(step_id(s, 1))
        elif plan.oauth and server.oauth is None:
            assert last3(plan.oauth.requested_on) in up(first3(s)), "the OAuth certificate comes first"
    for pool in result.topology.pools():
        members = [s.fqdn.value for s in pool.servers]
        if kind_of(pool).start == "pool":
            start = step_id(pool.fqdn.value, "start-pool")
            assert all(last3(m) in up(start) for m in members)
        else:
            start_ids = [step_id(m, 4) for m in members]
            for m in members:
                assert last3(m) in up(step_id(m, 4))
            hop = getattr(pool, "next_hop", None)
            if hop is not None:
                target = next(p for p in result.topology.pools() if p.fqdn.value == hop.value)
                hop_starts = ([step_id(target.fqdn.value, "start-pool")] if kind_of(target).start == "pool"
                              else [step_id(s.fqdn.value, 4) for s in target.servers])
                for starting in start_ids:
                    for hop_start in hop_starts:
                        assert hop_start in up(starting), f"{starting} starts before its next hop {hop_start}"
        if kind_of(pool).perimeter and len(members) > 1:
            for m in members[1:]:
                assert last3(members[0]) in up(first3(m)), "Edge members import the first member's certificate"
