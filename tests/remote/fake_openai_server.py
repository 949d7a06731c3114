"""A stand-in OpenAI-compatible completions server for tests/remote (standard library only).

Usage: python fake_openai_server.py <mode> <port-file>
Binds 127.0.0.1 on a free port, writes the port to <port-file> (atomically), and serves POST /v1/completions
until killed. Modes:
  ok         a valid answer: max_tokens tokens written "token_id:<id>", id_t = (sum(prompt ids) + seed + t) % 97,
             log-prob -0.125 * (t + 1), finish "length"; the request body is echoed under "kaizen_echo" and the
             most requests seen open at once under "kaizen_max_open" (each request is held 0.2 s).
  malformed  a body that is not JSON.
  missing    valid JSON whose choices[0].logprobs lacks "token_logprobs".
  flaky      HTTP 503 to the first 2 requests, then as "ok".
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1]
PORT_FILE = sys.argv[2]
lock = threading.Lock()
state = {"open": 0, "max_open": 0, "seen": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            state["seen"] += 1
            seen = state["seen"]
            state["open"] += 1
            state["max_open"] = max(state["max_open"], state["open"])
        try:
            if MODE == "malformed":
                return self.reply(200, '{"choices": [{"text": "4", "logprobs": {"tokens": ["4"')
            if MODE == "flaky" and seen <= 2:
                return self.reply(503, '{"error": "warming up"}')
            time.sleep(0.2)
            prompt = request.get("prompt", [])
            base = sum(prompt) if isinstance(prompt, list) else len(prompt)
            n = int(request.get("max_tokens", 1))
            ids = [(base + int(request.get("seed", 0)) + t) % 97 for t in range(n)]
            logprobs = {"tokens": ["token_id:%d" % i for i in ids],
                        "token_logprobs": [-0.125 * (t + 1) for t in range(n)],
                        "top_logprobs": None, "text_offset": list(range(n))}
            if MODE == "missing":
                del logprobs["token_logprobs"]
            with lock:
                max_open = state["max_open"]
            choice = {"text": "".join("<%d>" % i for i in ids), "index": 0, "logprobs": logprobs,
                      "finish_reason": "length"}
            self.reply(200, json.dumps({"id": "cmpl-%d" % seen, "object": "text_completion", "choices": [choice],
                                        "kaizen_echo": request, "kaizen_max_open": max_open}))
        finally:
            with lock:
                state["open"] -= 1


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
tmp = PORT_FILE + ".tmp"
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.replace(tmp, PORT_FILE)
server.serve_forever()
