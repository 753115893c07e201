"""The `shoal/hello` image's program: the seed's web app, stdlib only.

Answers every GET on port 8080 (or argv[1]) with `Hello World! from <its IP>`: the IPv4 address
of its first non-loopback interface (interfaces in name order, so eth0 before eth1 whatever
order they were attached in), 127.0.0.1 when it has none yet. The address is looked up per
request because the networking code attaches interfaces after the task started.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import signal
import socket
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIOCGIFADDR = 0x8915


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = struct.pack("256s", name.encode()[:15])
            return socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24])
        except OSError:  # no IPv4 address on this interface
            return None


def my_ip() -> str:
    names = sorted((n for _, n in socket.if_nameindex() if n != "lo"), key=_natural)
    for name in names:
        addr = interface_ipv4(name)
        if addr and not addr.startswith("127."):
            return addr
    return "127.0.0.1"


class Hello(BaseHTTPRequestHandler):
    # Nagle + delayed ACK would cap this server near 1,100 req/s (notes/dataplane.md #11)
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"Hello World! from {my_ip()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would fill the task's log under load


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 8080
    server = Server(("0.0.0.0", port), Hello)
    print(f"hello: listening on :{port}", flush=True)
    # as a container's PID 1 no signal has a default action: SIGTERM (docker stop) must be handled
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
