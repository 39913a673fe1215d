"""Every file of one run, named in one place from its output `OUT`.

Beside `OUT` (the records): `OUT.errors.jsonl` (error rows), `OUT.config.json` (the effective
config), `OUT.run.json` (every attempt's figures), `OUT.partial.jsonl` (turn checkpoints),
`OUT.lock` (held while a shard is written), `OUT.log` (a worker's output) and the folder
`OUT.shards/` with `K-of-N.jsonl` (a shard's records: a run of its own, with the same files
beside it) and `workers.config.json` (the config the worker processes read). These names are
the on-disk format: runs already on disk resume by them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHARDS_CONFIG = "workers.config.json"


@dataclass(frozen=True)
class RunFiles:
    """The files of the run writing `output`."""

    output: Path

    def __init__(self, output: str | Path) -> None:
        object.__setattr__(self, "output", Path(output))

    def _beside(self, suffix: str) -> Path:
        return self.output.with_name(self.output.name + suffix)

    @property
    def errors(self) -> Path:
        """The error rows (created on the first error: a clean run leaves none)."""
        return self._beside(".errors.jsonl")

    @property
    def config(self) -> Path:
        """The run's effective config, with its hash."""
        return self._beside(".config.json")

    @property
    def run_record(self) -> Path:
        """The figures of every attempt (`io/run_record.py`)."""
        return self._beside(".run.json")

    @property
    def checkpoints(self) -> Path:
        """The turn checkpoints of in-flight problems (`synthesis/checkpoint.py`)."""
        return self._beside(".partial.jsonl")

    @property
    def lock(self) -> Path:
        """The lock file held while one process writes the output."""
        return self._beside(".lock")

    @property
    def log(self) -> Path:
        """A worker's stdout and stderr."""
        return self._beside(".log")

    @property
    def shards(self) -> Path:
        """The folder of the run's shards."""
        return self._beside(".shards")

    @property
    def shards_config(self) -> Path:
        """The config file the worker processes of `--workers`/`--ray` read."""
        return self.shards / SHARDS_CONFIG

    def written(self) -> tuple[Path, ...]:
        """The files a run writes beside the output (checked for links before it starts)."""
        return (self.errors, self.config, self.run_record, self.checkpoints)

    def shard(self, index: int, count: int) -> RunFiles:
        """The files of shard `index` of `count` (a run of its own inside `shards`)."""
        return RunFiles(self.shards / f"{index}-of-{count}.jsonl")
