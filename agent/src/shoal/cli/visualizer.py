"""`shoal visualizer --print-url | --listen ADDR`.

`--print-url` asks the local agent (root-only socket) for its page's URL with the token.
`--listen ADDR` serves the same page from this command: the packaged assets, and the state and
live feed relayed from the agent's visualizer listener with the token added, so a user can open
the page on another loopback port (or forward it) without handling the token. The manager's own
listener must be on (`ui_addr`).
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import socketserver
import sys
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from shoal.cli.client import Client
from shoal.cli.errors import CLIError

ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


def page_url(client: Client) -> tuple[str, str]:
    answer = client.get("/shoal/visualizer")
    return answer["URL"], answer["Addr"]


def make_handler(upstream: str, token: str) -> type[http.server.BaseHTTPRequestHandler]:
    host, _, port = upstream.rpartition(":")

    class Relay(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: it is a foreground tool
            pass

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # http.server calls it by this name
            path = urlsplit(self.path).path
            ui = files("shoal.ui")
            if path == "/":
                self._send(200, "text/html", ui.joinpath("index.html").read_bytes())
            elif path.startswith("/static/") and path[len("/static/") :] in ASSETS:
                name = path[len("/static/") :]
                self._send(200, ASSETS[name], ui.joinpath(name).read_bytes())
            elif path in ("/api/state", "/api/events"):
                self._relay(path)
            else:
                self._send(404, "application/json", b'{"message": "not found"}')

        def _relay(self, path: str) -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=None if path == "/api/events" else 10)
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
                resp = conn.getresponse()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type", "application/json"))
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                while chunk := resp.read1(65536):
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (OSError, http.client.HTTPException):
                self.close_connection = True
            finally:
                conn.close()

    return Relay


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def cmd_visualizer(client: Client, args: argparse.Namespace) -> int:
    url, upstream = page_url(client)
    if args.print_url:
        print(url)
        return 0
    if not args.listen:
        raise CLIError('"shoal visualizer" needs --print-url or --listen ADDR')
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise CLIError(f"invalid --listen {args.listen!r}: use host:port, e.g. 127.0.0.1:8089")
    token = url.split("token=", 1)[1]
    server = Server((host, int(port)), make_handler(upstream, token))
    print(f"visualizer on http://{args.listen}/ (relaying {upstream}; Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("visualizer", help="The cluster's live board (a web page)")
    p.add_argument("--print-url", action="store_true", help="print the page's URL with its token")
    p.add_argument("--listen", metavar="ADDR", help="serve the page from this command on host:port")
    p.set_defaults(func=cmd_visualizer)
