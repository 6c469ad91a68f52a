"""Measure what `sfbgen import` costs on hostile documents and on a large real-shaped one: wall time and
peak memory (the resident set of a process of its own, from os.wait4), against the document's size.

    python bench/import_bounds.py           # writes bench/import_bounds_results.json

The red team's document (issue 20), 42 MB of empty elements, once needed more than 2.5 GB and died with
MemoryError. Each case here runs `sfbgen import FILE` as a whole process; the floor is a process that
imports sfbgen's importer and does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.generate_xml import generate  # noqa: E402

PYTHON = sys.executable


def cases():
    """(name, a function that makes the document): made one at a time, so that this process stays small
    (a child forked from it would otherwise start with its memory counted)."""
    mb = 1024 * 1024
    return [
        ("published topology, 5,000 servers", lambda: generate(5000).encode("utf-8")),
        ("published topology, 5,000 servers, UTF-16", lambda: generate(5000).encode("utf-16")),
        ("42 MB of empty elements", lambda: b"<Topology>" + b"<a/>" * (42 * mb // 4) + b"</Topology>"),
        ("60 MB of 25-byte elements (the element cap)", lambda: b"<Topology>" + b'<Machine Fqdn="a.b.ccc"/>' * (60 * mb // 25) + b"</Topology>"),
        ("100,000 nested elements", lambda: b"<Topology>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Topology>"),
        ("a 32 MB attribute", lambda: b'<Topology Name="' + b"x" * (32 * mb) + b'"/>'),
        ("a 32 MB text", lambda: b"<Topology><Name>" + b"x" * (32 * mb) + b"</Name></Topology>"),
        ("1,000,000 attributes", lambda: b"<Topology " + b" ".join(b"a%d='1'" % i for i in range(1_000_000)) + b"/>"),
        ("60 MB of whitespace between two elements", lambda: b"<Topology>" + b" " * (60 * mb) + b"<a/></Topology>"),
    ]


def measure(args: list[str]) -> tuple[float, float, int, str]:
    """(seconds, peak resident MB, exit code, last line of stderr) of one whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    said = next((line for line in stderr.splitlines() if "SFB" in line or "error" in line), stderr.strip()[-200:])
    return elapsed, usage.ru_maxrss / 1024, process.returncode, said


def main() -> None:
    results = {}
    floor = measure([PYTHON, "-c", "import sfbgen.importer"])
    results["floor (python -c 'import sfbgen.importer')"] = {"seconds": round(floor[0], 3), "peak_mb": round(floor[1], 1)}
    print(f"{'case':50} {'doc MB':>8} {'seconds':>8} {'peak MB':>8}  exit  outcome")
    print(f"{'floor':50} {'':>8} {floor[0]:8.2f} {floor[1]:8.0f}")
    with tempfile.TemporaryDirectory(prefix="sfbgen-import-bounds-") as work:
        for index, (name, _) in enumerate(cases()):
            path = Path(work) / "document.xml"
            # Made by a process of its own: this one stays small, and so do the children it starts.
            subprocess.run([PYTHON, __file__, "--make", str(index), str(path)], check=True)
            size = path.stat().st_size / (1024 * 1024)
            seconds, peak, code, said = measure([PYTHON, "-m", "sfbgen", "import", str(path), "--media", "D:\\", "--ca", "ca.t.com\\CA"])
            outcome = "imported" if code == 0 else (said.split(": ", 1)[-1][:90] if said else f"exit {code}")
            results[name] = {"document_mb": round(size, 1), "seconds": round(seconds, 3), "peak_mb": round(peak, 1),
                             "exit": code, "outcome": outcome}
            print(f"{name:50} {size:8.1f} {seconds:8.2f} {peak:8.0f}  {code:4}  {outcome}")
    (HERE / "import_bounds_results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make"]:
        Path(sys.argv[3]).write_bytes(cases()[int(sys.argv[2])][1]())
    else:
        main()
