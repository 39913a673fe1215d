"""A real 3-node Ray cluster on loopback running `tessy synthesize --ray`, one shard task per
node, with the faults a cluster has in one run: the Ray worker process of one shard is
SIGKILLed and the node of another is removed; once Ray has rerun the first, the raylet of the
node the driver is attached to is killed too (a Ray process of that node dying, an agent too,
takes the node with it, and once took every shard of the run with it). Run inside a
loopback-only network namespace (tests/test_ray.py does: `unshare -n`, `ip link set lo up`),
where every node is 127.0.0.1. The run must finish by itself, the hit shards run again and
resumed, with the records of a clean run, each problem once.

    python -m tests.ray_cluster_run WORKDIR   # prints RAY OK and a JSON line
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from fake_server import FakeOpenAIServer
from helpers import ids, problems_file, records, trajectories, wait_for
from tessy.backends.fake import SCRIPTS
from tessy.io.shards import Shard, shard_outputs

N_PROBLEMS = 90
SHARDS = 3
TOKEN_DELAY = 0.01  # a shard takes ~10 s: the faults land mid-shard


def command(problems: Path, out: Path, t: FakeOpenAIServer, s: FakeOpenAIServer,
            *extra: str) -> list[str]:
    return [sys.executable, "-m", "tessy", "synthesize", str(problems), "-o", str(out), "-q",
            "--teacher", t.url, "--student", s.url, "--teacher-template", "qwen3",
            "--student-template", "qwen3", *extra]


def worker_pids(out: Path, index: int) -> list[int]:
    """The Ray worker processes that have run shard `index`, in order (one per attempt)."""
    try:  # not there yet, or gone: the finished run merges the shards and removes their files
        text = Shard(index, SHARDS).files(out).log.read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in re.findall(r"ray worker pid (\d+)", text)]


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])


def main() -> None:
    work = Path(sys.argv[1])
    problems = problems_file(work, N_PROBLEMS)
    out = work / "o.jsonl"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    others = [cluster.add_node(num_cpus=1) for _ in range(2)]  # one shard task per node: 1 CPU each
    ray.init(address=cluster.address, log_to_driver=False)
    nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
    assert nodes == ["127.0.0.1"] * 3, nodes  # three nodes, loopback only
    ray.shutdown()  # the driver below is its own Ray client (on the head node: Ray's choice)
    shards = range(1, SHARDS + 1)
    seen: dict[int, set[int]] = {k: set() for k in shards}  # worker processes of each shard
    try:
        with FakeOpenAIServer(script=SCRIPTS["teacher"], token_delay=TOKEN_DELAY) as t, \
                FakeOpenAIServer(script=SCRIPTS["student"], token_delay=TOKEN_DELAY) as s, \
                open(work / "driver.out", "w+") as log:
            start = time.monotonic()
            driver = subprocess.Popen(command(problems, out, t, s, "--concurrency", "3",
                                              "--workers", str(SHARDS), "--ray", cluster.address),
                                      stdout=log, stderr=subprocess.STDOUT, text=True)
            # Every shard at work, some records durable: then a fault for each.
            wait_for(lambda: all(worker_pids(out, k) for k in shards)
                     and sum(len(ids(p)) for p in shard_outputs(out)) >= 3, timeout=120.0)
            node_of = {k: parent(worker_pids(out, k)[0]) for k in shards}  # its raylet
            raylets = [n.all_processes["raylet"][0].process.pid for n in [cluster.head_node, *others]]
            head, b, c = (next(k for k in shards if node_of[k] == pid) for pid in raylets)
            os.kill(worker_pids(out, b)[0], signal.SIGKILL)
            cluster.remove_node(others[1], allow_graceful=False)
            wait_for(lambda: len(worker_pids(out, b)) > 1, timeout=60.0)  # Ray reran it
            # The removed node's shard waits for a CPU still: with the driver's node gone, only
            # the driver joining the cluster again can run it.
            os.kill(raylets[0], signal.SIGKILL)
            while driver.poll() is None:  # the run ends by itself; meanwhile, who ran each shard
                for k in shards:
                    seen[k] |= set(worker_pids(out, k))
                time.sleep(0.05)
                assert time.monotonic() - start < 240, "the run did not end"
            took = time.monotonic() - start
            log.seek(0)
            said = log.read()
            assert driver.returncode == 0, said
            assert "joined the cluster again" in said, said  # and did not fail the shards
            clean = subprocess.run(command(problems, work / "clean.jsonl", t, s, "--concurrency",
                                           "30"), text=True, capture_output=True, timeout=120)
            assert clean.returncode == 0, clean.stderr
    finally:
        cluster.shutdown()
    # The shards of the killed worker and the removed node were run again; the driver's node's
    # shard too unless its process, cut off from the raylet, finished the shard by itself.
    assert len(seen[b]) >= 2 and len(seen[c]) >= 2, seen
    got = ids(out)
    assert sorted(got) == sorted(f"q{i}" for i in range(N_PROBLEMS)), got
    assert len(got) == len(set(got))  # every problem exactly once
    assert not shard_outputs(out)  # merged once
    assert trajectories(records(out)) == trajectories(records(work / "clean.jsonl"))
    print("RAY OK")
    print(json.dumps({"nodes": nodes, "worker_killed": b, "node_removed": c, "driver_node": head,
                      "seconds": round(took, 1), "summary": said.strip().splitlines()[-1]}))


if __name__ == "__main__":
    main()
