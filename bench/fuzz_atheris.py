"""Coverage-guided fuzzing of the reader, parser and checker with atheris (libFuzzer for Python).

    pip install atheris && python bench/fuzz_atheris.py -runs=100000

Any exception escaping the pipeline (`compile_bytes`: check, plan, settings) is a crash, which libFuzzer
reports with the input that caused it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from sfbgen.api import compile_bytes


def test_one_input(data: bytes) -> None:
    compile_bytes(data, "atheris.sfb")


def main() -> None:
    import shutil
    import tempfile

    # libFuzzer adds what it finds to its first corpus folder: a copy of the samples, not the samples.
    corpus = Path(tempfile.mkdtemp(prefix="sfbgen-corpus-"))
    for sample in sorted((Path(__file__).resolve().parent.parent / "samples").rglob("*.sfb")):
        shutil.copy(sample, corpus / sample.name)
    atheris.Setup(sys.argv + [str(corpus)], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
