"""`shoal swarm ca [--rotate] [--cert-expiry D] [--ca-cert F --ca-key F] [-q] [--detach]`, as
`docker swarm ca` (cli/command/swarm/ca.go and progress/root_rotation.go)."""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli.client import Client
from shoal.cli.errors import CLIError

POLL = 1.0  # seconds between looks at the nodes while attached


def rotation_progress(swarm: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> tuple[int, int, int]:
    """(nodes whose certificate the desired root issued, nodes trusting only the desired root, all
    nodes): docker's updateProgress, comparing each node's TLSInfo with the swarm's."""
    want = swarm.get("TLSInfo") or {}
    certs = roots = 0
    for node in nodes:
        info = (node.get("Description") or {}).get("TLSInfo") or {}
        if info.get("CertIssuerPublicKey") == want.get("CertIssuerPublicKey") and info.get(
            "CertIssuerSubject"
        ) == want.get("CertIssuerSubject"):
            certs += 1
        if info.get("TrustRoot") == want.get("TrustRoot"):
            roots += 1
    return certs, roots, len(nodes)


def progress_lines(swarm: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    certs, roots, total = rotation_progress(swarm, nodes)
    digest = hashlib.sha256(str((swarm.get("TLSInfo") or {}).get("TrustRoot", "")).encode()).hexdigest()
    return [
        f"desired root digest: sha256:{digest}",
        f"  rotated TLS certificates: {certs}/{total} nodes",
        f"  rotated CA certificates:  {roots}/{total} nodes",
    ]


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise CLIError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def ca_spec(spec: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The swarm spec asking for the rotation: the given root (or ForceRotate + 1) and the expiry."""
    new = copy.deepcopy(dict(spec))
    cfg = new.setdefault("CAConfig", {})
    if args.cert_expiry is not None:
        cfg["NodeCertExpiry"] = args.cert_expiry
    if args.ca_cert:
        cfg["SigningCACert"] = _read(args.ca_cert, "CA certificate")
    if args.ca_key:
        cfg["SigningCAKey"] = _read(args.ca_key, "CA key")
    if not args.ca_cert and not args.ca_key:
        cfg["ForceRotate"] = int(cfg.get("ForceRotate") or 0) + 1
    return new


def _trust_root(swarm: Mapping[str, Any]) -> str:
    root = str((swarm.get("TLSInfo") or {}).get("TrustRoot") or "").strip()
    if not root:
        raise CLIError("No CA information available")
    return root


def cmd_ca(api: Client, args: argparse.Namespace) -> int:
    if not args.rotate:
        for flag, value in (("ca-cert", args.ca_cert), ("ca-key", args.ca_key), ("cert-expiry", args.cert_expiry)):
            if value is not None:
                raise CLIError(f"`--{flag}` flag requires the `--rotate` flag to update the CA")
        swarm = api.get("/swarm")
        if swarm.get("RootRotationInProgress"):
            certs, _, total = rotation_progress(swarm, api.get("/nodes"))
            print(f"rotation in progress: {certs}/{total} nodes", file=sys.stderr)
        print(_trust_root(swarm))
        return 0
    swarm = api.get("/swarm")
    api.post("/swarm/update", ca_spec(swarm.get("Spec") or {}, args), version=swarm.get("Version", {}).get("Index", 0))
    if args.detach:
        return 0
    shown: list[str] = []
    while True:  # as docker: wait until every node converted (Ctrl-C stops waiting, not the rotation)
        swarm, nodes = api.get("/swarm"), api.get("/nodes")
        lines = progress_lines(swarm, nodes)
        if lines != shown and not args.quiet:
            print("\n".join(lines), flush=True)
            shown = lines
        certs, roots, total = rotation_progress(swarm, nodes)
        if not swarm.get("RootRotationInProgress") and certs == roots == total:
            break
        time.sleep(POLL)
    if not args.quiet:
        print(_trust_root(swarm))
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("ca", help="Display and rotate the root CA")
    p.add_argument("--rotate", action="store_true", help="rotate the swarm CA (generates a root unless one is given)")
    p.add_argument("--ca-cert", metavar="PEM-FILE", help="path to the PEM-formatted root CA certificate to use")
    p.add_argument("--ca-key", metavar="PEM-FILE", help="path to the PEM-formatted root CA key to use")
    p.add_argument(
        "--cert-expiry", type=argtypes.duration, metavar="DURATION", help="validity period for node certificates"
    )
    p.add_argument("-d", "--detach", action="store_true", help="exit immediately instead of waiting for the rotation")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress progress output")
    p.add_argument(
        "--external-ca",
        metavar="SPEC",
        type=_external_ca_refused,
        help="not supported: shoal has no external CA (the flag is refused)",
    )
    p.set_defaults(func=cmd_ca)


def _external_ca_refused(_value: str) -> str:
    raise argparse.ArgumentTypeError("external CAs are not supported by shoal")
