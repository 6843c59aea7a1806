"""A small OpenAI-compatible HTTP server on 127.0.0.1, the test double of a remote LLM endpoint.

    with FakeLLM() as server:
        server.answers["goldfish"] = ["orange scales", "fins"]
        server.script["tabby cat"] = ["429", "500", "malformed"]   # then normal answers
        server.always["zebra"] = "malformed"
        LLMSpec(base_url=server.base_url, api_key=server.api_key, model=server.model)
        server.chat_requests("goldfish")                           # bodies it received

It serves ``GET /v1/models`` and ``POST /v1/chat/completions``; the class of a request is the
first double-quoted phrase of its first user message (the default templates quote it).
Behaviours: ``429`` and ``500`` statuses, ``malformed`` (not JSON), ``slow`` (sleeps
``slow_s`` before answering).  Usage is counted in words, and its totals kept for comparison.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    def __init__(self, api_key: str = "test-key", model: str = "fake-model", delay_s: float = 0.0):
        self.api_key = api_key
        self.model = model
        self.delay_s = delay_s
        self.slow_s = 2.0
        self.answers: dict[str, list[str]] = {}
        self.script: dict[str, list[str]] = defaultdict(list)
        self.always: dict[str, str] = {}
        self.requests: list[dict] = []
        self.model_listings = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def class_of(body: dict) -> str:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        match = re.search(r'"([^"]+)"', user)
        return match.group(1) if match else user

    def chat_requests(self, class_name: str | None = None) -> list[dict]:
        with self._lock:
            return [b for b in self.requests if class_name is None or self.class_of(b) == class_name]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.model_listings = 0

    def _behaviour(self, class_name: str) -> str:
        with self._lock:
            if class_name in self.always:
                return self.always[class_name]
            queue = self.script.get(class_name)
            return queue.pop(0) if queue else "ok"

    def _content(self, class_name: str, body: dict) -> str:
        user = body["messages"][1]["content"]
        # distinct per template, stable across runs
        concepts = self.answers.get(class_name) or [f"{class_name} detail {sum(map(ord, user)) % 97}"]
        return json.dumps({"concepts": concepts})

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                self._send(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                with fake._lock:
                    fake.model_listings += 1
                self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model", "created": 0, "owned_by": "test"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if not self._authorised():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if body.get("model") != fake.model:
                    self._send(404, {"error": {"message": f"model {body.get('model')} not found"}})
                    return
                class_name = fake.class_of(body)
                with fake._lock:
                    fake.requests.append(body)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer(body, class_name, fake._behaviour(class_name))
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, body: dict, class_name: str, behaviour: str) -> None:
                time.sleep(fake.delay_s)
                if behaviour == "429":
                    self._send(429, {"error": {"message": "rate limited"}}, {"retry-after-ms": "1"})
                    return
                if behaviour == "500":
                    self._send(500, {"error": {"message": "server error"}})
                    return
                if behaviour == "slow":
                    time.sleep(fake.slow_s)
                content = "Sure! Here are the concepts: stripes, fur" if behaviour == "malformed" else fake._content(class_name, body)
                prompt = sum(len(m["content"].split()) for m in body["messages"])
                completion = len(content.split())
                with fake._lock:
                    fake.prompt_tokens += prompt
                    fake.completion_tokens += completion
                self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": fake.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
                    },
                )

        return Handler
