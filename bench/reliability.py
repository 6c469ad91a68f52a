"""Measure that sfbgen cannot be broken, and write RELIABILITY.md with the figures.

    python bench/reliability.py            # the full run (a few minutes)
    python bench/reliability.py --quick    # smaller counts

It runs: the mutation fuzzer (bench/fuzz.py) and, when installed, atheris (bench/fuzz_atheris.py);
every hostile string in every free-text field (tests/test_hostile.py's rules); compiles killed with
SIGKILL at random moments while they replace a bundle; a search of every output byte for the
signing password and the private key; and every attack of the security review on `sfbgen verify`
and the compiler (bench/attacks.py). The tests run the same routines with smaller counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.attacks import attack_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLI = [sys.executable, "-m", "sfbgen"]


def bundle_state(out: Path) -> str:
    """The topology name of the whole, valid bundle at `out`, or what is wrong with it."""
    from sfbgen.verify import Trust, verify_bundle

    if not out.is_dir():
        return "missing"
    bad = [r for r in verify_bundle(out, Trust(allow_unsigned=True)) if not r.ok]
    if bad:
        return f"broken: {bad[:3]}"
    return json.loads((out / "plan.json").read_text())["topology"]


def kill_trials(work: Path, kills: int, seed: int = 7) -> dict:
    """Replace a bundle again and again, killing each compile at a random moment; check what is left."""
    from bench.generate import generate

    a, b = work / "a.sfb", work / "b.sfb"
    a.write_text(generate(200, seed=1).replace('topology "Scale"', 'topology "A"'))
    b.write_text(generate(240, seed=2).replace('topology "Scale"', 'topology "B"').replace("scale.example", "other.example"))
    out = work / "out"
    subprocess.run(CLI + ["compile", str(a), "--out", str(out)], check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(CLI + ["compile", str(b), "--out", str(out)], check=True, capture_output=True)
    duration = time.perf_counter() - started
    rng = random.Random(seed)
    states: dict[str, int] = {}
    for attempt in range(kills):
        source = a if attempt % 2 else b
        process = subprocess.Popen(CLI + ["compile", str(source), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.02, duration * 1.5))  # a third of them after the swap: both bundles appear
        process.send_signal(signal.SIGKILL)
        process.wait()
        state = bundle_state(out)
        key = state if state in ("A", "B") else "broken"
        states[key] = states.get(key, 0) + 1
        if key == "broken":
            states.setdefault("first_broken", state)
    subprocess.run(CLI + ["compile", str(a), "--out", str(out)], check=True, capture_output=True)
    leftovers = [p.name for p in work.iterdir() if p.name.startswith(".sfbgen-")]
    return {"kills": kills, "states": states, "final": bundle_state(out), "leftovers_after_next_run": leftovers}


def secret_scan(work: Path) -> dict:
    """Compile and sign with known secrets; count the places any of them appears in the output."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    password = "S3cret-PFX-Pa55word-7c1f"
    env = dict(os.environ, SFBGEN_PFX_PASSWORD=password)
    pfx = work / "codesign.pfx"
    subprocess.run(CLI + ["codesign-cert", "--out", str(pfx)], env=env, check=True, capture_output=True)
    out = work / "signed"
    run = subprocess.run(CLI + ["compile", str(ROOT / "samples" / "contoso.sfb"), "--out", str(out), "--sign-pfx", str(pfx)],
                         env=env, capture_output=True, check=True)
    key, _, _ = pkcs12.load_key_and_certificates(pfx.read_bytes(), password.encode())
    numbers = key.private_numbers()
    secrets = {
        "password": password.encode(),
        "password-utf16": password.encode("utf-16-le"),
        "pkcs8-der": key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "private-exponent": numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big"),
        "prime-p": numbers.p.to_bytes((numbers.p.bit_length() + 7) // 8, "big"),
        "private-exponent-hex": format(numbers.d, "x").encode(),
        "pem-marker": b"PRIVATE KEY",
    }
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for number, line in enumerate(pem.splitlines()[1:-1]):
        secrets[f"pem-line-{number}"] = line
    outputs = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    outputs["stdout+stderr"] = run.stdout + run.stderr
    found = sorted({f"{name} in {path}" for path, data in outputs.items() for name, secret in secrets.items() if secret in data})
    return {"files_searched": len(outputs), "bytes_searched": sum(map(len, outputs.values())), "secrets": len(secrets), "found": found}


def hostile_trials(generated_per_field: int, seed: int = 3) -> dict:
    from tests.test_hostile import FIELDS, HOSTILE, assert_inert_or_rejected

    rng = random.Random(seed)
    alphabet = list("'`$(){}[]@;|&#<>\\%-*\u2018\u2019\u201a\u201b\u201c\u201d\u200f\x00\x1b abc") + ["# SIG #", "$(", "${", "@(", "#>", "<#"]
    per_field = {}
    for field in FIELDS:
        counts = {"tried": 0, "rejected": 0, "inert": 0}
        values = list(HOSTILE) + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16))) for _ in range(generated_per_field)]
        for value in values:
            if not value.strip():
                continue
            counts[assert_inert_or_rejected(field, value)] += 1
            counts["tried"] += 1
        per_field[field] = counts
    return per_field


