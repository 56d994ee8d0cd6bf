"""A small EPCIS 2.0 capture interface for the tests (stdlib ``http.server`` on a thread).

``POST /capture`` validates the document with the project's validator (GS1 schema and semantic
checks) and answers ``202`` with ``Location: /capture/{n}``; ``GET /capture/{n}`` is the capture
job (``running`` for the first ``job_polls_running`` polls, then ``success`` and ``errors``).
It can be told to answer ``413`` above ``limit_bytes`` (with the ``GS1-…-Limit`` headers when
``tell_limits``), ``500`` for the next ``fail_next`` requests, or to be down (:meth:`stop`; start
it again on the same port with :meth:`start`). Every accepted event is kept by its ``eventID``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.epcis.validate import EpcisValidator


@dataclass
class CaptureServer:
    """The endpoint's behaviour and what it received (read it from the test's thread)."""

    validator: EpcisValidator
    port: int = 0
    limit_bytes: int | None = None
    tell_limits: bool = False
    fail_next: int = 0
    job_polls_running: int = 1
    documents: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[list[str]] = field(default_factory=list)
    too_large: int = 0
    event_ids: Counter[str] = field(default_factory=Counter)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    polls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The capture URL."""
        return f"http://127.0.0.1:{self.port}/capture"

    def start(self) -> CaptureServer:
        """Listen (on ``port``, 0: any free one, remembered for a restart)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers, payload = owner.post(
                    self.path, self.headers.get("Content-Type", ""), body
                )
                self._answer(status, headers, payload)

            def do_GET(self) -> None:
                status, payload = owner.get(self.path)
                self._answer(status, {}, payload)

            def _answer(self, status: int, headers: dict[str, str], payload: Any) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the port is kept for :meth:`start`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def post(self, path: str, content_type: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500, {}, {"error": "injected"}
            if path != "/capture":
                return 404, {}, None
            if self.limit_bytes is not None and len(body) > self.limit_bytes:
                self.too_large += 1
                told = (
                    {"GS1-Capture-File-Size-Limit": str(self.limit_bytes)}
                    if self.tell_limits
                    else {}
                )
                return 413, told, None
            if content_type != "application/ld+json":
                return 415, {}, None
            doc = json.loads(body)
            problems = self.validator.validate(doc)
            if problems:
                self.rejected.append([str(p) for p in problems])
                return 400, {}, {"problems": [str(p) for p in problems]}
            self.documents.append(doc)
            for event in doc["epcisBody"]["eventList"]:
                self.event_ids[event["eventID"]] += 1
            number = len(self.jobs) + 1
            self.jobs[number] = {"polls": 0}
            return 202, {"Location": f"/capture/{number}"}, None

    def get(self, path: str) -> tuple[int, Any]:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500, {"error": "injected"}
            number = path.rsplit("/", 1)[-1]
            job = self.jobs.get(int(number)) if number.isdigit() else None
            if job is None:
                return 404, None
            self.polls += 1
            job["polls"] += 1
            running = job["polls"] <= self.job_polls_running
            return 200, {
                "captureID": number,
                "running": running,
                "success": not running,
                "captureErrorBehaviour": "rollback",
                "errors": [],
            }
