"""A real HTTP server on 127.0.0.1 for download tests: Range support, cut-short bodies, request log.

Tests start it themselves (port 0, in a thread) and serve bytes they made; it never talks to
anything but the loopback interface.  ``server.responders[path]`` overrides how one path is
answered, for hostile or broken servers: :func:`endless`, :func:`trickle`, :func:`no_length`,
:func:`held`.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: "LoopbackServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        srv = self.server
        with srv.lock:
            srv.requests.append((self.path, self.headers))
            cut, srv.cut_after = srv.cut_after, None  # a cut applies to one request only
        responder = srv.responders.get(self.path)
        if responder is not None:
            try:
                responder(self)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: expected here
                pass
            self.close_connection = True
            return
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        status, body, extra = 200, data, {}
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, body = 206, data[start:]
            extra["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))  # the full length, even when cutting short
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if cut is None:
            self.wfile.write(body)
        else:
            self.wfile.write(body[:cut])
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, Message]] = []
        self.ignore_range = False
        self.cut_after: int | None = None
        self.responders: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.closing = threading.Event()  # set on shutdown: endless responders stop

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@contextlib.contextmanager
def serve() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.closing.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


Responder = Callable[[BaseHTTPRequestHandler], None]


def _headers(handler: BaseHTTPRequestHandler, length: int | None,
             content_type: str = "application/octet-stream") -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()


def endless(block: bytes = b"\0" * 65536) -> Responder:
    """A body that never ends (no Content-Length), until the client hangs up or the server stops."""
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, None)
        while not handler.server.closing.is_set():  # type: ignore[attr-defined]
            handler.wfile.write(block)
    return respond


def trickle(data: bytes, interval: float, first_byte_after: float = 0.0) -> Responder:
    """``data`` one byte every ``interval`` seconds (with its Content-Length), after a silence."""
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, len(data))
        handler.wfile.flush()
        if handler.server.closing.wait(first_byte_after):  # type: ignore[attr-defined]
            return
        for i in range(len(data)):
            handler.wfile.write(data[i:i + 1])
            handler.wfile.flush()
            if handler.server.closing.wait(interval):  # type: ignore[attr-defined]
                return
    return respond


def no_length(data: bytes, content_type: str = "application/octet-stream") -> Responder:
    """``data`` without a Content-Length: the client sees the body end when the connection closes
    (so a body cut short looks complete)."""
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, None, content_type)
        handler.wfile.write(data)
    return respond


def held(data: bytes, gate: threading.Event, timeout: float = 60.0) -> Responder:
    """Half of ``data``, then the rest once ``gate`` is set: keeps a download in flight on cue."""
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, len(data))
        half = len(data) // 2
        handler.wfile.write(data[:half])
        handler.wfile.flush()
        deadline = time.monotonic() + timeout
        while not gate.wait(0.05):
            if handler.server.closing.is_set() or time.monotonic() > deadline:  # type: ignore[attr-defined]
                return
        handler.wfile.write(data[half:])
    return respond
