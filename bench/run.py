"""Benchmark sfbgen at the scale of the largest deployments, against its floors and its peer.

    python bench/run.py            # 10, 100, 1,000 and 5,000 servers, median of 5 runs
    python bench/run.py --quick    # up to 1,000 servers, median of 3 runs

Every figure is a whole process, timed from start to exit, with its peak memory (wait4's maxrss):
`sfbgen check`, `sfbgen compile` unsigned, and signed with RSA-2048 and RSA-3072 keys. In the same run
it measures the floors — Python importing sfbgen's dependencies; a process writing the same bytes in
the same files; the RSA signatures alone with `cryptography` (in-process time, one core) — and the peer,
`osslsigncode sign` called once per script. It prints a table and writes bench/results.json with the
ratios the targets are stated in.

Commands compared by a ratio are run in turns (floor, sfbgen, floor, sfbgen, ...), so that a stretch
when the machine is slow weighs on both sides of the ratio alike; for the same reason the time per
server is read off compiles of every size measured in turns.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402

PYTHON = sys.executable
SFBGEN = [PYTHON, "-m", "sfbgen"]
PEER_SAMPLE = 200  # osslsigncode runs per measurement; the per-file time is scaled to the whole bundle


def run_once(cmd: list[str]) -> tuple[float, int]:
    """Wall time and peak resident memory (KB) of one whole process."""
    # The diagnostics go to a file, not a pipe: a check of 5,000 servers prints more warnings than a pipe
    # holds, and a pipe read only after the process exits would block it forever.
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in (0,):
            errors.seek(0)
            raise SystemExit(f"failed ({process.returncode}): {' '.join(cmd)}\n{errors.read().decode(errors='replace')}")
    return elapsed, usage.ru_maxrss


def measure_interleaved(commands: dict[str, tuple[list[str], object]], runs: int) -> dict[str, dict]:
    """Measure commands whose ratio is the target in turns (a, b, c, a, b, c, ...), so that a machine
    that slows down for a while slows every one of them alike instead of the one running then."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[int]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (cmd, before) in commands.items():
            if before:
                before()
            elapsed, peak = run_once(cmd)
            times[name].append(elapsed)
            peaks[name].append(peak)
    return {name: {"median_s": statistics.median(times[name]), "min_s": min(times[name]), "peak_mb": max(peaks[name]) / 1024}
            for name in commands}


def write_floor_script(sizes_file: Path, out: Path) -> list[str]:
    code = (
        "import json, os, sys\n"
        f"files = json.load(open({str(sizes_file)!r}))\n"
        f"out = {str(out)!r}\n"
        "made = set()\n"
        "for relative, size in files:\n"
        "    path = os.path.join(out, relative)\n"
        "    folder = os.path.dirname(path)\n"
        "    if folder not in made:\n"
        "        os.makedirs(folder, exist_ok=True)\n"
        "        made.add(folder)\n"
        "    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
        "    os.write(fd, b'x' * size)\n"
        "    os.close(fd)\n"
    )
    return [PYTHON, "-c", code]


def rsa_floor(key_pem: Path, count: int) -> float:
    """Seconds for `count` RSA PKCS#1 v1.5 SHA-256 signatures, measured inside a process (one core)."""
    code = (
        "import time\n"
        "from cryptography.hazmat.primitives import hashes, serialization\n"
        "from cryptography.hazmat.primitives.asymmetric import padding\n"
        f"key = serialization.load_pem_private_key(open({str(key_pem)!r}, 'rb').read(), None)\n"
        "data = b'signed attributes' * 16\n"
        "start = time.perf_counter()\n"
        f"for _ in range({count}):\n"
        "    key.sign(data, padding.PKCS1v15(), hashes.SHA256())\n"
        "print(time.perf_counter() - start)\n"
    )
    return float(subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout)


