"""One run's output spread over shards, for `--shard K/N` (Slurm arrays, any scheduler) and
`--workers N` (processes on one machine), merged into the output exactly once.

A shard owns the problems whose id hashes to it (CRC-32 of the id, mod N), and writes
`OUT.shards/K-of-N.jsonl` (with its own errors, checkpoints and summary beside it). Every shard
run first reads the finished ids of `OUT` and of every shard file there, whatever its N, so
changing N between runs loses and repeats nothing. `merge` appends the shard records that `OUT`
does not hold yet, fsyncs, and only then deletes the shard files: a merge killed half-way is
finished by the next one, without duplicates. A shard being written is locked (`flock`), so two
processes never write one shard and a merge never takes a shard that is still running.
"""

from __future__ import annotations

import fcntl
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from tessy.errors import ConfigError
from tessy.io.jsonl import AppendLog, read_ids, read_jsonl, record_id, repair_tail
from tessy.io.run_files import RunFiles

SHARD_FILE = re.compile(r"^(\d+)-of-(\d+)\.jsonl$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N` with 1 <= K <= N; a one-line error naming the option otherwise."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ConfigError(f"shard: {text!r}: expected K/N, e.g. 3/8")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 1 <= index <= count:
            raise ConfigError(f"shard: {text!r}: K must be between 1 and N")
        return cls(index, count)

    def owns(self, problem_id: str) -> bool:
        """Whether this shard writes `problem_id` (stable across runs and machines)."""
        return zlib.crc32(problem_id.encode()) % self.count == self.index - 1

    def output(self, output: str | Path) -> Path:
        """Where this shard writes its records."""
        return self.files(output).output

    def files(self, output: str | Path) -> RunFiles:
        """This shard's files: its records and those beside them."""
        return RunFiles(output).shard(self.index, self.count)


def shard_dir(output: str | Path) -> Path:
    """The directory of `output`'s shards."""
    return RunFiles(output).shards


def shard_outputs(output: str | Path) -> list[Path]:
    """The record files of every shard of `output`, of any N."""
    folder = shard_dir(output)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if SHARD_FILE.match(p.name))


def finished_ids(output: str | Path) -> set[str]:
    """Ids with a record in `output` or in any of its shards."""
    done = read_ids(Path(output))
    for path in shard_outputs(output):
        done |= read_ids(path)
    return done


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold `path`'s lock file for the block; a one-line error when another process has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(RunFiles(path).lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{path}: another tessy process is writing it") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def merge(output: str | Path) -> int:
    """Move every shard's records into `output`, each id once; the number of records moved.
    Error rows move to `output`'s error file; checkpoints of unfinished problems are dropped
    (their problems are redone from the start by the next run)."""
    output = Path(output)
    shards = shard_outputs(output)
    if not shards:
        return 0
    moved = 0
    has_errors = any(RunFiles(p).errors.exists() for p in shards)
    errors_out = RunFiles(output).errors
    with AppendLog(output) as records, (AppendLog(errors_out) if has_errors else nullcontext()) as errors:
        done = read_ids(output)
        for path in shards:
            with locked(path):
                repair_tail(path)  # a shard killed mid-write may have left half a line
                for lineno, row in read_jsonl(path):
                    rid = record_id(row, f"{path}:{lineno}")
                    if rid not in done:
                        records.append(row, fsync=False)
                        done.add(rid)
                        moved += 1
                errors_path = RunFiles(path).errors
                if errors_path.exists() and errors_path.stat().st_size:
                    repair_tail(errors_path)
                    for lineno, row in read_jsonl(errors_path):
                        if record_id(row, f"{errors_path}:{lineno}") not in done:
                            errors.append(row, fsync=False)
                records.sync()
                if errors is not None:  # a clean run leaves no error file
                    errors.sync()
                for leftover in path.parent.glob(path.name + "*"):
                    leftover.unlink()
    folder = shard_dir(output)
    if not any(folder.iterdir()):
        folder.rmdir()
    return moved
