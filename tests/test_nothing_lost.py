"""Nothing is lost: a compile killed at any moment leaves the old bundle or the new one, whole;
no secret reaches the output."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from bench.generate import generate
from sfbgen.verify import verify_bundle
from tests.conftest import SAMPLES

CLI = [sys.executable, "-m", "sfbgen"]


def _bundle_state(out):
    """'A', 'B' or a description of what is wrong with the folder."""
    if not out.is_dir():
        return "missing"
    reports = verify_bundle(out, [])
    bad = [r for r in reports if not r.ok]
    if bad:
        return f"broken: {bad[:3]}"
    topology = json.loads((out / "MANIFEST.json").read_text())["topology"]
    return topology


@pytest.mark.slow
def test_sigkill_during_compile_never_leaves_a_mix(tmp_path):
    a, b = tmp_path / "a.sfb", tmp_path / "b.sfb"
    a.write_text(generate(200, seed=1).replace('topology "Scale"', 'topology "A"'))
    b.write_text(generate(240, seed=2).replace('topology "Scale"', 'topology "B"').replace("scale.example", "other.example"))
    out = tmp_path / "out"
    subprocess.run(CLI + ["compile", str(a), "--out", str(out)], check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(CLI + ["compile", str(b), "--out", str(out)], check=True, capture_output=True)
    duration = time.perf_counter() - started
    rng = random.Random(7)
    seen = set()
    for attempt in range(14):
        source = a if attempt % 2 else b
        process = subprocess.Popen(CLI + ["compile", str(source), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, duration * 1.1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        state = _bundle_state(out)
        assert state in ("A", "B"), f"kill {attempt}: {state}"
        seen.add(state)
    # The next run cleans up whatever a killed run left beside the bundle.
    subprocess.run(CLI + ["compile", str(a), "--out", str(out)], check=True, capture_output=True)
    assert _bundle_state(out) == "A"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".sfbgen-")] == []


def test_secrets_never_reach_the_output(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    password = "S3cret-PFX-Pa55word-7c1f"
    env = dict(os.environ, SFBGEN_PFX_PASSWORD=password)
    pfx = tmp_path / "codesign.pfx"
    subprocess.run(CLI + ["codesign-cert", "--out", str(pfx)], env=env, check=True, capture_output=True)
    out = tmp_path / "out"
    run = subprocess.run(CLI + ["compile", str(SAMPLES / "contoso.sfb"), "--out", str(out), "--sign-pfx", str(pfx)],
                         env=env, capture_output=True)
    assert run.returncode == 0, run.stderr
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
    pem_lines = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).splitlines()[1:-1]
    outputs = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    outputs["stdout+stderr"] = run.stdout + run.stderr
    found = [(name, str(path)) for path, data in outputs.items() for name, secret in secrets.items() if secret in data]
    found += [("pem-line", str(path)) for path, data in outputs.items() for line in pem_lines if line in data]
    assert found == []
    assert len(outputs) > 40
