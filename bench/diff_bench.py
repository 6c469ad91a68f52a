"""Benchmark `sfbgen diff` on two topologies of 1,000 servers (bench/generate.py), as whole processes.

    python bench/diff_bench.py [--runs 5]

Target (issue 14): under 1 s. Two edits: adding one Front End server (one pool's work changes), and
changing a Meet simple URL, which changes the web certificate — so the step 3 script — of every
Front End, Standard Edition server and Director (about 770 of the 1,000). Writes bench/diff_results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.generate import generate  # noqa: E402
from bench.run import SFBGEN, measure_interleaved  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        base = generate(1000)
        edits = {
            "add a Front End server": base.replace("front_end s1p0fe00.scale.example", "front_end s1p0fe00.scale.example\n            front_end s1p0fe99.scale.example", 1),
            "change a Meet URL (770 servers' certificates)": base.replace('meet.scale2.example"', 'conf.scale2.example"'),
        }
        old = Path(work) / "old.sfb"
        old.write_text(base, encoding="utf-8")
        commands = {}
        for index, (name, text) in enumerate(edits.items()):
            new = Path(work) / f"new{index}.sfb"
            new.write_text(text, encoding="utf-8")
            commands[name] = (SFBGEN + ["diff", str(old), str(new), "--format", "json"], None)
        results = measure_interleaved(commands, args.runs)
    for name, row in results.items():
        verdict = "ok" if row["median_s"] < 1 else "MISSED"
        print(f"  [{verdict}] diff, 1,000 servers, {name}: {row['median_s']:.2f} s (peak {row['peak_mb']:.0f} MB)")
    (HERE / "diff_results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
