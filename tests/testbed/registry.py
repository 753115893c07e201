"""The testbed's registry: Debian's `docker-registry` (distribution 2.8) in the controller
namespace at 10.213.0.1:5000, TLS from a test CA every host trusts (its private
/etc/shoal/certs.d/10.213.0.1:5000/ca.crt) and htpasswd basic auth (bcrypt, user `shoal`).

Everything slow is cached under `.state/registry/` (outside `.state/testbed/`, which `down`
removes): the CA and server certificate, the password, the test images' OCI layout and the
registry's storage, so a warm `up` only starts the process. The test images are made here from
Debian packages (busybox-static, nodejs) — no image comes from the internet:

- `10.213.0.1:5000/testbed/hello:1` — busybox httpd answering `registry hello` on 8080 (2 MB);
- `10.213.0.1:5000/kalise/nodejs-web-app:latest` — the seed's app: Debian's `node` binary and the
  shared libraries `ldd` lists, plus a 10-line server answering `Hello World! from <its IP>` on 8080;
- `10.213.0.1:5000/testbed/healthy:1` and `testbed/unhealthy:1` — the hello image with a Dockerfile
  HEALTHCHECK in its config (every 2 s; one that passes, one that always fails), for services that
  set no check of their own.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from testbed import procs
from testbed.layout import CONTROLLER_ADDR, CONTROLLER_NS, REPO_ROOT, HostLayout
from testbed.nsexec import call_in_netns

PORT = 5000
HOST = f"{CONTROLLER_ADDR}:{PORT}"
USER = "shoal"
CACHE = REPO_ROOT / ".state" / "registry"
BUSYBOX = Path("/bin/busybox")
NODE = Path("/usr/bin/node")
IMAGES_VERSION = "2"  # bump when the images below change: the cache is rebuilt

HELLO = "testbed/hello:1"
NODEJS_APP = "kalise/nodejs-web-app:latest"
HEALTHY = "testbed/healthy:1"
UNHEALTHY = "testbed/unhealthy:1"
_SECOND = 1_000_000_000
# a Dockerfile's `HEALTHCHECK --interval=2s --timeout=2s --retries=2 CMD ...`, as the image config holds it
IMAGE_CHECKS = {
    HEALTHY: {"Test": ["CMD-SHELL", "[ -x /www/cgi-bin/index.cgi ]"], "Interval": 2 * _SECOND, "Timeout": 2 * _SECOND,
              "Retries": 2},
    UNHEALTHY: {"Test": ["CMD", "/bin/sh", "-c", "exit 1"], "Interval": 2 * _SECOND, "Timeout": 2 * _SECOND,
                "Retries": 2},
}  # fmt: skip

NODE_SERVER = """// the seed's app (kalise/nodejs-web-app): Hello World! from <its first non-loopback IPv4>
const http = require('http');
const os = require('os');
function myIp() {
  const ifs = os.networkInterfaces();
  const names = Object.keys(ifs).filter(n => n !== 'lo').sort((a, b) => a.localeCompare(b, 'en', {numeric: true}));
  for (const n of names) for (const a of ifs[n]) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}
http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(`Hello World! from ${myIp()}\\n`);
}).listen(8080, '0.0.0.0', () => console.log('listening on :8080'));
process.on('SIGTERM', () => process.exit(0));
"""

HELLO_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\nregistry hello\\n'
"""


def password() -> str:
    return (CACHE / "password").read_text().strip()


def ca_cert() -> Path:
    return CACHE / "ca.crt"


