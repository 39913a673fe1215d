"""A stand-in for the Hugging Face hub's HTTP API on a local socket (for HF_ENDPOINT): repo
creation, YAML validation, pre-upload and commits of regular (inline) files. It records what was
sent; `fail_commits` makes commits answer HTTP 500."""

from __future__ import annotations

import base64
import json

from fake_server import JSONHandler, LocalHTTPServer


class FakeHub(LocalHTTPServer):
    """`with FakeHub() as hub:`; `hub.url` is the endpoint, `hub.files` what was committed."""

    def __init__(self) -> None:
        self.repos: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.auth: list[str] = []
        self.fail_commits = False
        self.url = f"http://127.0.0.1:{self._listen()}"

    def _handler(self):
        hub = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                self._json(404, {"error": "not here"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.auth.append(self.headers.get("Authorization", ""))
                if self.path == "/api/repos/create":
                    hub.repos.append(json.loads(body))
                    repo = json.loads(body)
                    self._json(200, {"url": f"{hub.url}/datasets/{repo['organization']}/{repo['name']}"})
                elif self.path == "/api/validate-yaml":
                    self._json(200, {"errors": [], "warnings": []})
                elif "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                "shouldIgnore": False} for f in files]})
                elif "/commit/" in self.path:
                    if hub.fail_commits:
                        self._json(500, {"error": "the hub is having a bad day"})
                        return
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            value = item["value"]
                            hub.files[value["path"]] = base64.b64decode(value["content"])
                    repo = self.path.split("/api/datasets/")[1].split("/commit/")[0]
                    self._json(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{'a' * 40}",
                                     "commitOid": "a" * 40})
                else:
                    self._json(404, {"error": f"no {self.path}"})

        return Handler
