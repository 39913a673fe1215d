"""`--ray [ADDRESS]`: the shards of a run as Ray tasks over a cluster (`pip install 'tessy[ray]'`).

Each task runs one shard as an ordinary `tessy synthesize --shard K/N` process on the node Ray
picks, so the engine inside stays the async scheduler; the output must be on a path every node
sees (a shared filesystem). The driver shows one progress bar from the shard files and merges
once every task has succeeded. Tasks get only the environment a shard needs (`shard_env`).

A killed worker process or a dead node costs only a retry of its shard: Ray runs the task
again (`max_retries`), and the new process resumes the shard from its checkpoints once the old
one has let go of the shard's lock, so every problem is written once. When this driver's own
node dies, the driver loses its link to every unfinished task (it owns them): it joins the
cluster again, through another node on its machine, and submits those shards anew
(`ShardTasks`); with no node left there, they are reported and the rerun continues them. A
shard that fails on its own (a server away for too long) is reported, not retried, and the
rerun continues it. Ray does the scheduling; tessy only cuts the work into shards.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tessy.config import RunConfig
from tessy.errors import ConfigError
from tessy.io.shards import Shard, locked
from tessy.synthesis.summary import RunSummary
from tessy.synthesis.workers import POLL_SECONDS, finish, prepare, run_shard, watch

RETRIES = 3  # times a shard is run again after its worker process or node died
REJOIN_SECONDS = 120.0  # to join the cluster again after this driver's node died
LOCK_SECONDS = 300.0  # for a shard's previous process to exit (its node's death noticed)

Say = Callable[[str, str], None]  # (text, level), as `run_synthesis`'s


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
        raise ConfigError(f"--ray {address}: cannot reach the Ray cluster ({_first_line(exc)})") from exc
    return ray


def _run_shard_task(config_path: str, index: int, count: int, output: str,
                    env: dict[str, str]) -> int:
    """In a Ray worker: run one shard to its end; its exit code. A cancel stops it gently."""
    shard = Shard(index, count)
    files = shard.files(output)
    with open(files.log, "a") as fh:
        fh.write(f"ray worker pid {os.getpid()}\n")
    _await_lock(files.output)
    proc = run_shard(Path(config_path), shard, output, env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # ray.cancel: stop like SIGTERM (in-flight work checkpointed)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise


def _await_lock(out: Path) -> None:
    """A shard run again may find its previous process still at work (its node's death not
    noticed yet, its task not stopped yet by Ray): that one holds the shard's lock until it
    exits, and the new one starts then. Past LOCK_SECONDS the shard reports the lock itself."""
    deadline = time.monotonic() + LOCK_SECONDS
    while time.monotonic() < deadline:
        try:
            with locked(out):
                return
        except ConfigError:
            time.sleep(POLL_SECONDS)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _remote(ray: Any) -> Any:
    """The shard task of this Ray session; Ray reruns it when its worker or node dies."""
    return ray.remote(num_cpus=1, max_retries=RETRIES)(_run_shard_task)


class ShardTasks:
    """Every shard's task on the cluster until each has an exit code (negative: lost)."""

    def __init__(self, ray: Any, address: str, args: tuple[str, str, dict[str, str]],
                 shards: list[Shard], say: Say) -> None:
        self.ray, self.address, self.say = ray, address, say
        self.args = args  # the config file, the output, the environment
        self.codes: dict[Shard, int] = {}
        self.rejoined = dict.fromkeys(shards, 0)  # times submitted anew after a rejoin
        self.task = _remote(ray)
        self.refs = {shard: self._submit(shard) for shard in shards}

    def _submit(self, shard: Shard) -> Any:
        config_path, output, env = self.args
        return self.task.remote(config_path, shard.index, shard.count, output, env)

    def poll(self) -> bool:
        """Collect the tasks that ended; whether any is still running."""
        if not self.refs:
            return False
        refs = list(self.refs.values())
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        lost = False
        for shard, ref in list(self.refs.items()):
            if ref in ready:
                try:
                    self.codes[shard] = int(self.ray.get(ref))
                    del self.refs[shard]
                except self.ray.exceptions.LocalRayletDiedError:
                    lost = True
                except self.ray.exceptions.RayError as exc:  # Ray's retries used up
                    self.say(f"--ray: shard {shard.index}/{shard.count} lost: "
                             f"{type(exc).__name__}: {_first_line(exc)}", "warning")
                    self.codes[shard] = -1
                    del self.refs[shard]
        if lost:
            self._rejoin()
        return bool(self.refs)

    def _rejoin(self) -> None:
        """This driver's node died, and its link with every unfinished task (those elsewhere
        may run on a while): join the cluster again (once it has seen the death: a moment)
        and submit each unfinished shard anew, RETRIES times at most; it resumes."""
        self.ray.shutdown()
        deadline = time.monotonic() + REJOIN_SECONDS
        while True:
            try:
                connect(self.address)
                break
            except ConfigError as exc:
                if time.monotonic() > deadline:  # the run reports its shards; a rerun continues
                    self.say(str(exc), "warning")
                    self.codes |= dict.fromkeys(self.refs, -1)
                    self.refs = {}
                    return
                time.sleep(1.0)
        names = ", ".join(f"{s.index}/{s.count}" for s in self.refs)
        self.say(f"--ray: this driver's Ray node died; joined the cluster again and submitted "
                 f"the unfinished shards anew ({names})", "warning")
        self.task = _remote(self.ray)
        for shard in list(self.refs):
            self.rejoined[shard] += 1
            if self.rejoined[shard] > RETRIES:
                self.codes[shard] = -1
                del self.refs[shard]
            else:
                self.refs[shard] = self._submit(shard)

    def cancel(self) -> None:
        for ref in self.refs.values():
            self.ray.cancel(ref)


def run_on_ray(config: RunConfig, address: str, todo: int, progress: bool | str = True,
               say: Say = lambda text, level: None) -> RunSummary:
    """Run `config` as shard tasks on the Ray cluster at `address`; merge when all succeed."""
    ray = connect(address)
    try:
        n = config.workers if config.workers > 1 else max(1, len([x for x in ray.nodes()
                                                                  if x.get("Alive")]))
        config_path, env, shards = prepare(config, n)
        output = str(Path(config.output).resolve())
        tasks = ShardTasks(ray, address, (str(config_path.resolve()), output, env), shards, say)
        try:
            watch(tasks.poll, shards, config.output, todo, progress)
        except KeyboardInterrupt:
            tasks.cancel()
            raise
        return finish(config, config_path, shards, [tasks.codes[s] for s in shards])
    finally:
        ray.shutdown()
