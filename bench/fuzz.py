"""Fuzz the reader, parser and checker: many mutated topologies, zero crashes allowed.

    python bench/fuzz.py [--inputs 100000] [--seed 1] [--jobs 2]

Every input is bytes made from a sample by random edits (deleted runs, inserted keywords, braces,
quotes, PowerShell metacharacters, control characters, invalid UTF-8, duplicated lines). Each goes
through `sfbgen.api.check_bytes`; a sound one is also planned and rendered (every 25th, for time).
A crash is any exception: the only acceptable outcome is a result with sfbgen's own diagnostics.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PIECES = [b"{", b"}", b'"', b"#", b"\n", b"\r\n", b"product", b"site", b"front_end", b"server", b"next_hop",
          b"primary", b"2019", b"99999999999999999999", b"a.b.com", b"*", b"$(x)", b"'", b"`", b"\x00", b"\xff",
          "\u202e".encode(), b"https://", b"certificates", b"authority", b"online", b"offline", b"web_services",
          b"internal", b"external", b":443", b"..", b"\\", b"\t", b"\xef\xbb\xbf", b"for", b"{" * 50, b"}" * 50,
          b"enterprise_pool", b"edge_pool", b"mediation_pool", b"director_pool", b"standard_edition", b"key_size",
          b"# SIG # Begin signature block", "\u2018\u2019".encode(), b"\xc3\x28", b"a" * 300]


def mutate(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(data))
        action = rng.random()
        if action < 0.3:
            data = data[:at] + data[at + rng.randint(1, 40):]
        elif action < 0.65:
            data = data[:at] + rng.choice(PIECES) + data[at:]
        elif action < 0.68:
            data = data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))) + data[at:]
        elif action < 0.9:
            lines = data.split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
            data = b"\n".join(lines)
        else:
            piece = rng.choice(PIECES)
            data = data[:at] + piece + data[at + len(piece):]
    return data


def run_batch(args: tuple[int, int, int]) -> dict:
    from sfbgen.api import compile_bytes
    from sfbgen.compiler import iter_bundle

    start, count, seed = args
    samples = [p.read_bytes() for p in sorted((ROOT / "samples").glob("*.sfb"))]
    rng = random.Random(seed * 1_000_003 + start)
    outcome = {"inputs": 0, "crashes": [], "sound": 0, "rendered": 0, "codes": {}}
    for index in range(start, start + count):
        data = mutate(rng.choice(samples), rng)
        outcome["inputs"] += 1
        try:
            result = compile_bytes(data, "fuzz.sfb")  # the pipeline compile, diff and certs use
            for d in result.diagnostics:
                outcome["codes"][d.code] = outcome["codes"].get(d.code, 0) + 1
            if result.ok:
                outcome["sound"] += 1
                if outcome["sound"] % 25 == 1:
                    for _ in iter_bundle(result.plan, result.meta, None):
                        pass
                    outcome["rendered"] += 1
        except Exception:  # noqa: BLE001 - a crash is what this looks for
            outcome["crashes"].append({"input": index, "data": data[:2000].decode("latin-1"), "error": traceback.format_exc()[-2000:]})
    return outcome


def fuzz(inputs: int, seed: int, jobs: int) -> dict:
    batch = 2000
    tasks = [(start, min(batch, inputs - start), seed) for start in range(0, inputs, batch)]
    started = time.perf_counter()
    total = {"inputs": 0, "crashes": [], "sound": 0, "rendered": 0, "codes": {}}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for outcome in pool.map(run_batch, tasks):
            total["inputs"] += outcome["inputs"]
            total["sound"] += outcome["sound"]
            total["rendered"] += outcome["rendered"]
            total["crashes"] += outcome["crashes"]
            for code, n in outcome["codes"].items():
                total["codes"][code] = total["codes"].get(code, 0) + n
    total["seconds"] = time.perf_counter() - started
    total["seed"] = seed
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    result = fuzz(args.inputs, args.seed, args.jobs)
    print(json.dumps({k: v for k, v in result.items() if k != "crashes"} | {"crashes": len(result["crashes"])}, indent=2))
    for crash in result["crashes"][:5]:
        print(crash["error"], file=sys.stderr)
    sys.exit(1 if result["crashes"] else 0)


if __name__ == "__main__":
    main()
