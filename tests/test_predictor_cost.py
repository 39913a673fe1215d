"""The predictor-cost benchmark's shadow predictor serves the engine as any predictor does."""

from __future__ import annotations

from benchmarks.predictor_cost import Shadow

from conftest import fake_roles
from tessy.boundary import LexiconPredictor
from tessy.config import SynthesisConfig
from tessy.records import Problem
from tessy.synthesis.cooperate import Cooperation


async def test_a_shadow_drives_a_run_and_logs_both_cuts_of_each_call():
    log: list = []
    roles = fake_roles()
    for role, rt in roles.items():
        rt.predictor = Shadow(LexiconPredictor(role), LexiconPredictor(role), role, log)
    reference = await Cooperation(fake_roles(), SynthesisConfig()).run(Problem("p", "17 + 25?"))
    traj = await Cooperation(roles, SynthesisConfig()).run(Problem("p", "17 + 25?"))
    assert traj.segments == reference.segments  # the reference's labels drive the run
    assert log and all(a == b for a, b, _ in log)  # the same predictor in the shadow agrees
