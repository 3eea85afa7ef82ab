"""Test support: a loopback LLM server speaking OpenAI's chat-completions wire format, and a
look at this process's descendants (sandboxes left behind).

The server answers every request with a reply computed from the *query* of the run (the
``Question:`` line of the first user message), so each answer can be matched to its query:

- ``What is EXPR?`` -> a ``python`` block running ``FINAL(str(EXPR))`` (``sqrt`` from math);
- ``Calculate fibonacci(N)`` -> a block that defines ``fibonacci`` and calls ``FINAL``;
- ``job J: A * B`` -> ``FINAL(f"J:{A * B}")``;
- ``sleep`` -> a block that sleeps for a minute (for cancellation);
- ``context`` -> ``FINAL(str(len(context)))`` (a run over a context);
- ``slow J`` -> the server waits two seconds before answering ``FINAL('slow J')``;
- ``leak`` -> a block printing an AWS access key id (the egress filter's business);
- ``no final`` -> a block that prints and never answers (for turn limits);
- anything else -> ``FINAL("unknown query")``.

Every block really runs in the bubblewrap sandbox; the server only writes the code.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

import pytest

try:
    import rlm._native  # noqa: F401
except ImportError as e:  # the source tree's `rlm` shadows the installed wheel
    raise ImportError(
        "python/tests test the installed wheel: run pytest from outside python/ "
        "(bash scripts/test builds and installs it into a throwaway venv)"
    ) from e

# Settings that would steer the orchestrators under test somewhere else.
_ENV_PREFIXES = ("RLM_",)
_ENV_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")


def code(body: str) -> str:
    return f"Let me compute that.\n```python\n{body}\n```\n"


def reply_for(query: str) -> str:
    """The model's reply for a run whose query is ``query``."""
    q = query.strip()
    m = re.fullmatch(r"What is (.+)\?", q)
    if m:
        return code(f"from math import sqrt\nFINAL(str({m.group(1)}))")
    m = re.fullmatch(r"Calculate fibonacci\((\d+)\)", q)
    if m:
        return code(
            "def fibonacci(n):\n"
            "    a, b = 0, 1\n"
            "    for _ in range(n):\n"
            "        a, b = b, a + b\n"
            "    return a\n"
            f"FINAL(str(fibonacci({m.group(1)})))"
        )
    m = re.fullmatch(r"job (\d+): (\d+) \* (\d+)", q)
    if m:
        j, a, b = m.groups()
        return code(f"FINAL(f'{j}:{{{a} * {b}}}')")
    if q == "sleep":
        return code("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\nFINAL('woke up')")
    m = re.fullmatch(r"slow (\d+)", q)
    if m:
        time.sleep(2.0)
        return code(f"FINAL('slow {m.group(1)}')")
    if q == "leak":
        return code("print('AKIA' + 'IOSFODNN7EXAMPLE')")
    if q == "no final":
        return code("print('still working')")
    if q == "context":
        return code("FINAL(str(len(context)))")
    return code("FINAL('unknown query')")


def query_of(request: Dict[str, Any]) -> str:
    """The run's query: the ``Question: ...`` line of the first user message."""
    for m in request.get("messages", []):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # content parts
                content = "".join(p.get("text", "") for p in content)
            found = re.search(r"^Question: (.*)$", content or "", re.MULTILINE)
            return found.group(1) if found else ""
    return ""


class LlmServer:
    """A threaded loopback server on 127.0.0.1:0; ``requests`` holds every body received."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                with server.lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                try:
                    text = reply_for(query_of(body))
                finally:
                    with server.lock:
                        server.in_flight -= 1
                out = json.dumps(
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 1,
                        "model": body.get("model", "test-model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512  # 200 runs connect at once

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def queries(self) -> List[str]:
        with self.lock:
            return [query_of(r) for r in self.requests]

    def wait_for_query(self, query: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while query not in self.queries():
            if time.monotonic() > deadline:
                raise AssertionError(f"the server never saw {query!r}")
            time.sleep(0.02)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def llm_server():
    s = LlmServer()
    yield s
    s.close()


@pytest.fixture
def rlm_env(llm_server, monkeypatch):
    """The environment a user would set: the library reads it in ``Orchestrator()``."""
    for k in list(os.environ):
        if k.startswith(_ENV_PREFIXES) or k in _ENV_KEYS:
            monkeypatch.delenv(k)
    monkeypatch.setenv("RLM_LLM_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("RLM_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("RLM_EXECUTION_TIMEOUT", "120")
    return dict(os.environ)


def descendants(root: Optional[int] = None) -> List[int]:
    """Every process descended from ``root`` (default: this one): the sandboxes' launchers,
    REPLs and whatever they started."""
    root = os.getpid() if root is None else root
    parent: Dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                for line in f:
                    if line.startswith("PPid:"):
                        parent[int(name)] = int(line.split()[1])
                        break
        except OSError:
            continue
    out = []
    for pid in parent:
        p = pid
        for _ in range(64):
            pp = parent.get(p)
            if pp == root:
                out.append(pid)
                break
            if pp is None or pp <= 1:
                break
            p = pp
    return sorted(out)


def wait_no_descendants(timeout: float, root: Optional[int] = None) -> List[int]:
    """Waits up to ``timeout`` seconds for no descendant to be left; returns those left."""
    deadline = time.monotonic() + timeout
    while True:
        left = descendants(root)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
