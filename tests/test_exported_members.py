"""`tessy.__all__` is the public contract."""

import tessy


def test_all_is_exported():
    assert sorted(tessy.__all__) == sorted(
        ["FinishReason", "Problem", "RoleConfig", "RunConfig", "RunSummary", "SamplingConfig", "Segment",
         "SynthesisConfig", "TessyError", "Trajectory", "__version__", "run_synthesis"])
    for name in tessy.__all__:
        assert hasattr(tessy, name)
