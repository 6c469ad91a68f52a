"""Shared fixtures: paths, the PowerShell parser, compiled samples and a test signing key."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
VALID_SAMPLES = sorted(SAMPLES.glob("*.sfb"))


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is not beside the checkout)")
    return path


@pytest.fixture(scope="session")
def pwsh():
    """A tree-sitter parser for PowerShell, and helpers to walk what it parses."""
    from tests import pwsh_tree

    return pwsh_tree


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """Every valid sample compiled once, unsigned: {sample name: CompileResult}."""
    from sfbgen.compiler import compile_file

    out = tmp_path_factory.mktemp("compiled")
    return {sample.stem: compile_file(sample, out / sample.stem) for sample in VALID_SAMPLES}


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory):
    """A self-signed code-signing key (RSA 2048), with its certificate written as PEM for osslsigncode."""
    from cryptography.hazmat.primitives import serialization

    from sfbgen.authenticode import SigningKey
    from sfbgen.signing import make_codesign_certificate

    key, cert = make_codesign_certificate("sfbgen test signer", key_size=2048)
    folder = tmp_path_factory.mktemp("signer")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    signer = SigningKey(cert, key)
    signer.pem = folder / "cert.pem"
    signer.key_pem = folder / "key.pem"
    return signer


def require_osslsigncode() -> str:
    path = shutil.which("osslsigncode")
    if path is None:
        pytest.fail("osslsigncode is not installed: .ci/run installs it (apt-get install osslsigncode)")
    return path


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
