"""A role at run time: its backend, prompt template, boundary predictor and request limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tessy.backends import Backend, open_backend
from tessy.boundary import load_predictor
from tessy.boundary.base import BoundaryPredictor
from tessy.config import RoleConfig, RunConfig, SamplingConfig
from tessy.records import ROLES
from tessy.serving.llama_server import shared_threads
from tessy.templates import PromptTemplate, resolve_template


@dataclass
class RoleRuntime:
    """Everything the engine needs to let one role write."""

    role: str
    backend: Backend
    template: PromptTemplate
    predictor: BoundaryPredictor
    sampling: SamplingConfig
    limiter: asyncio.Semaphore  # this role's requests in flight
    step_tokens: int = 20  # k per request in step mode


@asynccontextmanager
async def open_roles(config: RunConfig) -> AsyncIterator[dict[str, RoleRuntime]]:
    """Both roles, started (models loaded or servers probed) for the block and closed after it;
    a role that fails to start closes the ones already started."""
    async with AsyncExitStack() as stack:
        roles: dict[str, RoleRuntime] = {}
        models: dict[tuple[str, str, str, float], BoundaryPredictor] = {}
        idle, threads = idle_role(config), server_threads(config)
        torch_threads = predictor_threads(config)
        for role in ROLES:
            rc = config.role(role)
            if role == idle:  # it writes nothing in a single-role run: load no model for it
                rc = RoleConfig(role=role, backend="fake")
            elif role in threads:
                rc = replace(rc, threads=threads[role])
            backend = await stack.enter_async_context(open_backend(rc))
            template = resolve_template(rc.template, tokenizer=backend.tokenizer,
                                        model_name=backend.name, where=f"--{role}-template")
            key = (rc.predictor, rc.predictor_device, rc.predictor_mode, rc.predictor_verify)
            if rc.predictor == "lexicon" or key not in models:  # one copy of a model both use
                models[key] = load_predictor(rc.predictor, role, *key[1:], threads=torch_threads)
            predictor = models[key]
            roles[role] = RoleRuntime(role, backend, template, predictor, rc.sampling,
                                      asyncio.Semaphore(rc.concurrency), rc.step_tokens)
        yield roles


def idle_role(config: RunConfig) -> str | None:
    """The role that writes nothing in a single-role run, if any."""
    return {"teacher-only": "student", "student-only": "teacher"}.get(config.synthesis.strategy)


def managed_roles(config: RunConfig) -> list[str]:
    """The roles that write and run a llama-server tessy starts on this machine."""
    idle = idle_role(config)
    return [r for r in ROLES if r != idle and config.role(r).backend == "llama_server"]


def server_threads(config: RunConfig) -> dict[str, int]:
    """Threads of the roles' managed llama-servers left at 0 (every core) when both roles that
    write run one here: they share the cores (serving.llama_server.shared_threads). A missing
    model file is left to the server's start, which names it."""
    models = {r: str(config.role(r).model) for r in managed_roles(config)}
    managed: dict[str, str | Path] = {r: m for r, m in models.items() if Path(m).is_file()}
    if len(managed) < 2:
        return {}
    shared = shared_threads(managed)
    return {r: shared[r] for r in managed if not config.role(r).threads}


def predictor_threads(config: RunConfig) -> int:
    """Torch's CPU threads for model predictors: as configured, else one while a role that
    writes runs a managed llama-server here (it takes cores, and torch's threads spin against
    it), else 0 (torch's default)."""
    configured = max(config.role(r).predictor_threads for r in ROLES)
    return configured or int(bool(managed_roles(config)))
