"""The built-in images, made locally on first use as real OCI images (no registry needed).

- `shoal/hello`: the seed's web app — busybox-static's httpd on 8080 running a CGI script that
  answers every `GET /` with `Hello World! from <its IP>` (the IPv4 address of its first
  non-loopback interface in name order, looked up per request because interfaces are attached
  after the task starts; 127.0.0.1 when it has none).
- `shoal/host`: an empty root filesystem whose label `io.shoal.host-binds` asks the task driver
  to bind the host's /usr, /bin, /sbin and /lib* read-only — host tools in a container, through
  the generic label, not a special case in the runtime.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from shoal.model.errors import SpecError
from shoal.runtime.images import ocilayout
from shoal.runtime.images.reference import parse

HELLO = "shoal/hello:latest"
HOST = "shoal/host:latest"
BUILTIN_LABEL = "io.shoal.builtin"
HOST_BINDS = "/usr,/bin,/sbin,/lib,/lib64"
BUSYBOX = Path("/bin/busybox")
CREATED = "2024-01-01T00:00:00Z"  # fixed: the same node software always makes the same image ID

HELLO_CGI = """#!/bin/sh
# the seed's app: Hello World! from <the first non-loopback IPv4 address, interfaces in name order>
ip=$(ip -o -4 addr show | awk '$2 != "lo" { split($4, a, "/"); print $2, a[1] }' | sort | awk 'NR == 1 { print $2 }')
printf 'Content-Type: text/plain; charset=utf-8\\r\\n\\r\\nHello World! from %s\\n' "${ip:-127.0.0.1}"
"""
HELLO_MAIN = """#!/bin/sh
# shoal/hello [PORT]: busybox httpd serving the CGI app (8080 unless told otherwise)
echo "hello: listening on :${1:-8080}"
exec httpd -f -p "${1:-8080}" -h /www
"""
BUSYBOX_APPLETS = (
    "sh",
    "ip",
    "awk",
    "sort",
    "httpd",
    "printf",
    "cat",
    "ls",
    "sleep",
    "echo",
    "wget",
    "env",
    "id",
    "ps",
)


def is_builtin(ref: str) -> bool:
    try:
        return parse(ref).tagged in (HELLO, HOST) and not parse(ref).digest
    except SpecError:
        return False


def is_builtin_config(config: dict[str, Any]) -> bool:
    return (config.get("config") or {}).get("Labels", {}).get(BUILTIN_LABEL) == "true"


def build(name: str, layout: Path) -> None:
    """Write image `name` into `layout` under the ref name "builtin"."""
    with tempfile.TemporaryDirectory(prefix="builtin-", dir=layout.parent) as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir(mode=0o755)
        if name == HELLO:
            config = _hello(root)
        elif name == HOST:
            config = _host(root)
        else:
            raise SpecError(f"{name} is not a built-in image")
        layer = ocilayout.put_layer_from_dir(layout, root)
        ocilayout.put_image(layout, "builtin", [layer], config, created=CREATED)


def _hello(root: Path) -> dict[str, Any]:
    if not BUSYBOX.exists():
        raise SpecError(f"shoal/hello needs {BUSYBOX} (Debian package busybox-static)")
    (root / "bin").mkdir(mode=0o755)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    main = root / "bin" / "hello"
    main.write_text(HELLO_MAIN)
    main.chmod(0o755)
    cgi = root / "www" / "cgi-bin" / "index.cgi"
    cgi.parent.mkdir(parents=True, mode=0o755)
    cgi.write_text(HELLO_CGI)
    cgi.chmod(0o755)
    return {
        "Entrypoint": ["/bin/hello"],
        "Cmd": None,
        "Env": ["PATH=/bin"],
        "WorkingDir": "/www",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {BUILTIN_LABEL: "true"},
    }


def _host(root: Path) -> dict[str, Any]:
    for sub in HOST_BINDS.split(","):
        (root / sub.strip("/")).mkdir(mode=0o755)
    return {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Labels": {BUILTIN_LABEL: "true", "io.shoal.host-binds": HOST_BINDS},
    }