def peer(scripts: list[Path], cert: Path, key: Path, work: Path) -> dict:
    """osslsigncode sign, once per file, on a sample of the scripts; scaled to all of them."""
    tool = shutil.which("osslsigncode")
    if tool is None:
        return {"available": False}
    sample = scripts[:PEER_SAMPLE]
    out = work / "peer"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    started = time.perf_counter()
    for index, script in enumerate(sample):
        subprocess.run([tool, "sign", "-certs", str(cert), "-key", str(key), "-h", "sha256", "-in", str(script),
                        "-out", str(out / f"{index}.ps1")], check=True, capture_output=True)
    per_file = (time.perf_counter() - started) / len(sample)
    return {"available": True, "files": len(scripts), "sampled": len(sample), "per_file_s": per_file,
            "total_s": per_file * len(scripts), "extrapolated": len(sample) < len(scripts)}


def make_keys(work: Path) -> dict[int, tuple[Path, Path]]:
    from cryptography.hazmat.primitives import serialization

    from sfbgen.signing import make_codesign_certificate

    keys = {}
    for bits in (2048, 3072):
        key, cert = make_codesign_certificate(f"sfbgen bench {bits}", key_size=bits)
        cert_path, key_path = work / f"cert{bits}.pem", work / f"key{bits}.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        keys[bits] = (cert_path, key_path)
    return keys


def bench_size(servers: int, runs: int, work: Path, keys) -> dict:
    topology = work / f"topology-{servers}.sfb"
    topology.write_text(generate(servers), encoding="utf-8")
    out = work / f"out-{servers}"

    def fresh():
        shutil.rmtree(out, ignore_errors=True)

    row: dict = {"servers": servers}
    # One compile first, to learn the files the write floor must write.
    fresh()
    subprocess.run(SFBGEN + ["compile", str(topology), "--out", str(out)], check=True, capture_output=True)
    files = [p for p in out.rglob("*") if p.is_file()]
    scripts = sorted(p for p in files if p.suffix == ".ps1")
    sizes = work / f"sizes-{servers}.json"
    sizes.write_text(json.dumps([[str(p.relative_to(out)), p.stat().st_size] for p in files]))
    floor_out = work / f"floor-{servers}"
    row["files"] = len(files)
    row["scripts"] = len(scripts)
    row["bytes"] = sum(p.stat().st_size for p in files)
    commands = {
        "import_floor": ([PYTHON, "-c", "import lark, pydantic, jinja2, typer"], None),
        "write_floor": (write_floor_script(sizes, floor_out), lambda: shutil.rmtree(floor_out, ignore_errors=True)),
        "check": (SFBGEN + ["check", str(topology)], None),
        "compile": (SFBGEN + ["compile", str(topology), "--out", str(out)], fresh),
    }
    for bits, (cert, key) in keys.items():
        commands[f"compile_signed_{bits}"] = (
            SFBGEN + ["compile", str(topology), "--out", str(out), "--sign-cert", str(cert), "--sign-key", str(key)], fresh)
    row.update(measure_interleaved(commands, runs))
    for bits, (_, key) in keys.items():
        row[f"rsa_floor_{bits}_s"] = rsa_floor(key, len(scripts))
    fresh()
    subprocess.run(SFBGEN + ["compile", str(topology), "--out", str(out)], check=True, capture_output=True)
    if servers <= 1000:
        row["peer_osslsigncode_2048"] = peer(scripts, *keys[2048], work)
    shutil.rmtree(floor_out, ignore_errors=True)
    return row


def scaling(sizes: list[int], runs: int, work: Path) -> dict[str, dict]:
    """Unsigned compiles of every size from 100 servers on, measured in turns. Time per server is read
    off these: a machine that is slower while one size has its turn must not pass for growth that is
    not linear."""
    commands = {}
    for n in sizes:
        if n >= 100:
            out = work / f"out-{n}"
            commands[str(n)] = (SFBGEN + ["compile", str(work / f"topology-{n}.sfb"), "--out", str(out)],
                                lambda out=out: shutil.rmtree(out, ignore_errors=True))
    return measure_interleaved(commands, runs)


