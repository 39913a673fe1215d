"""`--ray [ADDRESS]`: the shards of a run as Ray tasks over a cluster (`pip install 'tessy[ray]'`).

Each task runs one shard as an ordinary `tessy synthesize --shard K/N` process on the node Ray
picks, so the engine inside stays the async scheduler; the output must be on a path every node
sees (a shared filesystem). The driver shows one progress bar from the shard files and merges
once every task has succeeded. A task whose worker process or node dies is retried by Ray
(`max_retries`) and its new process resumes the shard from its checkpoints; a shard that fails
on its own (a server away for too long) is reported, not retried, and the rerun continues it.
Ray does the scheduling; tessy only cuts the work into shards.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

from tessy.config import RunConfig
from tessy.errors import ConfigError
from tessy.io.shards import Shard
from tessy.synthesis.summary import RunSummary
from tessy.synthesis.workers import finish, prepare, run_shard, watch

RETRIES = 3  # times Ray reruns a shard whose worker process or node died


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray: Ray is not installed: pip install 'tessy[ray]'") from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster at `address` ("auto": the one this machine belongs to, or a new local
    one); a one-line error naming the option when it cannot be reached."""
    ray = _import_ray()
    if address != "auto":  # Ray waits long on an address where nothing listens: ask first
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"--ray {address}: expected HOST:PORT (or no value: this "
                              "machine's cluster, else a new local one)")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"--ray {address}: cannot reach the Ray cluster ({reason})") from None
    try:
        ray.init(address=None if address == "auto" else address, log_to_driver=False,
                 include_dashboard=False, ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--ray {address}: cannot reach the Ray cluster ({first})") from exc
    return ray


def _run_shard_task(config_path: str, index: int, count: int, output: str,
                    env: dict[str, str]) -> int:
    """In a Ray worker: run one shard to its end; its exit code. A cancel stops it gently."""
    shard = Shard(index, count)
    with open(shard.files(output).log, "a") as fh:
        fh.write(f"ray worker pid {os.getpid()}\n")
    proc = run_shard(Path(config_path), shard, output, env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # ray.cancel: stop like SIGTERM (in-flight work checkpointed)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise


def run_on_ray(config: RunConfig, address: str, todo: int, progress: bool | str = True) -> RunSummary:
    """Run `config` as shard tasks on the Ray cluster at `address`; merge when all succeed."""
    ray = connect(address)
    try:
        n = config.workers if config.workers > 1 else max(1, len([x for x in ray.nodes()
                                                                  if x.get("Alive")]))
        config_path, env, shards = prepare(config, n)
        task = ray.remote(num_cpus=1, max_retries=RETRIES)(_run_shard_task)
        output = str(Path(config.output).resolve())
        refs = [task.remote(str(config_path.resolve()), s.index, s.count, output, env)
                for s in shards]

        def alive() -> bool:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            return len(ready) < len(refs)

        try:
            watch(alive, shards, config.output, todo, progress)
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)
            raise
        codes = []
        for ref in refs:
            try:
                codes.append(int(ray.get(ref)))
            except ray.exceptions.RayError:  # retries used up: the node kept dying
                codes.append(-1)
        return finish(config, config_path, shards, codes)
    finally:
        ray.shutdown()
