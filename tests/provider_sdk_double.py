"""`ProviderDouble`: a loopback test double of the Anthropic and Gemini HTTP APIs for the real SDKs.

Used by `test_evaluate_providers.py`. It speaks just enough of the Anthropic Messages API and
Message Batches, the Gemini `generateContent` / batch / resumable-upload REST API and the OpenAI
files + batches endpoints for the official clients pointed at it through their base URL; it
records every request and answers from a script of canned replies. Loopback only.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLAUDE_MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": "claude-test",
    "content": [{"type": "text", "text": "Answer Choice 1: forest\nConfidence Score 1: 0.9"}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 2095, "output_tokens": 17, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0}}
GEMINI_RESPONSE = {
    "candidates": [{"content": {"parts": [{"text": "Answer Choice 1: river"}], "role": "model"},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 1290, "candidatesTokenCount": 8, "thoughtsTokenCount": 4,
                      "totalTokenCount": 1302},
    "modelVersion": "gemini-2.5-flash", "responseId": "abc123"}


class ProviderDouble:
    """Test double, loopback only: speaks just enough of the Anthropic Messages API (`POST
    /v1/messages`, the Message Batches endpoints) and of the Gemini REST API (`POST
    /v1beta/models/{model}:generateContent`) for the real SDK clients. Every request is recorded
    as (method, path, headers, JSON body); `script` holds canned replies `(status, headers, body,
    delay_s)` served first-in first-out before the default answers."""

    def __init__(self):
        self.received: list[tuple[str, str, dict, object]] = []
        self.script: list[tuple[int, dict, object, float]] = []
        self.batches: dict[str, dict] = {}
        self.files: dict[str, list] = {}
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw and not self.path.startswith("/upload/") else raw or None
                except ValueError:   # a multipart file upload
                    body = raw
                double.received.append((self.command, self.path, dict(self.headers), body))
                status, headers, out, delay = double.script.pop(0) if double.script else double.default(
                    self.command, self.path, body)
                time.sleep(delay)
                data = out if isinstance(out, bytes) else json.dumps(out).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        class Server(ThreadingHTTPServer):
            daemon_threads, block_on_close = True, False   # SDK clients keep idle connections open

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], ConnectionError):   # a client that timed out and hung up
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def default(self, method: str, path: str, body):
        if path == "/v1/messages":
            return 200, {}, CLAUDE_MESSAGE, 0.0
        if path.endswith(":generateContent"):
            return 200, {}, GEMINI_RESPONSE, 0.0
        if path == "/v1/messages/batches" and method == "POST":
            batch_id = f"msgbatch_{len(self.batches):04d}"
            self.batches[batch_id] = {"requests": body["requests"], "polls": 0}
            return 200, {}, self._batch(batch_id, "in_progress"), 0.0
        if path.startswith("/v1/messages/batches/") and path.endswith("/results"):
            batch_id = path.split("/")[4]
            lines = [{"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": CLAUDE_MESSAGE}}
                     for r in self.batches[batch_id]["requests"]]
            return 200, {}, "".join(json.dumps(line) + "\n" for line in lines).encode(), 0.0
        if path.startswith("/v1/messages/batches/"):
            batch_id = path.split("/")[4]
            self.batches[batch_id]["polls"] += 1
            ended = self.batches[batch_id]["polls"] > 1
            return 200, {}, self._batch(batch_id, "ended" if ended else "in_progress"), 0.0
        if path.startswith("/upload/") or path.startswith("/v1beta/batches") or ":download" in path or \
                path.endswith(":batchGenerateContent"):
            return self._gemini_batches(method, path, body)
        if path.startswith("/v1/files") or path.startswith("/v1/batches"):
            return self._openai_batches(method, path, body)
        return 404, {}, {"type": "error", "error": {"type": "not_found_error", "message": path}}, 0.0

    def _gemini_batches(self, method: str, path: str, body):
        """Gemini resumable upload (start, then upload+finalize), batchGenerateContent, get
        (succeeded at once), and the responses file download."""
        if path.startswith("/upload/v1beta/files"):
            return 200, {"x-goog-upload-url": f"{self.url}/upload/session-{len(self.files)}"}, {}, 0.0
        if path.startswith("/upload/session-"):
            file_id = f"files/in-{len(self.files)}"
            self.files[file_id] = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            return 200, {"x-goog-upload-status": "final"}, {"file": {
                "name": file_id, "mimeType": "jsonl", "sizeBytes": str(len(body)), "state": "ACTIVE"}}, 0.0
        if path.endswith(":batchGenerateContent"):
            batch_id = f"batches/b{len(self.batches)}"
            self.batches[batch_id] = {"body": body, "model": path.split("/")[3].split(":")[0]}
            return 200, {}, {"name": batch_id, "metadata": {
                "model": f"models/{self.batches[batch_id]['model']}", "state": "BATCH_STATE_PENDING"}}, 0.0
        if path.startswith("/v1beta/batches/"):
            batch_id = path.removeprefix("/v1beta/")
            output = {"responsesFile": f"files/out-{batch_id.removeprefix('batches/')}"}
            return 200, {}, {"name": batch_id, "done": True,
                             "metadata": {"state": "BATCH_STATE_SUCCEEDED", "output": output}}, 0.0
        batch_id = "batches/" + path.split("files/out-")[1].split(":")[0]   # GET .../files/out-bN:download
        requests = self.files[self.batches[batch_id]["body"]["batch"]["inputConfig"]["fileName"]]
        lines = [{"key": r["key"], "response": GEMINI_RESPONSE} for r in requests]
        return 200, {}, "".join(json.dumps(line) + "\n" for line in lines).encode(), 0.0

    def _openai_batches(self, method: str, path: str, body):
        """OpenAI files + batches: upload (multipart), create, retrieve (completed at once), content."""
        if (method, path) == ("POST", "/v1/files"):
            file_id = f"file-{len(self.files):04d}"
            self.files[file_id] = [json.loads(line.rstrip(b"\r")) for line in body.split(b"\n")
                                   if line.startswith(b"{")]
            return 200, {}, {"id": file_id, "object": "file", "bytes": len(body), "created_at": 1, "filename":
                             "requests.jsonl", "purpose": "batch", "status": "processed"}, 0.0
        if (method, path) == ("POST", "/v1/batches"):
            batch_id = f"batch_{len(self.batches):04d}"
            self.batches[batch_id] = {"input_file_id": body["input_file_id"], "body": body}
            return 200, {}, self._openai_batch(batch_id, "validating"), 0.0
        if path.startswith("/v1/batches/"):
            return 200, {}, self._openai_batch(path.split("/")[3], "completed"), 0.0
        file_id = path.split("/")[3]   # GET /v1/files/{id}/content
        requests = self.files[self.batches[file_id.removeprefix("out-")]["input_file_id"]]
        completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                      "choices": [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "Answer Choice 1: beach"}}],
                      "usage": {"prompt_tokens": 1200, "completion_tokens": 9, "total_tokens": 1209}}
        lines = [{"id": f"batch_req_{i}", "custom_id": r["custom_id"], "error": None,
                  "response": {"status_code": 200, "request_id": f"req_{i}", "body": completion}}
                 for i, r in enumerate(requests)]
        return 200, {}, "".join(json.dumps(line) + "\n" for line in lines).encode(), 0.0

    def _openai_batch(self, batch_id: str, status: str) -> dict:
        done = status == "completed"
        return {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                "input_file_id": self.batches[batch_id]["input_file_id"], "completion_window": "24h",
                "status": status, "output_file_id": f"out-{batch_id}" if done else None, "error_file_id": None,
                "created_at": 1, "request_counts": {"total": 1, "completed": 1 if done else 0, "failed": 0}}

    def _batch(self, batch_id: str, status: str) -> dict:
        count = len(self.batches[batch_id]["requests"])
        done = status == "ended"
        return {"id": batch_id, "type": "message_batch", "processing_status": status,
                "request_counts": {"processing": 0 if done else count, "succeeded": count if done else 0,
                                   "errored": 0, "canceled": 0, "expired": 0},
                "created_at": "2026-12-01T00:00:00Z", "expires_at": "2026-12-02T00:00:00Z",
                "ended_at": "2026-12-01T01:00:00Z" if done else None, "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if done else None}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