def ratios(results: dict) -> dict:
    floor = results["import_floor"]["median_s"]
    rows = {row["servers"]: row for row in results["sizes"]}
    out: dict = {"check_sample_over_import_floor": results["check_sample"]["median_s"] / floor,
                 "compile_sample_over_import_floor": results["compile_sample"]["median_s"] / floor}
    for n, row in rows.items():
        unsigned = row["compile"]["median_s"]
        r = out.setdefault(str(n), {})
        # Against the floors measured beside it, in the same turns.
        r["compile_over_import_plus_write_floor"] = unsigned / (row["import_floor"]["median_s"] + row["write_floor"]["median_s"])
        r["compile_ms_per_server"] = unsigned * 1000 / n
        for bits in (2048, 3072):
            signed = row[f"compile_signed_{bits}"]["median_s"]
            r[f"signed_{bits}_over_unsigned_plus_rsa_floor"] = signed / (unsigned + row[f"rsa_floor_{bits}_s"])
        peer_row = row.get("peer_osslsigncode_2048")
        if peer_row and peer_row.get("available"):
            r["peer_over_signed_2048"] = peer_row["total_s"] / row["compile_signed_2048"]["median_s"]
    # Time per server, read off the compiles of every size measured in turns (see `scaling`).
    compile_s = {int(n): m["median_s"] for n, m in results["scaling"].items()}
    sizes = sorted(compile_s)
    out["marginal_compile_ms_per_server"] = {
        f"{a}-{b}": (compile_s[b] - compile_s[a]) * 1000 / (b - a) for a, b in zip(sizes, sizes[1:], strict=False)
    }
    return out


def targets(results: dict) -> list[tuple[str, str, bool]]:
    r = results["ratios"]
    rows = {row["servers"]: row for row in results["sizes"]}
    checks = [("check sample ≤ 1.3× import floor", f"{r['check_sample_over_import_floor']:.2f}×", r["check_sample_over_import_floor"] <= 1.3),
              ("compile sample ≤ 1.5× import floor", f"{r['compile_sample_over_import_floor']:.2f}×", r["compile_sample_over_import_floor"] <= 1.5)]
    if 1000 in rows:
        row, q = rows[1000], r["1000"]
        checks += [
            ("check 1,000 servers < 1 s", f"{row['check']['median_s']:.2f} s", row["check"]["median_s"] < 1),
            ("compile 1,000 servers < 5 s", f"{row['compile']['median_s']:.2f} s", row["compile"]["median_s"] < 5),
            ("compile 1,000 ≤ 3× (import + write floor)", f"{q['compile_over_import_plus_write_floor']:.2f}×", q["compile_over_import_plus_write_floor"] <= 3),
            ("signed 2048 ≤ 1.5× (unsigned + RSA floor)", f"{q['signed_2048_over_unsigned_plus_rsa_floor']:.2f}×", q["signed_2048_over_unsigned_plus_rsa_floor"] <= 1.5),
            ("signed 3072 ≤ 1.5× (unsigned + RSA floor)", f"{q['signed_3072_over_unsigned_plus_rsa_floor']:.2f}×", q["signed_3072_over_unsigned_plus_rsa_floor"] <= 1.5),
        ]
        if "peer_over_signed_2048" in q:
            checks.append(("signed 1,000 ≥ 10× faster than osslsigncode", f"{q['peer_over_signed_2048']:.1f}×", q["peer_over_signed_2048"] >= 10))
    marginal = list(r["marginal_compile_ms_per_server"].values())
    if len(marginal) >= 2:
        spread = max(marginal) / min(marginal) - 1
        checks.append(("time per server flat (marginal, ±20%)", " / ".join(f"{m:.2f}" for m in marginal) + " ms", spread <= 0.2))
    if 5000 in rows:
        peak = max(rows[5000][k]["peak_mb"] for k in ("check", "compile", "compile_signed_2048", "compile_signed_3072"))
        checks.append(("peak memory at 5,000 servers < 300 MB", f"{peak:.0f} MB", peak < 300))
    return checks


