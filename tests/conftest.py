"""Shared fixtures: paths, the PowerShell parser, compiled samples and a test signing key; the slow
tests marked; and the record of every diagnostic code the suite makes sfbgen emit."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
VALID_SAMPLES = sorted(SAMPLES.glob("*.sfb"))


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is not beside the checkout)")
    return path


@pytest.fixture(scope="session")
def pwsh():
    """A tree-sitter parser for PowerShell, and helpers to walk what it parses."""
    from tests import pwsh_tree

    return pwsh_tree


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """Every valid sample compiled once, unsigned: {sample name: CompileResult}."""
    from sfbgen.compiler import compile_file

    out = tmp_path_factory.mktemp("compiled")
    return {sample.stem: compile_file(sample, out / sample.stem) for sample in VALID_SAMPLES}


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory):
    """A self-signed code-signing key (RSA 2048), with its certificate written as PEM for osslsigncode."""
    from cryptography.hazmat.primitives import serialization

    from sfbgen.authenticode import SigningKey
    from sfbgen.signing import make_codesign_certificate

    key, cert = make_codesign_certificate("sfbgen test signer", key_size=2048)
    folder = tmp_path_factory.mktemp("signer")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    signer = SigningKey(cert, key)
    signer.pem = folder / "cert.pem"
    signer.key_pem = folder / "key.pem"
    return signer


def require_osslsigncode() -> str:
    path = shutil.which("osslsigncode")
    if path is None:
        pytest.fail("osslsigncode is not installed: .ci/run installs it (apt-get install osslsigncode)")
    return path


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------------------------
# Slow tests: the default run (`python3 -m pytest`, pyproject's `-m "not slow"`) leaves them out,
# `python3 -m pytest -m slow` runs them, and .ci/run runs both. Besides the tests marked where they
# are written, the tests of these module fixtures, each a run of the real Ansible engine (minutes on
# the 2-core machine), are slow: {(module, fixture): why}.
SLOW_FIXTURES = {
    ("tests.test_ansible_engine", "runs"): "nine ansible-playbook runs of the samples' bundles",
    ("tests.test_patch", "engine_runs"): "ansible-playbook runs of the patch playbook",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__ if module is not None else ""
        if any((name, fixture) in SLOW_FIXTURES for fixture in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------------------------------------------
# Diagnostic coverage: every code of the catalog is one the suite makes sfbgen emit, recorded as it
# happens rather than listed by hand. `Diagnostic.__init__` is wrapped for the session; a code counts
# when sfbgen's own code made the diagnostic (the first caller outside sfbgen/diagnostics.py is in the
# sfbgen package: a test that builds one itself proves nothing), in this process, in a worker forked
# from it, or in a `python -m sfbgen` the tests start (a sitecustomize module on PYTHONPATH wraps the
# class when such a process imports it); each process but this one writes the codes it adds to a file
# of its own, read at the end. At the session's end, when the whole default suite ran, a catalog code
# never emitted fails the run.
#
# SFBGEN_DIAGNOSTIC_COVERAGE=1 checks whatever ran (.ci/run sets it for its default run); =0 records
# nothing. Otherwise the check runs when pytest was given no files, no -k and no marker but the default,
# nothing was deselected but slow tests, and every selected test finished.
COVERAGE_ENV = "SFBGEN_DIAGNOSTIC_COVERAGE"
RECORD_ENV = "SFBGEN_DIAGNOSTIC_RECORD"  # the folder subprocesses write their codes to
_SFBGEN = str(ROOT / "sfbgen") + os.sep

# For subprocesses: nothing is imported until a process imports sfbgen.diagnostics itself, so other
# Python programs the tests run (ansible-playbook, pip) only read this file.
SITECUSTOMIZE = """\
\"\"\"Written by tests/conftest.py for one test session: the diagnostic codes that sfbgen emits in
this process go to a file in the folder SFBGEN_DIAGNOSTIC_RECORD names (see DiagnosticRecorder).\"\"\"
import os
import sys


def _wrap(module, folder):
    cls = module.Diagnostic
    original = cls.__init__
    here = os.path.realpath(module.__file__)
    package = os.path.dirname(here) + os.sep
    seen = set()

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.code in seen:
            return
        frame = sys._getframe(1)
        while frame is not None and os.path.realpath(frame.f_code.co_filename) == here:
            frame = frame.f_back
        if frame is None or not os.path.realpath(frame.f_code.co_filename).startswith(package):
            return
        seen.add(self.code)
        with open(os.path.join(folder, "codes-" + str(os.getpid()) + ".txt"), "a", encoding="ascii") as out:
            out.write(self.code + "\\n")

    cls.__init__ = __init__


