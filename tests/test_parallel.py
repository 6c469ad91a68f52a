"""Large topologies render in forked workers that write their files themselves: the bundle must be
byte-for-byte the one a single process makes, and a failure in a worker must lose nothing."""

from __future__ import annotations

import os

import pytest

from bench.generate import generate
from sfbgen import compiler
from sfbgen.compiler import compile_file
from tests.test_bundle import snapshot_tree

SERVERS = 100


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    topology = tmp_path_factory.mktemp("large") / "large.sfb"
    topology.write_text(generate(SERVERS), encoding="utf-8")
    return topology


def _serial_files(topology, monkeypatch) -> dict[str, bytes]:
    with monkeypatch.context() as patch:
        patch.setattr(compiler, "PARALLEL_MIN_SERVERS", 10**9)
        return compile_file(topology, "unused", write=False).files


def test_the_topology_is_large_enough_to_run_in_parallel(large):
    servers = compile_file(large, "unused", write=False, keep_files=False).plan.servers
    assert len(servers) >= compiler.PARALLEL_MIN_SERVERS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core: the compiler does not fork here")


def test_workers_that_write_their_own_files_make_the_serial_bundle(large, tmp_path, monkeypatch):
    serial = _serial_files(large, monkeypatch)
    out = tmp_path / "out"
    result = compile_file(large, out, keep_files=False)  # the CLI's path: workers store what they make
    written = snapshot_tree(out)
    assert written == serial
    assert result.file_count == len(serial)
    # The manifest lists every file the workers wrote, with the hash of what is on disk.
    from sfbgen import manifest as mf

    listing = mf.parse(written["MANIFEST.psd1"].decode("utf-8-sig"))
    assert len(listing.files) == len(written) - 1


def test_workers_that_send_their_files_back_make_the_serial_bundle(large, monkeypatch):
    assert compile_file(large, "unused", write=False).files == _serial_files(large, monkeypatch)


def _fail_on_one_server(monkeypatch):
    real = compiler._server_files

    def failing(renderer, server, signer):
        servers = renderer.plan.servers
        if server.fqdn == servers[len(servers) // 2].fqdn:
            raise OSError(28, "No space left on device")
        return real(renderer, server, signer)

    monkeypatch.setattr(compiler, "_server_files", failing)


def test_a_failing_worker_leaves_the_previous_bundle_whole(large, tmp_path, monkeypatch):
    out = tmp_path / "out"
    compile_file(large, out, keep_files=False)
    before = snapshot_tree(out)
    _fail_on_one_server(monkeypatch)  # inherited by the forked workers
    with pytest.raises(OSError, match="No space left"):
        compile_file(large, out, keep_files=False)
    assert snapshot_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left behind