def table(results: dict) -> str:
    lines = [f"import floor {results['import_floor']['median_s']:.3f} s; sample check {results['check_sample']['median_s']:.3f} s, "
             f"sample compile {results['compile_sample']['median_s']:.3f} s; output written to {results['written_to']}", ""]
    head = f"{'servers':>7} {'files':>6} {'check':>8} {'compile':>8} {'import floor':>12} {'write floor':>11} {'signed2048':>10} {'signed3072':>10} {'rsa2048':>8} {'rsa3072':>8} {'peer':>8} {'peak MB':>8}"
    lines.append(head)
    for row in results["sizes"]:
        peer_row = row.get("peer_osslsigncode_2048") or {}
        peer = f"{peer_row['total_s']:.1f}" + ("*" if peer_row.get("extrapolated") else "") if peer_row.get("available") else "-"
        peak = max(row[k]["peak_mb"] for k in ("check", "compile", "compile_signed_2048", "compile_signed_3072"))
        lines.append(
            f"{row['servers']:>7} {row['files']:>6} {row['check']['median_s']:>7.3f}s {row['compile']['median_s']:>7.3f}s "
            f"{row['import_floor']['median_s']:>11.3f}s {row['write_floor']['median_s']:>10.3f}s {row['compile_signed_2048']['median_s']:>9.3f}s "
            f"{row['compile_signed_3072']['median_s']:>9.3f}s {row['rsa_floor_2048_s']:>7.3f}s {row['rsa_floor_3072_s']:>7.3f}s "
            f"{peer:>8} {peak:>8.0f}"
        )
    lines += ["", "(times are medians of whole processes, each row's measured in turns with its floors; rsa = in-process",
              "signing floor, one core; peer = osslsigncode sign per file, * scaled from a sample)", ""]
    for name, value, ok in results["targets"]:
        lines.append(f"  [{'ok' if ok else 'MISSED'}] {name}: {value}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="up to 1,000 servers, 3 runs")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 5000]
    # The installed form of sfbgen has compiled bytecode; make a checkout match it.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "sfbgen")], check=True)
    # Work in memory (/dev/shm) where there is one: the floors and sfbgen then write to the same place,
    # and the disk's writeback throttling (which differs from run to run) does not drown the figures.
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="sfbgen-bench-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    results_where = "memory (/dev/shm)" if str(work).startswith("/dev/shm") else "disk"
    try:
        keys = make_keys(work)
        sample = ROOT / "samples" / "contoso.sfb"
        sample_out = work / "sample-out"
        results: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "runs": runs, "written_to": results_where}
        # Warm the parser and template caches once, as any second run on a machine finds them.
        subprocess.run(SFBGEN + ["compile", str(sample), "--out", str(sample_out)], check=True, capture_output=True)
        results.update(measure_interleaved({
            "import_floor": ([PYTHON, "-c", "import lark, pydantic, jinja2, typer"], None),
            "check_sample": (SFBGEN + ["check", str(sample)], None),
            "compile_sample": (SFBGEN + ["compile", str(sample), "--out", str(sample_out)],
                               lambda: shutil.rmtree(sample_out, ignore_errors=True)),
        }, max(runs, 21)))
        results["sizes"] = []
        for n in sizes:
            print(f"measuring {n} servers...", file=sys.stderr)
            results["sizes"].append(bench_size(n, runs, work, keys))
        print("measuring time per server...", file=sys.stderr)
        results["scaling"] = scaling(sizes, runs, work)
        results["ratios"] = ratios(results)
        results["targets"] = targets(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