class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name != "sfbgen.diagnostics":
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _wrap(module, os.environ["@RECORD_ENV@"])

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("@RECORD_ENV@"):
    sys.meta_path.insert(0, _Finder())
""".replace("@RECORD_ENV@", RECORD_ENV)


def write_sitecustomize(folder: Path) -> Path:
    """A folder holding the sitecustomize module above: put it first on PYTHONPATH."""
    site = Path(folder) / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return site


class DiagnosticRecorder:
    """The codes of the diagnostics sfbgen creates while installed, also in forked worker processes."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.codes: set[str] = set()
        self._pid = os.getpid()
        self._original = None

    def install(self) -> DiagnosticRecorder:
        from sfbgen import diagnostics

        self._diagnostics_file = os.path.realpath(diagnostics.__file__)
        self._class = diagnostics.Diagnostic
        original = self._original = self._class.__init__
        recorder = self

        def __init__(self_, *args, **kwargs):
            original(self_, *args, **kwargs)
            recorder.record(self_.code, sys._getframe(1))

        __init__.__wrapped__ = original
        self._class.__init__ = __init__
        return self

    def uninstall(self) -> None:
        if self._original is not None:
            self._class.__init__ = self._original
            self._original = None

    def record(self, code: str, frame) -> None:
        if code in self.codes:
            return
        while frame is not None and os.path.realpath(frame.f_code.co_filename) == self._diagnostics_file:
            frame = frame.f_back
        if frame is None or not os.path.realpath(frame.f_code.co_filename).startswith(_SFBGEN):
            return
        self.codes.add(code)
        if os.getpid() != self._pid:  # a forked worker: its memory is gone when it ends
            with open(self.folder / f"codes-{os.getpid()}.txt", "a", encoding="ascii") as out:
                out.write(code + "\n")

    def emitted(self) -> set[str]:
        codes = set(self.codes)
        for path in self.folder.glob("codes-*.txt"):
            codes |= set(path.read_text(encoding="ascii").split())
        return codes

    def missing(self, catalog) -> list[str]:
        """The catalog's codes never emitted, in order."""
        return sorted(set(catalog) - self.emitted())


_RECORDER: DiagnosticRecorder | None = None
_FINISHED: set[str] = set()
_DESELECTED: list = []
_MISSING: list[str] = []
_CHECKED: list[int] = []  # the number of codes emitted, once the check ran


def pytest_configure(config):
    global _RECORDER
    if os.environ.get(COVERAGE_ENV) == "0" or _RECORDER is not None:
        return
    folder = Path(tempfile.mkdtemp(prefix="sfbgen-diagnostics-"))
    _RECORDER = DiagnosticRecorder(folder).install()
    os.environ[RECORD_ENV] = str(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(write_sitecustomize(folder)), os.environ.get("PYTHONPATH")]))


def pytest_unconfigure(config):
    if _RECORDER is not None and os.getpid() == _RECORDER._pid:
        _RECORDER.uninstall()
        shutil.rmtree(_RECORDER.folder, ignore_errors=True)


def pytest_deselected(items):
    _DESELECTED.extend(items)


def pytest_runtest_logfinish(nodeid, location):
    _FINISHED.add(nodeid)


def whole_default_run(session) -> bool:
    """Whether this session ran the whole default suite (see above)."""
    if os.environ.get(COVERAGE_ENV) == "1":
        return True
    config = session.config
    if config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
        return False  # files, folders or test ids were named
    if config.option.keyword or config.option.markexpr not in ("not slow", ""):
        return False
    if any(item.get_closest_marker("slow") is None for item in _DESELECTED):
        return False  # -k, --lf, --deselect and the like
    return bool(session.items) and all(item.nodeid in _FINISHED for item in session.items)


def pytest_sessionfinish(session, exitstatus):
    from sfbgen.diagnostics import CATALOG

    if _RECORDER is None or not whole_default_run(session):
        return
    _MISSING[:] = _RECORDER.missing(CATALOG)
    _CHECKED[:] = [len(_RECORDER.emitted())]
    if _MISSING and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _MISSING:
        from sfbgen.diagnostics import CATALOG

        terminalreporter.section("diagnostic coverage", red=True)
        terminalreporter.write_line(f"{len(_MISSING)} catalog code(s) never emitted by sfbgen in this run (a test must make each happen):")
        for code in _MISSING:
            terminalreporter.write_line(f"  {code}: {CATALOG[code].title}")
    elif _CHECKED:
        terminalreporter.write_line(f"diagnostic coverage: every catalog code emitted ({_CHECKED[0]} codes)")