def manifest_digest(name: str, tag: str) -> str:
    """The registry's own digest for `name:tag` (asked from the controller namespace, with the CA)."""
    return subprocess.run(
        ["ip", "netns", "exec", CONTROLLER_NS, "curl", "-s", "--cacert", str(ca_cert()), "-u",
         f"{USER}:{password()}", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
         "-o", "/dev/null", "-w", "%header{docker-content-digest}", f"https://{HOST}/v2/{name}/manifests/{tag}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def ref(name: str) -> str:
    return f"{HOST}/{name}"


def inventory_vars() -> dict[str, object]:
    """What the inventory gives site.yml and the agent role to deploy the seed's app from this
    registry: the image, the CA per registry (agent_registry_cas, written to /etc/shoal/certs.d) and
    the credentials. CA and password are file lookups on the controller, read when a play runs:
    the password is never written into the inventory (and swarm_image never logs it)."""
    return {
        "shoal_nodejs_image": ref(NODEJS_APP),
        "shoal_registry_username": USER,
        "shoal_registry_password": _file_lookup(CACHE / "password"),
        "agent_registry_cas": {HOST: _file_lookup(ca_cert(), "rstrip=false")},
    }


def _file_lookup(path: Path, *options: str) -> str:
    args = ", ".join(["'ansible.builtin.file'", f"'{path}'", *options])
    return "{{ lookup(" + args + ") }}"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_credentials() -> None:
    """Test CA, server certificate for 10.213.0.1, password and its bcrypt htpasswd line."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "server.crt").exists():
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shoal testbed registry CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CONTROLLER_ADDR)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(CONTROLLER_ADDR))]), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        (CACHE / "ca.crt").write_bytes(ca.public_bytes(pem))
        _write_private(
            CACHE / "server.key",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        (CACHE / "server.crt").write_bytes(cert.public_bytes(pem))
    if not (CACHE / "htpasswd").exists():
        import bcrypt

        secret = secrets.token_urlsafe(18)
        _write_private(CACHE / "password", secret.encode() + b"\n")
        hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=10)).decode()
        _write_private(CACHE / "htpasswd", f"{USER}:{hashed}\n".encode())
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(CACHE / "data")}, "delete": {"enabled": True}},
        "http": {
            "addr": HOST,
            "secret": "shoal-testbed",
            "tls": {"certificate": str(CACHE / "server.crt"), "key": str(CACHE / "server.key")},
        },
        "auth": {"htpasswd": {"realm": "shoal-testbed", "path": str(CACHE / "htpasswd")}},
    }
    (CACHE / "config.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML


def trust(hosts: list[HostLayout]) -> None:
    """Each host's private /etc/shoal/certs.d/HOST:PORT/ca.crt (Docker's layout)."""
    for layout in hosts:
        d = layout.state_dir / "etc" / "certs.d" / HOST
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca_cert(), d / "ca.crt")


def start(state_dir: Path, hosts: list[HostLayout]) -> int:
    """Start the registry (its pid in state_dir/registry.pid) and make sure the test images are in it."""
    ensure_credentials()
    trust(hosts)
    log = open(state_dir / "registry.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        ["ip", "netns", "exec", CONTROLLER_NS, "docker-registry", "serve", str(CACHE / "config.yml")],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    (state_dir / "registry.pid").write_text(f"{proc.pid}\n")
    _wait_port(proc.pid, state_dir)
    push_test_images()
    return proc.pid


def stop(state_dir: Path) -> None:
    pid = procs.read_pidfile(state_dir / "registry.pid")
    if pid and procs.alive(pid):
        procs.stop(procs.descendants([pid]))
    (state_dir / "registry.pid").unlink(missing_ok=True)


def _wait_port(pid: int, state_dir: Path, timeout: float = 15.0) -> None:
    def probe() -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((CONTROLLER_ADDR, PORT), timeout=0.5):
                    return True
            except OSError:
                if not procs.alive(pid):
                    return False
                time.sleep(0.05)
        return False

    if not call_in_netns(CONTROLLER_NS, probe, timeout + 5):
        log = (state_dir / "registry.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the testbed registry did not start: {log}")


# ---- test images
def build_layout() -> Path:
    """The test images in an OCI layout (cached)."""
    from shoal.runtime.images import ocilayout

    layout = CACHE / "build"
    marker = layout / f"built-{IMAGES_VERSION}"
    if marker.exists():
        return layout
    shutil.rmtree(layout, ignore_errors=True)
    ocilayout.init_layout(layout)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "hello"
        (root / "bin").mkdir(parents=True)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in ("sh", "httpd", "printf", "sleep", "cat", "ls"):
            (root / "bin" / applet).symlink_to("busybox")
        cgi = root / "www" / "cgi-bin" / "index.cgi"
        cgi.parent.mkdir(parents=True)
        cgi.write_text(HELLO_CGI)
        cgi.chmod(0o755)
        layer = ocilayout.put_layer_from_dir(layout, root)
        hello = {
            "Entrypoint": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "Env": ["PATH=/bin"],
            "ExposedPorts": {"8080/tcp": {}},
        }
        ocilayout.put_image(layout, HELLO, [layer], hello)
        for name, check in IMAGE_CHECKS.items():
            ocilayout.put_image(layout, name, [layer], {**hello, "Healthcheck": check})
        node_root = Path(tmp) / "node"
        for lib in [NODE, *_shared_libraries(NODE)]:
            dest = node_root / str(lib).lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib.resolve(), dest)
        (node_root / "app").mkdir()
        (node_root / "app" / "server.js").write_text(NODE_SERVER)
        layer = ocilayout.put_layer_from_dir(layout, node_root)
        ocilayout.put_image(
            layout,
            NODEJS_APP,
            [layer],
            {
                "Entrypoint": ["/usr/bin/node", "/app/server.js"],
                "Env": ["PATH=/usr/bin:/bin", "NODE_ENV=production"],
                "WorkingDir": "/app",
                "ExposedPorts": {"8080/tcp": {}},
                "StopSignal": "SIGTERM",
            },
        )
    marker.touch()
    return layout


def _shared_libraries(binary: Path) -> list[Path]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(Path(path))
    return libs


def auth_json() -> bytes:
    """A docker `config.json` (or skopeo authfile) holding the registry's credentials."""
    token = base64.b64encode(f"{USER}:{password()}".encode()).decode()
    return json.dumps({"auths": {HOST: {"auth": token}}}).encode()


def write_docker_config(directory: Path) -> Path:
    """`directory/config.json` with the registry's credentials (0600): a DOCKER_CONFIG for the CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    _write_private(directory / "config.json", auth_json())
    return directory


def push_test_images() -> None:
    marker = CACHE / "data" / f"pushed-{IMAGES_VERSION}"
    if marker.exists():
        return
    layout = build_layout()
    auth = CACHE / "push-auth.json"
    _write_private(auth, auth_json())
    policy = CACHE / "policy.json"
    policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    certs = CACHE / "certs.d"
    certs.mkdir(exist_ok=True)
    shutil.copyfile(ca_cert(), certs / "ca.crt")
    try:
        for name in (HELLO, NODEJS_APP, *IMAGE_CHECKS):
            subprocess.run(
                ["ip", "netns", "exec", CONTROLLER_NS, "skopeo", f"--policy={policy}", "copy", "--quiet",
                 f"--dest-authfile={auth}", f"--dest-cert-dir={certs}", f"oci:{layout}:{name}", f"docker://{ref(name)}"],
                check=True,
                capture_output=True,
                timeout=600,
            )  # fmt: skip
    finally:
        auth.unlink(missing_ok=True)
    marker.touch()
