"""One pipeline (api.compile_source and its siblings), the diff fingerprint as the digest of the exact
template context, parallel.map_chunks, and the cache policy a signing run passes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from sfbgen import parallel
from sfbgen.api import (
    Compiled,
    check_file,
    check_text,
    compile_bytes,
    compile_path,
    compile_text,
)
from sfbgen.diagnostics import DiagnosticsError, sort_diagnostics
from sfbgen.render import ContextDigest, Renderer
from sfbgen.resources import CachePolicy
from sfbgen.views import Settings
from tests.conftest import ROOT, SAMPLES, VALID_SAMPLES

WARNINGS_ONLY = SAMPLES / "invalid" / "warnings-only.sfb"
CONTOSO = SAMPLES / "contoso.sfb"


# -- the pipeline --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [*VALID_SAMPLES, *sorted((SAMPLES / "invalid").glob("*.sfb"))], ids=lambda p: p.name)
def test_the_pipeline_reports_what_check_reports_once_and_sorted(sample):
    compiled = compile_path(sample)
    assert isinstance(compiled, Compiled)
    assert compiled.diagnostics == check_file(sample).diagnostics
    keys = [(d.file, d.span, d.code, d.message) for d in compiled.diagnostics]
    assert len(keys) == len(set(keys))
    assert compiled.ok == check_file(sample).ok
    assert (compiled.plan is not None) == compiled.ok and (compiled.meta is not None) == compiled.ok


def test_the_pipeline_gives_check_warnings_and_the_plans_certificate_warnings():
    compiled = compile_path(WARNINGS_ONLY)
    codes = [d.code for d in compiled.diagnostics]
    assert compiled.ok
    assert {"SFB256", "SFB302", "SFB222"} <= set(codes)  # the checks'
    assert "SFB305" in codes  # the certificates' (from the plan)
    assert compiled.diagnostics == sort_diagnostics(compiled.diagnostics)


def test_text_bytes_and_path_give_the_same_result():
    text = CONTOSO.read_text(encoding="utf-8")
    by_text, by_bytes, by_path = compile_text(text, CONTOSO.name), compile_bytes(CONTOSO.read_bytes(), CONTOSO.name), compile_path(CONTOSO)
    assert by_text.meta.digest == by_bytes.meta.digest == by_path.meta.digest
    assert by_text.meta == by_bytes.meta
    assert [s.fqdn for s in by_text.plan.servers] == [s.fqdn for s in by_path.plan.servers]


def test_errors_come_back_and_raise_with_the_source():
    broken = compile_text('topology "x" {\n', "broken.sfb")
    assert not broken.ok and broken.plan is None
    with pytest.raises(DiagnosticsError) as raised:
        broken.raise_for_errors()
    assert raised.value.sources == {"broken.sfb": 'topology "x" {\n'}
    assert compile_path(SAMPLES / "missing.sfb").diagnostics  # a file that does not read: a diagnostic


def test_the_server_limit_is_enforced_before_planning(monkeypatch):
    from sfbgen import compiler, plan

    planned = []
    monkeypatch.setattr(plan, "build_plan", lambda topology: planned.append(topology))
    with pytest.raises(DiagnosticsError) as raised:
        compile_path(CONTOSO, limits=compiler.Limits(max_servers=2))
    assert raised.value.diagnostics[0].code == "SFB270" and planned == []


def test_a_planner_error_gets_the_source_text():
    def refuse(topology, name):
        raise DiagnosticsError([check_text('topology "x" {\n', name).diagnostics[0]])

    with pytest.raises(DiagnosticsError) as raised:
        compile_path(CONTOSO, planner=refuse)
    assert list(raised.value.sources.values()) == [CONTOSO.read_text(encoding="utf-8")]


def _sfbgen(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sfbgen", *args], check=False, capture_output=True, env=env, cwd=ROOT)


def test_certs_prints_every_warning_of_the_pipeline_once():
    expected = compile_path(WARNINGS_ONLY).warnings
    assert len(expected) >= 4
    run = _sfbgen("certs", str(WARNINGS_ONLY))
    assert run.returncode == 0
    stderr = run.stderr.decode("utf-8")
    for d in expected:
        assert stderr.count(f"warning {d.code}:") == sum(1 for e in expected if e.code == d.code), d.code
    assert f"{len(expected)} warnings" in stderr
    assert b"warning" not in run.stdout and b"edge.contoso.com" in run.stdout


# -- the fingerprint: the digest of the exact template context ---------------------------------------------


def _side(text: str, renderer: type = Renderer):
    compiled = compile_text(text, "contoso.sfb")
    assert compiled.ok, compiled.diagnostics
    r = renderer(compiled.plan, compiled.meta)
    return {s.fqdn: (r.fingerprint(s), r.server(s)) for s in compiled.plan.servers}


BASE = CONTOSO.read_text(encoding="utf-8")
EDITS = {
    "unchanged": BASE,
    "lines added above": "# a comment that moves every line\n\n" + BASE,
    "one Front End added": BASE.replace("front_end fe03.contoso.com", "front_end fe03.contoso.com\n            front_end fe04.contoso.com", 1),
    "a simple URL changed": BASE.replace('"https://meet.contoso.com"', '"https://conf.contoso.com"'),
    "a site renamed": BASE.replace('site "Redmond"', 'site "Seattle"'),
}


def test_a_new_template_input_changes_the_fingerprint(monkeypatch):
    """What made `diff` say "no change": a template input the fingerprint did not know. Every key of
    the context is in it now, whatever its name."""
    real = Renderer.contexts

    def with_input(value):
        def contexts(self, server):
            return [(f, t, {**c, "new_input": value}) for f, t, c in real(self, server)]
        return contexts

    monkeypatch.setattr(Renderer, "contexts", with_input("one"))
    one = _side(BASE)
    monkeypatch.setattr(Renderer, "contexts", with_input("two"))
    two = _side(BASE)
    monkeypatch.setattr(Renderer, "contexts", real)
    plain = _side(BASE)
    assert all(one[f][0] != two[f][0] != plain[f][0] != one[f][0] for f in plain)


def test_a_template_input_of_an_unknown_kind_is_refused():
    with pytest.raises(TypeError):
        ContextDigest({}).data({"a": object()})


def test_a_model_object_in_a_template_context_is_refused():
    """The templates see views: a pool (a pydantic model) handed to one is an error, not digested."""
    pool = compile_path(CONTOSO).plan.servers[0].pool
    with pytest.raises(TypeError, match="view"):
        ContextDigest({}).data({"pool": pool})


def test_provenance_is_not_in_the_scripts_context():
    compiled = compile_path(CONTOSO)
    renderer = Renderer(compiled.plan, compiled.meta)
    meta = renderer.base["meta"]
    assert isinstance(meta, Settings)
    assert not {"source", "digest", "version"} & {f.name for f in dataclasses.fields(meta)}
    assert meta.product == compiled.meta.product and renderer.meta == compiled.meta  # the runbook's is whole


def _plain_values(value, where="context"):
    """Every leaf of a template context: plain values, reached through views, tuples and dicts only."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            _plain_values(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _plain_values(item, f"{where}[{key!r}]")
    elif dataclasses.is_dataclass(value) and type(value).__module__ in ("sfbgen.views", "sfbgen.patching"):
        assert type(value).__dataclass_params__.frozen, where
        for field in dataclasses.fields(value):
            _plain_values(getattr(value, field.name), f"{where}.{field.name}")
    else:
        raise AssertionError(f"{where} is a {type(value).__qualname__}, not a view of the plan")


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.name)
def test_templates_see_views_of_the_plan_not_the_model(sample):
    """Issue 22, item 5: no ServerPlan, pydantic model or list reaches a step template; the site is in no view."""
    compiled = compile_path(sample)
    renderer = Renderer(compiled.plan, compiled.meta)
    for server in compiled.plan.servers:
        for filename, template, context in renderer.contexts(server):
            _plain_values(context, f"{server.fqdn}/{filename}")
            assert not hasattr(context["s"], "site")
            assert "members" not in context or template == "start-pool.ps1.j2"


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda p: p.name)
def test_within_a_sample_equal_fingerprints_mean_equal_scripts(sample):
    side = _side(sample.read_text(encoding="utf-8"))
    for a, (print_a, files_a) in side.items():
        for b, (print_b, files_b) in side.items():
            assert (print_a == print_b) == (files_a == files_b), (a, b)


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_equal_fingerprints_render_equal_scripts(edit):
    before, after = _side(BASE), _side(EDITS[edit])
    for fqdn in before.keys() & after.keys():
        if before[fqdn][0] == after[fqdn][0]:
            assert before[fqdn][1] == after[fqdn][1], fqdn


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_equal_scripts_have_equal_fingerprints(edit):
    """Exact both ways (issue 22, item 5): the templates see views of the plan, so the other members'
    scripts do not receive the pool's member list, and no script receives the server's site."""
    before, after = _side(BASE), _side(EDITS[edit])
    for fqdn in before.keys() & after.keys():
        assert (before[fqdn][0] == after[fqdn][0]) == (before[fqdn][1] == after[fqdn][1]), fqdn


