"""Model backends behind one protocol (`base.Backend`), found by name in `registry.BACKENDS`."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tessy.backends.base import Backend, Delta, GenerationRequest
from tessy.backends.registry import BACKENDS
from tessy.config import RoleConfig
from tessy.errors import ConfigError

__all__ = ["Backend", "Delta", "GenerationRequest", "make_backend", "open_backend"]


def make_backend(config: RoleConfig) -> Backend:
    """The backend a role config asks for (its module is imported only now)."""
    target = BACKENDS.get(config.backend)
    if target is None:
        raise ConfigError(f"{config.role}.backend: unknown backend {config.backend!r}; "
                          f"choose from {', '.join(BACKENDS)}")
    module, _, name = target.partition(":")
    backend: Backend = getattr(importlib.import_module(module), name)(config)
    return backend


@asynccontextmanager
async def open_backend(config: RoleConfig) -> AsyncIterator[Backend]:
    """A started backend for the block, closed after it (also when starting it fails)."""
    backend = make_backend(config)
    try:
        await backend.start()
        yield backend
    finally:
        await backend.close()
