"""An OpenAI-compatible chat-completions server on 127.0.0.1, scripted per request."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """Answers POST /v1/chat/completions from a script of replies; then from `default`.

    A reply is a status code (429, 500, 401: an error, with a zero retry-after), 'malformed'
    (a completion whose text holds no captions), or None (a normal list of captions)."""

    def __init__(self, script=()):
        self.script = list(script)

        self.requests: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                    number = len(fake.requests)
                    reply = fake.script.pop(0) if fake.script else None
                if isinstance(reply, int):
                    payload = json.dumps({"error": {"message": "scripted", "type": "scripted",
                                                    "code": str(reply)}}).encode()
                    self.send_response(reply)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("retry-after-ms", "5")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                prompt = body["messages"][-1]["content"]
                content = "{'not': 'captions'} ```" if reply == "malformed" else fake.answer(prompt, number)
                payload = json.dumps({
                    "id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 200, "total_tokens": 250},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, prompt: str, number: int) -> str:
        """A numbered list of distinct captions naming the concept quoted in the prompt."""
        concept = prompt.split('contain the word "', 1)[1].split('"', 1)[0]
        places = ["on a beach", "in a barn", "in the snow", "under a bridge", "at a market",
                  "in a meadow", "beside a lake", "on a rooftop"]
        colours = ["red", "blue", "golden", "grey", "striped"]
        return "\n".join(
            f"{i + 1}. \"A {colours[i % 5]} {concept} {places[(number + i) % 8]}, photo {number}-{i}.\""
            for i in range(10)
        )

    @property
    def base_url(self) -> str:
        """The /v1 URL to hand the openai client."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