def test_a_simple_url_change_leaves_the_servers_it_does_not_touch_unrendered():
    before, after = _side(BASE), _side(EDITS["a simple URL changed"])
    same = {f for f in before if before[f][0] == after[f][0]}
    assert {"edge01.contoso.com", "med01.contoso.com"} <= same
    assert "fe01.contoso.com" not in same


# -- parallel.map_chunks ------------------------------------------------------------------------------------


def _sums(chunk):
    return sum(chunk)


@pytest.mark.parametrize("min_items", [0, 10**9], ids=["forked", "here"])
def test_map_chunks_keeps_the_order_and_runs_meanwhile(min_items):
    items = list(range(1000))
    ran = []
    out = list(parallel.map_chunks(_sums, items, chunk_size=7, min_items=min_items, window=3, meanwhile=lambda: ran.append(1)))
    assert out == [sum(items[i:i + 7]) for i in range(0, 1000, 7)]
    assert ran == [1]
    assert parallel._jobs == {}


def test_map_chunks_raises_what_a_worker_raises():
    def fail(chunk):
        if 13 in chunk:
            raise ValueError("thirteen")
        return len(chunk)

    with pytest.raises(ValueError, match="thirteen"):
        list(parallel.map_chunks(fail, list(range(100)), chunk_size=5))
    assert parallel._jobs == {}


