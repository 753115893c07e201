"""The `TLSInfo` object (Swarm.TLSInfo, Node.Description.TLSInfo) computed from a CA certificate."""

from __future__ import annotations

import base64

from shoal.errors import SpecError


def tls_info(trust_root_pem: str | bytes) -> dict[str, str]:
    """`TLSInfo` for certificates issued by the (first) certificate of `trust_root_pem`.

    The API reference calls these "base64-url-safe" but Docker sends Go's []byte JSON encoding,
    which is standard base64 (its own example contains `/` and `+`); we match what Docker sends.
    """
    # imported here: only managers build TLSInfo, and cryptography costs every agent ~8 MB
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = trust_root_pem.encode() if isinstance(trust_root_pem, str) else trust_root_pem
    try:
        issuer = x509.load_pem_x509_certificates(pem)[0]
    except ValueError as e:
        raise SpecError(f"invalid CA certificate: {e}") from None
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "TrustRoot": pem.decode(),
        "CertIssuerSubject": base64.b64encode(issuer.subject.public_bytes()).decode(),
        "CertIssuerPublicKey": base64.b64encode(spki).decode(),
    }
