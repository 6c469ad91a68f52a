"""Benchmark `sfbgen import` on published topologies of 10 to 5,000 servers (bench/generate_xml.py).

    python bench/import_bench.py           # median of 5 whole processes per size
    python bench/import_bench.py --runs 3

Targets (issue 11): importing a published topology of 1,000 servers takes under 1 s (a whole process,
measured in turns with the import floor — Python importing sfbgen's dependencies — as bench/run.py
measures its ratios), and the time per server stays flat (linear) from 1,000 to 5,000 servers: read
off the import itself, in-process (best of the runs), since at these sizes the start of a process is
most of its time and its noise would hide the slope. Writes bench/import_results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.generate_xml import generate  # noqa: E402
from bench.run import PYTHON, SFBGEN, measure_interleaved  # noqa: E402

SIZES = (10, 100, 1000, 5000)
FLOOR = [PYTHON, "-c", "import lark, pydantic, jinja2, typer, defusedxml"]


def in_process(document: Path, size: int, runs: int) -> float:
    """Milliseconds per server of `import_bytes` alone, best of `runs` (the CLI's collector settings)."""
    import gc
    import time

    from sfbgen.importer import ImportOptions, import_bytes

    raw = document.read_bytes()
    gc.set_threshold(100_000, 50, 100)
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        import_bytes(raw, document.name, ImportOptions(media="D:\\", ca="ca.scale.example\\CA"))
        best = min(best, time.perf_counter() - started)
    return best / size * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for size in SIZES:
            document = Path(work) / f"published-{size}.xml"
            document.write_text(generate(size), encoding="utf-8")
            out = Path(work) / f"imported-{size}.sfb"
            command = SFBGEN + ["import", str(document), "--media", "D:\\", "--ca", "ca.scale.example\\CA", "--out", str(out), "--force"]
            measured = measure_interleaved({"import": (command, None), "floor": (FLOOR, None)}, args.runs)
            results[size] = {"bytes": document.stat().st_size, **measured}
            results[size]["in_process_ms_per_server"] = in_process(document, size, args.runs)
    per_server = {size: results[size]["in_process_ms_per_server"] for size in (1000, 5000)}
    thousand = results[1000]["import"]["median_s"]
    flat = abs(per_server[5000] - per_server[1000]) <= 0.2 * per_server[1000]
    print("servers      bytes   import    floor  peak MB")
    for size, row in results.items():
        print(f"{size:7d} {row['bytes']:10d} {row['import']['median_s']:7.3f}s {row['floor']['median_s']:7.3f}s {row['import']['peak_mb']:8.0f}")
    print(f"\n  [{'ok' if thousand < 1 else 'MISSED'}] import 1,000 servers < 1 s: {thousand:.2f} s")
    print(f"  [{'ok' if flat else 'MISSED'}] time per server flat, 1,000 vs 5,000 (±20%): {per_server[1000]:.3f} / {per_server[5000]:.3f} ms")
    (HERE / "import_results.json").write_text(json.dumps({"sizes": results, "ms_per_server": per_server}, indent=2) + "\n")


if __name__ == "__main__":
    main()
