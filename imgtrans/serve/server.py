"""Running the app: who may bind where, the listening socket, uvicorn in the foreground or in a thread.

The socket is bound here, before uvicorn starts, so a port in use or a host this machine does not
have is one line (:class:`ImgtransError`) instead of a log record and an exit from inside uvicorn.
"""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

from ..util.errors import ConfigError, RunError


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); any other name counts as public."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str | None) -> None:
    """Anything but loopback is reachable from other machines: it needs a token."""
    if token is not None and not token.strip():
        raise ConfigError("--token is empty: give a secret string (e.g. from `openssl rand -hex 16`)")
    if not is_loopback(host) and token is None:
        raise ConfigError(f"--host {host} is reachable from other machines: serving there needs --token TOKEN "
                          "(clients then send 'Authorization: Bearer TOKEN'); or use --host 127.0.0.1")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), or one line saying why not."""
    host = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise RunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: Any, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5))


def run(app: Any, sock: socket.socket, log_level: str = "info") -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C / SIGTERM."""
    _server(app, log_level).run(sockets=[sock])


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` in a background thread (tests, benchmarks); yields its base URL, stops on exit."""
    sock = bind(host, port)
    server = _server(app, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="imgtrans-serve", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RunError("the server stopped while starting")
            thread.join(0.01)
        yield url(sock)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
