"""tessy: Teacher-Student Cooperative Data Synthesis (TESSY, arXiv 2604.14164)."""

from __future__ import annotations

__version__ = "0.1.0"

from tessy.config import RoleConfig, RunConfig, SamplingConfig, SynthesisConfig  # noqa: E402
from tessy.errors import TessyError  # noqa: E402
from tessy.records import FinishReason, Problem, Segment, Trajectory  # noqa: E402
from tessy.synthesis.run import run_synthesis  # noqa: E402
from tessy.synthesis.summary import RunSummary  # noqa: E402

__all__ = [
    "FinishReason",
    "Problem",
    "RoleConfig",
    "RunConfig",
    "RunSummary",
    "SamplingConfig",
    "Segment",
    "SynthesisConfig",
    "TessyError",
    "Trajectory",
    "__version__",
    "run_synthesis",
]
