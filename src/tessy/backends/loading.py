"""Loading HF models and tokenizers: a directory, a hub id, or a GGUF file.

A GGUF file is dequantized by transformers on every load (about a minute for a 270M model on two
cores), so the converted model is saved once under the tessy cache and loaded from there after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from tessy.errors import ModelLoadError


def cache_dir() -> Path:
    """Where converted models live: $TESSY_CACHE or ~/.cache/tessy."""
    return Path(os.environ.get("TESSY_CACHE", Path.home() / ".cache" / "tessy"))


def _converted_path(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "converted" / f"{gguf.stem}-{key[:10]}"


def _convert_gguf(gguf: Path) -> Path:
    """Dequantize `gguf` into a HF directory once; return that directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _converted_path(gguf)
    if (target / "config.json").exists():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are already dequantized; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None  # type: ignore[assignment]
        model.config.__dict__.pop("quantization_config", None)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic: a half-written conversion is never used
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot convert GGUF {gguf}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_dir(spec: str) -> str:
    """A loadable HF directory or hub id for `spec` (converting a GGUF file first)."""
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return str(_convert_gguf(path))
    return str(path) if path.exists() else spec


def load_tokenizer(spec: str) -> Any:
    """An HF tokenizer from a directory, hub id or GGUF file."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_model_dir(spec))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load tokenizer {spec!r}: {exc}") from exc


def pick_device(device: str) -> str:
    """Resolve `auto` to cuda, mps or cpu."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_pretrained(spec: str, device: str = "auto", task: str = "CausalLM",
                    where: str = "") -> tuple[Any, Any, str]:
    """(model, tokenizer, directory) ready for inference on `device`; `task` picks the
    AutoModelFor<task> class; `where` prefixes the error message."""
    import torch
    import transformers

    directory = resolve_model_dir(spec)
    device = pick_device(device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    auto_class = getattr(transformers, f"AutoModelFor{task}")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
        model = auto_class.from_pretrained(directory, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{where}cannot load model {spec!r}: {exc}") from exc
    return model.to(device).eval(), tokenizer, directory


def load_causal_lm(spec: str, device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) ready for inference on `device`."""
    model, tokenizer, _ = load_pretrained(spec, device)
    return model, tokenizer
