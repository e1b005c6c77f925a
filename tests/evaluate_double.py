"""A test double of an OpenAI-compatible Chat Completions server, for `isekai-gen evaluate` tests.

It is not a model: it listens on 127.0.0.1 only, reads the images of each request (data URLs),
looks up the true label of each query image (the test gives it `truth`: image sha256 -> label)
and answers in the prompt's own format — ManyICL's `Answer Choice i:` lines or LCL's
`there is "<label>" in the image` — giving the `wrong` label for the images listed there, so the
accuracy a scorer must find is set exactly by the test. It can inject faults, one per incoming
request in order (`faults`: "429", "500", "timeout", "truncated", "slow"), and counts every request
it receives by the sha256 of its body's messages.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUESTION = re.compile(r"Question (\d+): ")


def images_and_text(messages: list[dict]) -> tuple[list[str], str]:
    shas, texts = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content:
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                data = part["image_url"]["url"].split(",", 1)[1]
                shas.append(hashlib.sha256(base64.b64decode(data)).hexdigest())
    return shas, "".join(texts)


class OpenAIDouble:
    """Test double (see the module docstring). ``base_url`` is set once started."""

    def __init__(self, truth: dict[str, str], wrong: dict[str, str] | None = None, *, latency_s: float = 0.0,
                 faults=(), timeout_sleep_s: float = 2.0, abstain: set[str] | None = None,
                 usage: tuple[int, int] | None = (100, 10), models: list[str] | None = None, usage_fn=None):
        self.truth, self.wrong = truth, dict(wrong or {})
        self.latency_s, self.timeout_sleep_s = latency_s, timeout_sleep_s
        self.faults = collections.deque(faults)
        self.abstain = set(abstain or ())     # query images answered without an Answer Choice line
        self.usage = usage                    # (prompt_tokens, completion_tokens) per reply; None: no usage
        self.models = models                  # GET /v1/models lists these; None: 404, as servers without a list
        self.usage_fn = usage_fn              # body -> usage dict (a bench's token and cache accounting)
        self.keep_bodies = True               # a bench of huge requests turns this off
        self.bodies: list[dict] = []
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.server = None

    # --- answers -------------------------------------------------------------------------------

    def label(self, sha: str) -> str:
        return self.wrong.get(sha, self.truth[sha])

    def reply(self, messages: list[dict]) -> str:
        shas, text = images_and_text(messages)
        if "[FINAL QUESTION]" in text:
            return f'there is "{self.label(shas[-1])}" in the image'
        numbers = sorted({int(n) for n in QUESTION.findall(text)})
        queries = shas[len(shas) - len(numbers):]
        lines = []
        for number, sha in zip(numbers, queries):
            if sha in self.abstain:
                lines.append(f"I cannot tell what is in image {number}.")
                continue
            lines += [f"---BEGIN FORMAT TEMPLATE FOR QUESTION {number}---", f"Answer Choice {number}: {self.label(sha)}",
                      f"Confidence Score {number}: 0.9", f"---END FORMAT TEMPLATE FOR QUESTION {number}---"]
        return "\n".join(lines)

    # --- server --------------------------------------------------------------------------------

    def start(self) -> str:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive, as real servers answer
            disable_nagle_algorithm = True   # TCP_NODELAY, as real servers set: no 40 ms delayed-ACK stalls
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models") and double.models is not None:
                    data = [{"id": name, "object": "model", "created": 0, "owned_by": "double"} for name in double.models]
                    return self._send(200, json.dumps({"object": "list", "data": data}).encode())
                self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
                with double.lock:
                    if double.keep_bodies:
                        double.bodies.append(body)
                    double.counts[digest] += 1
                    fault = double.faults.popleft() if double.faults else None
                time.sleep(double.latency_s)
                if fault == "429":
                    return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "0"})
                if fault == "500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if fault == "400":
                    return self._send(400, b'{"error": {"message": "content policy"}}')
                if fault == "timeout":
                    time.sleep(double.timeout_sleep_s)
                if fault == "slow":
                    time.sleep(double.timeout_sleep_s / 4)
                text = double.reply(body["messages"])
                completion = {
                    "id": "chatcmpl-double", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                }
                if double.usage_fn is not None:
                    with double.lock:
                        completion["usage"] = double.usage_fn(body)
                elif double.usage is not None:
                    completion["usage"] = {"prompt_tokens": double.usage[0], "completion_tokens": double.usage[1],
                                           "total_tokens": sum(double.usage)}
                payload = json.dumps(completion).encode()
                if fault == "truncated":
                    payload = payload[: len(payload) // 2]
                self._send(200, payload)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128   # the default 5 refuses connections under --concurrency 16
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self):
        self.base_url = self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
