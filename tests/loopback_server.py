"""The tests' stand-in HTTP servers (model nodes, a token service): their JSON answers, and their serving from a
thread on 127.0.0.1 with the listen backlog each server needs; and a free loopback port for a server the test starts
itself."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# socketserver's own: enough for one client at a time. A server that many clients reach at once needs more, or the
# kernel resets the connections that do not fit.
DEFAULT_BACKLOG = socketserver.TCPServer.request_queue_size


def reply_json(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
    """Answer the handler's request with `status` and the JSON body `data`."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def reply_empty(handler: BaseHTTPRequestHandler, status: int) -> None:
    """Answer the handler's request with `status` and no body."""
    handler.send_response(status)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _start(handler: type[BaseHTTPRequestHandler], backlog: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
    server.request_queue_size = backlog  # read by listen(), in server_activate
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def serve_in_background(
    handler: type[BaseHTTPRequestHandler], *, backlog: int = DEFAULT_BACKLOG
) -> ThreadingHTTPServer:
    """A server of `handler` on a free loopback port, answering from a daemon thread until `shutdown()`."""
    return _start(handler, backlog)[0]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], *, backlog: int = DEFAULT_BACKLOG) -> Iterator[ThreadingHTTPServer]:
    """A server of `handler` on a free loopback port for the block's duration; stopped and closed when it ends."""
    server, thread = _start(handler, backlog)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
