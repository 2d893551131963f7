"""A stand-in for the GitHub REST API, written by us, on 127.0.0.1 for the act scenarios.

It serves what the workflows, `mlgitops` and the `cml` stand-in call (pulls, issue comments,
workflow runs and their artifacts), from state the scenario sets, and records every call so
scenarios assert on what was asked, not only on exit codes. Comment lists are paged the way
GitHub pages them: oldest first, 30 per page unless `per_page` says otherwise.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class State:
    """What the stand-in knows; the scenario fills it, the handlers read and grow it."""

    repository: str
    artifacts: Path  # the stand-in artifact store: <run id>/<name>.zip
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # workflow file -> runs
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]


class Handler(BaseHTTPRequestHandler):
    state: State
    base_url: str

    def log_message(self, *args: Any) -> None:  # the scenario reads calls, not logs
        pass

    def _reply(self, status: int, payload: Any = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/zip" if raw is not None else "application/json"
        )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        query = parse_qs(parts.query)
        state = self.state
        with state.lock:
            state.calls.append(Call(method, parts.path, query, body))
            repo = f"/repos/{state.repository}"
            path = parts.path
            if not path.startswith(repo) and not path.startswith("/_artifacts/"):
                return self._reply(404, {"message": "Not Found"})
            rest = path.removeprefix(repo)
            if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)", rest)):
                pull = state.pulls.get(int(m[1]))
                return (
                    self._reply(200, pull) if pull else self._reply(404, {"message": "Not Found"})
                )
            if method == "GET" and rest == "/pulls":
                wanted = query.get("state", ["open"])[0]
                listed = [p for p in state.pulls.values() if wanted in {"all", p["state"]}]
                return self._reply(200, listed[:30])
            if method == "POST" and rest == "/pulls":
                number = max(state.pulls, default=0) + 1
                state.pulls[number] = {
                    "number": number,
                    "state": "open",
                    "title": body["title"],
                    "body": body.get("body", ""),
                    "head": {"ref": body["head"], "sha": None},
                    "base": {"ref": body["base"]},
                    "html_url": f"https://github.invalid/{state.repository}/pull/{number}",
                }
                return self._reply(201, state.pulls[number])
            if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
                if method == "GET":
                    per_page = int(query.get("per_page", ["30"])[0])
                    page = int(query.get("page", ["1"])[0])
                    mine = [c for c in state.comments if c["issue"] == int(m[1])]
                    return self._reply(200, mine[(page - 1) * per_page : page * per_page])
                if method == "POST":
                    comment = {
                        "id": 1000 + len(state.comments),
                        "issue": int(m[1]),
                        "body": body["body"],
                    }
                    state.comments.append(comment)
                    return self._reply(201, comment)
            if method == "PATCH" and (m := re.fullmatch(r"/issues/comments/(\d+)", rest)):
                comment = next((c for c in state.comments if c["id"] == int(m[1])), None)
                if comment is None:
                    return self._reply(404, {"message": "Not Found"})
                comment["body"] = body["body"]
                return self._reply(200, comment)
            if method == "GET" and (m := re.fullmatch(r"/actions/workflows/([\w.-]+)/runs", rest)):
                runs = [
                    r
                    for r in reversed(state.runs.get(m[1], []))
                    if r["head_branch"] == query.get("branch", [r["head_branch"]])[0]
                    and r["status"] == query.get("status", [r["status"]])[0]
                ]
                return self._reply(200, {"total_count": len(runs), "workflow_runs": runs})
            if method == "GET" and (m := re.fullmatch(r"/actions/runs/(\d+)/artifacts", rest)):
                folder = state.artifacts / m[1]
                names = sorted(p.stem for p in folder.glob("*.zip")) if folder.is_dir() else []
                wanted = query.get("name", [None])[0]
                artifacts = [
                    {
                        "name": name,
                        "expired": False,
                        "archive_download_url": f"{self.base_url}/_artifacts/{m[1]}/{name}.zip",
                    }
                    for name in names
                    if wanted in {None, name}
                ]
                return self._reply(200, {"total_count": len(artifacts), "artifacts": artifacts})
            if method == "GET" and (m := re.fullmatch(r"/_artifacts/(\d+)/([\w.-]+)\.zip", path)):
                archive = state.artifacts / m[1] / f"{m[2]}.zip"
                if archive.is_file():
                    return self._reply(200, raw=archive.read_bytes())
            return self._reply(404, {"message": "Not Found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")


class GitHubApi:
    """The stand-in server: start() on a free loopback port, stop() when the scenario ends."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        handler = type("BoundHandler", (Handler,), {"state": state, "base_url": self.url})
        self.server.RequestHandlerClass = handler
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> GitHubApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
