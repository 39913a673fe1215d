"""Several replicas per role: routing that keeps prefixes warm, and failover over real sockets."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fake_server import FakeOpenAIServer
from tessy.backends.fake import SCRIPTS
from tessy.config import run_config_from_dict
from tessy.errors import TransientBackendError
from tessy.records import Problem
from tessy.replicas import ReplicaSet
from tessy.synthesis.roles import open_roles
from tessy.synthesis.run_loop import synthesize

URLS = [f"http://10.0.0.{i}:8000/v1" for i in range(3)]
KEYS = [f"problem-{i}" for i in range(600)]


def test_rendezvous_moves_only_the_problems_of_a_replica_that_goes_away():
    replicas = ReplicaSet(URLS)
    before = {k: replicas.pick(k).url for k in KEYS}
    assert {u: list(before.values()).count(u) > 150 for u in URLS} == dict.fromkeys(URLS, True)
    replicas.replicas[1].up = False
    during = {k: replicas.pick(k).url for k in KEYS}
    assert all(during[k] == before[k] for k in KEYS if before[k] != URLS[1])
    moved = {during[k] for k in KEYS if before[k] == URLS[1]}
    assert moved == {URLS[0], URLS[2]}  # spread over the others, not piled on one
    replicas.replicas[1].up = True
    assert {k: replicas.pick(k).url for k in KEYS} == before  # back where their caches are


def test_least_loaded_picks_the_idlest_and_keeps_a_problem_in_place_while_close():
    replicas = ReplicaSet(URLS, "least-loaded")
    a, b, c = replicas.replicas
    a.in_flight, b.in_flight, c.in_flight = 5, 1, 3
    assert replicas.pick("p").url == b.url
    b.in_flight = 4  # within the slack of the least loaded (c: 3): stays
    assert replicas.pick("p").url == b.url
    b.in_flight = 9  # clearly busier: moves to the least loaded
    assert replicas.pick("p").url == c.url
    c.up = False
    assert replicas.pick("p").url == a.url


async def test_a_replica_that_is_away_leaves_rotation_until_its_probe_answers():
    answers = iter([False, False, True])
    back = asyncio.Event()

    async def alive(url: str) -> bool:
        ok = next(answers)
        if ok:
            back.set()
        return ok

    replicas = ReplicaSet(URLS, alive=alive, probe_every=0.001)
    victim = replicas.pick("p")
    with pytest.raises(TransientBackendError) as err, replicas.route("p"):
        raise TransientBackendError("refused", server_down=True)
    assert err.value.failover and not victim.up and replicas.pick("p") is not victim
    with pytest.raises(TransientBackendError) as err, replicas.route("q"):
        raise TransientBackendError("dropped mid-stream")  # not a sign the replica is away
    assert not err.value.failover and len(replicas.live()) == 2
    await back.wait()
    await asyncio.sleep(0)
    assert victim.up and replicas.pick("p") is victim and victim.outages == 1
    single = ReplicaSet(URLS[:1])
    with pytest.raises(TransientBackendError) as err, single.route("p"):
        raise TransientBackendError("refused", server_down=True)
    assert not err.value.failover  # one replica is the whole role: the run-wide wait applies


@pytest.mark.parametrize("route", ["affinity", "least-loaded"])
async def test_killing_one_of_three_replicas_mid_run_loses_nothing(tmp_path, route):
    """3 real-socket teacher replicas; one is killed mid-run (its streams drop, connections are
    refused) and restarted later on its port. Nothing fails, no problem waits for it, and the
    restarted replica gets work again."""
    teachers = [FakeOpenAIServer(script=SCRIPTS["teacher"], token_delay=0.003) for _ in range(3)]
    student = FakeOpenAIServer(script=SCRIPTS["student"], token_delay=0.003)
    for server in (*teachers, student):
        server.__enter__()
    victim = teachers[1]
    port = int(victim.url.rsplit(":", 1)[1].split("/")[0])
    out = tmp_path / "o.jsonl"
    problems = [Problem(f"p{i}", f"What is {i} + 1?") for i in range(24)]
    model = {"backend": "openai_http", "template": "qwen3", "timeout": 5.0, "route": route}
    config = run_config_from_dict({
        "output": str(out),
        "teacher": model | {"base_urls": [t.url for t in teachers]},
        "student": model | {"base_urls": [student.url]},
        # Far shorter than the outage: a run that waited for the dead replica would stop.
        "synthesis": {"concurrency": 6, "backoff": 0.01, "server_down_after": 0.5},
    })
    killed, restarted, routing = threading.Event(), {}, {}

    def lines() -> int:
        return sum(1 for _ in open(out)) if out.exists() else 0

    def kill() -> None:
        victim.kill()
        killed.set()

    def on_request(body: dict) -> None:  # in the victim's thread: its 4th request kills it
        if len(victim.requests) == 4:
            threading.Thread(target=kill, daemon=True).start()

    victim.on_request = on_request

    def restart() -> None:
        killed.wait()
        # Back only once the client has taken it out of rotation and the others carried on.
        while lines() < 6 or not routing["teacher"].replicas[1].outages:
            threading.Event().wait(0.01)
        restarted["server"] = FakeOpenAIServer(script=SCRIPTS["teacher"], port=port).__enter__()

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    import tessy.replicas

    tessy.replicas.PROBE_EVERY, probe_every = 0.05, tessy.replicas.PROBE_EVERY
    try:
        async with open_roles(config) as roles:
            routing["teacher"] = roles["teacher"].backend.client.replicas
            summary = await synthesize(config, problems, roles, progress=False)
    finally:
        tessy.replicas.PROBE_EVERY = probe_every
        thread.join()
        for server in (*teachers, student, restarted.get("server")):
            if server is not None and server is not victim:
                server.__exit__()
    assert summary.failed == 0 and summary.written == len(problems) and not summary.stopped
    stats = summary.backends["teacher"]["replicas"]
    assert stats[victim.url]["outages"] >= 1
    assert restarted["server"].requests  # back in rotation after its probe answered
    assert all(stats[t.url]["outages"] == 0 for t in teachers if t is not victim)


async def test_a_replica_down_at_start_starts_out_of_rotation(caplog):
    from tessy.backends.openai_http import OpenAIHTTPBackend
    from tessy.config import RoleConfig

    with FakeOpenAIServer(script=SCRIPTS["teacher"]) as live:
        dead = "http://127.0.0.1:1/v1"
        backend = OpenAIHTTPBackend(RoleConfig(role="teacher", base_urls=[dead, live.url]))
        with caplog.at_level("WARNING", logger="tessy"):
            await backend.start()  # one answers: the run can start
        assert "127.0.0.1:1/v1/models is not ready" in caplog.text
        replicas = backend.client.replicas
        assert [r.up for r in replicas.replicas] == [False, True]
        assert all(replicas.pick(f"p{i}").url == live.url for i in range(20))
        await backend.close()
