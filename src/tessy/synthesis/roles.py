"""A role at run time: its backend, prompt template, boundary predictor and request limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tessy.backends.base import Backend
from tessy.boundary.base import BoundaryPredictor
from tessy.config import SamplingConfig
from tessy.templates import PromptTemplate


@dataclass
class RoleRuntime:
    """Everything the engine needs to let one role write."""

    role: str
    backend: Backend
    template: PromptTemplate
    predictor: BoundaryPredictor
    sampling: SamplingConfig
    limiter: asyncio.Semaphore  # this role's requests in flight
