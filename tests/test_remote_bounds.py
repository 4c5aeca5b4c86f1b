"""An OpenAI-compatible server that misbehaves (on 127.0.0.1): hangs, trickles, answers non-JSON
or bad usage, or is slow past the run's deadline. Each is one line naming what happened, within
the bounds given, and what was stored before is kept."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.fake_openai import FakeOpenAI
from tests.output import said


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with `behave(connection)`."""

    def __init__(self, behave):
        self.behave = behave
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.stop = threading.Event()
        self.held = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            self.held.append(connection)
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection):
        try:
            connection.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            self.behave(connection, self.stop)
        except OSError:
            pass

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for connection in self.held:
            connection.close()
        self.listener.close()


def _never_answers(connection, stop):
    stop.wait(30)


def _trickles(connection, stop):
    """A byte every 0.3 s, each read within any read timeout; it hangs up after about 20 s, so a
    client that ignores its --timeout fails with another message instead of waiting for hours."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(70):
        if stop.wait(0.3):
            return
        connection.sendall(b" ")


def _answers(body: bytes, content_type: str = "application/json"):
    def behave(connection, stop):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode()
                           + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                           + body)
    return behave


def _redirects(location: str):
    def behave(connection, stop):
        connection.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location.encode()
                           + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return behave


COMPLETION = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "1. a horse on a hill"}}]}


def _add(run_cli, server, *extra):
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url}
    return run_cli("add-concept", "horse", "-n", "1000", "--generator", "openai", "--dedup-threshold", "1",
                   *extra, env=env)


@pytest.mark.parametrize("behave,fragment", [
    (_never_answers, "timed out: no answer within 1 s, 3 tries (--timeout)"),
    (_trickles, "timed out: its answer took over 1 s (--timeout)"),
    (_answers(b"<html>busy</html>", "text/html"), "answered with something other than JSON: b'<html>busy</html>'"),
    (_answers(json.dumps({**COMPLETION, "usage": {"prompt_tokens": "many"}}).encode()),
     "reported its token usage in the wrong form"),
    (_answers(json.dumps({"choices": "none"}).encode()), "answered JSON that is not a chat completion"),
    (_redirects("http://127.0.0.2:9/v1/chat/completions"), "redirected the request to another host, 127.0.0.2"),
    (_answers(json.dumps({**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help with that"}}]}).encode()),
     "sent an empty answer (no message text; it refused: I can't help with that)"),
], ids=["hangs", "trickles", "html", "bad-usage", "no-choices", "redirect-elsewhere", "null-content"])
@pytest.mark.sqlite_only
def test_a_misbehaving_server_is_one_line_within_the_bound(run_cli, bank_path, behave, fragment):
    """Each message names the bound that ended the wait (a hang's says which time-out ran out), so
    the bound is checked by what is said, not by a clock."""
    with RawServer(behave) as server:
        result = _add(run_cli, server, "--timeout", "1")
    lines = said(result.stderr)
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert not bank_path.exists() or run_cli("concepts", "--json").stdout.strip() == "[]"


class SlowFake(FakeOpenAI):
    """The scripted fake, answering each request after a pause."""

    def answer(self, prompt, number):
        time.sleep(0.4)
        return super().answer(prompt, number)


@pytest.mark.sqlite_only
def test_the_run_stops_at_its_deadline_and_keeps_what_it_stored(run_cli):
    with SlowFake() as server:
        result = _add(run_cli, server, "--deadline", "1")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("ran past its deadline of 1 s (--deadline); what was stored is kept, "
                                          "run again to continue")
    stored = json.loads(run_cli("show", "horse", "--json").stdout)["sentence_count"]
    assert 0 < stored < 1000
