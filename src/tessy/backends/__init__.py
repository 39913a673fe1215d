"""Model backends behind one protocol: `openai_http`, `local` (transformers), `fake`."""

from __future__ import annotations

from tessy.backends.base import Backend, Delta, GenerationRequest
from tessy.config import ModelConfig

__all__ = ["Backend", "Delta", "GenerationRequest", "make_backend"]


def make_backend(config: ModelConfig) -> Backend:
    """The backend a model config asks for (heavy imports happen only for `local`)."""
    if config.backend == "openai_http":
        from tessy.backends.openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend(config)
    if config.backend == "local":
        from tessy.backends.local import LocalBackend

        return LocalBackend(config)
    from tessy.backends.fake import SCRIPTS, FakeBackend

    script = SCRIPTS.get(config.model or config.role, SCRIPTS[config.role])
    return FakeBackend(name=f"fake-{config.role}", script=script)
