"""The supervisor's liveness watchdog (streamscribe.stack.liveness) against real processes: a stopped one is
killed once it has been silent for the timeout, a starting one (nothing listening) and a healthy one are not."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Thread

from streamscribe.stack.liveness import Watchdog, answers
from streamscribe.stack.ports import free_port

SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], start_new_session=True)
    deadline = time.monotonic() + 30
    while answers(f"http://127.0.0.1:{port}/health") is not True:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.1)
    return proc


def test_answers_tells_an_answer_from_silence_and_from_nothing_listening() -> None:
    port = free_port()
    assert answers(f"http://127.0.0.1:{port}/health") is None  # refused: nothing listens yet
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        assert answers(f"http://127.0.0.1:{silent.getsockname()[1]}/health", timeout=0.5) is False

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert answers(f"http://127.0.0.1:{server.server_address[1]}/health") is True  # 503 is an answer
    finally:
        server.shutdown()


def test_a_stopped_process_is_killed_after_the_timeout_and_a_healthy_one_is_not() -> None:
    ports = free_port(), free_port()
    stopped, healthy = _server(ports[0]), _server(ports[1])
    try:
        targets = {"asr": (stopped.pid, f"http://127.0.0.1:{ports[0]}/health"),
                   "vad": (healthy.pid, f"http://127.0.0.1:{ports[1]}/health")}
        dog = Watchdog(lambda: targets, timeout_s=10, probe=lambda url: answers(url, timeout=0.5))
        os.kill(stopped.pid, signal.SIGSTOP)
        dog.check(100.0)
        dog.check(109.0)
        assert stopped.poll() is None and dog.killed == []  # silent for 9 s: not yet
        dog.check(110.5)
        assert dog.killed == [("asr", stopped.pid)]
        assert stopped.wait(10) == -signal.SIGKILL
        assert healthy.poll() is None
    finally:
        for proc in (stopped, healthy):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
