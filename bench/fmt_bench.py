"""Show that `sfbgen fmt` is linear: topologies of 1, 2, 4 and 8 MB (just under the 8 MiB a topology may
be), each formatted as a whole process with `fmt --diff` in two shapes:

- normal: formatted already but for one line;
- pathological: every other line mis-indented, a blank line after each (the shape that made difflib's
  whole-file diff quadratic: the red team's "about an hour for the 8 MB it accepts").

    python bench/fmt_bench.py            # writes bench/fmt_results.json
    python bench/fmt_bench.py --difflib  # also times the old whole-file difflib diff at 1 MB (minutes)

Times are the best of three whole processes (wall clock), and the CPU time of formatting alone in this
process (best of three, the collector set as the CLI sets it); the ratio of each size's CPU time to the
previous one's should stay near 2 (linear), where a quadratic cost makes it 4.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.generate import generate  # noqa: E402

PYTHON = sys.executable
SIZES_MB = (1, 2, 4, 7.9)
LIMIT = 8 * 1024 * 1024  # sfbgen.source.MAX_SOURCE_BYTES


def misindented(text: str) -> str:
    """Every other line indented wrongly, a blank line after each (difflib: 16 s for 290 KB, x4 a doubling)."""
    return "\n\n".join(("  " if i % 2 else "") + line for i, line in enumerate(text.split("\n")))


def topology_of(size: int, shape) -> str:
    """A generated topology whose `shape` is about `size` bytes (and at most the limit)."""
    from sfbgen.formatter import format_text

    sample = len(shape(format_text(generate(1000))[0]).encode())
    servers = int(1000 * size / sample)
    while True:
        text = shape(format_text(generate(servers))[0])
        if len(text.encode()) <= min(size, LIMIT):
            return text
        servers = int(servers * 0.98)


def whole_process(path: Path, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        run = subprocess.run([PYTHON, "-m", "sfbgen", "fmt", "--diff", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        best = min(best, time.perf_counter() - started)
        if run.returncode not in (0, 1) or b" error SFB" in run.stderr:
            raise SystemExit(f"fmt failed on {path}: {run.stderr.decode()[-400:]}")
    return best


def in_process(path: Path, runs: int = 3) -> float:
    """CPU seconds of `format_file` alone (best of `runs`), with the collector set as the CLI sets it:
    CPU time, so that the other work of a shared machine weighs less on the slope."""
    import gc

    from sfbgen.formatting_files import format_file

    saved = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)  # sfbgen.cli.main
    best = float("inf")
    try:
        for _ in range(runs):
            gc.collect()
            started = time.process_time()
            format_file(path, write=False, show_diff=True)
            best = min(best, time.process_time() - started)
    finally:
        gc.set_threshold(*saved)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--difflib", action="store_true", help="time the old whole-file difflib diff too, up to 1 MB")
    args = parser.parse_args()
    from sfbgen.formatter import format_text

    results: dict = {"sizes": []}
    print(f"{'MB':>5} {'lines':>9} {'normal s':>9} {'pathological s':>15} {'in-process cpu s':>17} {'ratio to previous':>18}")
    previous = None
    with tempfile.TemporaryDirectory(prefix="sfbgen-fmt-bench-") as work:
        for size_mb in SIZES_MB:
            size = int(size_mb * 1024 * 1024)
            bad_text = topology_of(size, misindented)
            formatted = format_text(bad_text)[0]
            # The normal file: the same topology formatted, one line out of place.
            normal_text = formatted.replace("\n    site", "\n  site", 1)
            bad, normal = Path(work) / "bad.sfb", Path(work) / "normal.sfb"
            bad.write_text(bad_text)
            normal.write_text(normal_text)
            normal_s, bad_s, bad_in = whole_process(normal), whole_process(bad), in_process(bad)
            ratio = bad_in / previous if previous else None
            previous = bad_in
            lines = bad_text.count("\n") + 1
            row = {"mb": round(len(bad_text.encode()) / (1024 * 1024), 2), "lines": lines, "normal_s": round(normal_s, 3),
                   "pathological_s": round(bad_s, 3), "pathological_in_process_cpu_s": round(bad_in, 3),
                   "ratio_to_previous": round(ratio, 2) if ratio else None}
            if args.difflib and size_mb <= 1:
                import difflib

                started = time.perf_counter()
                "".join(difflib.unified_diff(bad_text.splitlines(True), formatted.splitlines(True)))
                row["old_difflib_s"] = round(time.perf_counter() - started, 2)
            results["sizes"].append(row)
            print(f"{row['mb']:5} {lines:9,} {normal_s:9.2f} {bad_s:15.2f} {bad_in:17.2f} {(f'{ratio:.2f}') if ratio else '':>18}"
                  + (f"   (difflib alone: {row['old_difflib_s']} s)" if "old_difflib_s" in row else ""))
    (HERE / "fmt_results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
