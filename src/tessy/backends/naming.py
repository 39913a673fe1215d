"""What to call a model in records and cards: what it is, never where it lies on this machine.

A hub id stays as it is; a GGUF file is named by its `general.name` and quantisation (the
embedded models by the hub id they were quantised from); an HF directory by the hub id it was
saved from, else by its base name. Cards pass every value through `public` as well, so no
absolute path of the user's machine reaches a card.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# The embedded default's GGUF files (tessy.embedded) and the hub models they quantise.
EMBEDDED_HUB_IDS = {"SmolLM2-135M-Instruct.Q4_1.gguf": "HuggingFaceTB/SmolLM2-135M-Instruct",
                    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
                    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": "Qwen/Qwen2.5-Coder-0.5B-Instruct"}
SMOLLM2_ALIAS = "smollm2"  # the training commands' name of the embedded student
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_hub_id(spec: str) -> bool:
    """`org/name` that is not a path on this machine."""
    return bool(_HUB_ID.fullmatch(spec)) and not Path(spec).expanduser().exists()


def public(value: str) -> str:
    """`value` as a card may show it: an absolute or home path becomes its base name."""
    if value.startswith(("/", "~", "\\")) or re.match(r"[A-Za-z]:[\\/]", value):
        return Path(value).name or value
    return value


def _saved_from(directory: Path) -> str | None:
    """The hub id an HF directory's config says it was loaded from, if it is one."""
    try:
        source = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) and _HUB_ID.fullmatch(source) else None


def _gguf_name(path: Path) -> str:
    """`general.name (QUANT GGUF)` from the file's metadata; its stem when unreadable."""
    hub = EMBEDDED_HUB_IDS.get(path.name)
    try:
        from gguf import GGUFReader, LlamaFileType

        fields = GGUFReader(str(path)).fields
        name = hub or fields["general.name"].contents()
        quant = LlamaFileType(fields["general.file_type"].contents()).name.removeprefix("MOSTLY_")
    except (ImportError, OSError, KeyError, ValueError):
        return hub or path.stem
    return f"{name} ({quant} GGUF)"


def model_name(spec: str | None) -> str:
    """What a model is: its hub id, its GGUF name and quantisation, or its base name."""
    if not spec:
        return "local"
    if spec == SMOLLM2_ALIAS:
        return EMBEDDED_HUB_IDS["SmolLM2-135M-Instruct.Q4_1.gguf"]
    path = Path(spec).expanduser()
    if not path.exists():
        return public(spec)  # a hub id (or a model that is not here: its name, not its path)
    if path.suffix == ".gguf":
        return _gguf_name(path)
    return _saved_from(path) or path.resolve().name


def hub_id(spec: str) -> str | None:
    """The hub id a model was made from, for a card's `base_model` (None: not known)."""
    if spec == SMOLLM2_ALIAS:
        return EMBEDDED_HUB_IDS["SmolLM2-135M-Instruct.Q4_1.gguf"]
    if is_hub_id(spec):
        return spec
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        return EMBEDDED_HUB_IDS.get(path.name)
    return _saved_from(path) if path.is_dir() else None
