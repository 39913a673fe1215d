"""A real multi-node Ray cluster on loopback running `tessy synthesize --ray`, with one Ray
worker process killed mid-run (`worker`) or a whole node removed mid-run (`node`). Run inside a
loopback-only network namespace (tests/test_ray.py does: `unshare -n`, `ip link set lo up`),
where every node is 127.0.0.1.

    python -m tests.ray_cluster_run WORKDIR worker|node   # prints RAY OK and a JSON line
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from fake_server import FakeOpenAIServer
from helpers import ids, problems_file, wait_for
from tessy.backends.fake import SCRIPTS
from tessy.io.shards import shard_outputs

N_PROBLEMS = 16


def main() -> None:
    work = Path(sys.argv[1])
    problems = problems_file(work, N_PROBLEMS)
    out = work / "o.jsonl"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker_node = cluster.add_node(num_cpus=1)  # one shard task per node: 1 CPU each
    ray.init(address=cluster.address, log_to_driver=False)
    nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
    assert nodes == ["127.0.0.1", "127.0.0.1"], nodes  # two nodes, loopback only
    ray.shutdown()  # the driver below is its own Ray client
    try:
        with FakeOpenAIServer(script=SCRIPTS["teacher"], token_delay=0.004) as t, \
                FakeOpenAIServer(script=SCRIPTS["student"], token_delay=0.004) as s:
            cmd = [sys.executable, "-m", "tessy", "synthesize", str(problems), "-o", str(out),
                   "-q", "--teacher", t.url, "--student", s.url, "--teacher-template", "qwen3",
                   "--student-template", "qwen3", "--concurrency", "3", "--workers", "2",
                   "--ray", cluster.address]
            driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
            log = out.with_name("o.jsonl.shards") / "1-of-2.jsonl.log"

            def pids() -> list[int]:
                return [int(x) for x in re.findall(r"ray worker pid (\d+)", log.read_text())] \
                    if log.exists() else []

            wait_for(lambda: pids() and sum(len(ids(p)) for p in shard_outputs(out)) >= 3,
                     timeout=120.0)
            if sys.argv[2] == "node":  # the node running one of the two shards dies
                victim = worker_node.all_processes["raylet"][0].process.pid
                cluster.remove_node(worker_node, allow_graceful=False)
            else:  # the Ray worker process running shard 1/2
                victim = pids()[0]
                os.kill(victim, signal.SIGKILL)
            stdout, stderr = driver.communicate(timeout=300)
            assert driver.returncode == 0, stderr
    finally:
        cluster.shutdown()
    got = ids(out)
    assert sorted(got) == sorted(f"q{i}" for i in range(N_PROBLEMS)), got
    assert len(got) == len(set(got))  # every problem exactly once
    assert not shard_outputs(out)  # merged once
    print("RAY OK")
    print(json.dumps({"nodes": nodes, "killed": victim, "summary": stdout.strip().splitlines()[-1]}))


if __name__ == "__main__":
    main()
