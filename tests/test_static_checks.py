"""The type checker and the linter are configured in pyproject.toml and run by .ci/run (issue 22, item 8),
with no blanket way around them: the checks themselves run in .ci/run, not here (mypy takes seconds)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_mypy_is_configured_without_blanket_ignores():
    mypy = _pyproject()["tool"]["mypy"]
    assert mypy["files"] == ["sfbgen"] and mypy["python_version"] == "3.11"
    assert mypy["warn_unused_ignores"] and mypy["warn_redundant_casts"] and mypy["check_untyped_defs"]
    assert "ignore_errors" not in mypy and not mypy.get("ignore_missing_imports")
    for override in mypy.get("overrides", []):
        assert "ignore_errors" not in override, override
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not [m for m in modules if m.split(".")[0] == "sfbgen"], override  # third-party modules only


def test_no_bare_type_ignore_in_the_package():
    bare = []
    for path in sorted((ROOT / "sfbgen").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"#\s*type:\s*ignore(?!\[)", line) or re.search(r"#\s*mypy:\s*ignore-errors", line):
                bare.append(f"{path.relative_to(ROOT)}:{number}")
    assert bare == []


def test_ruff_is_configured_and_both_run_in_ci_before_the_tests():
    ruff = _pyproject()["tool"]["ruff"]
    assert ruff["target-version"] == "py311"
    assert set(ruff["lint"]["select"]) >= {"E", "F", "W", "I", "B", "UP"}
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ruff_at = script.find("python3 -m ruff check sfbgen tests bench")
    mypy_at = script.find("python3 -m mypy")
    pytest_at = script.find("python3 -m pytest")
    assert 0 <= ruff_at < pytest_at and 0 <= mypy_at < pytest_at
    extra = _pyproject()["project"]["optional-dependencies"]["test"]
    assert any(r.startswith("mypy") for r in extra) and any(r.startswith("ruff") for r in extra)
