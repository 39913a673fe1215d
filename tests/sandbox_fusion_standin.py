"""A stand-in for a SandboxFusion service on a local socket: its `/run_code` request and answer
shapes, with each job run for real by tessy's LocalSandbox (SandboxFusion itself ships as a
container, which this machine cannot run)."""

from __future__ import annotations

import json

from fake_server import JSONHandler, LocalHTTPServer
from tessy.grading.sandbox import Job, Limits, LocalSandbox


class SandboxFusionStandIn(LocalHTTPServer):
    """`with SandboxFusionStandIn() as sf:`; `sf.url` is the service's base URL."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.box = LocalSandbox()
        self.url = f"http://127.0.0.1:{self._listen()}"

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.box.close()

    def _handler(self):
        service = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                service.requests.append(body)
                if self.path != "/run_code" or body.get("language") != "python":
                    self._json(200, {"status": "SandboxError", "message": "unsupported",
                                     "run_result": None})
                    return
                out = service.box.run(Job(body["code"], body.get("stdin") or "", Limits(
                    wall_seconds=body["run_timeout"], memory_mb=body["memory_limit_MB"])))
                status = ("TimeLimitExceeded" if out.timed_out else
                          "Finished" if out.returncode is not None else "Error")
                self._json(200, {
                    "status": "Success" if out.ok else "Failed", "message": "",
                    "compile_result": None, "files": {},
                    "run_result": {"status": status, "execution_time": out.seconds,
                                   "return_code": out.returncode, "stdout": out.stdout,
                                   "stderr": out.stderr}})

        return Handler
