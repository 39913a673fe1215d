"""Build llama.cpp's `llama-server` once, from the MIT-licensed tree inside the llama-cpp-python
sdist on PyPI (no hub, no git): configure, compile the server target only, keep the binary.

Portable on x86-64: AVX2/FMA/F16C and never `-march=native`, because a native build on a CPU
with AMX uses AMX tiles, which a VM may not enable (every request then dies in `ldtilecfg`).
The binary lives under the tessy cache (`llama.cpp/<version>-<flavour>/llama-server`); a finished
build is moved into place in one rename, so a killed build is never found half-written.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tessy.errors import ConfigError

LLAMA_CPP_PYTHON = "0.3.36"  # its vendor/llama.cpp is the server's source
ENV_BINARY = "TESSY_LLAMA_SERVER"  # a llama-server of the user's own, used instead
PORTABLE_X86 = ("-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON",
                "-DGGML_F16C=ON")
# Static, server only: no curl (models are local files), no tests or examples.
COMMON = ("-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF",
          "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON")
HINT = f"run `tessy setup` (or `make models`), or set {ENV_BINARY} to a llama-server binary"


def flavour() -> str:
    """Which CPU features the build targets."""
    return "x86-64-avx2" if platform.machine() in ("x86_64", "AMD64") else platform.machine()


def cmake_flags() -> tuple[str, ...]:
    return COMMON + (PORTABLE_X86 if flavour() == "x86-64-avx2" else ())


def built_binary() -> Path:
    """Where `build` puts the server."""
    from tessy.backends.loading import cache_dir

    return cache_dir() / "llama.cpp" / f"{LLAMA_CPP_PYTHON}-{flavour()}" / "llama-server"


def find_server() -> Path:
    """The llama-server to run: $TESSY_LLAMA_SERVER, else the one `build` made."""
    given = os.environ.get(ENV_BINARY)
    path = Path(given).expanduser() if given else built_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = f"{ENV_BINARY}={given}" if given else str(path)
        raise ConfigError(f"no llama-server at {where}: {HINT}")
    return path


def build(jobs: int | None = None, echo=print) -> Path:
    """Build the server unless it is there; return its path. `echo` gets progress lines."""
    target = built_binary()
    if target.is_file():
        return target
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise ConfigError(f"building llama-server needs `{tool}` on PATH (e.g. apt install "
                              "cmake g++, or pip install cmake)")
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-build-", dir=target.parent.parent) as tmp:
        work = Path(tmp)
        source = unpack(download_sdist(work, echo), work)
        build_dir = work / "build"
        _run(["cmake", "-S", str(source), "-B", str(build_dir), *cmake_flags()], work / "configure.log",
             echo, "configure")
        _run(["cmake", "--build", str(build_dir), "--target", "llama-server", "-j",
              str(jobs or os.cpu_count() or 1)], work / "build.log", echo, "compile")
        staged = work / "bin"
        staged.mkdir()
        shutil.copy2(build_dir / "bin" / "llama-server", staged / "llama-server")
        if target.parent.exists():  # another build won the race
            return target
        os.rename(staged, target.parent)
    echo(f"llama-server built: {target}")
    return target


def download_sdist(work: Path, echo) -> Path:
    echo(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON} sdist (llama.cpp's source)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(work), f"llama-cpp-python=={LLAMA_CPP_PYTHON}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(work.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode or not found:
        last = (done.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
        raise ConfigError(f"cannot download llama-cpp-python=={LLAMA_CPP_PYTHON}: {last}")
    return found[0]


def unpack(sdist: Path, work: Path, parts: tuple[str, ...] = ("",)) -> Path:
    """Extract the vendored llama.cpp tree (only the paths in it that start with one of `parts`);
    return its root."""
    with tarfile.open(sdist) as tar:
        root = tar.getnames()[0].split("/")[0]
        prefix = f"{root}/vendor/llama.cpp/"
        members = [m for m in tar.getmembers()
                   if m.name.startswith(prefix) and m.name[len(prefix):].startswith(parts)]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(work, members=members, filter="data")
        else:  # Python < 3.11.4 has no extraction filters: plain files and dirs, inside only
            tar.extractall(work, members=[m for m in members if (m.isfile() or m.isdir())
                                          and ".." not in m.name.split("/")])
    return work / root / "vendor" / "llama.cpp"


def _run(cmd: list[str], log: Path, echo, step: str) -> None:
    """Run a build step, echoing cmake's `[ NN%]` progress at most every 10 points."""
    echo(f"llama-server: {step} ({' '.join(cmd[:3])} ...)")
    shown = -10
    with open(log, "w") as fh, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                  text=True) as proc:
        for line in proc.stdout:
            fh.write(line)
            m = re.match(r"\[\s*(\d+)%\]", line)
            if m and int(m.group(1)) >= shown + 10:
                shown = int(m.group(1))
                echo(f"llama-server: {step} {shown}%")
    if proc.returncode:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise ConfigError(f"llama-server {step} failed (exit {proc.returncode}): "
                          + " | ".join(tail))