# -- the cache policy ---------------------------------------------------------------------------------------


@pytest.fixture
def fresh_caches(tmp_path, monkeypatch):
    """A private cache folder that works, and no parser or template built before the test."""
    from sfbgen import parser, render, resources

    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    monkeypatch.delenv("SFBGEN_NO_CACHE", raising=False)
    built = (resources._checked_cache_dir, render._environment, render._template, parser._parser, parser._keyword_terminals)

    def clear():
        for cached in built:
            cached.cache_clear()

    clear()
    yield folder
    clear()


def test_a_library_that_compiles_unsigned_then_signed_signs_no_cached_code(fresh_caches, tmp_path, monkeypatch, signing_key):
    import jinja2

    from sfbgen import parser
    from sfbgen.compiler import compile_file
    from sfbgen.resources import cache_dir

    assert cache_dir() is not None
    compile_file(CONTOSO, tmp_path / "unsigned")  # CachePolicy.USE: fills the caches and keeps what it built
    assert any(path.is_file() for path in fresh_caches.rglob("*"))

    rendered_with, parsed_with, loaded = [], [], []
    real_render, real_parser = jinja2.Template.render, parser._parser
    real_load = jinja2.FileSystemBytecodeCache.load_bytecode

    def render(self, *args, **kwargs):
        rendered_with.append(self.environment.bytecode_cache)
        return real_render(self, *args, **kwargs)

    def build_parser(policy=CachePolicy.USE):
        parsed_with.append(policy)
        return real_parser(policy)

    def load(self, bucket):
        loaded.append(bucket.key)
        return real_load(self, bucket)

    monkeypatch.setattr(jinja2.Template, "render", render)
    monkeypatch.setattr(parser, "_parser", build_parser)
    monkeypatch.setattr(jinja2.FileSystemBytecodeCache, "load_bytecode", load)
    signed = compile_file(CONTOSO, tmp_path / "signed", signer=signing_key)
    assert signed.signed
    assert rendered_with and all(cache is None for cache in rendered_with)  # every template from its source
    assert parsed_with and set(parsed_with) == {CachePolicy.REFUSE}
    assert loaded == []

    # And the unsigned compile after it is what it was: the same bytes, its caches used again.
    rendered_with.clear()
    again = compile_file(CONTOSO, tmp_path / "unsigned-again")
    assert any(cache is not None for cache in rendered_with)
    first = {p.relative_to(tmp_path / "unsigned"): p.read_bytes() for p in (tmp_path / "unsigned").rglob("*") if p.is_file()}
    assert {p.relative_to(tmp_path / "unsigned-again"): p.read_bytes() for p in (tmp_path / "unsigned-again").rglob("*") if p.is_file()} == first
    assert again.file_count == len(first)


def test_cache_policy_refuse_has_no_cache_folder(fresh_caches):
    from sfbgen.resources import cache_dir

    assert cache_dir(CachePolicy.USE) is not None
    assert cache_dir(CachePolicy.REFUSE) is None
    assert CachePolicy.for_signing(True) is CachePolicy.REFUSE and CachePolicy.for_signing(False) is CachePolicy.USE


def test_the_tree_has_no_global_cache_flag():
    from sfbgen import resources

    assert not hasattr(resources, "refuse_cached_code")
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "sfbgen").glob("*.py"))
    assert "refuse_cached_code" not in sources and "_forked_work" not in sources


def test_the_helper_selection_caches_change_no_byte():
    """render.py keeps each line's, block's and body's references (the same template text recurs in
    every server's scripts): a warm renderer writes what a cold one does."""
    from sfbgen import render

    compiled = compile_path(SAMPLES / "fabrikam-2019.sfb")
    warm = [Renderer(compiled.plan, compiled.meta).server(s) for s in compiled.plan.servers]
    for cache in (render._line_cache, render._block_cache, render._body_cache):
        cache.clear()
    cold = [Renderer(compiled.plan, compiled.meta).server(s) for s in compiled.plan.servers]
    assert warm == cold
