"""Write a fine-tuned HF model as a GGUF file, so llama-server serves it (`tessy sft --gguf`).

The converter is llama.cpp's own `convert_hf_to_gguf.py` with its `conversion/` and `gguf-py/`
packages, from the same MIT-licensed tree as the server (the llama-cpp-python sdist on PyPI):
extracted once into the tessy cache, run in a subprocess because it is a script that owns its
process (logging, argv) and is pinned to its own gguf-py, not the `gguf` installed here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tessy.errors import ConfigError
from tessy.serving.build import LLAMA_CPP_PYTHON, download_sdist, unpack

SCRIPT = "convert_hf_to_gguf.py"
PARTS = (SCRIPT, "conversion/", "gguf-py/")  # what the script imports from its tree


def converter_dir() -> Path:
    """Where the converter lives in the tessy cache."""
    from tessy.backends.loading import cache_dir

    return cache_dir() / "llama.cpp" / f"{LLAMA_CPP_PYTHON}-convert"


def converter(echo=print) -> Path:
    """The converter's tree (extracted from the sdist unless it is there already)."""
    target = converter_dir()
    if (target / SCRIPT).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-convert-", dir=target.parent) as tmp:
        work = Path(tmp)
        tree = unpack(download_sdist(work, echo), work, PARTS)
        if not target.exists():  # else another process won the race
            os.rename(tree, target)
    return target


def to_gguf(model_dir: Path, output: Path, outtype: str = "f16") -> Path:
    """Convert the HF model in `model_dir` to `output` (a .gguf file, written whole or not at all)."""
    tree = converter()
    partial = output.with_name(output.name + ".partial")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "gguf-py"), str(tree)])
    cmd = [sys.executable, str(tree / SCRIPT), str(model_dir), "--outtype", outtype,
           "--outfile", str(partial)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode or not partial.is_file():
        partial.unlink(missing_ok=True)
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ConfigError(f"converting {model_dir} to GGUF failed: "
                          f"{lines[-1] if lines else f'exit {done.returncode}'}")
    os.replace(partial, output)
    return output
