"""`sfbgen diff` for day two (issue 21): publishing first, the pool restart that a membership change
causes (add-or-remove-a-front-end-server.md), and drift against what is published (Get-CsTopology -AsXml)."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import SAMPLES, SHARED
from tests.test_cli import sfbgen_cli

CONTOSO = (SAMPLES / "contoso.sfb").read_text(encoding="utf-8-sig")


def _with_front_ends(tmp_path, names: list[str], keep: int = 3) -> str:
    """contoso.sfb with pool01's Front End Servers replaced by the first `keep` of its own plus `names`."""
    own = ["fe01.contoso.com", "fe02.contoso.com", "fe03.contoso.com"][:keep]
    lines = "".join(f"            front_end {n}\n" for n in own + names)
    text = re.sub(r"(            front_end fe0\d\.contoso\.com\n)+", lambda _: lines, CONTOSO, count=1)
    path = tmp_path / f"contoso-{keep}-{len(names)}.sfb"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_change_is_published_first_and_a_new_member_restarts_the_pool(tmp_path):
    run = sfbgen_cli("diff", str(SAMPLES / "contoso.sfb"), _with_front_ends(tmp_path, ["fe04.contoso.com"]), "--exit-code")
    assert run.returncode == 2, run.stderr
    text = run.stdout
    publish, steps = text.index("**Publish first**"), text.index("**Run again, in this order**")
    restart = text.index("changes members (3 to 4 Front End Servers)")
    assert restart < publish < steps  # what the membership change asks for, then publishing, then the steps
    assert "restarts every server of the pool at once" in text and "one at a time" in text
    assert "FullReset" not in text  # 3 to 4: no registrar reset (Microsoft: only two to more, or more to two)
    document = json.loads(sfbgen_cli("diff", str(SAMPLES / "contoso.sfb"), _with_front_ends(tmp_path, ["fe04.contoso.com"]), "--format", "json").stdout)
    assert document["publish_first"] is True
    assert document["front_end_pools_changed"] == [
        {"pool": "pool01.contoso.com", "added": ["fe04.contoso.com"], "removed": [], "before": 3, "after": 4, "full_reset": False}]


def test_three_to_two_needs_the_full_reset_and_a_leaving_server_is_drained(tmp_path):
    run = sfbgen_cli("diff", str(SAMPLES / "contoso.sfb"), _with_front_ends(tmp_path, [], keep=2))
    assert run.returncode == 0, run.stderr
    assert "Reset-CsPoolRegistrarState -ResetType FullReset -PoolFqdn `pool01.contoso.com`" in run.stdout
    assert "Stop-CsWindowsService -Graceful on `fe03.contoso.com`" in run.stdout


def test_no_change_needs_no_publishing(tmp_path):
    run = sfbgen_cli("diff", str(SAMPLES / "contoso.sfb"), str(SAMPLES / "contoso.sfb"), "--exit-code")
    assert run.returncode == 0 and "Publish first" not in run.stdout and "nothing to run again" in run.stdout


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/topologies (the real published documents)")
def test_drift_against_the_published_topology(tmp_path):
    published = SHARED / "topologies" / "rlevchenko_powershell-skype_DefaultTopology.xml"
    topology = tmp_path / "rl.sfb"
    assert sfbgen_cli("import", str(published), "--media", "D:\\SfB", "--ca", "ca01.contoso.com\\CA", "--out", str(topology)).returncode == 0
    same = sfbgen_cli("diff", str(published), str(topology), "--exit-code")
    assert same.returncode == 0, same.stdout + same.stderr  # the topology says what is published: no drift
    changed = topology.read_text(encoding="utf-8").replace("front_end SKYPE-FE-01.tenant.rlevchenko.com",
                                                            "front_end SKYPE-FE-01.tenant.rlevchenko.com\n            front_end fe02.tenant.rlevchenko.com")
    topology.write_text(changed, encoding="utf-8")
    drift = sfbgen_cli("diff", str(published), str(topology), "--exit-code", "--format", "json")
    assert drift.returncode == 2, drift.stderr
    document = json.loads(drift.stdout)
    assert [s["fqdn"] for s in document["servers_added"]] == ["fe02.tenant.rlevchenko.com"]
    assert document["front_end_pools_changed"][0]["before"] == 1 and document["front_end_pools_changed"][0]["full_reset"] is False
