"""The join protocol, node side: check the request, pin the CA by the token's digest, get a certificate.

1. fetch the CA over an unauthenticated channel and pin it against the token's digest;
2. send a certificate request, authenticated by the token, over TLS verified against the pinned CA.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from shoal import hostinfo, tls
from shoal.agent.credentials import text
from shoal.clusterclient import ClusterClient
from shoal.errors import InvalidArgument
from shoal.manager import tokens


@dataclass(frozen=True)
class JoinRequest:
    token: str
    remotes: list[str]  # HOST:PORT of managers (the port defaults to 2377)
    ca_digest: str  # the digest the token pins the cluster CA to


def parse_join_request(body: dict[str, Any]) -> JoinRequest:
    token = body.get("JoinToken")
    remotes = body.get("RemoteAddrs")
    if not isinstance(token, str) or not token:
        raise InvalidArgument("a join token is required (--token)")
    if not isinstance(remotes, list) or not remotes or not all(isinstance(r, str) for r in remotes):
        raise InvalidArgument("at least one remote manager address is required (HOST:PORT)")
    digest, _ = tokens.parse_join_token(token)  # a TokenError is a 400 as it is
    return JoinRequest(token, [r if ":" in r else f"{r}:2377" for r in remotes], digest)


async def request_certificate(
    req: JoinRequest,
    advertise_ip: str,
    cluster_port: int,
    raft_port: int,
    description: dict[str, Any] | None = None,
) -> tuple[bytes, str | bytes, dict[str, Any]]:
    """(CA, key, the manager's grant: NodeID, ClusterID, Role, Certificate, Managers...).
    `description`: this host's (hostinfo) unless given (simulated nodes name their own)."""
    _, answer = await ClusterClient(tls.bootstrap_client_context()).call_any(req.remotes, "GET", "/shoal/ca")
    ca_pem = answer["CACertificate"].encode()
    tokens.verify_ca_digest(ca_pem, req.token)  # TokenError (400): the CA is not the token's
    key_pem, csr_pem = await asyncio.to_thread(tls.new_key_and_csr)
    desc = description or await asyncio.to_thread(hostinfo.description)  # probes the kernel once (net/xfrm.py)
    pinned = ClusterClient(tls.client_context(ca_pem))
    _, grant = await pinned.call_any(
        req.remotes,
        "POST",
        "/shoal/join",
        {
            "Token": req.token,
            "CSR": text(csr_pem),
            "Hostname": desc["Hostname"],
            "AdvertiseIP": advertise_ip,
            "ClusterPort": cluster_port,
            "RaftPort": raft_port,
            "Description": desc,
        },
        timeout=10.0,
    )
    return ca_pem, key_pem, grant
