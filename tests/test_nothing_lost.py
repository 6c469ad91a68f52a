"""Nothing is lost: a compile killed at any moment leaves the old bundle or the new one, whole;
no secret reaches the output. (bench/reliability.py runs the same routines with larger counts.)"""

from __future__ import annotations

import pytest

from bench.reliability import kill_trials, secret_scan


@pytest.mark.slow
def test_sigkill_during_compile_never_leaves_a_mix(tmp_path):
    result = kill_trials(tmp_path, kills=14)
    assert result["states"].get("broken", 0) == 0, result["states"].get("first_broken")
    assert result["states"].get("A", 0) + result["states"].get("B", 0) == 14
    assert result["final"] == "A"
    assert result["leftovers_after_next_run"] == []


def test_secrets_never_reach_the_output(tmp_path):
    result = secret_scan(tmp_path)
    assert result["found"] == []
    assert result["files_searched"] > 40 and result["secrets"] > 10
