"""Join tokens: `SWMTKN-1-<CA digest>-<secret>`, as Docker Swarm writes them.

The digest pins the cluster root CA: a joining node fetches the CA certificate over an
unauthenticated connection and trusts it only if its digest matches the token. The secret then
travels only over TLS verified against that CA. Which of the two tokens (worker, manager) the
secret matches decides the role of the first certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from shoal.errors import InvalidArgument
from shoal.model.ids import to_base36

TOKEN_PREFIX = "SWMTKN"
TOKEN_VERSION = "1"
DIGEST_LENGTH = 50  # a sha256 written in base 36, zero-padded (SwarmKit's base36DigestLen)
SECRET_LENGTH = 25  # 128 random bits in base 36 (SwarmKit's maxGeneratedSecretLength)
_BASE36 = re.compile(r"[0-9a-z]+")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


class TokenError(InvalidArgument):
    """A malformed or non-matching join token (400); `message` is safe to show to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def ca_digest(ca_pem: str | bytes) -> str:
    """The digest of the root CA certificate(s) used in join tokens: sha256 over the DER bytes of
    every certificate in `ca_pem`, in base 36.

    SwarmKit hashes the PEM text itself; we hash the DER so that re-encoding the PEM (line
    endings, trailing newline) cannot change the digest. A single certificate, the usual case,
    is hashed as exactly its DER.
    """
    pem = ca_pem.decode(errors="replace") if isinstance(ca_pem, bytes) else ca_pem
    blocks = _PEM_CERT.findall(pem)
    if not blocks:
        raise TokenError("invalid CA certificate: no PEM certificate found")
    try:  # the standard library suffices: workers check tokens before they have cryptography loaded
        der = b"".join(base64.b64decode("".join(b.split()), validate=True) for b in blocks)
    except (binascii.Error, ValueError) as e:
        raise TokenError(f"invalid CA certificate: {e}") from None
    return to_base36(int.from_bytes(hashlib.sha256(der).digest(), "big"), DIGEST_LENGTH)


def make_join_token(ca_digest: str) -> str:
    """A fresh token for the CA whose `ca_digest()` is given; rotate by calling it again."""
    if len(ca_digest) != DIGEST_LENGTH or not _BASE36.fullmatch(ca_digest):
        raise ValueError(f"not a CA digest: {ca_digest!r}")
    secret = to_base36(secrets.randbits(128), SECRET_LENGTH)
    return f"{TOKEN_PREFIX}-{TOKEN_VERSION}-{ca_digest}-{secret}"


def parse_join_token(token: str) -> tuple[str, str]:
    """(CA digest, secret) of a well-formed token; `TokenError` says what is wrong otherwise."""
    if not isinstance(token, str):
        raise TokenError("invalid join token: expected a string")
    parts = token.strip().split("-")
    if len(parts) < 2 or parts[0] != TOKEN_PREFIX:
        raise TokenError("invalid join token: it must start with SWMTKN-1-")
    if parts[1] != TOKEN_VERSION:
        raise TokenError(f"invalid join token: unsupported version {parts[1]!r} (shoal reads SWMTKN-1 tokens)")
    if len(parts) != 4:
        raise TokenError("invalid join token: expected SWMTKN-1-<CA digest>-<secret>")
    digest, secret = parts[2], parts[3]
    if len(digest) != DIGEST_LENGTH or not _BASE36.fullmatch(digest) or int(digest, 36) >= 2**256:
        raise TokenError(f"invalid join token: the CA digest must be {DIGEST_LENGTH} base-36 characters")
    if len(secret) != SECRET_LENGTH or not _BASE36.fullmatch(secret):
        raise TokenError(f"invalid join token: the secret must be {SECRET_LENGTH} base-36 characters")
    return digest, secret


def token_matches(token: str, expected: str) -> bool:
    """Whether `token` is `expected`: same CA digest and, compared in constant time, same secret.

    A malformed `token` simply does not match.
    """
    try:
        digest, secret = parse_join_token(token)
    except TokenError:
        return False
    want_digest, want_secret = parse_join_token(expected)
    # Evaluate both comparisons so the timing does not tell which half differed.
    same_secret = hmac.compare_digest(secret.encode(), want_secret.encode())
    return (digest == want_digest) & same_secret


def token_role(token: str, worker_token: str, manager_token: str) -> str:
    """ "worker" or "manager" according to which cluster token `token` is, else `TokenError`."""
    parse_join_token(token)  # a malformed token gets its precise message
    if token_matches(token, manager_token):
        return "manager"
    if token_matches(token, worker_token):
        return "worker"
    raise TokenError("A valid join token is necessary to join this cluster")


def verify_ca_digest(ca_pem: str | bytes, token: str) -> None:
    """Pin the CA fetched over an unauthenticated channel to the digest in the join token."""
    want, _ = parse_join_token(token)
    got = ca_digest(ca_pem)
    if not hmac.compare_digest(got, want):
        raise TokenError(  # Docker's words first; then why it happens
            f"error while validating Root CA Certificate: remote CA does not match fingerprint. Expected: {want} "
            f"(the manager presented {got}): the token is from before a root CA rotation, or from another "
            "swarm, or someone is in the middle; get a current one with `shoal swarm join-token`"
        )