def atheris_run(runs: int) -> dict:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return {"available": False}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_atheris.py"), f"-runs={runs}"], capture_output=True, text=True)
    crashed = run.returncode != 0
    return {"available": True, "runs": runs, "crashes": int(crashed), "seconds": time.perf_counter() - started,
            "tail": run.stderr.strip().splitlines()[-1:] if crashed else []}


def report(figures: dict) -> str:
    fuzz, kills, secrets, hostile = figures["fuzz"], figures["kills"], figures["secrets"], figures["hostile"]
    atheris, attacks = figures["atheris"], figures["attacks"]
    hostile_total = sum(v["tried"] for v in hostile.values())
    lines = [
        "# Reliability",
        "",
        "Figures produced by `python bench/reliability.py` (made by that script; do not edit by hand).",
        f"Measured with sfbgen {figures['version']} on Python {figures['python']}.",
        "",
        "| what | figure |",
        "|---|---|",
        f"| inputs fuzzed (mutation fuzzer, seed {fuzz['seed']}) | {fuzz['inputs']:,} in {fuzz['seconds']:.0f} s |",
        f"| of which sound and checked to the end / also rendered | {fuzz['sound']:,} / {fuzz['rendered']:,} |",
        f"| crashes (anything but a diagnostic) | {len(fuzz['crashes'])} |",
        (f"| inputs fuzzed (atheris, coverage-guided) | {atheris['runs']:,}, crashes {atheris['crashes']} |" if atheris["available"]
         else "| atheris | not installed |"),
        f"| hostile strings tried, all fields | {hostile_total:,} (every one rejected or inert) |",
        f"| compiles killed with SIGKILL while replacing a bundle | {kills['kills']} |",
        f"| what each killed compile left: whole bundle A / whole bundle B / anything else | {kills['states'].get('A', 0)} / {kills['states'].get('B', 0)} / {kills['states'].get('broken', 0)} |",
        f"| secrets found in output (must be 0) | {len(secrets['found'])} (searched {secrets['files_searched']} files, {secrets['bytes_searched']:,} bytes for {secrets['secrets']} secret values) |",
        "",
        *attack_section(attacks),
        "## Hostile strings per field",
        "",
        "Each value is either rejected with a diagnostic or compiled into scripts whose syntax tree is the",
        "same as with a plain value (tree-sitter-pwsh) and whose single-quoted literals PowerShell cannot end early.",
        "",
        "| field | tried | rejected | inert |",
        "|---|---|---|---|",
    ]
    lines += [f"| {field} | {c['tried']} | {c['rejected']} | {c['inert']} |" for field, c in hostile.items()]
    lines += [
        "",
        "## What the figures rest on",
        "",
        "- Fuzzing: `bench/fuzz.py` (random edits of the samples: deletions, keywords, braces, quotes, PowerShell",
        "  metacharacters, control characters, invalid UTF-8, duplicated lines) and `bench/fuzz_atheris.py`.",
        "- Kills: each compile of a 200- or 240-server topology over the other's bundle is killed after a random",
        "  delay; the folder is then checked with `sfbgen verify` (every file against MANIFEST.psd1). The swap is one",
        "  `renameat2(RENAME_EXCHANGE)`, so the folder is always one whole bundle; a killed run's temporary folder is",
        "  removed by the next run.",
        "- Secrets: the PFX password and the private key (DER, PEM lines, private exponent, a prime) are searched",
        "  for in every output file and in everything sfbgen printed.",
        "- Scripts that refuse to do harm are shown by `tests/test_safety.py` from the scripts' syntax trees.",
        "",
    ]
    return "\n".join(lines)


def attack_trials() -> dict:
    """Every attack of bench/attacks.py, counted."""
    import re

    from bench.attacks import run_all

    results = {name: (outcome, re.sub(r"/tmp/sfbgen-attacks-[^/ ]+", "BUNDLE", said)) for name, (outcome, said) in run_all().items()}
    counts = {kind: sum(1 for outcome, _ in results.values() if outcome == kind) for kind in ("refused", "accepted", "crashed")}
    return {"tried": len(results), **counts, "results": results}


def main() -> None:
    import sfbgen
    from bench.fuzz import fuzz

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sfbgen-reliability-"))
    (work / "kills").mkdir()
    try:
        figures = {
            "version": sfbgen.__version__,
            "python": sys.version.split()[0],
            "fuzz": fuzz(10_000 if args.quick else 100_000, seed=1, jobs=2),
            "atheris": atheris_run(10_000 if args.quick else 100_000),
            "hostile": hostile_trials(20 if args.quick else 100),
            "kills": kill_trials(work / "kills", 10 if args.quick else 50),
            "secrets": secret_scan(work),
            "attacks": attack_trials(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "RELIABILITY.md").write_text(report(figures), encoding="utf-8")
    print(report(figures))
    failed = (figures["fuzz"]["crashes"] or figures["secrets"]["found"] or figures["kills"]["states"].get("broken")
              or figures["attacks"]["accepted"] or figures["attacks"]["crashed"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
