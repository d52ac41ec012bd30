"""A test double: a real local HTTP server that speaks the OpenAI and Anthropic APIs with scripted replies.

`ScriptedServer` listens on 127.0.0.1 (a free port) in a background thread and answers
`POST /v1/chat/completions` (OpenAI chat completions) and `POST /v1/messages` (Anthropic messages)
the way those services do, so the official SDKs, their retries and timeouts, and our client code all
run for real in tests and offline demos. Replies come from a queue (`enqueue`, in the spirit of
simonw/llm's queued mock model) and, when it is empty, from `responder`, a callable that sees the
request and can answer by agent (agents' system prompts carry a line such as "ROLE: planner").

It is not a model and not a general mock of either API: no streaming, no tool calls, no images; token
counts are estimated (about four characters a token) so budgets and the ledger see plausible numbers.

    with ScriptedServer() as server:
        server.enqueue('{"ok": true}')
        server.enqueue(status=429, headers={"retry-after": "0.2"})
        config = LLMConfig(base_url=server.openai_base_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Api = Literal["openai", "anthropic"]
ROUTES: dict[str, Api] = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}


@dataclass
class ScriptedReply:
    """One scripted answer. `text` is the assistant's message; a non-200 `status` turns it into the
    error message (a provider-shaped error body); `body` replaces the whole response body verbatim."""

    text: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering, to script client timeouts
    body: str | bytes | dict | None = None


@dataclass
class ScriptedRequest:
    api: Api
    path: str
    headers: dict[str, str]
    json: dict[str, Any]


Responder = Callable[[dict[str, Any], Api], "str | ScriptedReply | None"]


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def prompt_text(request: dict[str, Any], api: Api) -> tuple[str, str]:
    """(system, user) text of a chat request in either API, for responders that answer by role."""
    system, user = [], []

    def text_of(content: Any) -> str:
        if isinstance(content, str):
            return content
        return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))

    if api == "anthropic":
        system.append(text_of(request.get("system", "")))
    for message in request.get("messages", []):
        (system if message.get("role") in ("system", "developer") else user).append(text_of(message.get("content")))
    return "\n".join(system), "\n".join(user)


class ScriptedServer:
    """Context manager; `.openai_base_url`, `.anthropic_base_url`, `.enqueue(...)`, `.responder`,
    `.requests` (request JSON bodies, in arrival order) and `.log` (the same with api, path, headers)."""

    def __init__(self, responder: Responder | None = None):
        self.responder = responder
        self.log: list[ScriptedRequest] = []
        self._queue: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ScriptedServer:
        handler = type("Handler", (_Handler,), {"scripted": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval: stop() waits for the next poll, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the scripted server is not running: use it as a context manager")
        return self._server.server_address[1]

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        # The Anthropic SDK appends /v1/messages itself.
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.json for r in self.log]

    def enqueue(
        self,
        text: str | None = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        body: str | bytes | dict | None = None,
    ) -> None:
        with self._lock:
            self._queue.append(ScriptedReply(text, status, dict(headers or {}), delay_s, body))

    def pending(self) -> int:
        """Queued replies not yet served."""
        with self._lock:
            return len(self._queue)

    def _next_reply(self, request: ScriptedRequest) -> ScriptedReply | None:
        with self._lock:
            self.log.append(request)
            if self._queue:
                return self._queue.popleft()
        # Outside the lock: a responder may be slow or look at `requests` itself.
        if self.responder is None:
            return None
        answer = self.responder(request.json, request.api)
        return ScriptedReply(text=answer) if isinstance(answer, str) else answer


class _Handler(BaseHTTPRequestHandler):
    scripted: ScriptedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: test output should show the tests, not an access log.
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        api = ROUTES.get(self.path.split("?")[0].rstrip("/"))
        if api is None:
            self._send(404, {"error": {"message": f"scripted server: no route {self.path}", "type": "not_found"}})
            return
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, _error_body(api, 400, "scripted server: request body is not JSON"))
            return
        request = ScriptedRequest(api, self.path, {k.lower(): v for k, v in self.headers.items()}, payload)
        try:
            reply = self.scripted._next_reply(request)
        except Exception as err:
            reply = ScriptedReply(f"scripted server: responder raised {type(err).__name__}: {err}", status=500)
        if reply is None:
            reply = ScriptedReply(
                "scripted server: no reply queued and no responder set (enqueue one, or set .responder)", status=500
            )
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        if reply.body is not None:
            body = reply.body
        elif reply.status == 200:
            body = _success_body(api, payload, reply.text or "", len(self.scripted.log))
        else:
            body = _error_body(api, reply.status, reply.text or f"scripted error {reply.status}")
        self._send(reply.status, body, reply.headers)

    def _send(self, status: int, body: str | bytes | dict, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired first); that is what a delayed reply scripts.
            self.close_connection = True


def _success_body(api: Api, request: dict[str, Any], text: str, n: int) -> dict[str, Any]:
    system, user = prompt_text(request, api)
    tokens_in, tokens_out = estimate_tokens(system + user), estimate_tokens(text)
    model = request.get("model", "scripted")
    if api == "openai":
        return {
            "id": f"chatcmpl-scripted-{n}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
        }
    return {
        "id": f"msg_scripted_{n}", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "not_found_error", 429: "rate_limit_error"}.get(status, "api_error")
    if api == "openai":
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"type": "error", "error": {"type": kind, "message": message}}
