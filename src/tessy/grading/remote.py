"""A remote sandbox behind the `Executor` interface: SandboxFusion's HTTP `run_code` service
(bytedance/SandboxFusion; run its container, pass `--sandbox http://HOST:8080`).

The job runs on the service's machine, isolated as the service isolates it; nothing of it
runs here. The request and answer are those of its `/run_code` endpoint (what its client
package `sandbox-fusion` sends): `code`, `language`, `stdin`, `run_timeout`,
`memory_limit_MB` in; `status` and `run_result` (`status`, `return_code`, `stdout`,
`stderr`, `execution_time`) out.
"""

from __future__ import annotations

import threading

import httpx

from tessy.grading.executor import Job, Outcome


class SandboxFusion:
    """Runs each job with one `POST {url}/run_code`."""

    def __init__(self, url: str, timeout_slack: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.name = f"SandboxFusion at {self.url}"
        self._slack = timeout_slack
        self._local = threading.local()  # one connection pool per grading thread
        self._clients: list[httpx.Client] = []

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(trust_env=False)
            self._clients.append(client)
        return client

    def run(self, job: Job) -> Outcome:
        limits = job.limits
        body = {"code": job.program, "language": "python", "stdin": job.stdin,
                "run_timeout": limits.wall_seconds, "compile_timeout": limits.wall_seconds,
                "memory_limit_MB": limits.memory_mb}
        try:
            response = self._client().post(f"{self.url}/run_code", json=body,
                                           timeout=limits.wall_seconds + self._slack)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome(None, error=f"{self.name}: {type(exc).__name__}: {exc}"[:300])
        if not isinstance(answer, dict):
            return Outcome(None, error=f"{self.name}: answered HTTP {response.status_code} "
                           "without a JSON object")
        run = answer.get("run_result") or {}
        if answer.get("status") == "SandboxError" or not isinstance(run, dict) or not run:
            message = str(answer.get("message") or f"HTTP {response.status_code}")
            return Outcome(None, error=f"{self.name}: {message[:200]}")
        cap = limits.output_chars
        code = run.get("return_code")
        return Outcome(code if isinstance(code, int) else None,
                       str(run.get("stdout") or "")[:cap], str(run.get("stderr") or "")[:cap],
                       timed_out=run.get("status") == "TimeLimitExceeded",
                       seconds=float(run.get("execution_time") or 0.0))

    def close(self) -> None:
        for client in self._clients:
            client.close()
